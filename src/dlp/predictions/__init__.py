"""Online predictions: the loaded-model cache and inference."""
