"""Momentum attention (`extrapolate`) against diffusers' caches and against "fewer steps".

Usage::

    python -m benchmarks.attention.vs_peers [--quick] [--rounds 2] [--images-per-digit 10] [--threads N]
                                            [--flux-image-tokens 1024] [--speed-from costs.json] [--out DIR]
                                            [--families fbc,magcache] [--seed 0] [--beta -0.4]

**Methods.** Ours: `extrapolate` (heavy-ball extrapolation of skipped attention outputs). Peers, each at three or
four aggressiveness settings: TaylorSeer order 1 and order 2, Pyramid Attention Broadcast (PAB) and FasterCache's
attention rule (attention-level forecasts or reuse), First Block Cache (FBC) and MagCache (skip the whole network
after a first block / by a calibrated schedule), and "fewer steps" of the same solver (DPM-Solver++(2M)), the
baseline any cache must beat. diffusers' own hooks select transformer blocks by name and do not attach to the digits
UNet, so the peers run through :mod:`benchmarks.peers.cache_hooks` (attention modules; on Flux its attention-
and block-level adapters give outputs bit-identical to diffusers' hooks, ``tests/bench_harness/peers/test_caches.py``)
and :mod:`benchmarks.peers.unet_cache_hooks` (FBC and MagCache on UNets); FasterCache's rule is inertia's
``first_order`` mode (attention part only, no CFG-Cache).

**Quality** (the embedded digits model, ``images_per_digit`` x 10 images, 20 steps, guidance 3, ``--seed``, default
0): RMSE and max. abs. difference against full computation from the same noise, FD-digits and class accuracy; a full
run from the next seed gives the FD seed spread; MagCache calibrates on one image per digit from the next seed. Each method's hooks log what every denoiser call computed (full network, how much of the
attention skipped, only FBC's probe, or nothing).

**Speed.** That work log is turned into wall-clock with per-call costs measured on two large random-weight models,
because the digits model's attention is too small to time: an SD1.5-sized ``UNet2DConditionModel`` (859.5M
parameters, 64x64 latents, batch 2 = batched CFG, 77 text tokens) and a Flux-sized transformer: FLUX.1-dev's real
blocks (hidden size 3072, 24 heads) timed one double and one single block at a time inside a 1+1-block
``FluxTransformer2DModel`` at ``flux_image_tokens`` image + 512 text tokens, and composed to FLUX.1's 19 double and
38 single blocks (a 12B model does not fit this machine's time). Per call kind: a full call, a call with every
attention module skipped (predicted), a call that runs only FBC's probe, and a skipped MagCache call (the embedding
and output layers on Flux, nothing on the UNet). A 20-step time is the sum over the logged calls; "fewer steps" at n
steps costs n full calls. Interleaved rounds, medians, ``OMP_WAIT_POLICY=PASSIVE``.

Writes ``peers_caches.json`` and ``peers_caches.md`` to ``--out``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/attention/unet_attention.py

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import FluxTransformer2DModel, UNet2DModel

from benchmarks.attention.unet_attention_quality import digits_pipeline, sample_digits
from benchmarks.attention.vs_peers_report import report
from benchmarks.common.sd15_unet import QUICK_UNET, SD15_UNET, build_unets
from benchmarks.common.timing import seconds_of
from benchmarks.peers.cache_hooks import CacheHandle, apply_attention_cache
from benchmarks.peers.caches import FirstBlockCache, MagCache, PyramidBroadcast, TaylorSeer
from benchmarks.peers.unet_cache_hooks import apply_unet_cache
from inertia.attention import MomentumAttention, apply_momentum_attention, remove_momentum_attention

__all__ = ["FAMILIES", "FLUX_DEPTH", "Variant", "compose", "flux_costs", "main", "quality", "unet_costs", "variants"]

FAMILIES = ("extrapolate", "taylorseer-1", "taylorseer-2", "pab", "fastercache", "fbc", "magcache", "fewer-steps")
"""Method families, ours first."""
FLUX_DEPTH = (19, 38)
"""FLUX.1's double- and single-stream block counts."""
FLUX_BLOCK: dict[str, Any] = {"num_attention_heads": 24, "attention_head_dim": 128, "guidance_embeds": True}
"""FLUX.1-dev's block width (the class defaults give the rest: 64 input channels, 4096-wide text, 768 pooled)."""
QUICK_FLUX: dict[str, Any] = {
    "in_channels": 16,
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "joint_attention_dim": 16,
    "pooled_projection_dim": 16,
    "axes_dims_rope": (4, 4, 8),
    "guidance_embeds": True,
}
ATTENTION_TARGETS = ("self", "cross")


@dataclass(frozen=True)
class Variant:
    """One setting of one family; ``config`` is the rule (or, for "fewer steps", the step count)."""

    family: str
    setting: str
    config: Any


def variants(
    steps: int, mag_ratios: Sequence[float] | None, quick: bool = False, beta: float | None = None
) -> dict[str, Variant]:
    """Every configuration compared: four settings of each attention-level family, three of the others.

    ``beta`` is `extrapolate`'s β (None: the library default).
    """
    out: dict[str, Variant] = {"full": Variant("full", "-", None)}
    ks = (2, 3) if quick else (2, 3, 4, 5)

    def add(family: str, setting: str, config: Any) -> None:
        out[f"{family} {setting}"] = Variant(family, setting, config)

    for k in ks:
        add(
            "extrapolate",
            f"skip_every={k}",
            MomentumAttention(mode="extrapolate", beta=beta, skip_every=k, window=(4, None)),
        )
    for order in (1, 2):
        for k in ks:  # before=4 matches extrapolate's window: the same skipped-step counts (8, 11, 12, 13 of 20)
            add(f"taylorseer-{order}", f"interval={k}", TaylorSeer(max_order=order, interval=k, before=4))
    for k in ks:
        add("pab", f"N={k}", PyramidBroadcast(block_skip_range=k, timestep_range=(100, 800)))
    for k in ks:
        add("fastercache", f"skip_every={k}", MomentumAttention.faster_cache(k, (4, None), targets=ATTENTION_TARGETS))
    for threshold in (0.01, 0.02) if quick else (0.01, 0.02, 0.05):
        add("fbc", f"threshold={threshold:g}", FirstBlockCache(threshold=threshold))
    if mag_ratios is not None:
        for k in (1, 2) if quick else (1, 2, 3):
            add("magcache", f"K={k}", MagCache(threshold=0.06, max_skip_steps=k, mag_ratios=tuple(mag_ratios)))
    for n in (steps - 3, steps - 2) if quick else (10, 12, 14, 16, 18):
        add("fewer-steps", f"{n} steps", n)
    return out


def _network(denoiser: torch.nn.Module) -> torch.nn.Module:
    """The UNet inside the digits model's preconditioning wrapper (or the denoiser itself)."""
    inner = getattr(denoiser, "unet", None)
    return inner if isinstance(inner, UNet2DModel) else denoiser


def install(
    pipe: Any, variant: Variant, steps: int
) -> tuple[Callable[[], list[tuple[str, float]]], Callable[[], None]]:
    """Installs ``variant`` on ``pipe``; returns (the work log of the last call, the remover)."""
    config = variant.config
    if isinstance(config, MomentumAttention):
        apply_momentum_attention(pipe, config)
        log = [("full", 1.0 if config.skips(s) else 0.0) for s in range(steps)]
        return (lambda: log), (lambda: remove_momentum_attention(pipe))
    if isinstance(config, TaylorSeer | PyramidBroadcast):
        handle: CacheHandle = apply_attention_cache(pipe.unet, config, targets=ATTENTION_TARGETS)
    elif isinstance(config, FirstBlockCache | MagCache):
        handle = apply_unet_cache(_network(pipe.unet), config, steps)
    else:
        n = steps if config is None else config
        log = [("full", 0.0)] * n
        return (lambda: log), (lambda: None)
    return (lambda: handle.work[-steps:]), handle.remove


# ---------------------------------------------------------------------------------------------------------------
# quality
# ---------------------------------------------------------------------------------------------------------------


def calibrate_magcache(pipe: Any, steps: int, per_digit: int = 1, seed: int = 1) -> list[float]:
    """MagCache's per-step magnitude ratios of the digits UNet, from one full run on a separate seed."""
    handle = apply_unet_cache(_network(pipe.unet), MagCache(), steps)  # mag_ratios=None: records, never skips
    try:
        sample_digits(pipe, per_digit, steps, seed)
    finally:
        handle.remove()
    return list(handle.ratios)


def quality(
    pipe: Any, chosen: dict[str, Variant], per_digit: int, steps: int, seed: int = 0
) -> tuple[dict[str, dict], float]:
    """Metrics and work log of every variant from ``seed``, and FD-digits of full computation from ``seed + 1``."""
    from inertia.metrics import class_accuracy, fd_digits

    labels = torch.arange(10).repeat_interleave(per_digit)
    rows: dict[str, dict] = {}
    reference = None
    for name, variant in chosen.items():
        work, remove = install(pipe, variant, steps)
        n = variant.config if isinstance(variant.config, int) else steps
        try:
            images = sample_digits(pipe, per_digit, n, seed).float().cpu()
        finally:
            remove()
        reference = images if name == "full" else reference
        diff = images - reference
        log = work()
        rows[name] = {
            "family": variant.family,
            "setting": variant.setting,
            "work": log,
            "full_calls": sum(kind == "full" for kind, _ in log),
            "attention_skipped": sum(f for kind, f in log if kind == "full"),
            "rmse": float(diff.pow(2).mean().sqrt()),
            "max_abs": float(diff.abs().max()),
            "fd_digits": fd_digits(images),
            "class_accuracy": class_accuracy(images, labels),
        }
        shown = {k: v for k, v in rows[name].items() if k not in ("work", "family", "setting")}
        print(f"  quality {name}: {json.dumps({k: round(v, 4) for k, v in shown.items()})}", flush=True)
    spread = fd_digits(sample_digits(pipe, per_digit, steps, seed + 1).float().cpu())
    return rows, spread


# ---------------------------------------------------------------------------------------------------------------
# speed
# ---------------------------------------------------------------------------------------------------------------


def _time(fn: Callable[[], Any], device: torch.device) -> float:
    with torch.no_grad():
        return seconds_of(fn, device)


def unet_costs(config: dict[str, Any], rounds: int, device: torch.device) -> dict[str, Any]:
    """Per-call medians on a UNet: full, every attention module predicted, FBC's probe only (MagCache: 0).

    Two weight-sharing copies: one under TaylorSeer order 1 with an endless interval (calls 0-1 computed, then
    every call predicts every attention module), one under FBC with a huge threshold (call 0 computed, then only
    the probe runs). Their computed calls are full-call samples too (the hooks' bookkeeping is below 0.4 %).
    """
    attn, probe = build_unets(config, device, copies=2)
    size = config["sample_size"]
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, config.get("in_channels", 4), size, size, generator=generator).to(device)
    text = torch.randn(2, 77, config["cross_attention_dim"], generator=generator).to(device)
    apply_attention_cache(attn, TaylorSeer(max_order=1, interval=10**6, before=2), targets=ATTENTION_TARGETS)
    apply_unet_cache(probe, FirstBlockCache(threshold=1e9), 10**6)
    ts = torch.linspace(999.0, 1.0, rounds + 2)
    samples: dict[str, list[float]] = {"full": [], "attention": [], "probe": []}

    def call(unet: torch.nn.Module, t: torch.Tensor) -> float:
        return _time(lambda: unet(latents, t, encoder_hidden_states=text), device)

    for i in range(2):
        samples["full"].append(call(attn, ts[i]))
    samples["full"].append(call(probe, ts[0]))
    for r in range(rounds):
        jobs = [("attention", attn, ts[r + 2]), ("probe", probe, ts[r + 1])]
        for kind, unet, t in jobs if r % 2 == 0 else jobs[::-1]:
            samples[kind].append(call(unet, t))
            print(f"  unet round {r + 1}/{rounds}: {kind} {samples[kind][-1]:.2f}s", flush=True)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    return {**medians, "none": 0.0, "samples": samples}


def flux_costs(
    config: dict[str, Any], rounds: int, device: torch.device, image_tokens: int, text_tokens: int = 512
) -> dict[str, Any]:
    """Per-call medians of a FLUX.1-sized transformer, composed from one double and one single block.

    A ``FluxTransformer2DModel`` with one block of each kind runs under TaylorSeer order 1 with an endless interval
    (calls 0-1 computed, later calls predict every attention module); forward hooks time the two blocks inside each
    call, the rest of the call is the embedding and output layers. A 19 + 38-block call is then
    ``rest + 19 · double + 38 · single``; FBC's probe is ``rest + double`` (its first block), a MagCache skip ``rest``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FluxTransformer2DModel(num_layers=1, num_single_layers=1, **config).eval().to(device)
    blocks = {"double": model.transformer_blocks[0], "single": model.single_transformer_blocks[0]}
    marks: dict[str, float] = {}
    for name, block in blocks.items():
        block.register_forward_pre_hook(lambda m, a, name=name: marks.__setitem__(f"{name}<", time.perf_counter()))
        block.register_forward_hook(lambda m, a, o, name=name: marks.__setitem__(f"{name}>", time.perf_counter()))
    apply_attention_cache(model, TaylorSeer(max_order=1, interval=10**6, before=2), targets=ATTENTION_TARGETS)
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "hidden_states": torch.randn(1, image_tokens, model.config.in_channels, generator=generator),
        "encoder_hidden_states": torch.randn(1, text_tokens, model.config.joint_attention_dim, generator=generator),
        "pooled_projections": torch.randn(1, model.config.pooled_projection_dim, generator=generator),
        "img_ids": torch.zeros(image_tokens, 3),
        "txt_ids": torch.zeros(text_tokens, 3),
        "guidance": torch.tensor([3.5]),
    }
    inputs = {k: v.to(device) for k, v in inputs.items()}
    samples: dict[str, list[float]] = {k: [] for k in ("rest", "double", "single", "double_attn", "single_attn")}
    for i, t in enumerate(torch.linspace(1.0, 0.05, rounds + 2)):
        total = _time(lambda t=t: model(timestep=t.reshape(1).to(device), **inputs), device)
        parts = {name: marks[f"{name}>"] - marks[f"{name}<"] for name in blocks}
        suffix = "" if i < 2 else "_attn"
        samples["rest"].append(total - sum(parts.values()))
        for name, seconds in parts.items():
            samples[name + suffix].append(seconds)
        print(f"  flux call {i + 1}/{rounds + 2}: {total:.2f}s", flush=True)
    m = {k: statistics.median(v) for k, v in samples.items()}
    doubles, singles = FLUX_DEPTH
    return {
        "full": m["rest"] + doubles * m["double"] + singles * m["single"],
        "attention": m["rest"] + doubles * m["double_attn"] + singles * m["single_attn"],
        "probe": m["rest"] + m["double"],
        "none": m["rest"],
        "blocks": m,
        "samples": samples,
    }


def compose(work: Sequence[tuple[str, float]], costs: dict[str, float]) -> float:
    """Seconds of the logged calls: a full call minus the skipped attention share, or a probe / skip call."""
    total = 0.0
    for kind, skipped in work:
        if kind == "full":
            total += costs["full"] - skipped * (costs["full"] - costs["attention"])
        else:
            total += costs[kind]
    return total


def _families(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in FAMILIES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"--families takes names from {', '.join(FAMILIES)}; got {text!r}")
    if "extrapolate" not in names:
        names.insert(0, "extrapolate")  # every comparison is against ours
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes (tiny models, 10 images, 8 steps)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per call kind (default 2, quick 1)")
    parser.add_argument("--images-per-digit", type=int, default=None, help="digits quality (default 10, quick 1)")
    parser.add_argument("--flux-image-tokens", type=int, default=1024, help="image tokens (1024 = 512x512)")
    parser.add_argument(
        "--speed-from", type=Path, default=None, help="reuse the per-call costs of a peers_caches.json"
    )
    parser.add_argument(
        "--families", type=_families, default=list(FAMILIES), help=f"comma-separated subset of {','.join(FAMILIES)}"
    )
    parser.add_argument("--seed", type=int, default=0, help="quality seed (MagCache calibrates on seed + 1)")
    parser.add_argument("--beta", type=float, default=None, help="extrapolate's beta (default: the library's)")
    parser.add_argument(
        "--report-from",
        type=Path,
        default=None,
        help="only rewrite peers_caches.md from an earlier peers_caches.json (with --speed-from: its costs)",
    )
    parser.add_argument("--speed-only", action="store_true", help="measure the per-call costs only")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    for name in ("rounds", "images_per_digit", "flux_image_tokens", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.report_from is not None:
        payload = json.loads(args.report_from.read_text())
        args.out.mkdir(parents=True, exist_ok=True)
        if args.speed_from is not None:  # the same work logs, charged at other per-call costs
            payload["costs"] = json.loads(args.speed_from.read_text())["costs"]
            payload["meta"]["costs_from"] = str(args.speed_from)
            for row in payload["rows"].values():
                row["speedup"] = {
                    m: len(payload["rows"]["full"]["work"]) * c["full"] / compose(row["work"], c)
                    for m, c in payload["costs"].items()
                }
            (args.out / "peers_caches.json").write_text(json.dumps(payload, indent=1))
        present = {row["family"] for row in payload["rows"].values()}
        text = report(payload["meta"], payload["rows"], payload["costs"], [f for f in FAMILIES if f in present])
        (args.out / "peers_caches.md").write_text(text)
        print(text)
        return 0
    device = torch.device(args.device)
    rounds = args.rounds or (1 if args.quick else 2)
    per_digit = args.images_per_digit or (1 if args.quick else 10)
    steps = 8 if args.quick else 20
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.speed_from is not None:
        costs = json.loads(args.speed_from.read_text())["costs"]
        print(f"== speed: per-call costs from {args.speed_from}", flush=True)
    else:
        print(f"== speed: {'tiny UNet' if args.quick else 'SD1.5-sized UNet'}, {rounds} rounds", flush=True)
        unet = unet_costs(QUICK_UNET if args.quick else SD15_UNET, rounds, device)
        tokens = 16 if args.quick else args.flux_image_tokens
        print(f"== speed: {'tiny' if args.quick else 'FLUX.1-sized'} transformer, {tokens} image tokens", flush=True)
        flux = flux_costs(QUICK_FLUX if args.quick else FLUX_BLOCK, rounds, device, tokens, 8 if args.quick else 512)
        unet.update(label="tiny UNet (--quick)" if args.quick else "SD1.5-sized UNet, 64x64 latents, batch 2")
        flux.update(
            label="tiny Flux (--quick)"
            if args.quick
            else f"FLUX.1-sized (19+38 blocks composed), {tokens} image + 512 text tokens"
        )
        costs = {"sd15": {**unet, "short": "SD1.5"}, "flux": {**flux, "short": "Flux"}}

    if args.speed_only:
        payload = {"meta": {"command": " ".join(sys.argv), "rounds": rounds}, "costs": costs, "rows": {}}
        (args.out / "peers_caches.json").write_text(json.dumps(payload, indent=1))
        print(json.dumps({m: {k: c[k] for k in ("full", "attention", "probe", "none")} for m, c in costs.items()}))
        return 0
    print(f"== quality: digits model, {per_digit * 10} images, {steps} steps", flush=True)
    pipe = digits_pipeline(device)
    ratios = calibrate_magcache(pipe, steps, seed=args.seed + 1) if "magcache" in args.families else None
    chosen = variants(steps, ratios, quick=args.quick, beta=args.beta)
    chosen = {name: v for name, v in chosen.items() if v.family in ("full", *args.families)}
    rows, spread = quality(pipe, chosen, per_digit, steps, seed=args.seed)
    for row in rows.values():
        row["speedup"] = {m: steps * c["full"] / compose(row["work"], c) for m, c in costs.items()}

    import diffusers

    meta = {
        "command": " ".join(["python -m benchmarks.attention.vs_peers", *(sys.argv[1:] if argv is None else argv)]),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        + (torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "rounds": rounds,
        "images": per_digit * 10,
        "steps": steps,
        "mag_ratios": ratios,
        "seed": args.seed,
        "extrapolate_beta": chosen["extrapolate skip_every=2"].config.beta,
        "fd_other_seed": spread,
        "seconds": time.perf_counter() - started,
    }
    text = report(meta, rows, costs, [f for f in FAMILIES if f in args.families])
    (args.out / "peers_caches.md").write_text(text)
    payload = {"meta": meta, "costs": costs, "rows": rows}
    (args.out / "peers_caches.json").write_text(json.dumps(payload, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
