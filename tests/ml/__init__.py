"""Tests of dlp.ml (CPU, tiny models)."""
