"""The model registry: trained model versions and their files."""
