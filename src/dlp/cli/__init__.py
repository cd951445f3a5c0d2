"""The ``dlp`` command."""
