"""Training recipe of the embedded digits model: accelerate-based, one CPU, one GPU or many processes.

``train(TrainConfig(...))`` trains a class-conditional :class:`~inertia.models.preconditioned_unet.PreconditionedUNet`
(VP, EDM or FDM preconditioning, :mod:`inertia.core.diffusion`) on the offline coloured digits with AdamW, a linear
learning-rate warm-up, classifier-free-guidance label dropout, FDM's loss-weight warm-up and an EMA of the weights.
It writes:

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

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from inertia.core.diffusion.loss import LossWeightWarmup
from inertia.data.digits import DigitsDataset
from inertia.training.checkpoint import STATE_FILE, latest_checkpoint, prune_checkpoints
from inertia.training.config import MODEL_PRESETS, TrainConfig, build_parser
from inertia.training.ema import EMA
from inertia.training.evaluate import build_pipeline, default_evaluate, make_default_evaluate
from inertia.training.run_log import append_log, jsonable, truncate_log

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


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def _mix_seed(*words: int) -> int:
    """A well-mixed 63-bit seed from non-negative integers."""
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


class EpochPermutationSampler(Sampler[int]):
    """Indices ``0..n-1`` in a random order seeded by ``(seed, epoch)``; call :meth:`set_epoch` each epoch.

    Example:
        >>> sampler = EpochPermutationSampler(5, seed=0)
        >>> first = list(sampler)
        >>> sorted(first), list(sampler) == first   # a permutation, the same one until the epoch changes
        ([0, 1, 2, 3, 4], True)
        >>> sampler.set_epoch(1); sorted(sampler) == sorted(first)
        True
    """

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


def _lr_at(config: TrainConfig, step: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up to ``lr``, constant, optional linear decay."""
    warmup = 1.0 if config.lr_warmup_steps == 0 else min(1.0, (step + 1) / config.lr_warmup_steps)
    if config.lr_decay_from is None or step < config.lr_decay_from:
        return config.lr * warmup
    # step lr_decay_from trains at the full rate, the last step (max_steps - 1) at lr / (max_steps - lr_decay_from)
    remaining = (config.max_steps - step) / (config.max_steps - config.lr_decay_from)
    return config.lr * warmup * remaining


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
        state = torch.load(resume_dir / STATE_FILE, map_location="cpu", weights_only=True)
        ema.load_state_dict(state["ema"])
        if weight_warmup is not None and state.get("loss_weight_warmup") is not None:
            weight_warmup.load_state_dict(state["loss_weight_warmup"])
        step = int(state["step"])
        if is_main:
            logger.info("resumed from %s at step %d", resume_dir, step)
    log_path = out_dir / "log.jsonl"
    if is_main:
        truncate_log(log_path, step)

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
            torch.save(state, ckpt / STATE_FILE)
            meta = {"step": step, "num_processes": accelerator.num_processes, "config": config.to_dict()}
            (ckpt / "training_state.json").write_text(json.dumps(meta, indent=2))
            prune_checkpoints(out_dir, config.checkpoints_total_limit)
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
                result = jsonable(evaluate(pipe))
                append_log(log_path, {"step": step, "eval": result, "wall_time_s": time.perf_counter() - start_time})
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
                    append_log(
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
        print(json.dumps(jsonable(summary), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
