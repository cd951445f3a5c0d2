"""The file store: datasets, model files and checkpoints, addressed by string keys."""

from dlp.storage.base import FileStore, FileWriter, StoredFile, validate_key
from dlp.storage.factory import create_file_store

__all__ = ["FileStore", "FileWriter", "StoredFile", "create_file_store", "validate_key"]
