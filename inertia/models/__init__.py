"""Model wrappers for the embedded image model."""
