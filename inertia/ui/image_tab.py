"""The Image tab: a sampler, a guidance method and momentum attention on the embedded digits model or any pipeline.

The pure part (:func:`sampler_preset`, :func:`guidance_params`, :func:`attention_params`, :func:`generate_images`)
does not touch Gradio; :func:`build_image_tab` lays out the controls and wires them to it.

Example:
    >>> sampler_preset("ghvb", beta=0.8, auto_beta=False, order=4)
    'ghvb:3.8'
    >>> sampler_preset("hb-dpm++", beta=0.8, auto_beta=False, order=4)
    'hb-dpm++:0.8'
    >>> guidance_params("apg+higs", apg_eta=0.0, apg_momentum=-0.5, apg_threshold=0.0, higs_weight=1.0)
    {'apg_eta': 0.0, 'apg_momentum': -0.5, 'higs_weight': 1.0}
"""

from __future__ import annotations

import functools
import html
import inspect
import math
import numbers
import time
from typing import Any

import torch
from PIL import Image

from inertia.pipelines.display import DISPLAY_SIZE, display_factor, enlarge
from inertia.pipelines.limits import MAX_BATCH, MAX_SEED, MAX_STEPS
from inertia.pipelines.presets import ATTENTION_PRESETS, GUIDANCE_PRESETS, SAMPLER_PRESETS

from .models import ImageModel, ModelStore, UserInputError

__all__ = [
    "DISPLAY_SIZE",
    "MAX_BATCH",
    "attention_params",
    "build_image_tab",
    "generate_images",
    "guidance_params",
    "sampler_preset",
    "to_display",
]

MAX_SCALE = 30.0

PLMS_MOMENTUM = ("ghvb", "hb", "nt")
"""Sampler presets written ``name:r`` with the papers' momentum number r = order − 1 + β."""
BETA_SAMPLERS = ("hb-dpm++", *PLMS_MOMENTUM)
APG_GUIDANCE = ("apg", "apg+higs")
HIGS_GUIDANCE = ("higs", "apg+higs")


# ----------------------------------------------------------------------------------------------- validation helpers
def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise UserInputError(f"{name} must be a whole number in {low}..{high}, got {value!r}.")
    return int(value)


def _float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise UserInputError(f"{name} must be a finite number in [{low}, {high}], got {value!r}.")
    if not low <= float(value) <= high:
        raise UserInputError(f"{name} must be in [{low}, {high}], got {value!r}.")
    return float(value)


def _choice(name: str, value: Any, registry: dict[str, str]) -> str:
    if value not in registry:
        raise UserInputError(f"{name} must be one of {', '.join(registry)}; got {value!r}.")
    return str(value)


# ------------------------------------------------------------------------------------------------ preset builders
def sampler_preset(sampler: str, beta: float, auto_beta: bool, order: int, scale: float = 7.5, steps: int = 20) -> str:
    """The preset string of the sampler controls: ``hb-dpm++:β``, ``ghvb|hb|nt:r`` with r = order − 1 + β.

    With ``auto_beta``, hb-dpm++'s β is the recommended one for this guidance ``scale`` and number of ``steps``
    (:func:`inertia.samplers.recommend.recommended_beta`), written out so the figures show it.
    """
    sampler = _choice("Sampler", sampler, SAMPLER_PRESETS)
    if sampler == "hb-dpm++":
        if auto_beta:
            from inertia.samplers.recommend import recommended_beta

            beta = recommended_beta(
                _float("Guidance scale", scale, 0.0, MAX_SCALE), _int("Steps", steps, 1, 10_000), "hb-dpm"
            )
        return f"hb-dpm++:{_float('Momentum β', beta, 0.01, 1.0):g}"
    if sampler in PLMS_MOMENTUM:
        order = _int("Order", order, 1, 4)
        beta = _float("Momentum β", beta, 0.01, 1.0)
        return f"{sampler}:{round(order - 1 + beta, 6):g}"
    return sampler


def guidance_params(
    guidance: str, apg_eta: float, apg_momentum: float, apg_threshold: float, higs_weight: float
) -> dict[str, float]:
    """Overrides for :func:`~inertia.pipelines.presets.configure` (``apg_`` / ``higs_`` prefixes for apg+higs).

    ``apg_threshold`` 0 keeps the preset's resolution-scaled norm threshold r.
    """
    guidance = _choice("Guidance", guidance, GUIDANCE_PRESETS)
    apg: dict[str, float] = {}
    higs: dict[str, float] = {}
    if guidance in APG_GUIDANCE:
        apg = {"eta": _float("APG η", apg_eta, 0.0, 1.0), "momentum": _float("APG β", apg_momentum, -0.99, 0.99)}
        if _float("APG norm threshold", apg_threshold, 0.0, 1e6) > 0:
            apg["norm_threshold"] = float(apg_threshold)
    if guidance in HIGS_GUIDANCE:
        higs = {"weight": _float("HiGS weight", higs_weight, 0.0, 10.0)}
    if guidance == "apg+higs":
        return {**{f"apg_{k}": v for k, v in apg.items()}, **{f"higs_{k}": v for k, v in higs.items()}}
    return apg or higs


@functools.cache
def preset_attention_beta(attention: str) -> float:
    """The β the attention preset uses when none is given (read from the preset, so the two never disagree)."""
    from inertia.pipelines.presets import attention_config

    return float(attention_config(attention).beta)


def attention_params(attention: str, extrapolate_beta: float | None, ema_beta: float | None) -> dict[str, float]:
    """Overrides of `MomentumAttention` for an attention preset: β for extrapolate / ema (None: the preset's)."""
    attention = _choice("Momentum attention", attention, ATTENTION_PRESETS)
    beta = {"extrapolate": extrapolate_beta, "ema": ema_beta}.get(attention)
    if beta is None:
        return {}
    return {"beta": _float(f"{attention} β", beta, -0.99, 0.99)}


# ---------------------------------------------------------------------------------------------------- images
def to_display(images01: torch.Tensor, size: int = DISPLAY_SIZE) -> list[Image.Image]:
    """``(N, 3, H, W)`` images in [0, 1] as PIL images, small ones enlarged nearest-neighbour to >= ``size``."""
    array = (images01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [enlarge(Image.fromarray(item), display_factor(max(item.shape[:2]), size)) for item in array]


def strip(images: list[Image.Image], gap: int = 8) -> Image.Image:
    """The images side by side on a white background (one picture for the comparison slider)."""
    width = sum(image.width for image in images) + gap * (len(images) - 1)
    height = max(image.height for image in images)
    canvas = Image.new("RGB", (width, height), "white")
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width + gap
    return canvas


def _sample(model: ImageModel, request: dict[str, Any], configuration: dict[str, Any]) -> tuple[torch.Tensor, float]:
    """Configures the pipeline and samples under its lock: (images in [0, 1] on the CPU, seconds)."""
    from inertia.pipelines.presets import configure

    pipe = model.pipe
    seeds = [request["seed"] + i for i in range(request["batch"])]
    generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
    common = {
        "num_inference_steps": request["steps"],
        "guidance_scale": request["scale"],
        "generator": generators,
        "output_type": "pt",
    }

    def call(batch: int, **kwargs: Any) -> Any:
        if model.is_digits:
            return pipe([request["digit"]] * batch, **kwargs).images
        negative = [request["negative_prompt"]] * batch if request["negative_prompt"] else None
        return pipe(prompt=[request["prompt"]] * batch, negative_prompt=negative, **kwargs).images

    with model.lock:
        try:
            configure(pipe, **configuration, guidance_scale=request["scale"])
        except ValueError as err:
            raise UserInputError(str(err)) from err
        device = torch.device(getattr(pipe, "_execution_device", None) or getattr(pipe, "device", "cpu"))
        if not model.warm:  # the first call pays one-off costs (allocations, kernels): keep them out of the timing
            call(1, num_inference_steps=1, guidance_scale=request["scale"], output_type="pt")
            model.warm = True
        start = time.perf_counter()
        images = call(request["batch"], **common)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    images = images if torch.is_tensor(images) else torch.as_tensor(images).permute(0, 3, 1, 2)
    return images.float().cpu(), seconds


def _figures(images01: torch.Tensor, seconds: float) -> dict[str, float]:
    from inertia.metrics.digits import colour_stats

    stats = colour_stats(images01.clamp(0, 1))
    return {
        "seconds": round(seconds, 3),
        "seconds_per_image": round(seconds / images01.shape[0], 3),
        "mean_saturation": round(stats["mean_saturation"], 4),
        "clipped_fraction": round(stats["clipped_fraction"], 4),
    }


SAMPLER_LABELS = {"default": "stock scheduler"}
"""How the compare table names the presets that leave the pipeline as it is."""
GUIDANCE_LABELS = {"none": "stock CFG", "cfg": "CFG (inertia)"}
"""The ``none`` guidance preset is the pipeline's own CFG, not "no guidance": the table says so."""


def _table(figures: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| run | sampler | guidance | attention | seconds | saturation | clipped |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in figures.items():
        config = f["config"]
        sampler = SAMPLER_LABELS.get(config["sampler"], f"`{config['sampler']}`")
        guidance = GUIDANCE_LABELS.get(config["guidance"], f"`{config['guidance']}`")
        rows.append(
            f"| **{name}** | {sampler} | {guidance} | `{config['attention']}` | "
            f"{f['seconds']:.2f} | {f['mean_saturation']:.3f} | {f['clipped_fraction']:.3f} |"
        )
    return "\n".join(rows)


def generate_images(
    store: ModelStore,
    model: str = "digits",
    digit: int | str = 7,
    prompt: str = "",
    negative_prompt: str = "",
    sampler: str = "hb-dpm++",
    beta: float = 0.8,
    auto_beta: bool = True,
    order: int = 4,
    guidance: str = "apg",
    apg_eta: float = 0.0,
    apg_momentum: float = -0.5,
    apg_threshold: float = 0.0,
    higs_weight: float = 1.0,
    attention: str = "off",
    extrapolate_beta: float | None = None,
    ema_beta: float | None = None,
    steps: int = 20,
    scale: float = 7.5,
    seed: int = 0,
    batch: int = 4,
    compare: bool = True,
) -> tuple[list[tuple[Image.Image, str]], tuple[Image.Image, Image.Image] | None, str, dict[str, Any]]:
    """Generates ``batch`` images (seeds ``seed``, ``seed + 1``, ...) with the chosen configuration and, in compare
    mode, the baseline (stock scheduler + CFG) from the same seeds.

    Returns:
        (gallery items, (baseline strip, chosen strip) or None, a Markdown table, the figures as a dict).

    Raises:
        UserInputError: any invalid input, before sampling.
    """
    request = {
        "steps": _int("Steps", steps, 1, MAX_STEPS),
        "scale": _float("Guidance scale", scale, 0.0, MAX_SCALE),
        "seed": _int("Seed", seed, 0, MAX_SEED),
        "batch": _int("Batch", batch, 1, MAX_BATCH),
        "digit": _int("Digit", int(digit) if isinstance(digit, str) and digit.strip().isdigit() else digit, 0, 9),
        "prompt": (prompt or "").strip(),
        "negative_prompt": (negative_prompt or "").strip(),
    }
    if len(request["prompt"]) > 2000 or len(request["negative_prompt"]) > 2000:
        raise UserInputError("Prompts must be at most 2000 characters.")
    chosen = {
        "sampler": sampler_preset(sampler, beta, auto_beta, order, request["scale"], request["steps"]),
        "guidance": _choice("Guidance", guidance, GUIDANCE_PRESETS),
        "attention": _choice("Momentum attention", attention, ATTENTION_PRESETS),
        "guidance_params": guidance_params(guidance, apg_eta, apg_momentum, apg_threshold, higs_weight),
        "attention_params": attention_params(attention, extrapolate_beta, ema_beta),
    }
    image_model = store.image(model)
    if image_model.is_digits and request["prompt"]:
        raise UserInputError(
            "The embedded digits model takes a digit, not a prompt: clear the prompt, or give a text-to-image model."
        )
    if not image_model.is_digits and not request["prompt"]:
        raise UserInputError(f"{image_model.name!r} is a text-to-image model: enter a prompt.")

    runs = {"baseline": {}, "chosen": chosen} if compare else {"chosen": chosen}
    images: dict[str, torch.Tensor] = {}
    figures: dict[str, dict[str, Any]] = {}
    for name, configuration in runs.items():
        images[name], seconds = _sample(image_model, request, configuration)
        config = {"sampler": "default", "guidance": "none", "attention": "off", **configuration}
        figures[name] = {**_figures(images[name], seconds), "config": config}

    shown = to_display(images["chosen"])
    gallery = [(image, f"seed {request['seed'] + i}") for i, image in enumerate(shown)]
    slider = (strip(to_display(images["baseline"])), strip(shown)) if compare else None
    summary = {"model": image_model.name, "device": str(store.device), **request, "runs": figures}
    return gallery, slider, _table(figures), summary


REQUEST_FIELDS = tuple(inspect.signature(generate_images).parameters)[1:]
"""The inputs of the Image tab, in order (the parameters of :func:`generate_images` after ``store``)."""


# --------------------------------------------------------------------------------------------------- layout
def _visibility(sampler: str, guidance: str, attention: str, auto_beta: bool) -> list[Any]:
    """Shows the settings of the chosen sampler / guidance / attention only (β is fixed while auto β is on)."""
    import gradio as gr

    return [
        gr.update(visible=sampler in BETA_SAMPLERS, interactive=not (sampler == "hb-dpm++" and auto_beta)),
        gr.update(visible=sampler == "hb-dpm++"),
        gr.update(visible=sampler in PLMS_MOMENTUM),
        gr.update(visible=guidance in APG_GUIDANCE),
        gr.update(visible=guidance in HIGS_GUIDANCE),
        gr.update(visible=attention == "extrapolate"),
        gr.update(visible=attention == "ema"),
    ]


def build_image_tab(store: ModelStore) -> dict[str, Any]:
    """Lays out the Image tab inside the current ``gr.Blocks`` / ``gr.Tab``; returns its components by name."""
    import gradio as gr

    from .files import png_file
    from .widgets import accept_whole_numbers_as_text, label_errors

    def run(
        model: str,
        digit: int,
        prompt: str,
        negative_prompt: str,
        sampler: str,
        beta: float,
        auto_beta: bool,
        order: int,
        guidance: str,
        apg_eta: float,
        apg_momentum: float,
        apg_threshold: float,
        higs_weight: float,
        attention: str,
        extrapolate_beta: float,
        ema_beta: float,
        steps: int,
        scale: float,
        seed: int,
        batch: int,
        compare: bool,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's convention)
    ) -> tuple[Any, ...]:
        values = {name: value for name, value in locals().items() if name in REQUEST_FIELDS}
        progress(0, desc="loading the model")
        try:
            gallery, slider, table, figures = generate_images(store, **values)
        except UserInputError as err:
            raise gr.Error(html.escape(str(err), quote=False), title="Invalid input", print_exception=False) from None
        # files written whole, not PIL images (Gradio rewrites a PIL image's cache file in place: see .files)
        gallery = [(png_file(image), caption) for image, caption in gallery]
        slider = None if slider is None else (png_file(slider[0]), png_file(slider[1]))
        return gallery, slider, table, figures

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            model = gr.Textbox(
                value="digits",
                label="Model",
                info="'digits' = the embedded 16x16 digits model; or a diffusers folder / hub id",
                elem_id="image-model",
            )
            # string choices: the API documents the digit as a string, and a client's "7" must be accepted
            digits = [str(d) for d in range(10)]
            digit = gr.Radio(digits, value="7", label="Digit (digits models)", elem_id="image-digit")
            with gr.Accordion("Prompt (text-to-image models)", open=False):
                prompt = gr.Textbox("", label="Prompt", lines=2, placeholder="a lighthouse at dusk")
                negative_prompt = gr.Textbox("", label="Negative prompt")
            with gr.Group():
                sampler = gr.Dropdown(
                    list(SAMPLER_PRESETS), value="hb-dpm++", label="Sampler", elem_id="image-sampler"
                )
                with gr.Row():
                    beta = gr.Slider(
                        0.05, 1.0, value=0.8, step=0.05, label="Momentum β (1 = no momentum)", interactive=False
                    )
                    auto_beta = gr.Checkbox(True, label="auto β (from steps and scale)")
                    order = gr.Slider(1, 4, value=4, step=1, label="Order (PLMS)", visible=False)
            with gr.Group():
                guidance = gr.Dropdown(list(GUIDANCE_PRESETS), value="apg", label="Guidance", elem_id="image-guidance")
                with gr.Row(visible=True) as apg_row:
                    apg_eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="APG η (parallel part)")
                    apg_momentum = gr.Slider(-0.95, 0.95, value=-0.5, step=0.05, label="APG β (momentum)")
                    apg_threshold = gr.Number(0.0, label="APG norm threshold r (0 = auto)", minimum=0)
                with gr.Row(visible=False) as higs_row:
                    higs_weight = gr.Slider(0.0, 3.0, value=1.0, step=0.05, label="HiGS weight w_h")
            with gr.Group():
                attention = gr.Dropdown(list(ATTENTION_PRESETS), value="off", label="Momentum attention")
                with gr.Row():
                    extrapolate_beta = gr.Slider(
                        -0.95,
                        0.95,
                        value=preset_attention_beta("extrapolate"),
                        step=0.05,
                        label="extrapolate β",
                        info="momentum of the attention velocity; < 0 weights the latest slope up",
                        visible=False,
                    )
                    ema_beta = gr.Slider(
                        0.0, 0.95, value=preset_attention_beta("ema"), step=0.05, label="ema β", visible=False
                    )
            with gr.Row():
                steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="Steps", elem_id="image-steps")
                scale = gr.Slider(0.0, MAX_SCALE, value=7.5, step=0.5, label="Guidance scale")
            with gr.Row():
                seed = gr.Number(0, label="Seed", precision=0, minimum=0)
                batch = gr.Slider(1, MAX_BATCH, value=4, step=1, label="Batch", elem_id="image-batch")
            compare = gr.Checkbox(True, label="Compare with the baseline (stock sampler + CFG, same seeds)")
            button = gr.Button("Generate", variant="primary", elem_id="image-generate")
        with gr.Column(scale=3, min_width=320):
            slider = gr.ImageSlider(
                label="Compare: baseline (left) | your configuration (right)",
                format="png",
                type="pil",
                interactive=False,
                elem_id="image-compare",
            )
            gallery = gr.Gallery(
                label="Your configuration",
                format="png",
                columns=4,
                height="fit-content",
                object_fit="contain",
                elem_id="image-gallery",
            )
            table = gr.Markdown(elem_id="image-figures")
            with gr.Accordion("Figures (JSON)", open=False):
                figures = gr.JSON(label="figures")

    inputs = [
        model,
        digit,
        prompt,
        negative_prompt,
        sampler,
        beta,
        auto_beta,
        order,
        guidance,
        apg_eta,
        apg_momentum,
        apg_threshold,
        higs_weight,
        attention,
        extrapolate_beta,
        ema_beta,
        steps,
        scale,
        seed,
        batch,
        compare,
    ]
    accept_whole_numbers_as_text(digit)
    label_errors(*(c for c in inputs if not isinstance(c, gr.Textbox | gr.Checkbox)))
    button.click(run, inputs, [gallery, slider, table, figures], api_name="generate_image", concurrency_id="models")
    toggled = [beta, auto_beta, order, apg_row, higs_row, extrapolate_beta, ema_beta]
    controls = [sampler, guidance, attention, auto_beta]
    for control in controls:
        control.change(_visibility, controls, toggled, queue=False, api_visibility="private")
    return {"inputs": inputs, "gallery": gallery, "slider": slider, "table": table, "figures": figures}
