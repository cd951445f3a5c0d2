"""Housekeeping: spent credentials, orphaned files, old checkpoints and retention."""
