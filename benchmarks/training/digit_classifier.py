"""Train the digit classifier behind ``inertia.metrics.digits`` (class accuracy and FD-digits) and save its weights.

Trains :class:`inertia.metrics.digits.DigitClassifier` on the train split of the coloured digits with a fresh on-the-fly
augmentation (shift, scale, stroke, colours) of every image each epoch, on one CPU thread, deterministically from
``--seed``; reports the accuracy on the held-out split (source images never seen in training) and writes
``digit_classifier.safetensors`` and ``config.json`` to ``--out``.

Usage:
    python -m benchmarks.training.digit_classifier [--out inertia/metrics/classifier_weights] [--epochs 15] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from benchmarks.common.paths import REPO_ROOT
from inertia.data.digits import DigitsDataset, load_digits_rgb, to_unit_range
from inertia.metrics.digits import CONFIG_FILENAME, WEIGHTS_FILENAME, DigitClassifier

DEFAULT_OUT = REPO_ROOT / "inertia" / "metrics" / "classifier_weights"


def evaluate(model: DigitClassifier, images01: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of ``model`` on images in [0, 1]."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(images01[i : i + 512]).argmax(1) for i in range(0, len(images01), 512)])
    return float((pred == labels).double().mean())


def train(
    epochs: int = 15,
    seed: int = 0,
    augmentations_per_image: int = 4,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    log: bool = True,
) -> tuple[DigitClassifier, dict[str, float]]:
    """Train a classifier; returns it (eval mode) and ``{"holdout_accuracy", "train_seconds", ...}``."""
    torch.manual_seed(seed)
    model = DigitClassifier()
    data = DigitsDataset(
        "train", resolution=16, seed=seed, augmentations_per_image=augmentations_per_image, augment_on_the_fly=True
    )
    loader_gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=loader_gen, num_workers=0, drop_last=True)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lr, total_steps=epochs * len(loader), pct_start=0.15
    )
    holdout = load_digits_rgb("holdout", resolution=16, seed=seed, augmentations_per_image=augmentations_per_image)
    holdout_x, holdout_y = to_unit_range(holdout.images), holdout.labels
    start = time.perf_counter()
    for epoch in range(epochs):
        data.set_epoch(epoch)
        model.train()
        total, n = 0.0, 0
        for images, labels in loader:
            loss = F.cross_entropy(model(to_unit_range(images)), labels, label_smoothing=0.05)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(labels)
            n += len(labels)
        if log:
            acc = evaluate(model, holdout_x, holdout_y)
            print(
                f"epoch {epoch + 1:2d}/{epochs}  loss {total / n:.4f}  holdout acc {acc:.4f}  "
                f"{time.perf_counter() - start:.0f}s",
                flush=True,
            )
    seconds = time.perf_counter() - start
    model.eval()
    return model, {
        "holdout_accuracy": evaluate(model, holdout_x, holdout_y),
        "holdout_images": len(holdout_y),
        "train_seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: the shipped weights)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augmentations-per-image", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    model, result = train(
        epochs=args.epochs,
        seed=args.seed,
        augmentations_per_image=args.augmentations_per_image,
        batch_size=args.batch_size,
        lr=args.lr,
    )
    print(f"holdout accuracy {result['holdout_accuracy']:.4f} ({result['train_seconds']:.0f}s)")

    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out / WEIGHTS_FILENAME), metadata={"format": "pt"})
    config = {
        "architecture": model.config(),
        "input": "float (N, 3, 16, 16) in [0, 1], NCHW",
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": {
            "command": " ".join(
                ["python -m benchmarks.training.digit_classifier", *(sys.argv[1:] if argv is None else argv)]
            ),
            "seed": args.seed,
            "epochs": args.epochs,
            "augmentations_per_image": args.augmentations_per_image,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "data": "inertia.data.digits train split, resolution 16, augment_on_the_fly=True",
            "threads": 1,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "train_seconds": result["train_seconds"],
            "date": datetime.date.today().isoformat(),
        },
        "holdout_accuracy": round(result["holdout_accuracy"], 4),
        "holdout_images": result["holdout_images"],
    }
    (args.out / CONFIG_FILENAME).write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {args.out / WEIGHTS_FILENAME} and {args.out / CONFIG_FILENAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
