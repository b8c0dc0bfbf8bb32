"""The README's Python examples run as written (hub downloads swapped for a tiny offline pipeline)."""

import re
from pathlib import Path

import pytest
from tiny_pipelines import make_call_kwargs, make_pipeline, run

from inertia.adapters.diffusers.denoiser import find_denoiser
from inertia.adapters.diffusers.guidance_hook import guidance_hook
from inertia.adapters.diffusers.private_api import hook_registry
from inertia.attention import ROOT_HOOK_NAME

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
