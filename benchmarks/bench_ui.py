"""How long the demo and the CLI take on the embedded models: what a first-time user waits for.

Measures, in one run:

- **App** (built in-process, served on 127.0.0.1, driven with ``gradio_client`` like a browser would): the first
  image request (it pays the digits model load), then ``--repeats`` Image-tab requests in Compare mode (baseline and
  chosen configuration, 4 images each, 20 steps) and ``--repeats`` Text-tab requests (greedy vs momentum, 64 tokens
  each); medians of the wall time per request as the client sees it.
- **CLI**: ``inertia generate image`` for ``--num-images`` digits in one process and under ``accelerate launch
  --num_processes 2``, wall time of the whole command (Python start-up, imports, model load included), and whether the
  two runs give the same PNGs byte for byte (they must).

Usage::

    python -m benchmarks.bench_ui [--device cpu|cuda] [--repeats 5] [--num-images 256] [--quick] [--out benchmarks/out]

Writes ``ui.json`` and ``ui.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGE_REQUEST = {"digit": 7, "sampler": "hb-dpm++", "guidance": "apg", "steps": 20, "batch": 4, "compare": True}
TEXT_REQUEST = {"prompt": "The old lighthouse keeper climbed the stairs", "method_a": "greedy", "method_b": "momentum"}


def _timed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure_app(device: str, repeats: int, max_new_tokens: int) -> dict[str, Any]:
    """Serves the app in-process and times requests through ``gradio_client``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client

    from inertia.ui import ModelStore, build_app, serve

    store = ModelStore(device=device)
    start = time.perf_counter()
    demo = serve(build_app(store=store), host="127.0.0.1", port=None, quiet=True)
    started = time.perf_counter() - start
    try:
        client = Client(demo.local_url, verbose=False)
        image = lambda seed: client.predict(**IMAGE_REQUEST, seed=seed, api_name="/generate_image")  # noqa: E731
        text = lambda: client.predict(**TEXT_REQUEST, max_new_tokens=max_new_tokens, api_name="/generate_text")  # noqa: E731
        first_image = _timed(lambda: image(0))
        images = [_timed(lambda seed=seed: image(seed)) for seed in range(1, repeats + 1)]
        first_text = _timed(text)  # pays the SmolLM2 load (not preloaded here)
        texts = [_timed(text) for _ in range(repeats)]
    finally:
        demo.close()
    return {
        "app_start_s": started,
        "first_image_request_s": first_image,
        "image_request_median_s": statistics.median(images),
        "image_requests_s": images,
        "first_text_request_s": first_text,
        "text_request_median_s": statistics.median(texts),
        "text_requests_s": texts,
        "text_tokens_per_side": max_new_tokens,
    }


def measure_cli(device: str, num_images: int, steps: int, folder: Path) -> dict[str, Any]:
    """Times ``inertia generate image`` in 1 and 2 processes and compares their PNGs."""
    args = ["generate", "image", "--digit", "3", "--num-images", str(num_images), "--batch-size", "8"]
    args += ["--steps", str(steps), "--sampler", "hb-dpm++:0.8", "--guidance", "apg", "--device", device]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    commands = {
        "one_process": [sys.executable, "-m", "inertia.cli", *args, "--out", str(folder / "one" / "x.png")],
        "two_processes": [
            *[sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2"],
            *(["--multi_gpu"] if device == "cpu" else []),
            *["-m", "inertia.cli", *args, "--out", str(folder / "two" / "x.png")],
        ],
    }
    result: dict[str, Any] = {"num_images": num_images, "steps": steps}
    for name, command in commands.items():
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        result[f"{name}_s"] = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    one = sorted((folder / "one").glob("*.png"))
    two = sorted((folder / "two").glob("*.png"))
    result["identical"] = len(one) == num_images and [p.read_bytes() for p in one] == [p.read_bytes() for p in two]
    result["speedup"] = result["one_process_s"] / result["two_processes_s"]
    return result


def report(results: dict[str, Any]) -> str:
    """The Markdown tables of ``ui.md``."""
    app, cli = results["app"], results["cli"]
    lines = [
        f"Device: {results['device']}; {results['repeats']} timed requests of each kind (medians).",
        "",
        "| app (gradio_client, 127.0.0.1) | seconds |",
        "|---|---|",
        f"| build and start the app | {app['app_start_s']:.2f} |",
        f"| first Image request (loads the digits model) | {app['first_image_request_s']:.2f} |",
        f"| Image request, Compare mode, 2 x 4 digits, 20 steps (median) | {app['image_request_median_s']:.2f} |",
        f"| first Text request (loads SmolLM2) | {app['first_text_request_s']:.2f} |",
        f"| Text request, greedy + momentum, {app['text_tokens_per_side']} tokens each (median) |"
        f" {app['text_request_median_s']:.2f} |",
        "",
        "| CLI: `inertia generate image`, "
        f"{cli['num_images']} digits, {cli['steps']} steps | seconds (whole command) |",
        "|---|---|",
        f"| 1 process | {cli['one_process_s']:.1f} |",
        f"| `accelerate launch --num_processes 2` | {cli['two_processes_s']:.1f} |",
        f"| speed-up | {cli['speedup']:.2f}x; PNGs identical: {'yes' if cli['identical'] else '**no**'} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5, help="timed requests of each kind")
    parser.add_argument("--num-images", type=int, default=256, help="CLI images (enough work to amortise start-up)")
    parser.add_argument("--quick", action="store_true", help="1 request of each kind, 8 tokens, 4 CLI images")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.num_images < 2:
        parser.error(f"--repeats must be >= 1 and --num-images >= 2, got {args.repeats} and {args.num_images}")
    repeats, tokens, num_images = (1, 8, 4) if args.quick else (args.repeats, 64, args.num_images)
    results: dict[str, Any] = {"device": args.device, "repeats": repeats}
    results["app"] = measure_app(args.device, repeats, tokens)
    with tempfile.TemporaryDirectory() as folder:
        results["cli"] = measure_cli(args.device, num_images, 4 if args.quick else 20, Path(folder))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ui.json").write_text(json.dumps(results, indent=2))
    text = report(results)
    (args.out / "ui.md").write_text(text)
    print(text)
    return 0 if results["cli"]["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
