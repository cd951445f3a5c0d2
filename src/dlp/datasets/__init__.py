"""Datasets: streamed uploads, validation and profiling."""
