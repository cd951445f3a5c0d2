"""Online predictions: the model server (L1 cache, micro-batching) and its inputs."""
