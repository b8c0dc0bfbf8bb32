"""Settings of a digits training run: :class:`TrainConfig` (fields, validation, the UNet it trains), the model
presets and the ``inertia-train`` argument parser that mirrors the config fields."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inertia.core.diffusion.precond import FDM_BASES, PRECONDITIONINGS
from inertia.data.digits import NUM_CLASSES
from inertia.training.checkpoint import STATE_FILE

__all__ = ["MIXED_PRECISIONS", "MODEL_PRESETS", "TrainConfig", "build_parser"]

_SMALL: dict[str, Any] = {
    "block_out_channels": (32, 64, 64),
    "layers_per_block": 1,
    "norm_num_groups": 16,
    "attention_head_dim": 8,
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
}
_SMALL_32: dict[str, Any] = {
    **_SMALL,
    "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
}
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"block_out_channels": (8, 16, 16), "layers_per_block": 1, "norm_num_groups": 4, "attention_head_dim": 8},
    "small": _SMALL,
    "small-32": _SMALL_32,
    "small-32-adagn": {**_SMALL_32, "resnet_time_scale_shift": "scale_shift"},
}
"""UNet settings per ``model_size``: ``"tiny"`` (~75k parameters, tests), ``"small"`` (~1.17M, the 16x16 model:
channels (32, 64, 64), self-attention at the two lower resolutions, 8x8 and 4x4 at 16x16) and ``"small-32"`` (the
same channels with self-attention at the lowest resolution only, 8x8 at 32x32: about 0.9 s instead of 1.4 s per
batch-64 step on two CPU cores); ``"small-32-adagn"`` is ``"small-32"`` with the time and class embedding applied
as a scale and shift of the normalised features (adaptive group norm) instead of added to them."""

MIXED_PRECISIONS = ("no", "fp16", "bf16")


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Settings of one training run (validated by :meth:`validate`, which :func:`train` calls before any work).

    Attributes:
        preconditioning: ``"vp"``, ``"edm"`` or ``"fdm"``.
        fdm_multiplier: FDM's m > 0 (2.0).
        fdm_base: FDM's base framework, ``"edm"`` or ``"vp"``.
        fdm_warmup_steps: Steps of FDM's loss-weight clamp warm-up (the paper used 200-800); ``None`` = 400 for
            ``"fdm"`` and off for the others; 0 switches it off.
        model_size: ``"tiny"`` (tests) or ``"small"`` (~1.17M parameters), see :data:`MODEL_PRESETS`.
        resolution: 16 or 32.
        batch_size: Global batch (all processes together); each process gets ``batch_size / num_processes``.
        lr: Peak AdamW learning rate.
        lr_warmup_steps: Linear learning-rate warm-up from 0 (then constant; the schedule ignores ``max_steps``, so a
            finished run can be extended by resuming with a larger ``max_steps``).
        lr_decay_from: If set, the learning rate falls linearly from ``lr`` at this step to 0 at ``max_steps`` (an
            annealing phase, e.g. when resuming a constant-rate run for a last stretch); ``None`` = no decay.
        weight_decay: AdamW weight decay.
        adam_betas: AdamW betas.
        max_grad_norm: Gradient-norm clip; ``None`` = no clipping.
        max_steps: Optimizer steps to train (≥ 1).
        cond_drop_prob: Probability of training a sample with the null label (classifier-free guidance).
        ema_halflife_kimg: EMA half-life in thousands of images (see :class:`~inertia.training.ema.EMA`).
        ema_rampup_ratio: EMA half-life cap as a fraction of the images seen (EDM: 0.05); ``None`` = no ramp-up.
        augmentations_per_image: ``DigitsDataset`` variants per source image and epoch.
        checkpoint_every: Save a checkpoint every this many steps (0 = only at the end).
        checkpoints_total_limit: Keep at most this many checkpoints (oldest removed); ``None`` = keep all.
        eval_every: Evaluate (and save the EMA pipeline) every this many steps (0 = only at the end).
        log_every: Write a log line every this many steps.
        seed: Seed of the model init, data order, augmentations and noise.
        output_dir: Where checkpoints, the pipeline and ``log.jsonl`` go.
        resume: ``None``, a checkpoint directory, or ``"latest"`` (newest ``checkpoint-*`` in ``output_dir``; a fresh
            start when there is none).
        mixed_precision: ``"no"``, ``"fp16"`` (GPU only) or ``"bf16"``.
        num_workers: DataLoader worker processes.
        max_minutes: Wall-clock budget; when exceeded, training stops cleanly after the current step and checkpoints.
        cpu: Force the CPU even when a GPU is present.
        progress_bar: Show a tqdm bar on the main process.
        extra: Extra ``PreconditionedUNet`` config overrides (e.g. ``{"dropout": 0.1}``).

    Example:
        >>> cfg = TrainConfig(preconditioning="fdm", model_size="tiny", batch_size=8, max_steps=2)
        >>> cfg.validate().effective_fdm_warmup_steps
        400
    """

    preconditioning: str = "edm"
    fdm_multiplier: float = 2.0
    fdm_base: str = "edm"
    fdm_warmup_steps: int | None = None
    model_size: str = "small"
    resolution: int = 16
    batch_size: int = 64
    lr: float = 5e-4
    lr_warmup_steps: int = 200
    lr_decay_from: int | None = None
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = 1.0
    max_steps: int = 2000
    cond_drop_prob: float = 0.1
    ema_halflife_kimg: float = 10.0
    ema_rampup_ratio: float | None = 0.05
    augmentations_per_image: int = 1
    checkpoint_every: int = 500
    checkpoints_total_limit: int | None = None
    eval_every: int = 500
    log_every: int = 10
    seed: int = 0
    output_dir: str = "runs/digits"
    resume: str | None = None
    mixed_precision: str = "no"
    num_workers: int = 0
    max_minutes: float | None = None
    cpu: bool = False
    progress_bar: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_fdm_warmup_steps(self) -> int | None:
        """The loss-weight warm-up actually used: ``fdm_warmup_steps``, 400 by default for FDM, ``None`` if off."""
        if self.fdm_warmup_steps is None:
            return 400 if self.preconditioning == "fdm" else None
        return self.fdm_warmup_steps or None

    def validate(self, num_processes: int = 1) -> TrainConfig:
        """Checks every field; raises ``ValueError`` naming the field, its value and the valid range. Returns self."""

        def is_int(v: Any) -> bool:
            return isinstance(v, int | np.integer) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return (
                isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) and math.isfinite(v)
            )

        def choice(name: str, choices: Sequence[Any]) -> None:
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}.")

        def integer(name: str, low: int, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not is_int(value) or value < low:
                extra = " or None" if allow_none else ""
                raise ValueError(f"`{name}` must be an integer in [{low}, inf){extra}, got {value!r}.")

        def number(name: str, low: float, high: float = math.inf, *, open_low: bool, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not is_num(value) or (value <= low if open_low else value < low) or value > high:
                extra = " or None" if allow_none else ""
                lb = "(" if open_low else "["
                hb = ")" if high == math.inf else "]"
                raise ValueError(f"`{name}` must be a number in {lb}{low}, {high}{hb}{extra}, got {value!r}.")

        choice("preconditioning", PRECONDITIONINGS)
        choice("fdm_base", FDM_BASES)
        number("fdm_multiplier", 0.0, open_low=True)
        integer("fdm_warmup_steps", 0, allow_none=True)
        choice("model_size", tuple(MODEL_PRESETS))
        choice("resolution", (16, 32))
        integer("batch_size", 1)
        if not is_int(num_processes) or num_processes < 1:
            raise ValueError(f"`num_processes` must be an integer in [1, inf), got {num_processes!r}.")
        if self.batch_size % num_processes:
            raise ValueError(
                f"`batch_size` must be divisible by the number of processes ({num_processes}), got {self.batch_size}."
            )
        number("lr", 0.0, open_low=True)
        integer("lr_warmup_steps", 0)
        integer("lr_decay_from", 0, allow_none=True)
        number("weight_decay", 0.0, open_low=False)
        betas = self.adam_betas
        if not isinstance(betas, tuple | list) or len(betas) != 2 or not all(is_num(b) and 0 <= b < 1 for b in betas):
            raise ValueError(f"`adam_betas` must be two numbers in [0, 1), got {betas!r}.")
        number("max_grad_norm", 0.0, open_low=True, allow_none=True)
        integer("max_steps", 1)
        if self.lr_decay_from is not None and self.lr_decay_from >= self.max_steps:
            raise ValueError(
                f"`lr_decay_from` must be below `max_steps` ({self.max_steps}) or None, got {self.lr_decay_from!r}."
            )
        number("cond_drop_prob", 0.0, 1.0, open_low=False)
        number("ema_halflife_kimg", 0.0, open_low=True)
        number("ema_rampup_ratio", 0.0, open_low=True, allow_none=True)
        integer("augmentations_per_image", 1)
        integer("checkpoint_every", 0)
        integer("checkpoints_total_limit", 1, allow_none=True)
        integer("eval_every", 0)
        integer("log_every", 1)
        integer("seed", 0)
        if not isinstance(self.output_dir, str | os.PathLike) or not str(self.output_dir):
            raise ValueError(f"`output_dir` must be a non-empty path, got {self.output_dir!r}.")
        if self.resume is not None:
            if not isinstance(self.resume, str | os.PathLike) or not str(self.resume):
                raise ValueError(f"`resume` must be None, 'latest' or a checkpoint directory, got {self.resume!r}.")
            if str(self.resume) != "latest" and not (Path(self.resume) / STATE_FILE).is_file():
                raise ValueError(
                    f"`resume` must be None, 'latest' or a checkpoint directory holding {STATE_FILE}, "
                    f"got {str(self.resume)!r}."
                )
        choice("mixed_precision", MIXED_PRECISIONS)
        integer("num_workers", 0)
        number("max_minutes", 0.0, open_low=True, allow_none=True)
        if not isinstance(self.extra, dict):
            raise ValueError(f"`extra` must be a dict of PreconditionedUNet config overrides, got {self.extra!r}.")
        return self

    def unet_config(self) -> dict[str, Any]:
        """Keyword arguments of the ``PreconditionedUNet`` this config trains."""
        return {
            **MODEL_PRESETS[self.model_size],
            "preconditioning": self.preconditioning,
            "fdm_multiplier": float(self.fdm_multiplier),
            "fdm_base": self.fdm_base,
            "sample_size": int(self.resolution),
            "num_class_embeds": NUM_CLASSES + 1,
            **self.extra,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of the fields."""
        out = dataclasses.asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        out["output_dir"] = str(self.output_dir)
        out["resume"] = None if self.resume is None else str(self.resume)
        return out


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def _none_or(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else kind(text)

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``inertia-train`` argument parser (flags mirror :class:`TrainConfig`, with dashes)."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="inertia-train",
        description="Train the class-conditional digits model (VP/EDM/FDM preconditioning) with accelerate.",
    )
    p.add_argument("--preconditioning", choices=PRECONDITIONINGS, default=d.preconditioning)
    p.add_argument("--fdm-multiplier", type=float, default=d.fdm_multiplier)
    p.add_argument("--fdm-base", choices=FDM_BASES, default=d.fdm_base)
    p.add_argument("--fdm-warmup-steps", type=_none_or(int), default=None, help="default: 400 for fdm, off otherwise")
    p.add_argument("--model-size", choices=tuple(MODEL_PRESETS), default=d.model_size)
    p.add_argument("--resolution", type=int, choices=(16, 32), default=d.resolution)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch over all processes")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-warmup-steps", type=int, default=d.lr_warmup_steps)
    p.add_argument(
        "--lr-decay-from", type=int, default=d.lr_decay_from, help="linear decay to 0 from this step to --max-steps"
    )
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--max-grad-norm", type=_none_or(float), default=d.max_grad_norm)
    p.add_argument("--max-steps", type=int, default=d.max_steps)
    p.add_argument("--cond-drop-prob", type=float, default=d.cond_drop_prob)
    p.add_argument("--ema-halflife-kimg", type=float, default=d.ema_halflife_kimg)
    p.add_argument("--ema-rampup-ratio", type=_none_or(float), default=d.ema_rampup_ratio)
    p.add_argument("--augmentations-per-image", type=int, default=d.augmentations_per_image)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--checkpoints-total-limit", type=_none_or(int), default=d.checkpoints_total_limit)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--output-dir", default=d.output_dir)
    p.add_argument("--resume", default=None, help="checkpoint directory or 'latest'")
    p.add_argument("--mixed-precision", choices=MIXED_PRECISIONS, default=d.mixed_precision)
    p.add_argument("--num-workers", type=int, default=d.num_workers)
    p.add_argument("--max-minutes", type=_none_or(float), default=None)
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    p.add_argument("--no-progress-bar", action="store_true")
    p.add_argument("--no-eval", action="store_true", help="skip the metrics (the EMA pipeline is still saved)")
    p.add_argument("--eval-images-per-digit", type=int, default=20)
    p.add_argument("--eval-steps", type=int, default=20, help="DPM++(2M) steps of the evaluation samples")
    p.add_argument("--eval-guidance-scale", type=float, default=3.0)
    return p
