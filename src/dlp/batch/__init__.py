"""Batch predictions: a registered model run over a whole dataset by a worker."""
