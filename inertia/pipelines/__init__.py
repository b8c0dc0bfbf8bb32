"""Ready pipelines and loaders.

Example:
    >>> from inertia.pipelines import DigitsPipeline, load_digits_pipeline
"""

from .digits import DigitsPipeline
from .loading import EMBEDDED_DIGITS_DIR, EmbeddedWeightsNotFoundError, load_digits_pipeline

__all__ = ["EMBEDDED_DIGITS_DIR", "DigitsPipeline", "EmbeddedWeightsNotFoundError", "load_digits_pipeline"]
