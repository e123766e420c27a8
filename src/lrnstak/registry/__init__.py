"""The model registry: every model version, its artifact, metadata and training data."""
