"""Tests of dlp.predictions."""
