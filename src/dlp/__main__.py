"""``python -m dlp`` runs the ``dlp`` command."""

from dlp.cli.main import app

app()
