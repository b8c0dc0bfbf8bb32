"""Ready pipelines and loaders: images (the embedded digits model or any diffusers pipeline) and text.

- :func:`load_image_pipeline`, :func:`configure` (sampler / guidance / attention presets by name).
- :func:`load_text_model` (the embedded SmolLM2-135M by default), :func:`generate_text` (decoding by name).

The names are imported on first use, so that the CLI can check its arguments without importing torch.

Example:
    >>> from inertia.pipelines import DigitsPipeline, configure, load_digits_pipeline, load_image_pipeline
"""

from inertia._lazy import lazy_attributes

_NAMES = {
    "ATTENTION_PRESETS": "inertia.core.presets.pipeline",
    "EMBEDDED_DIGITS_DIR": ".loading",
    "GUIDANCE_PRESETS": "inertia.core.presets.pipeline",
    "SAMPLER_PRESETS": "inertia.core.presets.pipeline",
    "TEXT_METHODS": ".text_generation",
    "DigitsPipeline": ".digits",
    "EmbeddedWeightsNotFoundError": ".loading",
    "ModelLoadError": ".limits",
    "TextModelNotFoundError": ".text",
    "configure": ".presets",
    "generate_text": ".text_generation",
    "load_digits_pipeline": ".loading",
    "load_image_pipeline": ".image",
    "load_text_model": ".text",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
