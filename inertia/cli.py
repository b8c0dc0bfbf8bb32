"""The ``inertia`` command: ``demo``, ``generate image``, ``generate text`` and ``bench``.

Examples::

    inertia demo                                              # Gradio UI on http://127.0.0.1:7860
    inertia generate image --digit 7 --sampler ghvb:3.8 --guidance apg --out seven.png   # enlarged to 256 px
    inertia generate image --digit 0 1 2 --num-images 6 --out digits.png       # digits_000.png ... digits_005.png
    accelerate launch --num_processes 2 -m inertia.cli generate image --digit 3 --num-images 8 --out three.png
    inertia generate text --method momentum --prompt "The history of the lighthouse" --max-new-tokens 64
    inertia generate text --method momentum_penalty --param alpha=0.3 --seed 1 --prompt "Once upon a time"
    inertia generate text --attention momentum:0.05 --prompt "The history of the lighthouse"   # Dai et al.
    inertia bench guidance --quick

Bad input exits with status 2 and a one-line message, before any model is loaded (``--help`` and argument errors
import neither torch nor diffusers, so they answer at once). Set ``INERTIA_DEBUG=1`` for full tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from inertia.cli_checks import UI_INSTALL, CliError, check_host_port, check_out, install_hint, installed
from inertia.core.presets.pipeline import ATTENTION_PRESETS, GUIDANCE_PRESETS, SAMPLER_PRESETS, validate_presets
from inertia.core.validation import check_range
from inertia.pipelines.display import DISPLAY_SIZE, display_factor, enlarge
from inertia.pipelines.limits import (
    IMAGE_SIDE_MULTIPLE,
    MAX_IMAGE_SIDE,
    MAX_SEED,
    MAX_STEPS,
    check_device_name,
    check_image_model_name,
    check_text_model_name,
    is_digits_model,
)

BENCH_SUITES = {
    "samplers": "benchmarks.samplers.accuracy",
    "peers-samplers": "benchmarks.samplers.vs_peers",
    "karras-probe": "benchmarks.samplers.karras_probe",
    "overhead": "benchmarks.samplers.step_overhead",
    "guidance": "benchmarks.guidance.apg_higs",
    "peers-guidance": "benchmarks.guidance.vs_peers",
    "decoding": "benchmarks.decoding.momentum_decoding",
    "peers-decoding": "benchmarks.decoding.vs_peers",
    "attention": "benchmarks.attention.unet_attention",
    "peers-caches": "benchmarks.attention.vs_peers",
    "lm-attention": "benchmarks.attention.lm_attention",
    "ui": "benchmarks.product.response_times",
    "imports": "benchmarks.product.import_cost",
    "all": "benchmarks.run_all",
}
"""`inertia bench <suite>` runs ``python -m <module>`` from a source checkout."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``inertia: error: <message> (see <command> --help)``, exit status 2 (argparse
    prints the whole usage block first, which buries the message)."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument ([^:]+): (?=\1)", "", message)  # our own messages name the flag already
        self.exit(2, f"inertia: error: {message} (see `{self.prog} --help`)\n")


def _positive(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= 1, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= 1, got {text!r}")
        return value

    return parse


def _bounded(name: str, low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{low}, {high}], got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{low}, {high}], got {text!r}")
        return value

    return parse


MAX_UPSCALE = 64


def _upscale(text: str) -> str | int:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--upscale must be auto or an integer in [1, {MAX_UPSCALE}], got {text!r}"
        ) from None
    if not 1 <= value <= MAX_UPSCALE:
        raise argparse.ArgumentTypeError(f"--upscale must be auto or an integer in [1, {MAX_UPSCALE}], got {text!r}")
    return value


def raw_path(path: Path) -> Path:
    """Where ``--save-raw`` writes the raw pixels of ``path``: ``NAME.raw.png``."""
    return path.with_name(f"{path.stem}.raw{path.suffix}")


def _digit(text: str) -> int:
    if text not in {str(d) for d in range(10)}:
        raise argparse.ArgumentTypeError(f"--digit must be in 0..9, got {text!r}")
    return int(text)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale must be a number >= 0, got {text!r}") from None
    if not (0.0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"--scale must be a finite number >= 0, got {text!r}")
    return value


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param must look like name=value, got {text!r}")
    try:
        number = float(value)
        return key, int(number) if number.is_integer() and "." not in value else number
    except ValueError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``inertia --help``)."""
    parser = _Parser(
        prog="inertia",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Examples::")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="start the Gradio UI on the embedded models")
    demo.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    demo.add_argument("--port", type=_bounded("--port", 1, 65535), default=7860, help="TCP port, 1-65535")
    demo.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")

    generate = commands.add_parser("generate", help="generate images or text")
    kinds = generate.add_subparsers(dest="kind", required=True)

    image = kinds.add_parser(
        "image",
        help="generate images",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="samplers: "
        + ", ".join(SAMPLER_PRESETS)
        + "\nguidance: "
        + ", ".join(GUIDANCE_PRESETS)
        + "\nattention: "
        + ", ".join(ATTENTION_PRESETS)
        + "\n\nexample: inertia generate image --digit 7 --sampler hb-dpm++:0.8 --guidance apg --out seven.png",
    )
    image.add_argument(
        "--model",
        default=None,
        help="'digits' (the embedded 32x32 digits model, the default), "
        "a diffusers directory or a hub id; $INERTIA_DIGITS_MODEL sets the default",
    )
    what = image.add_mutually_exclusive_group()
    what.add_argument(
        "--digit",
        type=_digit,
        nargs="+",
        help="digit(s) 0-9 for the embedded or a saved digits model (cycled over images)",
    )
    what.add_argument("--prompt", help="text prompt for a text-to-image model")
    image.add_argument("--negative-prompt", default=None)
    image.add_argument("--sampler", default="default")
    image.add_argument("--guidance", default="none")
    image.add_argument("--attention", default="off")
    image.add_argument(
        "--steps", type=_bounded("--steps", 1, MAX_STEPS), default=20, help=f"denoising steps, 1-{MAX_STEPS}"
    )
    image.add_argument("--scale", type=_non_negative_float, default=None, help="guidance scale (default 7.5)")
    image.add_argument(
        "--seed", type=_bounded("--seed", 0, MAX_SEED), default=0, help=f"image i uses seed + i (0-{MAX_SEED})"
    )
    image.add_argument("--num-images", type=_positive("--num-images"), default=1)
    image.add_argument("--batch-size", type=_positive("--batch-size"), default=4, help="images per denoiser batch")
    side_help = f"text-to-image models only: a multiple of {IMAGE_SIDE_MULTIPLE} up to {MAX_IMAGE_SIDE}"
    image.add_argument("--height", type=_positive("--height"), default=None, help=side_help)
    image.add_argument("--width", type=_positive("--width"), default=None, help=side_help)
    image.add_argument("--device", default=None)
    image.add_argument("--out", required=True, help="output PNG; with several images an index suffix is added")
    image.add_argument(
        "--upscale",
        type=_upscale,
        default="auto",
        help="enlarge the PNG by this integer factor, nearest neighbour (default auto: small images such as the "
        f"digits to at least {DISPLAY_SIZE} px; 1 = the raw pixels)",
    )
    image.add_argument(
        "--save-raw", action="store_true", help="also write the raw pixels next to an enlarged PNG, as NAME.raw.png"
    )

    text = kinds.add_parser(
        "text",
        help="continue a prompt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='example: inertia generate text --method momentum --prompt "Once upon a time" --max-new-tokens 64',
    )
    text.add_argument("--model", default=None, help="folder, .gguf file or hub id (default: embedded SmolLM2-135M)")
    text.add_argument("--prompt", required=True)
    text.add_argument("--method", default="momentum")
    text.add_argument("--max-new-tokens", type=_positive("--max-new-tokens"), default=64)
    text.add_argument(
        "--attention",
        default="off",
        help="off, or momentum / momentum:ETA for Dai et al.'s momentum attention (experimental; default off)",
    )
    text.add_argument("--param", type=_param, action="append", default=[], help="method parameter name=value")
    text.add_argument("--seed", type=_bounded("--seed", 0, MAX_SEED), default=0)
    text.add_argument("--device", default=None)
    text.add_argument(
        "--backend",
        choices=("transformers", "llama.cpp"),
        default="transformers",
        help="transformers (default) or llama.cpp: the GGUF as shipped, several times faster on a CPU; needs "
        'pip install "inertia[llama]"; greedy, momentum, nucleus, momentum_penalty, top_k and llama.cpp\'s own '
        "repetition_penalty, presence_penalty, frequency_penalty and dry",
    )

    bench = commands.add_parser("bench", help="run a benchmark suite (needs a source checkout)")
    bench.add_argument("suite", choices=sorted(BENCH_SUITES))
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed to the suite (e.g. --quick)")
    return parser


def output_path(out: str, index: int, count: int) -> Path:
    """Where image ``index`` of ``count`` goes: ``out`` for one image; ``stem_000.png`` ... for several."""
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise CliError(f"--out must be a .png path, got {out!r}")
    return path if count == 1 else path.with_name(f"{path.stem}_{index:03d}{path.suffix}")


def output_paths(out: str, count: int) -> list[Path]:
    """``out`` for one image; ``stem_000.png`` ... for several."""
    return [output_path(out, i, count) for i in range(count)]


def save_png(image: Any, path: Path) -> None:
    """Writes ``image`` to ``path`` whole or not at all (a temporary file renamed into place), making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    try:
        image.save(staging, format="PNG")
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def _image_jobs(args: argparse.Namespace, start: int, stop: int) -> list[dict[str, Any]]:
    """Images ``start`` .. ``stop - 1``: index, seed and (digits models) digit."""
    digits = args.digit or [7]
    jobs = []
    for i in range(start, stop):
        job: dict[str, Any] = {"index": i, "seed": args.seed + i}
        if args.prompt is None:
            job["digit"] = digits[i % len(digits)]
        jobs.append(job)
    return jobs


def _run_chunk(pipe: Any, args: argparse.Namespace, chunk: list[dict[str, Any]], device: Any) -> list[Any]:
    import torch

    generators = [torch.Generator(device="cpu").manual_seed(job["seed"]) for job in chunk]
    common = {
        "num_inference_steps": args.steps,
        "guidance_scale": 7.5 if args.scale is None else args.scale,
        "generator": generators,
        "output_type": "pil",
    }
    if "digit" in chunk[0]:
        return pipe([job["digit"] for job in chunk], **common).images
    sizes = {k: v for k, v in (("height", args.height), ("width", args.width)) if v is not None}
    prompts = [args.prompt] * len(chunk)
    negative = None if args.negative_prompt is None else [args.negative_prompt] * len(chunk)
    return pipe(prompt=prompts, negative_prompt=negative, **sizes, **common).images


def check_image_args(args: argparse.Namespace) -> None:
    """Every check of ``generate image`` that needs no model: raises `CliError` / ``ValueError`` naming the flag."""
    validate_presets(args.sampler, args.guidance, args.attention)
    check_device_name(args.device)
    check_image_model_name(args.model)
    digits = is_digits_model(args.model)
    if args.prompt is not None and not args.prompt.strip():
        raise CliError("--prompt must not be empty")
    if digits and args.prompt is not None:
        which = "the embedded digits model" if args.model is None else f"{args.model!r} (a digits model)"
        raise CliError(f"--prompt needs a text-to-image --model; {which} takes --digit")
    if not digits and args.digit is not None:
        raise CliError(f"--digit is for digits models; {args.model!r} is a text-to-image model: give --prompt")
    if not digits and args.prompt is None:
        raise CliError(f"{args.model!r} is a text-to-image model: give --prompt")
    for flag, value in (("--height", args.height), ("--width", args.width)):
        if value is None:
            continue
        if digits:
            raise CliError(f"{flag} is for text-to-image models; a digits model has a fixed size")
        check_range(flag, value, IMAGE_SIDE_MULTIPLE, MAX_IMAGE_SIDE)
        if value % IMAGE_SIDE_MULTIPLE:
            raise CliError(f"{flag} must be a multiple of {IMAGE_SIDE_MULTIPLE}, got {value}")
    if args.seed + args.num_images - 1 > MAX_SEED:
        raise CliError(f"--seed + --num-images - 1 must be at most {MAX_SEED}, got {args.seed + args.num_images - 1}")
    check_out(args.out)


def check_demo_args(args: argparse.Namespace) -> None:
    """Every check of ``inertia demo`` before Gradio and the models load: the UI extra, the device, host and port."""
    if not installed("gradio"):
        raise CliError(f"inertia demo needs the UI extra, which is not installed: {UI_INSTALL}")
    check_device_name(args.device)
    check_host_port(args.host, args.port)


def check_text_args(args: argparse.Namespace) -> dict[str, Any]:
    """Every check of ``generate text`` that needs no model; returns the method's parameters."""
    from inertia.core.lm_attention.config import parse_lm_attention
    from inertia.pipelines.text_context import check_prompt_fits
    from inertia.pipelines.text_generation import check_method

    check_device_name(args.device)
    check_text_model_name(args.model, "--model")
    if not args.prompt.strip():
        raise CliError("--prompt must not be empty")
    params = dict(args.param)
    if getattr(args, "backend", "transformers") == "llama.cpp":
        from inertia.pipelines.llama_cpp_text import check_llama_cpp_request

        # names, values, ranges, and that llama-cpp-python is installed
        check_llama_cpp_request(args.method, params, args.model, args.attention, args.device, args.max_new_tokens)
        return params
    check_method(args.method, **params)  # names, values and ranges
    parse_lm_attention(args.attention)
    check_prompt_fits(args.prompt, args.max_new_tokens, args.model)  # from the model's metadata, not the model
    return params


def generate_images(args: argparse.Namespace) -> int:
    """``inertia generate image``: splits the batches across accelerate processes; each process writes its images as
    soon as they are made (so an interrupted run keeps every finished image) and prints their paths. Returns how many
    images this process wrote."""
    check_image_args(args)  # before anything heavy is imported

    from accelerate import PartialState
    from tqdm.auto import tqdm

    from inertia.pipelines.image import load_image_pipeline
    from inertia.pipelines.presets import configure

    state = PartialState(cpu=args.device == "cpu")
    device = args.device or state.device
    pipe = load_image_pipeline(args.model, device=device)
    pipe.set_progress_bar_config(disable=not state.is_main_process or args.num_images > args.batch_size)
    scale = 7.5 if args.scale is None else args.scale
    configure(pipe, sampler=args.sampler, guidance=args.guidance, attention=args.attention, guidance_scale=scale)

    starts = list(range(0, args.num_images, args.batch_size))
    written = 0
    with state.split_between_processes(starts) as mine:
        for start in tqdm(mine, desc="batches", disable=not state.is_main_process or len(mine) < 2):
            chunk = _image_jobs(args, start, min(start + args.batch_size, args.num_images))
            images = _run_chunk(pipe, args, chunk, device)
            for job, image in zip(chunk, images, strict=True):
                path = output_path(args.out, job["index"], args.num_images)
                factor = display_factor(max(image.size)) if args.upscale == "auto" else int(args.upscale)
                save_png(enlarge(image, factor), path)
                if args.save_raw and factor > 1:
                    save_png(image, raw_path(path))
                print(path, flush=True)
                written += 1
    state.wait_for_everyone()
    return written


def generate_text_cli(args: argparse.Namespace) -> str:
    """``inertia generate text``: prints the continuation, streaming it token by token."""
    params = check_text_args(args)  # before anything heavy is imported
    if getattr(args, "backend", "transformers") == "llama.cpp":
        from inertia.pipelines.llama_cpp_text import load_llama_cpp_model, stream_text_llama_cpp, write_stream

        llama = load_llama_cpp_model(args.model, device=args.device)
        stream = stream_text_llama_cpp(llama, args.prompt, args.method, args.max_new_tokens, args.seed, **params)
        return write_stream(stream)["text"]

    from transformers import TextStreamer

    from inertia.pipelines.text import load_text_model
    from inertia.pipelines.text_generation import generate_text

    model, tokenizer = load_text_model(args.model, device=args.device)
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    text = generate_text(
        model,
        tokenizer,
        args.prompt,
        method=args.method,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        streamer=streamer,
        attention=args.attention,
        **params,
    )
    return text


def run_bench(args: argparse.Namespace) -> int:
    """``inertia bench <suite>``: ``python -m benchmarks.<suite> [args]`` from the source checkout."""
    import runpy

    module = BENCH_SUITES[args.suite]
    try:
        importlib.import_module(module.rsplit(".", 1)[0])
    except ImportError:
        raise CliError("inertia bench needs a source checkout: run it from the repository root") from None
    sys.argv = [module, *args.args]
    runpy.run_module(module, run_name="__main__")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inertia`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            check_demo_args(args)
            from inertia.ui import launch

            launch(host=args.host, port=args.port, device=args.device, block=True)
        elif args.command == "generate" and args.kind == "image":
            generate_images(args)
        elif args.command == "generate":
            generate_text_cli(args)
        else:
            return run_bench(args)
    except (ValueError, OSError) as err:  # bad input, missing files or models, a port in use
        if os.environ.get("INERTIA_DEBUG"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"inertia: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inertia: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as err:  # an optional dependency missing: say which extra brings it
        if os.environ.get("INERTIA_DEBUG"):
            raise
        name = err.name or str(err)
        print(f"inertia: error: {name} is not installed: {install_hint(name)}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug of ours or of a host library: one line, the traceback on request
        if os.environ.get("INERTIA_DEBUG"):
            raise
        print(
            f"inertia: internal error: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''} "
            "(rerun with INERTIA_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
