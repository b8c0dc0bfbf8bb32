"""How each classic diffusers pipeline feeds its denoiser, for the guidance hook of :mod:`inertia.adapters.diffusers.guidance_hook`.

Host adapter (reads diffusers objects, no guidance math). A :class:`Layout` records what the hook must know to turn a
denoiser call into (D_c, D_u, x, σ) and back: the model family and output kind, the units of the timestep the
pipeline passes, whether the latents are packed into tokens (and how to unpack them to ``(B, C, H, W)`` or
``(B, C, F, H, W)``), and how the pipeline runs classifier-free guidance:

* ``"batched"``: one call on ``[uncond; cond]`` (SD, SDXL, SD3, LTX-2) or ``[cond; uncond]`` (Z-Image, which also
  passes lists of latents, the timestep 1 − σ and predicts −v, and combines ``c + s (c − u)``, i.e. ``w = 1 + s``);
* ``"sequential"``: a ``"cond"`` then an ``"uncond"`` call in diffusers cache contexts (Wan, Flux.2 [klein], and the
  true CFG of Flux and Qwen-Image, whose scale is a local of ``__call__`` that a hook cannot read);
* ``"single"``: no unconditional branch (Flux.2 [dev] and Flux are guidance-distilled).

Measured on diffusers 0.42.1; ``tests/tiny_pipelines.py`` and ``tests/tiny_pipelines_flux2_qwen_wan_zimage_ltx2.py`` document each
pipeline's calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from inertia.core.guidance.spaces import PREDICTION_TYPES

__all__ = ["GuidanceLayoutError", "Layout", "detect_layout", "pack", "token_grid", "unpack"]


class GuidanceLayoutError(RuntimeError):
    """The pipeline called its denoiser in a way the guidance hook cannot interpret (raised, never guessed).

    Example:
        >>> issubclass(GuidanceLayoutError, RuntimeError)   # a host-side surprise, not a bad user argument
        True
    """


@dataclass(frozen=True)
class Layout:
    """How a pipeline feeds its denoiser (see the module docstring).

    Example:
        >>> Layout("flow", "flow", 1.0).calls
        'batched'
    """

    family: str  # "vp" or "flow"
    prediction_type: str
    timestep_scale: float  # training-timestep units per unit of the timestep the pipeline passes
    packing: str | None = None  # "flux" (img_ids), "qwen" (img_shapes), "ltx" (num_frames/height/width)
    calls: str = "batched"  # "batched", "sequential" or "single" (see the module docstring)
    cond_first: bool = False  # batched order [cond; uncond] (Z-Image)
    scale_offset: float = 0.0  # standard CFG scale w = pipeline scale + offset (Z-Image: 1)
    time_reversed: bool = False  # the pipeline passes 1 − σ (Z-Image)
    negated: bool = False  # the denoiser predicts −v (Z-Image)
    list_io: bool = False  # latents in and predictions out are lists of per-sample tensors (Z-Image)
    scale_known: bool = True  # the CFG scale is readable as ``pipe.guidance_scale``

    @property
    def packed(self) -> bool:
        """True when the latents are tokens that the hook unpacks to a spatial layout."""
        return self.packing is not None


def detect_layout(pipe: Any, denoiser: torch.nn.Module) -> Layout:
    """The :class:`Layout` of ``pipe``'s denoiser calls, from the denoiser class and the scheduler config.

    Raises:
        ValueError: no scheduler config, or a VP ``prediction_type`` the conversions do not know.
    """
    config = getattr(getattr(pipe, "scheduler", None), "config", None)
    if config is None:
        raise ValueError(f"`pipe` ({type(pipe).__name__}) has no scheduler with a config; guidance needs one.")
    num_train = float(config.get("num_train_timesteps", 1000) or 1000)
    name = type(denoiser).__name__
    # Pipelines with a `do_classifier_free_guidance` property keep their CFG scale in `guidance_scale`; Flux and
    # Qwen-Image run their optional true CFG with a `true_cfg_scale` local instead.
    has_cfg = hasattr(type(pipe), "do_classifier_free_guidance")
    if name.startswith("Flux"):  # Flux, Flux.2: timestep / 1000 = σ, 2x2 patches packed into tokens
        return Layout("flow", "flow", num_train, packing="flux", calls="sequential", scale_known=has_cfg)
    if name.startswith("QwenImage"):
        return Layout("flow", "flow", num_train, packing="qwen", calls="sequential", scale_known=False)
    if name.startswith("Wan"):  # 5-D (B, C, F, H, W) latents, timestep in [0, 1000]
        return Layout("flow", "flow", 1.0, calls="sequential")
    if name.startswith("ZImage"):
        return Layout(
            "flow",
            "flow",
            num_train,
            cond_first=True,
            scale_offset=1.0,
            time_reversed=True,
            negated=True,
            list_io=True,
        )
    if name.startswith("LTX2"):  # packed video tokens (B, F·H·W, C); the audio stream is left to the pipeline
        denoiser_config: Any = getattr(denoiser, "config", {})
        patches = (denoiser_config.get("patch_size", 1), denoiser_config.get("patch_size_t", 1))
        if patches != (1, 1):
            raise ValueError(f"{name} with patch sizes {patches} is not supported; LTX-2 checkpoints use (1, 1).")
        return Layout("flow", "flow", 1.0, packing="ltx")
    is_flow = (
        "FlowMatch" in type(pipe.scheduler).__name__
        or config.get("prediction_type") == "flow_prediction"
        or bool(config.get("use_flow_sigmas", False))
        or name.startswith("SD3")
    )
    if is_flow:
        return Layout("flow", "flow", 1.0)
    prediction_type = config.get("prediction_type", "epsilon")
    if prediction_type not in PREDICTION_TYPES[:3]:
        raise ValueError(
            f"`pipe.scheduler.config.prediction_type` must be one of {PREDICTION_TYPES[:3]} for a VP denoiser, "
            f"got {prediction_type!r}."
        )
    return Layout("vp", prediction_type, 1.0)


def token_grid(layout: Layout, kwargs: dict[str, Any], tokens: torch.Tensor) -> tuple[int, ...]:
    """The latent grid of packed ``tokens`` ``(B, N, D)``: (h, w) of 2x2 patches, or (F, H, W) for LTX-2."""
    if layout.packing == "flux":
        ids = kwargs.get("img_ids")
        if ids is None or ids.shape[-2] < tokens.shape[1] or tokens.shape[2] % 4:
            raise GuidanceLayoutError("Flux guidance needs the transformer's `img_ids` to unpack its tokens.")
        ids = ids.reshape(-1, ids.shape[-2], ids.shape[-1])[0, : tokens.shape[1]]
        return int(ids[:, 1].max()) + 1, int(ids[:, 2].max()) + 1  # Flux (0, h, w) / Flux.2 (t, h, w, l) ids
    if layout.packing == "qwen":
        shapes: Any = kwargs.get("img_shapes")
        try:
            _, height, width = shapes[0][0]
        except (TypeError, IndexError, ValueError):
            raise GuidanceLayoutError(
                "Qwen-Image guidance needs the transformer's `img_shapes` to unpack its tokens."
            ) from None
        return int(height), int(width)
    grid = tuple(kwargs.get(key) for key in ("num_frames", "height", "width"))
    if any(not isinstance(value, int) for value in grid):
        raise GuidanceLayoutError("LTX-2 guidance needs the transformer's `num_frames`, `height` and `width`.")
    return grid  # type: ignore[return-value]


def unpack(x: torch.Tensor, layout: Layout, grid: tuple[int, ...]) -> torch.Tensor:
    """Packed tokens → latents: ``(B, h·w, 4C)`` → ``(B, C, 2h, 2w)``; LTX-2 ``(B, F·H·W, C)`` → ``(B, C, F, H, W)``.

    Example:
        >>> x = torch.randn(2, 3, 4, 6)
        >>> layout = Layout("flow", "flow", 1000.0, packing="flux")
        >>> torch.equal(unpack(pack(x, layout), layout, (2, 3)), x)
        True
    """
    if x.shape[1] != int(torch.tensor(grid).prod()):
        raise GuidanceLayoutError(f"{x.shape[1]} tokens do not fill the latent grid {grid}.")
    if layout.packing == "ltx":
        frames, height, width = grid
        return x.reshape(x.shape[0], frames, height, width, x.shape[2]).permute(0, 4, 1, 2, 3)
    batch, _, features = x.shape
    height, width = grid
    x = x.reshape(batch, height, width, features // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(batch, features // 4, 2 * height, 2 * width)


def pack(x: torch.Tensor, layout: Layout) -> torch.Tensor:
    """The inverse of :func:`unpack` (the pipelines' own packing order)."""
    if layout.packing == "ltx":
        return x.permute(0, 2, 3, 4, 1).reshape(x.shape[0], -1, x.shape[1])
    batch, channels, height, width = x.shape
    x = x.reshape(batch, channels, height // 2, 2, width // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(batch, (height // 2) * (width // 2), channels * 4)
