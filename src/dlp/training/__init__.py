"""Training jobs: submission, the worker task, metrics and cancellation."""
