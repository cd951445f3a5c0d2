"""PyTorch layer of dlp: preprocessing, architectures, the training loop and inference.

Nothing here imports torch at package import time: ``dlp.ml.config`` is on the API's
hot path. Import the submodules that need torch (``dlp.ml.artifact``,
``dlp.ml.trainer``, ...) only where training or inference happens.
"""
