"""dlp: a self-hosted deep-learning platform."""

__version__ = "0.1.0"
