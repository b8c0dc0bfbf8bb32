"""The Image tab: a sampler, a guidance method and momentum attention on the embedded digits model or any pipeline.

The pure part (:func:`generate_images`, and the controls' values in :mod:`inertia.ui.image_controls`) does not touch
Gradio; :func:`build_image_tab` lays out the controls and wires them to it.

Example:
    >>> sampler_preset("ghvb", beta=0.5, auto_beta=True, order=4)   # auto β: the library's momentum_beta="auto"
    'ghvb'
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from typing import Any

import torch
from PIL import Image

from inertia.adapters.diffusers.private_api import execution_device
from inertia.core.presets.pipeline import ATTENTION_PRESETS, GUIDANCE_PRESETS, SAMPLER_PRESETS
from inertia.pipelines.display import DISPLAY_SIZE, display_factor, enlarge
from inertia.pipelines.limits import MAX_BATCH, MAX_SEED, MAX_STEPS
from inertia.ui.fields import user_choice, user_float, user_int
from inertia.ui.image_controls import (
    APG_GUIDANCE,
    AUTO_BETA_ORDER,
    BETA_RANGE,
    BETA_SAMPLERS,
    EXAMPLES,
    HIGS_GUIDANCE,
    MAX_SCALE,
    PLMS_MOMENTUM,
    attention_params,
    guidance_params,
    preset_attention_beta,
    sampler_preset,
    tuned_defaults,
)
from inertia.ui.image_figures import figures_table, image_figures, recognised_fraction
from inertia.ui.models import ImageModel, ModelStore, UserInputError

__all__ = [
    "DISPLAY_SIZE",
    "MAX_BATCH",
    "attention_params",
    "build_image_tab",
    "generate_images",
    "guidance_params",
    "preset_attention_beta",
    "sampler_preset",
    "to_display",
]


# ---------------------------------------------------------------------------------------------------- images
def to_display(images01: torch.Tensor, size: int = DISPLAY_SIZE) -> list[Image.Image]:
    """``(N, 3, H, W)`` images in [0, 1] as PIL images, small ones enlarged nearest-neighbour to >= ``size``."""
    array = (images01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [enlarge(Image.fromarray(item), display_factor(max(item.shape[:2]), size)) for item in array]


def raw_pixels(shown: list[Image.Image], size: list[int]) -> list[Image.Image]:
    """The model's own ``size`` = (H, W) pixels of images :func:`to_display` enlarged (exact: the enlargement is an
    integer nearest-neighbour factor, and a nearest-neighbour reduction by it samples inside each block)."""
    height, width = size
    return [image.resize((width, height), Image.Resampling.NEAREST) for image in shown]


def _sample(
    model: ImageModel, request: dict[str, Any], configuration: dict[str, Any]
) -> tuple[torch.Tensor, float, dict[str, Any]]:
    """Configures the pipeline and samples under its lock: (images in [0, 1] on the CPU, seconds, the guidance and
    attention settings in effect)."""
    from inertia.pipelines.presets import configure, preset_settings

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
            methods, attention = preset_settings(
                pipe,
                configuration.get("guidance", "none"),
                configuration.get("attention", "off"),
                configuration.get("guidance_params"),
                configuration.get("attention_params"),
            )
        except ValueError as err:
            raise UserInputError(str(err)) from err
        settings = {
            "guidance": [{"method": type(m).__name__, **dataclasses.asdict(m)} for m in methods],
            "attention": None if attention is None else dataclasses.asdict(attention),
        }
        device = execution_device(pipe)
        if not model.warm:  # the first call pays one-off costs (allocations, kernels): keep them out of the timing
            call(1, num_inference_steps=1, guidance_scale=request["scale"], output_type="pt")
            model.warm = True
        start = time.perf_counter()
        images = call(request["batch"], **common)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        beta = getattr(pipe.scheduler, "momentum_beta", None)  # auto β is resolved when the schedule is set
        settings["momentum_beta"] = None if beta is None else float(beta)
    images = images if torch.is_tensor(images) else torch.as_tensor(images).permute(0, 3, 1, 2)
    return images.float().cpu(), seconds, settings


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
    tuned: bool = True,
) -> tuple[list[tuple[Image.Image, str]], list[tuple[Image.Image, Image.Image]] | None, str, dict[str, Any]]:
    """Generates ``batch`` images (seeds ``seed``, ``seed + 1``, ...) with the chosen configuration and, in compare
    mode, the baseline (stock scheduler + CFG) from the same seeds.

    With ``auto_beta`` every momentum sampler takes its β from the library's auto policy (``momentum_beta="auto"``,
    from the guidance scale and the steps); the figures show the β in effect.

    Returns:
        (gallery items, one (baseline, chosen) pair of the same seed per image or None, a Markdown table, the
        figures as a dict).

    Raises:
        UserInputError: any invalid input, before sampling.
    """
    request = {
        "steps": user_int("Steps", steps, 1, MAX_STEPS),
        "scale": user_float("Guidance scale", scale, 0.0, MAX_SCALE),
        "seed": user_int("Seed", seed, 0, MAX_SEED),
        "batch": user_int("Batch", batch, 1, MAX_BATCH),
        "digit": user_int("Digit", int(digit) if isinstance(digit, str) and digit.strip().isdigit() else digit, 0, 9),
        "prompt": (prompt or "").strip(),
        "negative_prompt": (negative_prompt or "").strip(),
    }
    if len(request["prompt"]) > 2000 or len(request["negative_prompt"]) > 2000:
        raise UserInputError("Prompts must be at most 2000 characters.")
    if not isinstance(tuned, bool):
        raise UserInputError(f"Tuned settings must be true or false, got {tuned!r}.")
    chosen = {
        "sampler": sampler_preset(sampler, beta, auto_beta, order),
        "guidance": user_choice("Guidance", guidance, GUIDANCE_PRESETS),
        "attention": user_choice("Momentum attention", attention, ATTENTION_PRESETS),
        "guidance_params": guidance_params(guidance, apg_eta, apg_momentum, apg_threshold, higs_weight),
        "attention_params": attention_params(attention, extrapolate_beta, ema_beta),
    }
    if tuned:  # the controls were checked above; the model's own tuned settings (inertia_presets.json) apply
        chosen["guidance_params"], chosen["attention_params"] = {}, {}
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
        images[name], seconds, settings = _sample(image_model, request, configuration)
        config = {"sampler": "default", "guidance": "none", "attention": "off", **configuration}
        figures[name] = {**image_figures(images[name], seconds), "config": config, "settings": settings}
        if image_model.is_digits:
            figures[name]["recognised"] = recognised_fraction(images[name], request["digit"])

    shown = to_display(images["chosen"])
    gallery = [(image, f"seed {request['seed'] + i}") for i, image in enumerate(shown)]
    pairs = list(zip(to_display(images["baseline"]), shown, strict=True)) if compare else None
    size = list(images["chosen"].shape[-2:])  # the model's own pixels, before the display enlargement
    summary = {"model": image_model.name, "device": str(store.device), **request, "tuned": tuned, "size": size}
    summary["runs"] = figures
    return gallery, pairs, figures_table(figures), summary


REQUEST_FIELDS = tuple(inspect.signature(generate_images).parameters)[1:]
"""The inputs of the Image tab, in order (the parameters of :func:`generate_images` after ``store``)."""


# --------------------------------------------------------------------------------------------------- layout
def _visibility(sampler: str, guidance: str, attention: str, auto_beta: bool, tuned: bool) -> list[Any]:
    """Shows the settings of the chosen sampler / guidance / attention only. β is fixed while auto β is on (for every
    momentum sampler), and so is the PLMS order (auto β runs at order 4); the guidance and attention settings are
    fixed while the model's tuned settings are on."""
    import gradio as gr

    plms_auto = sampler in PLMS_MOMENTUM and auto_beta
    order = gr.update(visible=sampler in PLMS_MOMENTUM, interactive=not plms_auto)
    return [
        gr.update(visible=sampler in BETA_SAMPLERS, interactive=not auto_beta),
        gr.update(visible=sampler in BETA_SAMPLERS),
        gr.update(value=AUTO_BETA_ORDER, visible=True, interactive=False) if plms_auto else order,
        gr.update(visible=guidance in APG_GUIDANCE),
        gr.update(visible=guidance in HIGS_GUIDANCE),
        gr.update(visible=attention == "extrapolate", interactive=not tuned),
        gr.update(visible=attention == "ema", interactive=not tuned),
        *[gr.update(interactive=not tuned) for _ in range(4)],  # APG η, β, r and HiGS w_h
    ]


def _compare_label(seed: int | None) -> str:
    which = "One seed" if seed is None else f"Seed {seed}"
    return f"{which}: baseline, stock sampler + CFG (left) | your configuration (right)"


def build_image_tab(store: ModelStore) -> dict[str, Any]:
    """Lays out the Image tab inside the current ``gr.Blocks`` / ``gr.Tab``; returns its components by name.

    Generate and the example buttons come first, so they show without scrolling; the comparison slider shows one
    seed on both sides (the first of the batch; selecting an image in the gallery shows that seed).
    """
    import gradio as gr

    from inertia.core.presets.models import read_model_presets
    from inertia.pipelines.limits import embedded_digits_folder
    from inertia.ui.files import png_file
    from inertia.ui.widgets import accept_whole_numbers_as_text, label_errors, user_error

    initial = tuned_defaults(read_model_presets(embedded_digits_folder()))

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
        tuned: bool,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's convention)
    ) -> tuple[Any, ...]:
        values = {name: value for name, value in locals().items() if name in REQUEST_FIELDS}
        progress(0, desc="loading the model")
        try:
            gallery, pairs, table, figures = generate_images(store, **values)
        except UserInputError as err:
            raise user_error(str(err)) from None
        # files written whole, not PIL images (Gradio rewrites a PIL image's cache file in place: see .files)
        raw = [png_file(image) for image in raw_pixels([image for image, _ in gallery], figures["size"])]
        gallery = [(png_file(image), caption) for image, caption in gallery]
        pair_files = [] if pairs is None else [(png_file(a), png_file(b)) for a, b in pairs]
        slider = pair_files[0] if pair_files else None
        return gallery, slider, table, figures, raw, {"seed": figures["seed"], "pairs": pair_files}

    def name_seed(compared: dict[str, Any]) -> Any:
        """The slider's label names the seed it shows (the first of the batch after a run)."""
        return gr.update(label=_compare_label(compared["seed"]) if compared.get("pairs") else _compare_label(None))

    def show_seed(compared: dict[str, Any], event: gr.SelectData) -> Any:
        """The slider shows the seed of the gallery image selected."""
        pairs = compared.get("pairs") or []
        if not pairs or not isinstance(event.index, int) or not 0 <= event.index < len(pairs):
            return gr.update()
        return gr.update(value=pairs[event.index], label=_compare_label(compared["seed"] + event.index))

    show_seed.__annotations__["event"] = gr.SelectData  # Gradio finds the event by its class, not a string

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            button = gr.Button("Generate", variant="primary", elem_id="image-generate")
            with gr.Group(elem_id="image-examples"):
                gr.Markdown("Examples, each next to the stock sampler + CFG on the same seeds:")
                with gr.Row():
                    example_buttons = [
                        gr.Button(example.label, size="sm", elem_id=f"image-example-{i}")
                        for i, example in enumerate(EXAMPLES)
                    ]
            model = gr.Textbox(
                value="digits",
                label="Model",
                info="'digits' = the embedded 32x32 digits model; or a diffusers folder / hub id",
                elem_id="image-model",
            )
            # string choices: the API documents the digit as a string, and a client's "7" must be accepted
            digits = [str(d) for d in range(10)]
            digit = gr.Radio(digits, value="7", label="Digit (digits models)", elem_id="image-digit")
            with gr.Accordion("Prompt (text-to-image models)", open=False):
                prompt = gr.Textbox("", label="Prompt", lines=2, placeholder="a lighthouse at dusk")
                negative_prompt = gr.Textbox("", label="Negative prompt")
            with gr.Row():
                steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="Steps", elem_id="image-steps")
                scale = gr.Slider(0.0, MAX_SCALE, value=7.5, step=0.5, label="Guidance scale", elem_id="image-scale")
            with gr.Group():
                sampler = gr.Dropdown(
                    list(SAMPLER_PRESETS), value="hb-dpm++", label="Sampler", elem_id="image-sampler"
                )
                with gr.Row():
                    beta = gr.Slider(
                        0.05,
                        BETA_RANGE[1],
                        value=0.8,
                        step=0.05,
                        label="Momentum β (1 = no momentum)",
                        interactive=False,
                        elem_id="image-beta",
                    )
                    auto_beta = gr.Checkbox(
                        True,
                        label="auto β",
                        info="the library's policy, from steps and scale (every momentum sampler)",
                        elem_id="image-auto-beta",
                    )
                    order = gr.Slider(
                        1, 4, value=AUTO_BETA_ORDER, step=1, label="Order (PLMS; 4 with auto β)", visible=False
                    )
            with gr.Group():
                guidance = gr.Dropdown(list(GUIDANCE_PRESETS), value="apg", label="Guidance", elem_id="image-guidance")
                with gr.Row(visible=True) as apg_row:
                    apg_eta = gr.Slider(
                        0.0, 1.0, value=initial["apg_eta"], step=0.05, label="APG η (parallel part)", interactive=False
                    )
                    apg_momentum = gr.Slider(
                        -0.95,
                        0.95,
                        value=initial["apg_momentum"],
                        step=0.05,
                        label="APG β (momentum)",
                        interactive=False,
                    )
                    apg_threshold = gr.Number(
                        initial["apg_threshold"], label="APG norm threshold r (0 = auto)", minimum=0, interactive=False
                    )
                with gr.Row(visible=False) as higs_row:
                    higs_weight = gr.Slider(
                        0.0, 3.0, value=initial["higs_weight"], step=0.05, label="HiGS weight w_h", interactive=False
                    )
            with gr.Group():
                attention = gr.Dropdown(list(ATTENTION_PRESETS), value="off", label="Momentum attention")
                with gr.Row():
                    extrapolate_beta = gr.Slider(
                        -0.95,
                        0.95,
                        value=initial["extrapolate_beta"],
                        step=0.05,
                        label="extrapolate β",
                        info="momentum of the attention velocity; < 0 weights the latest slope up",
                        visible=False,
                    )
                    ema_beta = gr.Slider(0.0, 0.95, value=initial["ema_beta"], step=0.05, label="ema β", visible=False)
            tuned = gr.Checkbox(
                True,
                label="the model's tuned settings",
                info="APG / HiGS / attention settings tuned for this model (inertia_presets.json); off: the sliders",
                elem_id="image-tuned",
            )
            with gr.Row():
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="image-seed")
                batch = gr.Slider(1, MAX_BATCH, value=4, step=1, label="Batch", elem_id="image-batch")
            compare = gr.Checkbox(True, label="Compare with the baseline (stock sampler + CFG, same seeds)")
        with gr.Column(scale=3, min_width=320):
            slider = gr.ImageSlider(
                label=_compare_label(None),
                format="png",
                type="filepath",
                interactive=False,
                elem_id="image-compare",
            )
            gallery = gr.Gallery(
                label="Your configuration (select an image to compare its seed above)",
                format="png",
                columns=4,
                height="fit-content",
                object_fit="contain",
                elem_id="image-gallery",
            )
            table = gr.Markdown(elem_id="image-figures")
            with gr.Accordion("Figures (JSON)", open=False):
                figures = gr.JSON(label="figures")
            with gr.Accordion("Raw images (the model's own pixels)", open=False):
                raw_files = gr.File(label="raw PNGs", file_count="multiple", elem_id="image-raw")
            raw_state = gr.State([])
            compared = gr.State({})

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
        tuned,
    ]
    accept_whole_numbers_as_text(digit)
    label_errors(*(c for c in inputs if not isinstance(c, gr.Textbox | gr.Checkbox)))
    outputs = [gallery, slider, table, figures, raw_state, compared]  # the States are not part of the API's answer

    def show_raw(paths: list[str]) -> list[str]:
        return paths

    def after_run(event: Any) -> Any:
        return event.then(show_raw, raw_state, raw_files, queue=False, api_visibility="private").then(
            name_seed, compared, slider, queue=False, api_visibility="private"
        )

    after_run(button.click(run, inputs, outputs, api_name="generate_image", concurrency_id="models"))
    gallery.select(show_seed, compared, slider, queue=False, api_visibility="private")
    by_name = dict(zip(REQUEST_FIELDS, inputs, strict=True))
    for example_button, example in zip(example_buttons, EXAMPLES, strict=True):
        controls = example.controls()
        targets = [by_name[name] for name in controls]

        def fill(values: dict[str, Any] = controls) -> list[Any]:
            return list(values.values())

        after_run(
            example_button.click(fill, None, targets, queue=False, api_visibility="private").then(
                run, inputs, outputs, concurrency_id="models", api_visibility="private"
            )
        )
    toggled = [beta, auto_beta, order, apg_row, higs_row, extrapolate_beta, ema_beta]
    toggled += [apg_eta, apg_momentum, apg_threshold, higs_weight]
    controls = [sampler, guidance, attention, auto_beta, tuned]
    for control in controls:
        control.change(_visibility, controls, toggled, queue=False, api_visibility="private")
    return {
        "inputs": inputs,
        "gallery": gallery,
        "slider": slider,
        "table": table,
        "figures": figures,
        "raw": raw_files,
    }
