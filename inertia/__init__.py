"""inertia: momentum-based sampling, guidance and decoding for diffusers and transformers."""

__version__ = "0.1.0"
