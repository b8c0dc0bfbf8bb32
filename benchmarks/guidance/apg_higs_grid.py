"""What the guidance benchmark runs and how it shows it: the methods and their digits-model hyperparameters, the
grid, the seeds and initial noise, the targets, the hook-overhead measurement on SD-sized tensors, the markdown
tables and the picture grid (rows = method, columns = guidance).

The sampling loop, metrics, target checks, sweep and CLI are in :mod:`benchmarks.guidance.apg_higs`.

Hyperparameters, chosen on the tuning seeds (``--tune``, seed 1) before the reported run (seed 0):

- APG: η = 0 and β = −0.5 (the paper's SDXL setting). The norm threshold r is in x0 units and unnormalised over
  C·H·W, so SDXL's r = 15 (4x128x128 latents) never clips the digits' 3x16x16 pixels (‖Δ‖ ≤ ~5.3). Our
  resolution-robust rule (same per-element RMS bound, r·√(N/N_SDXL)) maps SDXL's r to 1.62 and the paper's ablated
  EDM2 value (r = 2.5 on 4x64x64) to 0.54. A halving sweep at the target w = 15 (NFE 10 and 20) picked r = 0.2: the
  lowest FD among the values keeping accuracy >= CFG's and saturation within 10% of real (r = 0.1 loses accuracy).
  r is tied to the operating w: at w <= 7.5 this r under-guides (lower accuracy than CFG), see BENCHMARKS.md §4.
- HiGS: the paper's defaults (α 0.75, t_min 0.4, t_max 1, η 0, R_c 0.05, λ 50) and w_h = 1.75 (the paper's SDXL/SD3
  value and the library default). No swept w_h was best at every w (larger w_h helps more at w <= 3 and hurts more at
  w >= 15; 1.0, our suggestion for multistep solvers, helps less where HiGS helps), so the default stays.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DPMSolverMultistepScheduler, UNet2DConditionModel

from benchmarks.common.sd15_unet import QUICK_UNET, SD15_UNET
from benchmarks.common.timing import seconds_of
from benchmarks.samplers.accuracy import base_config
from inertia.guidance import APG, CFG, HiGS, apply_guidance

__all__ = [
    "APG_MOMENTUM",
    "APG_NORM_THRESHOLD",
    "FULL_GRID",
    "HIGS_WEIGHT",
    "METHOD_NAMES",
    "QUICK_GRID",
    "REPORT_SEED",
    "SDXL_RULE_THRESHOLD",
    "TARGET_GUIDANCE",
    "TARGET_NFE",
    "TUNING_SEED",
    "Grid",
    "guidance_methods",
    "identity_alias",
    "initial_noise",
    "measure_overhead",
    "render_grid",
    "rms_scaled_threshold",
]

REPORT_SEED = 0
"""Seed of the initial noise of every reported cell."""
TUNING_SEED = 1
"""Seed of the separate noise set the hyperparameter sweep (``--tune``) uses; never the reported one."""

NUM_DIGITS = 10
TARGET_GUIDANCE = 15.0
"""The APG target's guidance scale."""
TARGET_NFE = 10
"""The HiGS target's number of steps."""
SATURATION_TOLERANCE = 0.10  # APG target: |saturation / real − 1| <= 10%
APG_FD_RATIO = 0.7  # APG target: FD <= 0.7x CFG's
HIGS_FD_RATIO = 0.9  # HiGS target: FD improved by >= 10%
OVERHEAD_LIMIT = 0.02  # overhead target: <= 2% of one denoiser call

SDXL_NORM_THRESHOLD = 15.0
"""APG's r for SDXL (paper Table 10 via diffusers PR #9626), on 4x128x128 x0 latents."""
SDXL_ELEMENTS = 4 * 128 * 128
DIGITS_ELEMENTS = 3 * 16 * 16


def rms_scaled_threshold(threshold: float, from_elements: int, to_elements: int) -> float:
    """The norm threshold with the same per-element RMS bound on a tensor of ``to_elements`` values.

    The APG norm is unnormalised over C·H·W, so r scales with √N: ``r · √(to / from)``.

    Example:
        >>> round(rms_scaled_threshold(15.0, 4 * 128 * 128, 3 * 16 * 16), 2)
        1.62
    """
    return threshold * math.sqrt(to_elements / from_elements)


APG_ETA = 0.0
APG_MOMENTUM = -0.5
SDXL_RULE_THRESHOLD = rms_scaled_threshold(SDXL_NORM_THRESHOLD, SDXL_ELEMENTS, DIGITS_ELEMENTS)
"""≈ 1.62: SDXL's r = 15 with the same per-element RMS bound on the digits' 3x16x16 pixels (a swept value)."""
APG_NORM_THRESHOLD = 0.2
"""APG's r on the digits model at w = 15, from the sweep on the tuning seeds (see the module docstring)."""
HIGS_WEIGHT = 1.75
"""HiGS w_h on the digits model with DPM-Solver++(2M) (see the module docstring and ``--tune``)."""

METHOD_NAMES = ("CFG", "APG", "HiGS", "APG+HiGS")


def guidance_methods(
    norm_threshold: float = APG_NORM_THRESHOLD, higs_weight: float = HIGS_WEIGHT
) -> dict[str, tuple[CFG | APG | HiGS, ...]]:
    """Method name -> the arguments of :func:`inertia.guidance.apply_guidance` (``CFG()`` is the stock pipeline)."""
    apg = APG(eta=APG_ETA, momentum=APG_MOMENTUM, norm_threshold=norm_threshold)
    higs = HiGS(weight=higs_weight)
    return {"CFG": (CFG(),), "APG": (apg,), "HiGS": (higs,), "APG+HiGS": (apg, higs)}


def identity_alias(method: str, guidance: float) -> str | None:
    """The method whose images ``method`` reproduces bit for bit at this guidance, or None.

    At ``w <= 1`` the pipeline runs no unconditional branch, so APG has no ``D_u`` to act on and is the identity:
    APG ≡ CFG and APG+HiGS ≡ HiGS (checked by ``tests/bench_harness/guidance/test_apg_higs.py``).
    """
    if guidance > 1.0:
        return None
    return {"APG": "CFG", "APG+HiGS": "HiGS"}.get(method)


@dataclass(frozen=True)
class Grid:
    """What to run.

    Attributes:
        guidances: CFG scales w.
        nfes: numbers of DPM-Solver++(2M) steps (one batched [uncond; cond] UNet call each, so NFE = steps).
        images_per_digit: images per digit in the target cells (w = :data:`TARGET_GUIDANCE` or NFE =
            :data:`TARGET_NFE`), which the targets are checked on.
        other_images_per_digit: images per digit in the other cells (a prefix of the same noise).
        picture_nfe: NFE of the picture grid.
        chunk: images per pipeline call.
    """

    guidances: tuple[float, ...]
    nfes: tuple[int, ...]
    images_per_digit: int
    other_images_per_digit: int
    picture_nfe: int
    chunk: int = 100

    def is_target(self, guidance: float, nfe: int) -> bool:
        """Whether a cell enters a target (and so runs at full size)."""
        return guidance == TARGET_GUIDANCE or nfe == TARGET_NFE

    def images_per_digit_for(self, guidance: float, nfe: int) -> int:
        """Images per digit of one cell."""
        return self.images_per_digit if self.is_target(guidance, nfe) else self.other_images_per_digit


FULL_GRID = Grid(
    guidances=(1.0, 3.0, 7.5, 15.0, 25.0),
    nfes=(10, 20, 50),
    images_per_digit=20,
    other_images_per_digit=5,
    picture_nfe=20,
)
QUICK_GRID = Grid(guidances=(15.0,), nfes=(3,), images_per_digit=1, other_images_per_digit=1, picture_nfe=3)


def initial_noise(
    seed: int, images_per_digit: int, shape: Sequence[int] = (3, 16, 16)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial latents and labels, digit-interleaved: image ``i`` shows digit ``i % 10``.

    Drawn once at the largest size, so a cell with fewer images uses a prefix (the first images of every digit)
    and every method sees the same noise.

    Returns:
        ``(latents (10·n, *shape), labels (10·n,))`` on the CPU.
    """
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn((images_per_digit, NUM_DIGITS, *shape), generator=generator)
    labels = torch.arange(NUM_DIGITS).repeat(images_per_digit)
    return latents.reshape(-1, *shape), labels


def render_grid(
    strips: Mapping[tuple[str, float], torch.Tensor],
    methods: Sequence[str],
    guidances: Sequence[float],
    path: Path,
    title: str,
    scale: int = 4,
) -> Path:
    """Saves a PNG: one row per method, one column per guidance, each cell the digits 0-9 (2 rows of 5).

    Args:
        strips: ``(method, guidance) -> (10, 3, h, w)`` images in [0, 1], digit ``d`` at index ``d``.
        methods, guidances: row and column order.
        path: output file.
        title: caption at the top.
        scale: nearest-neighbour upscaling of each image.
    """
    from PIL import Image, ImageDraw, ImageFont

    sample = next(iter(strips.values()))
    h, w = int(sample.shape[-2]) * scale, int(sample.shape[-1]) * scale
    gap, label_w, head_h, title_h = 6, 110, 28, 30
    cell_w, cell_h = 5 * w, 2 * h
    font = ImageFont.load_default(size=16)
    width = max(label_w + len(guidances) * (cell_w + gap), int(font.getlength(title)) + 16)
    height = title_h + head_h + len(methods) * (cell_h + gap)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 6), title, fill="black", font=font)
    for col, guidance in enumerate(guidances):
        x0 = label_w + col * (cell_w + gap)
        draw.text((x0 + cell_w // 2 - 24, title_h + 4), f"w = {guidance:g}", fill="black", font=font)
    for row, method in enumerate(methods):
        y0 = title_h + head_h + row * (cell_h + gap)
        draw.text((8, y0 + cell_h // 2 - 8), method, fill="black", font=font)
        for col, guidance in enumerate(guidances):
            images = strips[(method, guidance)]
            pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            x0 = label_w + col * (cell_w + gap)
            for digit in range(min(NUM_DIGITS, len(pixels))):
                tile = Image.fromarray(pixels[digit]).resize((w, h), Image.NEAREST)
                canvas.paste(tile, (x0 + (digit % 5) * w, y0 + (digit // 5) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


# --------------------------------------------------------------------------------------------------------------------
# Overhead on SD-sized tensors


class _StubDenoiser(torch.nn.Module):
    """Returns a fixed ``[uncond; cond]`` output at ~zero cost: time spent on a call is the hook's own work."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: Any = None) -> tuple:
        return (self.output,)


class _Host:
    """The pipeline attributes the guidance hook reads: denoiser, scheduler, CFG flag and scale."""

    do_classifier_free_guidance = True

    def __init__(self, unet: torch.nn.Module, scheduler: Any, guidance_scale: float) -> None:
        self.unet, self.scheduler, self.guidance_scale = unet, scheduler, guidance_scale


def time_hooks(latent: Sequence[int], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of one denoiser call through the guidance hook per method (and bare: "no hook"), on a stub
    denoiser with a ``[uncond; cond]`` batch of ``latent``-shaped halves; interleaved, rotating order, steady state
    (the first 2 steps of each 50-step run, before momentum/history exist, are not timed)."""
    generator = torch.Generator().manual_seed(0)
    output = torch.randn((2, *latent), generator=generator).to(device)
    sample_in = torch.randn((2, *latent), generator=generator).to(device)
    scheduler = DPMSolverMultistepScheduler.from_config(base_config("leading"))
    scheduler.set_timesteps(50, device=device)
    variants = {"no hook": None, **guidance_methods(norm_threshold=15.0)}  # SDXL's r on SD-sized latents
    stubs = {}
    for name, methods in variants.items():
        stubs[name] = _StubDenoiser(output)
        host = _Host(stubs[name], scheduler, 7.5)
        if methods is not None:
            apply_guidance(host, *methods)
        stubs[name]._host = host  # keep the host alive: the hook holds a weak reference
    samples: dict[str, list[float]] = {name: [] for name in stubs}
    names, step = list(stubs), 0
    with torch.inference_mode():
        while min(map(len, samples.values())) < repeats:
            t = scheduler.timesteps[step % len(scheduler.timesteps)]
            shift = step % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed = seconds_of(functools.partial(stubs[name], sample_in, t), device)
                if step % len(scheduler.timesteps) >= 2:
                    samples[name].append(elapsed)
            step += 1
    return {name: statistics.median(values) for name, values in samples.items()}


def build_unet(config: Mapping[str, Any], device: torch.device) -> UNet2DConditionModel:
    """A random-weight ``UNet2DConditionModel``, built on the meta device and filled with U(±0.035) (std 0.02).

    diffusers' own initialisation of SD1.5's 860M weights takes about a minute on one core; timing does not depend
    on the values.
    """
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    unet = unet.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for tensor in [*unet.parameters(), *unet.buffers()]:
            tensor.uniform_(-0.035, 0.035, generator=generator)  # std 0.02
    return unet.eval()


def time_denoiser(unet: UNet2DConditionModel, latent: Sequence[int], repeats: int, device: torch.device) -> float:
    """Median seconds of one ``[uncond; cond]`` forward (batch 2) of ``unet`` on ``latent``-shaped latents, after one
    warm-up call when ``repeats > 1``."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((2, *latent), generator=generator).to(device)
    text = torch.randn((2, 77, unet.config.cross_attention_dim), generator=generator).to(device)
    times = []
    with torch.inference_mode():
        for _ in range(repeats + (repeats > 1)):
            times.append(seconds_of(lambda: unet(x, 500, encoder_hidden_states=text), device))
    return statistics.median(times[-repeats:])


def measure_overhead(
    quick: bool, device: torch.device, repeats: int = 200, unet_repeats: int | None = None
) -> list[dict[str, Any]]:
    """Hook time per method on SD1.5 (2x4x64x64) and SDXL (2x4x128x128) latents vs one SD1.5 UNet forward at 64x64.

    The SDXL rows use the same SD1.5-at-64² forward as the denominator: SDXL's UNet at 128x128 costs several times
    more, so their ratio is an upper bound. A full-size forward takes minutes on a CPU, so it runs once there
    (``unet_repeats``: default 1 on CPU, 3 on CUDA or with ``quick``). ``quick`` uses a tiny UNet and 4x8x8 /
    4x16x16 latents.
    """
    unet = build_unet(QUICK_UNET if quick else SD15_UNET, device)  # SD1.5's config
    shapes = ((4, 8, 8), (4, 16, 16)) if quick else ((4, 64, 64), (4, 128, 128))
    labels = ("tiny 2x4x8x8", "tiny 2x4x16x16") if quick else ("SD1.5 2x4x64x64", "SDXL 2x4x128x128")
    unet_repeats = unet_repeats or (3 if quick or device.type == "cuda" else 1)
    unet_seconds = time_denoiser(unet, shapes[0], unet_repeats, device)
    del unet
    rows = []
    for label, shape in zip(labels, shapes, strict=True):
        hooks = time_hooks(shape, 20 if quick else repeats, device)
        for name, seconds in hooks.items():
            extra = seconds - hooks["no hook"]
            rows.append(
                {
                    "shape": label,
                    "method": name,
                    "call_us": seconds * 1e6,
                    "extra_us": extra * 1e6,
                    "unet_ms": unet_seconds * 1e3,
                    "ratio": extra / unet_seconds,
                }
            )
    return rows


# --------------------------------------------------------------------------------------------------------------------
# Report


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def cell_tables(cells: Sequence[dict], real: Mapping[str, Any]) -> list[str]:
    """One markdown table per NFE: rows = guidance x method, plus the real-data reference row."""
    lines = []
    for nfe in sorted({c["nfe"] for c in cells}):
        lines += [
            f"#### NFE {nfe}",
            "",
            "| w | method | images | saturation (÷ real) | clipped | accuracy | FD-digits |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for c in (c for c in cells if c["nfe"] == nfe):
            same = f" (= {c['identical_to']})" if c.get("identical_to") else ""
            lines.append(
                f"| {c['guidance']:g} | {c['method']}{same} | {c['images']} | {_fmt(c['mean_saturation'])} "
                f"({c['saturation_vs_real']:.2f}) | {_fmt(c['clipped_fraction'])} | {_fmt(c['class_accuracy'])} | "
                f"{_fmt(c['fd_digits'], 2)} |"
            )
        floors = ", ".join(f"{v:.2f} at n={k}" for k, v in real["fd_train_subset"].items())
        lines += [
            f"| | **real data** | {real['images']} | {_fmt(real['mean_saturation'])} (1.00) | "
            f"{_fmt(real['clipped_fraction'])} | {_fmt(real['class_accuracy'])} | {floors} |",
            "",
        ]
    return lines


def target_lines(targets: Mapping[str, Any]) -> list[str]:
    """The target check, one line per compared cell."""

    def verdict(met: bool) -> str:
        return "**met**" if met else "**missed**"

    def interval(row: Mapping[str, Any]) -> str:
        low, high = row["fd_ratio_interval"]
        return f"{row['fd_ratio']:.2f} (90% bootstrap {low:.2f}-{high:.2f})"

    lines = [
        f"- APG at w = {TARGET_GUIDANCE:g}: saturation within {SATURATION_TOLERANCE:.0%} of real, accuracy >= CFG's, "
        f"FD-digits <= {APG_FD_RATIO}x CFG's:"
    ]
    for r in targets["apg"]:
        lines.append(
            f"  - NFE {r['nfe']}: {verdict(r['met'])}: saturation {r['saturation_vs_real']:.2f}x real (CFG "
            f"{r['cfg_saturation_vs_real']:.2f}x) {'ok' if r['saturation_ok'] else 'MISSED'}; accuracy "
            f"{r['accuracy']:.3f} vs CFG {r['cfg_accuracy']:.3f} {'ok' if r['accuracy_ok'] else 'MISSED'}; FD ratio "
            f"{interval(r)} {'ok' if r['fd_ok'] else 'MISSED'}"
        )
    met = sum(r["met"] for r in targets["higs"])
    lines.append(
        f"- HiGS at NFE {TARGET_NFE}: FD-digits <= {HIGS_FD_RATIO}x the same sampler without it: met in {met} of "
        f"{len(targets['higs'])} cells:"
    )
    for r in targets["higs"]:
        lines.append(
            f"  - w {r['guidance']:g}, {r['method']} vs {r['baseline']}: FD ratio {interval(r)} {verdict(r['met'])}"
        )
    worst = max(targets["overhead"], key=lambda r: r["ratio"], default=None)
    if worst is not None:
        met_all = all(r["met"] for r in targets["overhead"])
        lines.append(
            f"- Overhead <= {OVERHEAD_LIMIT:.0%} of one denoiser call: {verdict(met_all)} (worst: {worst['method']} "
            f"on {worst['shape']}, {worst['ratio']:.3%})"
        )
    return lines


def overhead_table(rows: Sequence[dict], device: torch.device, threads: int) -> list[str]:
    """Markdown table of the hook timing."""
    lines = [
        f"Guidance hook on a zero-cost stub denoiser vs one UNet forward ({device.type}, {threads} "
        "thread(s), fp32; median of interleaved steady-state calls; extra = call − bare stub call; denominator: one "
        "SD1.5 UNet forward, batch 2 at 64x64, random weights; for SDXL latents an upper bound of the ratio):",
        "",
        "| latents | method | call µs | extra µs | SD1.5 UNet forward ms | extra ÷ UNet |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['method']} | {r['call_us']:.0f} | {r['extra_us']:.0f} | {r['unet_ms']:.0f} | "
            f"{r['ratio']:.4%} |"
        )
    return lines


def report(result: Mapping[str, Any], device: torch.device) -> str:
    """The markdown report of a run."""
    config, apg, higs = result["config"], result["config"]["apg"], result["config"]["higs"]
    lines = [
        "# Guidance benchmark (digits model)",
        "",
        f"DPM-Solver++(2M), seed {config['seed']}, class-balanced; APG(η={apg['eta']}, β={apg['momentum']}, "
        f"r={apg['norm_threshold']:.2f}), HiGS(w_h={higs['weight']}, α={higs['ema']}, t_min={higs['t_min']}, "
        f"R_c={higs['cutoff']}). "
        f"Saturation = mean HSV saturation; clipped = channel values at 0/255 (±1); FD-digits against the held-out "
        f"split (real row: FD of n class-balanced training images, the finite-sample floor; two disjoint real halves "
        f"of 718: {result['real']['fd_two_halves']:.2f}). FD is biased upwards at small n: compare within a guidance "
        "row group. Wall time "
        f"{result['wall_seconds'] / 60:.1f} min (load average {result['load_average']['start'][0]:.1f} at the start, "
        f"{result['load_average']['end'][0]:.1f} at the end).",
        "",
        *cell_tables(result["cells"], result["real"]),
        "### Overhead",
        "",
        *overhead_table(result["overhead"], device, config["threads"]),
        "",
        "### Targets",
        "",
        *target_lines(result["targets"]),
    ]
    return "\n".join(lines) + "\n"


def tuning_table(rows: Sequence[dict]) -> str:
    """Markdown table of the sweep."""
    lines = [
        f"Sweep on the tuning seed ({TUNING_SEED}; the report uses seed {REPORT_SEED}), "
        f"{rows[0]['images']} images per cell.",
        "",
        "| NFE | w | setting | saturation (÷ real) | clipped | accuracy | FD-digits | FD ÷ CFG |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['nfe']} | {r['guidance']:g} | {r['setting']} | {r['mean_saturation']:.3f} "
            f"({r['saturation_vs_real']:.2f}) | {r['clipped_fraction']:.3f} | {r['class_accuracy']:.3f} | "
            f"{r['fd_digits']:.2f} | {r['fd_vs_cfg']:.2f} |"
        )
    return "\n".join(lines) + "\n"
