"""The inertia Gradio app: Image, Text and About tabs over models loaded once per process.

``inertia demo`` (and ``make demo``) call :func:`launch`; tests and notebooks call :func:`build_app` and launch it
themselves. The app binds to 127.0.0.1 unless told otherwise, queues requests with a concurrency limit, and every
request configures its own scheduler and guidance state under the model's lock (see :mod:`inertia.ui.models`).

Example:
    >>> from inertia.ui import build_app
    >>> demo = build_app(device="cpu")   # doctest: +SKIP
    >>> demo.launch(prevent_thread_lock=True)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from inertia.ui.models import ModelStore, describe_device

__all__ = ["DEFAULT_CONCURRENCY", "METHODS", "about_markdown", "build_app", "launch", "serve"]

DEFAULT_CONCURRENCY = 2
"""Requests running at once (more wait in the queue); requests on the same model also take turns on its lock."""
MAX_QUEUE = 64
"""Requests waiting at most; past it the app answers 'queue full'."""

METHODS: list[tuple[str, str, str]] = [
    (
        "Heavy-ball (HB) and generalized heavy-ball (GHVB) samplers",
        "https://arxiv.org/abs/2307.11118",
        "Wizadwongsa et al., *Diffusion Sampling with Momentum for Mitigating Divergence Artifacts*, ICLR 2024 "
        "(arXiv 2307.11118). Heavy-ball momentum (damping β < 1) on a multistep solver such as DPM-Solver++ or PLMS "
        "enlarges its stability region, removing the divergence artifacts high-order solvers show at few steps and "
        "high guidance scales. Presets `hb-dpm++`, `ghvb`, `hb`, `nt` (`ghvb:3.8` = order 4, β 0.8).",
    ),
    (
        "Fast Diffusion Model (FDM)",
        "https://arxiv.org/abs/2306.06991",
        "Wu, Zhou, Kawaguchi, Zhang, *Fast Diffusion Model* (arXiv 2306.06991). Momentum in the diffusion process "
        "itself, to train faster: inertia's training recipe has FDM preconditioning, and a model trained with it "
        "samples with any scheduler here.",
    ),
    (
        "Adaptive Projected Guidance (APG)",
        "https://arxiv.org/abs/2410.02416",
        "Sadat, Hilliges, Weber, ICLR 2025 (arXiv 2410.02416). Splits the CFG update into parts parallel and "
        "orthogonal to the conditional prediction, drops most of the parallel (saturating) part (η), bounds its "
        "norm (r) and adds reverse momentum (β < 0), so high guidance scales stop oversaturating.",
    ),
    (
        "History-Guided Sampling (HiGS)",
        "https://arxiv.org/abs/2509.22300",
        "Sadat, Salehi, Weber, ICLR 2026 (arXiv 2509.22300). Adds the difference between the current prediction and "
        "an exponential average of the past ones (weight w_h, high-pass filtered so colours do not shift) to the "
        "guided prediction, for sharper samples at few steps; training-free, on top of CFG or APG.",
    ),
    (
        "Momentum decoding",
        "https://arxiv.org/abs/2212.02175",
        "Lan, Su, Liu, Huang, Mao, *Momentum Decoding: Open-ended Text Generation As Graph Exploration* (2022, arXiv "
        "2212.02175). Greedy decoding that treats generation as walking a graph of n-grams and adds a resistance "
        "(α) to revisiting them, which cuts greedy decoding's loops at greedy's speed.",
    ),
    (
        "Momentum attention (ours)",
        "https://github.com/inertia-project/inertia/tree/main/inertia/attention",
        "inertia's own, training-free: attention outputs change smoothly along the denoising trajectory, so the "
        "`extrapolate` preset skips attention every other step and predicts it by heavy-ball extrapolation "
        "(compared against FasterCache's first-order rule, `first_order`). Experimental; see the benchmarks.",
    ),
]
"""(name, link, paragraph) per method, for the About tab."""


def about_markdown(store: ModelStore) -> str:
    """The About tab: one paragraph and a link per method, and the device in use."""
    parts = [
        "## inertia: momentum for diffusion and language models",
        "Training-free momentum methods as plug-ins for Hugging Face diffusers and transformers. "
        "This demo runs them on small embedded models (a 32x32 coloured-digits diffusion model and "
        "SmolLM2-135M-Instruct), or on any diffusers pipeline you name on the Image tab.",
    ]
    for name, link, text in METHODS:
        parts.append(f"### [{name}]({link})\n{text}")
    parts.append(f"---\n**Device in use:** {describe_device(store.device)}.")
    return "\n\n".join(parts)


HANDLER_IMPORTS = (
    "diffusers.pipelines",
    "inertia.samplers",
    "inertia.core.samplers.beta_policy",
    "inertia.pipelines.digits",
    "inertia.pipelines.image",
    "inertia.metrics.digits",
    "transformers.generation",
    "inertia.pipelines.text",
    "inertia.pipelines.text_generation",
    "inertia.metrics.text",
)
"""Modules the request handlers import, imported while the app is built, before any request thread runs.

diffusers' and transformers' lazy top-level modules are not safe to resolve from two threads at once: a request
importing the samplers (``from diffusers import DPMSolverMultistepScheduler``) while another loads the digits
pipeline (``from diffusers import DiffusionPipeline``) fails the second with ``ImportError: cannot import name``.
"""


def import_handler_modules() -> None:
    """Imports :data:`HANDLER_IMPORTS` (and resolves the lazily exported host classes the handlers use)."""
    for name in HANDLER_IMPORTS:
        importlib.import_module(name)
    import diffusers
    import transformers

    for module, names in (
        (diffusers, ("DiffusionPipeline", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler")),
        (transformers, ("TextIteratorStreamer", "AutoModelForCausalLM", "AutoTokenizer")),
    ):
        for attribute in names:
            getattr(module, attribute)


CSS = """
#image-gallery img, #image-compare img { image-rendering: pixelated; }
#text-a .text, #text-b .text { word-break: normal; overflow-wrap: anywhere; }
#image-figures, #text-figures { overflow-x: auto; }
#image-figures table, #text-figures table { width: auto; table-layout: auto; }
#image-figures th, #image-figures td, #text-figures th { white-space: nowrap; }
#text-figures td { white-space: normal; word-break: keep-all; overflow-wrap: normal; }
"""
"""Pixel-sharp digits, whole words in the streamed text, and figure tables that never break a word: the image table's
cells each stay on one line; the text table's method names wrap at spaces so the table fits its column."""


def build_app(
    device: str | None = None,
    store: ModelStore | None = None,
    concurrency_limit: int = DEFAULT_CONCURRENCY,
    max_queue: int = MAX_QUEUE,
) -> Any:
    """Builds the app (a queued ``gr.Blocks``) without launching it.

    Args:
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when available); ignored when ``store`` is given.
        store: the models to use (a :class:`~inertia.ui.models.ModelStore`; one is created when None).
        concurrency_limit: requests running at once, >= 1.
        max_queue: requests waiting at most, >= 1.

    Raises:
        ValueError: invalid limits or device.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from inertia.ui.image_tab import build_image_tab
    from inertia.ui.text_tab import build_text_tab

    for name, value in (("concurrency_limit", concurrency_limit), ("max_queue", max_queue)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
    store = store if store is not None else ModelStore(device=device)
    import_handler_modules()  # in this thread: request threads must not race on the hosts' lazy imports
    with gr.Blocks(title="inertia: momentum methods") as demo:
        gr.Markdown(
            "# inertia\nMomentum samplers, guidance and attention for diffusion; momentum decoding for text. "
            f"Running on **{describe_device(store.device)}**."
        )
        with gr.Tabs():
            with gr.Tab("Image", id="image", elem_id="tab-image"):
                build_image_tab(store)
            with gr.Tab("Text", id="text", elem_id="tab-text"):
                build_text_tab(store)
            with gr.Tab("About", id="about", elem_id="tab-about"):
                gr.Markdown(about_markdown(store), elem_id="about-text")
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=max_queue)
    demo.inertia_store = store  # for tests and notebooks
    return demo


def serve(demo: Any, host: str = "127.0.0.1", port: int | None = None, block: bool = False, **kwargs: Any) -> Any:
    """Launches a built app with the app's CSS and readable errors; returns ``demo`` (see ``demo.local_url``)."""
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, css=CSS, show_error=True, **kwargs)
    return demo


def launch(
    host: str = "127.0.0.1",
    port: int | None = 7860,
    device: str | None = None,
    block: bool = True,
    preload_text: bool = True,
    **launch_kwargs: Any,
) -> Any:
    """Builds and starts the app (``inertia demo``).

    Args:
        host: interface to bind; 127.0.0.1 (this machine only) unless told otherwise.
        port: TCP port; None lets Gradio pick a free one from 7860 up.
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when available).
        block: serve until interrupted (True), or return at once with the server running in the background.
        preload_text: start loading the text model in the background right away, so the Text tab answers sooner.
        **launch_kwargs: passed to ``gr.Blocks.launch`` (e.g. ``share=False``, ``auth=...``).

    Returns:
        The running ``gr.Blocks`` (its ``local_url`` says where).
    """
    demo = build_app(device=device)
    if preload_text:
        demo.inertia_store.preload_text()
    return serve(demo, host=host, port=port, block=block, **launch_kwargs)
