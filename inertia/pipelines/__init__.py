"""Ready pipelines and loaders: images (the embedded digits model or any diffusers pipeline) and text.

- :func:`load_image_pipeline`, :func:`configure` (sampler / guidance / attention presets by name).
- :func:`load_text_model` (the embedded SmolLM2-135M by default), :func:`generate_text` (decoding by name).

The names are imported on first use, so that the CLI can check its arguments without importing torch.

Example:
    >>> from inertia.pipelines import DigitsPipeline, configure, load_digits_pipeline, load_image_pipeline
"""

from inertia._lazy import lazy_attributes, names_by_module

_NAMES = names_by_module(
    {
        "inertia.core.presets.pipeline": "ATTENTION_PRESETS GUIDANCE_PRESETS SAMPLER_PRESETS",
        "inertia.pipelines.loading": "EMBEDDED_DIGITS_DIR EmbeddedWeightsNotFoundError load_digits_pipeline",
        "inertia.pipelines.text_generation": "TEXT_METHODS generate_text",
        "inertia.pipelines.digits": "DigitsPipeline",
        "inertia.pipelines.limits": "ModelLoadError",
        "inertia.pipelines.text": "TextModelNotFoundError load_text_model",
        "inertia.pipelines.presets": "configure",
        "inertia.pipelines.image": "load_image_pipeline",
    }
)
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
