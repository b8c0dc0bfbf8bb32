"""How long the demo and the CLI take on the embedded models: what a first-time user waits for.

Measures, in one run:

- **App** (built in-process, served on 127.0.0.1, driven with ``gradio_client`` like a browser would): the first
  image request (it pays the digits model load), then ``--repeats`` Image-tab requests in Compare mode (baseline and
  chosen configuration, 4 images each, 20 steps) and ``--repeats`` Text-tab requests (greedy vs momentum, 64 tokens
  each); medians of the wall time per request as the client sees it.
- **CLI answers**: ``--help`` and every kind of argument error, each as a fresh ``inertia`` process (what a user
  waits for before being told what is wrong); median and worst of ``--repeats`` runs, and the exit status and last
  line of stderr (an error must be one line and exit 2, before any model is loaded). Target: under 1 s each.
- **CLI**: ``inertia generate image`` for ``--num-images`` digits in one process and under ``accelerate launch
  --num_processes 2``, wall time of the whole command (Python start-up, imports, model load included), and whether the
  two runs give the same PNGs byte for byte (they must).

Usage::

    python -m benchmarks.product.response_times [--device cpu|cuda] [--repeats 5] [--num-images 256] [--quick] [--out benchmarks/out]
    python -m benchmarks.product.response_times --answers-only [--repeats 5]     # the CLI answers alone (under a minute)

Writes ``ui.json``, ``ui.md`` and ``cli_answers.json`` to ``--out``.
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

from benchmarks.common.paths import REPO_ROOT

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


CLI_ANSWERS: dict[str, list[str]] = {
    "inertia --help": ["--help"],
    "generate image --help": ["generate", "image", "--help"],
    "generate text --help": ["generate", "text", "--help"],
    "--steps 100000": ["generate", "image", "--digit", "7", "--steps", "100000", "--out", "x.png"],
    "--height 32 on the digits model": ["generate", "image", "--digit", "7", "--height", "32", "--out", "x.png"],
    "unknown --sampler": ["generate", "image", "--digit", "7", "--sampler", "warp", "--out", "x.png"],
    "--out not a PNG": ["generate", "image", "--digit", "7", "--out", "x.jpg"],
    "--digit for a text-to-image model": [
        "generate",
        "image",
        "--model",
        "owner/name",
        "--digit",
        "3",
        "--out",
        "x.png",
    ],
    "empty --prompt (image)": ["generate", "image", "--model", "owner/name", "--prompt", "", "--out", "x.png"],
    "bad --device": ["generate", "image", "--digit", "7", "--device", "gpu", "--out", "x.png"],
    "empty --prompt (text)": ["generate", "text", "--prompt", ""],
    "bad --param value": ["generate", "text", "--prompt", "Hi", "--param", "alpha=-1"],
    "unknown --param": ["generate", "text", "--prompt", "Hi", "--param", "beta=1"],
    "missing --model folder (text)": ["generate", "text", "--prompt", "Hi", "--model", "./no/such/model"],
    "demo --port 99999": ["demo", "--port", "99999"],
    "--sampler hb-dpm++:0 (β out of range)": [
        "generate",
        "image",
        "--digit",
        "7",
        "--sampler",
        "hb-dpm++:0",
        "--out",
        "x.png",
    ],
    "--sampler ghvb:9.9": ["generate", "image", "--digit", "7", "--sampler", "ghvb:9.9", "--out", "x.png"],
    "--sampler ghvb: (no value)": ["generate", "image", "--digit", "7", "--sampler", "ghvb:", "--out", "x.png"],
    "--out in /proc": ["generate", "image", "--digit", "7", "--out", "/proc/nope.png"],
    "--out under a file": ["generate", "image", "--digit", "7", "--out", "taken.png/y.png"],
    "--out in a new folder at /": ["generate", "image", "--digit", "7", "--out", "/inertia-no-such-folder/x.png"],
    "--param alpha=5 (above the UI's 1)": ["generate", "text", "--prompt", "Hi", "--param", "alpha=5"],
    "120k-character --prompt": ["generate", "text", "--prompt", "The old lighthouse keeper " * 4616],
    "--model: a folder that is not a model": ["generate", "text", "--prompt", "Hi", "--model", "."],
    "demo --host 999.1.1.1": ["demo", "--host", "999.1.1.1"],
}
"""What a new user types wrong first (and the help pages), as ``inertia`` arguments."""


def _inertia_command() -> list[str]:
    script = Path(sys.executable).with_name("inertia")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "inertia.cli"]


def measure_cli_answers(repeats: int, folder: Path) -> dict[str, Any]:
    """Times every :data:`CLI_ANSWERS` command as a fresh process; keeps its exit status and last stderr line."""
    command = _inertia_command()
    (folder / "taken.png").write_bytes(b"a file where --out expects a folder")
    results: dict[str, Any] = {}
    for name, argv in CLI_ANSWERS.items():
        times, done = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            done = subprocess.run([*command, *argv], cwd=folder, capture_output=True, text=True, timeout=120)
            times.append(time.perf_counter() - start)
        assert done is not None
        err = done.stderr.strip().splitlines()
        results[name] = {
            "median_s": statistics.median(times),
            "max_s": max(times),
            "exit": done.returncode,
            "stderr_lines": len(err),
            "last_line": err[-1] if err else "",
        }
    return {"command": " ".join(command), "repeats": repeats, "answers": results}


def answers_report(answers: dict[str, Any]) -> str:
    """The Markdown table of the CLI answers."""
    lines = [
        f"`{answers['command']}`, each a fresh process, {answers['repeats']} runs (median and worst).",
        "",
        "| input | median s | worst s | exit | stderr lines |",
        "|---|---|---|---|---|",
    ]
    for name, r in answers["answers"].items():
        lines.append(f"| {name} | {r['median_s']:.3f} | {r['max_s']:.3f} | {r['exit']} | {r['stderr_lines']} |")
    worst = max(r["max_s"] for r in answers["answers"].values())
    lines += ["", f"Worst of all: {worst:.3f} s (target < 1 s)."]
    return "\n".join(lines) + "\n"


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
        done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
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
    parser.add_argument("--answers-only", action="store_true", help="time the CLI's help and error answers only")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.num_images < 2:
        parser.error(f"--repeats must be >= 1 and --num-images >= 2, got {args.repeats} and {args.num_images}")
    repeats, tokens, num_images = (1, 8, 4) if args.quick else (args.repeats, 64, args.num_images)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        answers = measure_cli_answers(repeats, Path(folder))
    (args.out / "cli_answers.json").write_text(json.dumps(answers, indent=2))
    print(answers_report(answers))
    if args.answers_only:
        return 0
    results: dict[str, Any] = {"device": args.device, "repeats": repeats, "cli_answers": answers}
    results["app"] = measure_app(args.device, repeats, tokens)
    with tempfile.TemporaryDirectory() as folder:
        results["cli"] = measure_cli(args.device, num_images, 4 if args.quick else 20, Path(folder))
    (args.out / "ui.json").write_text(json.dumps(results, indent=2))
    text = report(results)
    (args.out / "ui.md").write_text(text)
    print(text)
    return 0 if results["cli"]["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
