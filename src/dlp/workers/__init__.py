"""Workers, their queues and the housekeeping that keeps every job moving."""
