"""Training recipe of the embedded digits model: accelerate-based, one CPU, one GPU or many processes.

``train(TrainConfig(...))`` trains a class-conditional :class:`~inertia.models.preconditioned_unet.PreconditionedUNet`
(VP, EDM or FDM preconditioning, spec B.2/B.3) on the offline coloured digits with AdamW, a linear learning-rate
warm-up, classifier-free-guidance label dropout, FDM's loss-weight warm-up and an EMA of the weights. It writes:

- ``output_dir/checkpoint-{step}/``: ``accelerator.save_state`` (model, optimizer, RNG states) plus
  ``training_state.pt`` (EMA, loss-weight warm-up, step) and ``training_state.json`` (step, config);
- ``output_dir/pipeline/``: a :class:`~inertia.pipelines.digits.DigitsPipeline` with the EMA weights and a
  ``DPMSolverMultistepScheduler`` on the model's schedule (safetensors), at every evaluation and at the end;
- ``output_dir/log.jsonl``: one JSON object per logged step (step, loss, lr, images/s, wall time) and, at evaluation
  steps, the ``evaluate`` dict under ``"eval"``.

Determinism: the data order is a permutation seeded by ``(seed, epoch)``, augmentations by ``(seed, epoch, index)``,
σ / noise / label dropout by a generator seeded by ``(seed, step, process)``, and the learning rate is a function of the
step only. So on one process the same config gives identical losses and weights, and a run stopped at step k and
resumed to N ends with the weights of an uninterrupted N-step run (with the same number of processes).

Command line (also ``accelerate launch --num_processes 2 -m inertia.training.train ...``)::

    python -m inertia.training.train --preconditioning fdm --max-steps 2000 --output-dir runs/fdm
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from inertia.training.digits_data import NUM_CLASSES, DigitsDataset
from inertia.training.ema import EMA
from inertia.training.loss import LossWeightWarmup
from inertia.training.precond import FDM_BASES, PRECONDITIONINGS

__all__ = [
    "MODEL_PRESETS",
    "TrainConfig",
    "build_pipeline",
    "default_evaluate",
    "latest_checkpoint",
    "main",
    "make_default_evaluate",
    "train",
]

logger = logging.getLogger(__name__)

MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"block_out_channels": (8, 16, 16), "layers_per_block": 1, "norm_num_groups": 4, "attention_head_dim": 8},
    "small": {
        "block_out_channels": (32, 64, 64),
        "layers_per_block": 1,
        "norm_num_groups": 16,
        "attention_head_dim": 8,
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    },
}
"""UNet settings per ``model_size``: ``"tiny"`` (~75k parameters, tests) and ``"small"`` (~1.17M, the shipped model:
channels (32, 64, 64), self-attention at the two lower resolutions, 8x8 and 4x4 at 16x16)."""

MIXED_PRECISIONS = ("no", "fp16", "bf16")
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_STATE_FILE = "training_state.pt"


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
        fdm_warmup_steps: Steps of FDM's loss-weight clamp warm-up (spec B.3, 200-800); ``None`` = 400 for ``"fdm"``
            and off for the others; 0 switches it off.
        model_size: ``"tiny"`` (tests) or ``"small"`` (~1.17M parameters), see :data:`MODEL_PRESETS`.
        resolution: 16 or 32.
        batch_size: Global batch (all processes together); each process gets ``batch_size / num_processes``.
        lr: Peak AdamW learning rate.
        lr_warmup_steps: Linear learning-rate warm-up from 0 (then constant; the schedule ignores ``max_steps``, so a
            finished run can be extended by resuming with a larger ``max_steps``).
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
        number("weight_decay", 0.0, open_low=False)
        betas = self.adam_betas
        if not isinstance(betas, tuple | list) or len(betas) != 2 or not all(is_num(b) and 0 <= b < 1 for b in betas):
            raise ValueError(f"`adam_betas` must be two numbers in [0, 1), got {betas!r}.")
        number("max_grad_norm", 0.0, open_low=True, allow_none=True)
        integer("max_steps", 1)
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
            if str(self.resume) != "latest" and not (Path(self.resume) / _STATE_FILE).is_file():
                raise ValueError(
                    f"`resume` must be None, 'latest' or a checkpoint directory holding {_STATE_FILE}, "
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
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def _mix_seed(*words: int) -> int:
    """A well-mixed 63-bit seed from non-negative integers."""
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


class EpochPermutationSampler(Sampler[int]):
    """Indices ``0..n-1`` in a random order seeded by ``(seed, epoch)``; call :meth:`set_epoch` each epoch."""

    def __init__(self, num_items: int, seed: int) -> None:
        self.num_items = int(num_items)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(_mix_seed(self.seed, 7, self.epoch))
        return iter(torch.randperm(self.num_items, generator=gen).tolist())

    def __len__(self) -> int:
        return self.num_items


class _LossModule(nn.Module):
    """Wraps the UNet so that DDP / autocast see the training loss as ``forward`` (gradient sync needs that)."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(
        self,
        x0: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator,
        warmup: LossWeightWarmup | None,
        cond_drop_prob: float,
    ) -> torch.Tensor:
        loss, _ = self.unet.training_loss(x0, labels, generator, warmup=warmup, cond_drop_prob=cond_drop_prob)
        return loss


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The ``checkpoint-{step}`` directory with the largest step under ``output_dir`` (complete ones only), or None."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _CHECKPOINT_RE.match(p.name)) and p.is_dir() and (p / _STATE_FILE).is_file()
    ]
    return max(found)[1] if found else None


def build_pipeline(unet: nn.Module) -> Any:
    """A ``DigitsPipeline`` around ``unet`` with a DPM-Solver++(2M) scheduler on the unet's diffusers schedule."""
    from diffusers import DPMSolverMultistepScheduler

    from inertia.pipelines.digits import DigitsPipeline

    cfg = unet.config
    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        beta_schedule=cfg.beta_schedule,
        prediction_type="epsilon",
        algorithm_type="dpmsolver++",
        solver_order=2,
    )
    return DigitsPipeline(unet=unet, scheduler=scheduler)


def make_default_evaluate(
    images_per_digit: int = 20,
    num_inference_steps: int = 20,
    guidance_scale: float = 3.0,
    seed: int = 0,
    metrics_module: str = "inertia.metrics.digits",
) -> Callable[[Any], dict[str, float]]:
    """An ``evaluate(pipe) -> dict`` that samples ``10 × images_per_digit`` images and scores them.

    It uses ``metrics_module`` (default :mod:`inertia.metrics.digits`: ``class_accuracy(images01, labels)``,
    ``fd_digits(images01)``, ``colour_stats(images01)``), imported lazily at the first call; if that import fails it
    logs one warning and returns ``{}``. A metric that raises is skipped with a warning. Images are sampled with
    ``pipe``'s scheduler and a generator seeded by ``seed``, so successive evaluations see the same noise.

    Example:
        >>> evaluate = make_default_evaluate(images_per_digit=2, num_inference_steps=4)
        >>> callable(evaluate)
        True
    """
    warned = False

    def evaluate(pipe: Any) -> dict[str, float]:
        nonlocal warned
        try:
            metrics = importlib.import_module(metrics_module)
        except Exception as err:  # another module; absent or broken -> no metrics
            if not warned:
                logger.warning("%s unavailable (%s); skipping evaluation metrics.", metrics_module, err)
                warned = True
            return {}
        labels = torch.arange(10).repeat_interleave(images_per_digit)
        gen = torch.Generator().manual_seed(seed)
        pipe.set_progress_bar_config(disable=True)
        images = pipe(
            list(range(10)),
            num_images_per_prompt=images_per_digit,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=gen,
            output_type="pt",
        ).images.float()
        out: dict[str, float] = {}

        def add(name: str, fn: Callable[[], Any]) -> None:
            try:
                value = fn()
            except Exception as err:
                logger.warning("metric %s failed: %s", name, err)
                return
            if isinstance(value, dict):
                out.update({f"{name}/{k}": _jsonable(v) for k, v in value.items()})
            else:
                out[name] = _jsonable(value)

        add("class_accuracy", lambda: metrics.class_accuracy(images, labels))
        add("fd_digits", lambda: metrics.fd_digits(images))
        add("colour", lambda: metrics.colour_stats(images))
        return out

    return evaluate


default_evaluate = make_default_evaluate()
"""``evaluate(pipe)``: 200 images (20 per digit), 20 DPM++(2M) steps, guidance 3, scored by ``inertia.metrics``."""


def _jsonable(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _lr_at(config: TrainConfig, step: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up to ``lr``, then constant."""
    if config.lr_warmup_steps == 0:
        return config.lr
    return config.lr * min(1.0, (step + 1) / config.lr_warmup_steps)


# ----------------------------------------------------------------------------------------------------------------
# Training loop
# ----------------------------------------------------------------------------------------------------------------


def train(config: TrainConfig, evaluate: Callable[[Any], dict] | None = None) -> dict[str, Any]:
    """Trains (or resumes) a digits model with accelerate; see the module docstring for what gets written.

    Run it in one process, or in several under ``accelerate launch`` (gradients are averaged across processes; the
    main process logs, evaluates and writes the pipeline).

    Args:
        config: The run's :class:`TrainConfig` (validated first).
        evaluate: Optional ``evaluate(pipe) -> dict`` called on the main process at every ``eval_every`` step and at
            the end, with a ``DigitsPipeline`` holding the EMA weights; its dict is logged under ``"eval"``.

    Returns:
        A dict with ``step`` (last step), ``loss`` (mean loss of the last logged window), ``losses`` (per-step mean
        loss of this call, all processes averaged), ``output_dir``, ``pipeline_dir``, ``checkpoint_dir``,
        ``resumed_from``, ``stopped_early`` (wall-clock budget hit), ``eval`` (last evaluation or None),
        ``seconds_per_step`` and ``wall_time_s``.

    Raises:
        ValueError: for a bad config field (before any work).

    Example (writes files, so not run as a doctest)::

        from inertia.training.train import TrainConfig, train
        result = train(TrainConfig(preconditioning="fdm", model_size="tiny", batch_size=8, max_steps=2,
                                   output_dir="runs/smoke"))
        result["step"], result["pipeline_dir"]   # (2, 'runs/smoke/pipeline')

    """
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import set_seed

    # MULTI_CPU (gloo) needs cpu=True from the start: `accelerate launch --multi_gpu` on a machine without a GPU
    use_cpu = bool(config.cpu) or not torch.cuda.is_available()
    num_processes = PartialState(cpu=use_cpu).num_processes
    config.validate(num_processes)
    if evaluate is not None and not callable(evaluate):
        raise ValueError(f"`evaluate` must be None or a callable taking a pipeline, got {type(evaluate).__name__}.")

    from inertia.models.preconditioned_unet import PreconditionedUNet

    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        cpu=use_cpu,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    try:
        return _train(accelerator, config, evaluate, PreconditionedUNet, set_seed)
    finally:
        accelerator.end_training()
        AcceleratorState._reset_state()  # lets a later call pick other settings (e.g. mixed precision) in-process


def _train(
    accelerator: Any,
    config: TrainConfig,
    evaluate: Callable[[Any], dict] | None,
    unet_cls: type,
    set_seed: Callable[..., None],
) -> dict[str, Any]:
    start_time = time.perf_counter()
    dataset = DigitsDataset(
        "train",
        resolution=config.resolution,
        seed=config.seed,
        augmentations_per_image=config.augmentations_per_image,
        augment_on_the_fly=True,
    )
    if len(dataset) < config.batch_size:
        raise ValueError(f"`batch_size` must be at most the data set size ({len(dataset)}), got {config.batch_size}.")
    out_dir = Path(config.output_dir)
    is_main = accelerator.is_main_process
    rank = accelerator.process_index
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    resume_dir: Path | None = None
    if config.resume == "latest":
        resume_dir = latest_checkpoint(out_dir)
    elif config.resume is not None:
        resume_dir = Path(config.resume)

    # ---- model, data, optimizer (same seed on every process: identical init) ----
    set_seed(config.seed)
    unet = unet_cls(**config.unet_config())
    ema = EMA(unet, halflife_images=config.ema_halflife_kimg * 1000.0, rampup_ratio=config.ema_rampup_ratio)
    warmup_steps = config.effective_fdm_warmup_steps
    weight_warmup = LossWeightWarmup(warmup_steps) if warmup_steps else None

    sampler = EpochPermutationSampler(len(dataset), config.seed)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,  # global: accelerate (split_batches=True) hands each process its slice
        sampler=sampler,
        drop_last=True,
        num_workers=config.num_workers,
    )
    steps_per_epoch = len(loader)
    optimizer = torch.optim.AdamW(
        unet.parameters(), lr=config.lr, betas=tuple(config.adam_betas), weight_decay=config.weight_decay
    )
    model, optimizer, loader = accelerator.prepare(_LossModule(unet), optimizer, loader)
    ema.to(accelerator.device)

    # ---- resume ----
    step = 0
    if resume_dir is not None:
        accelerator.load_state(str(resume_dir))
        state = torch.load(resume_dir / _STATE_FILE, map_location="cpu", weights_only=True)
        ema.load_state_dict(state["ema"])
        if weight_warmup is not None and state.get("loss_weight_warmup") is not None:
            weight_warmup.load_state_dict(state["loss_weight_warmup"])
        step = int(state["step"])
        if is_main:
            logger.info("resumed from %s at step %d", resume_dir, step)
    log_path = out_dir / "log.jsonl"
    if is_main:
        _truncate_log(log_path, step)

    def unwrapped_unet() -> nn.Module:
        return accelerator.unwrap_model(model).unet

    def save_checkpoint() -> Path:
        ckpt = out_dir / f"checkpoint-{step}"
        accelerator.wait_for_everyone()
        accelerator.save_state(str(ckpt))
        if is_main:
            state = {
                "step": step,
                "ema": ema.state_dict(),
                "loss_weight_warmup": None if weight_warmup is None else weight_warmup.state_dict(),
                "config": config.to_dict(),
            }
            torch.save(state, ckpt / _STATE_FILE)
            meta = {"step": step, "num_processes": accelerator.num_processes, "config": config.to_dict()}
            (ckpt / "training_state.json").write_text(json.dumps(meta, indent=2))
            _prune_checkpoints(out_dir, config.checkpoints_total_limit)
        accelerator.wait_for_everyone()
        return ckpt

    def save_pipeline_and_evaluate() -> dict | None:
        result = None
        if is_main:
            ema_unet = unet_cls.from_config(unwrapped_unet().config)
            ema.copy_to(ema_unet)
            ema_unet.eval()
            pipe = build_pipeline(ema_unet)
            pipe.save_pretrained(str(out_dir / "pipeline"), safe_serialization=True)
            if evaluate is not None:
                pipe.to(accelerator.device)
                result = _jsonable(evaluate(pipe))
                _append_log(log_path, {"step": step, "eval": result, "wall_time_s": time.perf_counter() - start_time})
        accelerator.wait_for_everyone()
        return result

    # ---- loop ----
    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.max_steps,
        initial=min(step, config.max_steps),
        disable=not (is_main and config.progress_bar),
        desc="train",
        dynamic_ncols=True,
    )
    losses: list[float] = []
    window: list[float] = []
    last_eval: dict | None = None
    last_loss = float("nan")
    stopped_early = False
    window_start, window_steps = time.perf_counter(), 0
    steps_done = 0
    loop_start = time.perf_counter()
    last_ckpt_step, last_eval_step = -1, -1
    model.train()
    while step < config.max_steps and not stopped_early:
        epoch, skip = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        epoch_loader = accelerator.skip_first_batches(loader, skip) if skip else loader
        for x0, labels in epoch_loader:
            lr = _lr_at(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            generator = torch.Generator().manual_seed(_mix_seed(config.seed, 11, step, rank))
            loss = model(x0, labels, generator, weight_warmup, float(config.cond_drop_prob))
            accelerator.backward(loss)
            if config.max_grad_norm is not None:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if weight_warmup is not None:
                weight_warmup.step()
            ema.update(unwrapped_unet(), config.batch_size)
            step += 1
            steps_done += 1
            window_steps += 1
            mean_loss = accelerator.reduce(loss.detach().float(), reduction="mean").item()
            losses.append(mean_loss)
            window.append(mean_loss)
            bar.update(1)
            bar.set_postfix(loss=f"{mean_loss:.4f}")

            if config.max_minutes is not None:
                over = torch.tensor(
                    [float(time.perf_counter() - start_time > 60.0 * config.max_minutes)], device=accelerator.device
                )
                stopped_early = bool(accelerator.reduce(over, reduction="sum").item() > 0) and step < config.max_steps

            if step % config.log_every == 0 or step == config.max_steps or stopped_early:
                now = time.perf_counter()
                last_loss = float(np.mean(window))
                if is_main:
                    _append_log(
                        log_path,
                        {
                            "step": step,
                            "epoch": epoch,
                            "loss": last_loss,
                            "lr": lr,
                            "images_per_s": window_steps * config.batch_size / max(now - window_start, 1e-9),
                            "wall_time_s": now - start_time,
                        },
                    )
                window, window_start, window_steps = [], now, 0
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                save_checkpoint()
                last_ckpt_step = step
            if config.eval_every and step % config.eval_every == 0:
                model.eval()
                last_eval = save_pipeline_and_evaluate()
                model.train()
                last_eval_step = step
            if step >= config.max_steps or stopped_early:
                break
    bar.close()
    train_time = time.perf_counter() - loop_start

    ckpt_dir = out_dir / f"checkpoint-{step}"
    if last_ckpt_step != step:
        ckpt_dir = save_checkpoint()
    if last_eval_step != step:
        model.eval()
        last_eval = save_pipeline_and_evaluate()
    if window and is_main:  # nothing left normally; kept for safety
        last_loss = float(np.mean(window))
    return {
        "step": step,
        "loss": last_loss,
        "losses": losses,
        "output_dir": str(out_dir),
        "pipeline_dir": str(out_dir / "pipeline"),
        "checkpoint_dir": str(ckpt_dir),
        "resumed_from": None if resume_dir is None else str(resume_dir),
        "stopped_early": stopped_early,
        "eval": last_eval,
        "seconds_per_step": train_time / steps_done if steps_done else float("nan"),
        "wall_time_s": time.perf_counter() - start_time,
    }


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(_jsonable(record)) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drops log lines past ``step`` (left by a run that went on after the checkpoint being resumed)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue
    path.write_text("".join(k + "\n" for k in kept))


def _prune_checkpoints(out_dir: Path, limit: int | None) -> None:
    if limit is None:
        return
    found = sorted((int(m.group(1)), p) for p in out_dir.iterdir() if (m := _CHECKPOINT_RE.match(p.name)))
    for _, path in found[: max(len(found) - limit, 0)]:
        shutil.rmtree(path, ignore_errors=True)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``inertia-train``; returns the exit code (0)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    config = TrainConfig(**values, progress_bar=not args.no_progress_bar)
    evaluate = None
    if not args.no_eval:
        evaluate = make_default_evaluate(args.eval_images_per_digit, args.eval_steps, args.eval_guidance_scale)
    result = train(config, evaluate)
    from accelerate.state import PartialState

    if PartialState().is_main_process:
        summary = {k: v for k, v in result.items() if k != "losses"}
        print(json.dumps(_jsonable(summary), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
