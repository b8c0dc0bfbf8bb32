"""Ready pipelines and loaders: images (the embedded digits model or any diffusers pipeline) and text.

- :func:`load_image_pipeline`, :func:`configure` (sampler / guidance / attention presets by name).
- :func:`load_text_model` (the embedded SmolLM2-135M by default), :func:`generate_text` (decoding by name).

Example:
    >>> from inertia.pipelines import DigitsPipeline, configure, load_digits_pipeline, load_image_pipeline
"""

from .digits import DigitsPipeline
from .image import load_image_pipeline
from .loading import EMBEDDED_DIGITS_DIR, EmbeddedWeightsNotFoundError, load_digits_pipeline
from .presets import ATTENTION_PRESETS, GUIDANCE_PRESETS, SAMPLER_PRESETS, configure
from .text import TextModelNotFoundError, load_text_model
from .text_generation import TEXT_METHODS, generate_text

__all__ = [
    "ATTENTION_PRESETS",
    "EMBEDDED_DIGITS_DIR",
    "GUIDANCE_PRESETS",
    "SAMPLER_PRESETS",
    "TEXT_METHODS",
    "DigitsPipeline",
    "EmbeddedWeightsNotFoundError",
    "TextModelNotFoundError",
    "configure",
    "generate_text",
    "load_digits_pipeline",
    "load_image_pipeline",
    "load_text_model",
]
