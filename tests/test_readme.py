"""The README's Python examples and shell commands run as written (hub downloads swapped for a tiny offline pipeline)."""

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from tiny_pipelines import make_call_kwargs, make_pipeline, run

from inertia.adapters.diffusers.denoiser import find_denoiser
from inertia.adapters.diffusers.guidance_hook import guidance_hook
from inertia.adapters.diffusers.private_api import hook_registry
from inertia.attention import ROOT_HOOK_NAME
from inertia.cli import BENCH_SUITES

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
SELF_CONTAINED = ("load_digits_pipeline", "load_image_pipeline", "load_text_model", "inertia.k_diffusion")
CASES = [
    (index, kind)
    for index, code in enumerate(BLOCKS)
    for kind in (["own"] if any(name in code for name in SELF_CONTAINED) else ["sd", "flux"])
]


def _dedent(code: str) -> str:
    indent = min((len(line) - len(line.lstrip()) for line in code.splitlines() if line.strip()), default=0)
    return "\n".join(line[indent:] for line in code.splitlines()) + "\n"


def _installs_something(pipe) -> bool:
    registry = hook_registry(find_denoiser(pipe))
    attention = registry is not None and registry.get_hook(ROOT_HOOK_NAME) is not None
    return (
        type(pipe.scheduler).__module__.startswith("inertia.adapters.diffusers")
        or guidance_hook(pipe) is not None
        or attention
    )


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


def test_every_example_defines_what_it_uses_or_is_a_marked_hub_variant() -> None:
    # A block that needs the hub says so right above it; every other block loads an embedded model itself.
    text = README.read_text()
    for code in BLOCKS:
        if any(name in code for name in SELF_CONTAINED):
            continue
        assert "from_pretrained(" in code, f"this README block uses a `pipe` it never defines:\n{code}"
        before = text[: text.index(code)].removesuffix("```python\n").rstrip().rsplit("\n\n", 1)[-1]
        assert before.startswith("Hub variant"), f"hub block not marked as such:\n{code}"


@pytest.mark.parametrize(("index", "kind"), CASES)
def test_readme_example_runs(index: int, kind: str) -> None:
    code = _dedent(BLOCKS[index])
    if kind == "own":  # self-contained: runs the embedded models as written
        namespace: dict = {}
        exec(compile(code, f"README.md block {index}", "exec"), namespace)
        assert len(namespace["images"]) == 2 if "images" in namespace else namespace["out"].shape[0] == 1
        return
    if "from_pretrained(" in code:  # needs the hub: run it against a tiny pipeline of the same family instead
        code = re.sub(r"pipe = \w+\.from_pretrained\(.*?\)\n", "", code)
    code = re.sub(r"image = pipe\(.*\n", "", code)  # prompts need a tokenizer: the tiny pipeline gets embeddings
    code = re.sub(r"remove_\w+\(pipe\).*\n", "", code)  # keep what the block installed for the run below
    namespace = {"pipe": make_pipeline(kind)}
    if "APG(" in code and kind == "flux":  # APG needs batched CFG, which Flux does not run
        with pytest.raises(ValueError, match="use HiGS alone"):
            exec(compile(code, f"README.md block {index}", "exec"), namespace)
        return
    exec(compile(code, f"README.md block {index}", "exec"), namespace)
    pipe = namespace["pipe"]
    assert _installs_something(pipe)
    out = run(pipe, **make_call_kwargs(kind, num_inference_steps=5))
    assert out.isfinite().all()


# ---------------------------------------------------------------------------------------------------------------------
# The README's shell commands: each one runs here as written (hub ids swapped for a tiny offline pipeline of the same
# family, outputs in a temporary folder), or, for what cannot run inside a test, the part that can: a make target
# dry-runs (`make -n`), a link's source exists, an extra exists. A command the README gains fails
# `test_every_readme_command_is_exercised` until it is given a way to run here.

ROOT = README.parent
COMMAND_START = re.compile(r"^(inertia|inertia-train|make|accelerate launch|pip install|python -m|ln -s)(\s|$)")
NOT_COMMANDS = {
    "inertia": "the command's name in a sentence",
    "inertia ...": "a placeholder in a sentence",
    ".venv/bin/inertia ...": "a placeholder in a sentence",
    "pip install": "the words in a sentence",
    "accelerate launch --num_processes N": "a fragment of the accelerate command above (which runs here)",
}
"""Inline code that starts like a command but is not one, and why."""
TEMPLATES: dict[str, list[list[str]]] = {
    "inertia demo [--host 127.0.0.1 --port 7860]": [["demo", "--host", "127.0.0.1", "--port", "{free_port}"]],
    "inertia demo": [["demo", "--host", "127.0.0.1", "--port", "{free_port}"]],
    "inertia generate text --attention momentum[:eta]": [
        ["generate", "text", "--attention", "momentum:0.05", "--prompt", "The old lighthouse keeper", "--max-new-tokens",
         "8"],
    ],
    "inertia-train --preconditioning {vp,edm,fdm} --model-size small-32 --resolution 32 --output-dir runs/x": [
        ["--preconditioning", p, "--model-size", "small-32", "--resolution", "32", "--output-dir", "runs/x",
         "--max-steps", "2", "--batch-size", "8", "--no-eval", "--no-progress-bar", "--cpu"]
        for p in ("vp", "edm", "fdm")
    ],
}  # fmt: skip
"""README commands with placeholders ([optional], {a,b}, :eta) and the concrete argument lists that run for them
(training: two steps, not a run to convergence)."""
HUB_STAND_INS = {"stabilityai/stable-diffusion-xl-base-1.0": "sdxl"}
"""Hub ids in README commands and the tiny offline pipeline family run in their place."""
SLOW = {
    "inertia bench all --quick",  # every suite below in one process: about 10 min of CPU
    "inertia bench lm-attention --quick",  # 305 s of CPU
    "inertia bench peers-decoding --quick",  # 68 s of CPU
    "inertia bench ui --quick",  # 72 s of CPU
}
"""Commands that take more than a minute of CPU (user + system time, one thread; measured on the 2-core machine with
`/usr/bin/time`). The rest took 5-36 s each: the other `--quick` suites, the image commands, the text commands (the
SmolLM2 load, about 25 s), the 64-image accelerate run (35 s over its four processes), two training steps per
preconditioning (8 s each)."""


def readme_commands(text: str) -> list[str]:
    """The shell commands of the README: every line of its bash blocks (continuations joined, comments dropped) and
    every inline code span that starts like a command."""
    commands = []
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"(^|\s+)#.*$", "", line).strip()
            if line:
                commands.append(line)
    commands += [span for span in re.findall(r"`([^`\n]+)`", text) if COMMAND_START.match(span)]
    return list(dict.fromkeys(commands))


def _bench_commands(commands: list[str]) -> list[str]:
    """`inertia bench <suite> --quick` for every suite, when the README says any suite runs so."""
    quick = [c for c in commands if c.startswith("inertia bench ") and c.endswith("--quick")]
    return [f"inertia bench {suite} --quick" for suite in sorted(BENCH_SUITES)] if quick else []


COMMANDS = readme_commands(README.read_text())
RUNS = [c for c in COMMANDS if c not in NOT_COMMANDS and c.startswith(("inertia", "accelerate launch"))]
RUNS = [c for c in RUNS if not c.startswith("inertia bench ")] + _bench_commands(COMMANDS)


def _kind(command: str) -> str:
    if command in NOT_COMMANDS:
        return "not a command"
    for prefix, kind in (("make ", "make"), ("ln -s ", "link"), ("pip install ", "pip")):
        if command.startswith(prefix):
            return kind
    if command in RUNS or command.startswith("inertia bench "):
        if re.search(r"[\[\]{}<>]|\.\.\.|:eta\b", command) and command not in TEMPLATES:
            return "unknown"  # a placeholder with no concrete arguments
        return "run"
    return "unknown"


def test_every_readme_command_is_exercised() -> None:
    assert len(COMMANDS) >= 8
    unknown = [c for c in COMMANDS if _kind(c) == "unknown"]
    assert not unknown, f"README commands with no way to run in the tests (add them here): {unknown}"
    assert any(c.startswith("inertia bench ") for c in RUNS) and not set(SLOW) - set(RUNS) - set(TEMPLATES)


@pytest.mark.parametrize("command", [c for c in COMMANDS if _kind(c) == "make"])
def test_readme_make_targets_exist_and_dry_run(command: str) -> None:
    argv = shlex.split(command)
    done = subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("command", [c for c in COMMANDS if _kind(c) in ("link", "pip")])
def test_readme_links_and_installs_name_what_exists(command: str) -> None:
    argv = shlex.split(command.replace("$PWD", str(ROOT)))
    if argv[0] == "ln":
        assert (Path(argv[2]) / "__init__.py").is_file()
        return
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    makefile = (ROOT / "Makefile").read_text()
    model_packages = set(re.findall(r"([\w-]+)==", re.search(r"MODEL_PACKAGES := (.*)", makefile).group(1)))
    for spec in argv[2:]:
        name, _, extras = spec.split(" @ ")[0].partition("[")  # "inertia[ui] @ git+URL": a direct reference
        assert name in (".", "-e", project["name"], *model_packages) or spec.startswith("-"), spec
        assert set(filter(None, extras.rstrip("]").split(","))) <= set(project["optional-dependencies"]), spec


def _argv_lists(command: str) -> list[list[str]]:
    if command in TEMPLATES:
        return TEMPLATES[command]
    argv = shlex.split(command)
    return [argv[1:] if argv[0] in ("inertia", "inertia-train") else argv]


def _process(command: str, args: list[str], folder: Path) -> list[str]:
    if command.startswith("inertia-train"):
        return [sys.executable, "-c", "import sys; from inertia.training.train import main; sys.exit(main())", *args]
    if command.startswith("accelerate launch"):
        return [sys.executable, "-m", "accelerate.commands.launch", *args[2:]]
    if args[:1] == ["bench"]:
        return [sys.executable, "-m", "inertia.cli", *args, "--out", str(folder / "bench-out")]
    return [sys.executable, "-m", "inertia.cli", *args]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve_until_it_answers(process_argv: list[str], port: int, env: dict[str, str], folder: Path) -> None:
    process = subprocess.Popen(process_argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()[-2000:] if process.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                    assert answer.status == 200
                    return
            except OSError:
                time.sleep(2)
        raise AssertionError("inertia demo did not answer within 300 s")
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.mark.parametrize(
    "command", [pytest.param(c, marks=[pytest.mark.slow] if c in SLOW else []) for c in RUNS]
)  # fmt: skip
def test_readme_command_runs(command: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("INERTIA_DIGITS_MODEL", None)  # as a user runs it: the shipped 32x32 model
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for hub_id, family in HUB_STAND_INS.items():
        if hub_id in command:
            from tiny_text_to_image import save_tiny_sdxl

            assert family == "sdxl"
            command = command.replace(hub_id, str(save_tiny_sdxl(tmp_path / "stand-in")))
    for args in _argv_lists(command):
        if "{free_port}" in args:
            port = _free_port()
            args = [str(port) if a == "{free_port}" else a for a in args]
            _serve_until_it_answers(_process(command, args, tmp_path), port, env, tmp_path)
            continue
        cwd = ROOT if args[:1] == ["bench"] else tmp_path  # `inertia bench` needs the source checkout
        done = subprocess.run(_process(command, args, tmp_path), cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=1800)  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
        if "--out" in args and args[:1] != ["bench"]:
            out = Path(args[args.index("--out") + 1])
            written = list((tmp_path / out.parent).glob(f"{out.stem}*.png"))
            assert written, f"{command} wrote no {out}"
        if "--output-dir" in args:
            assert (tmp_path / args[args.index("--output-dir") + 1] / "pipeline" / "model_index.json").is_file()
