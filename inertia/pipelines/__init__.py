"""Ready pipelines and loaders."""
