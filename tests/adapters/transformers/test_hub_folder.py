"""The Hub ``custom_generate/`` folders: built from the package, loaded the way transformers loads them.

``model.generate(..., custom_generate="<folder>", trust_remote_code=True)`` copies the folder's
``custom_generate/generate.py`` and its relative imports into transformers' module cache, checks
``requirements.txt`` and calls ``generate(model=..., **every generate argument)``; it must give the same tokens as
passing our callable. The folder-loading tests share one xdist worker (``xdist_group``): transformers' module cache
is a shared directory.
"""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path

import pytest
import torch
import transformers
import transformers.dynamic_module_utils
from packaging.requirements import Requirement
from transformers.generation.streamers import BaseStreamer

from inertia.adapters.transformers import hub_folder
from inertia.adapters.transformers.contrastive_search import contrastive_search
from inertia.adapters.transformers.hub_cards import SECTIONS
from inertia.adapters.transformers.momentum_generate import momentum_decode
from tests.adapters.transformers.tiny_lm import PROMPTS, left_pad, tiny_llama

ROOT = Path(__file__).resolve().parents[3]
FOLDER = ROOT / "custom_generate"
MOMENTUM = str(FOLDER / "momentum-decoding")
CONTRASTIVE = str(FOLDER / "contrastive-search")
loads_folder = pytest.mark.xdist_group("custom_generate_folder")


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


class RecordingStreamer(BaseStreamer):
    def __init__(self) -> None:
        self.puts: list[list[int]] = []
        self.ended = 0

    def put(self, value: torch.Tensor) -> None:
        self.puts.append(value.reshape(-1).tolist())

    def end(self) -> None:
        self.ended += 1


def test_the_committed_folder_is_the_build() -> None:
    assert hub_folder.differences(FOLDER) == [], (
        "run `python -m inertia.adapters.transformers.hub_folder custom_generate`"
    )


def test_requirements_are_our_lower_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds = {Requirement(line).name: str(Requirement(line).specifier) for line in project["dependencies"]}
    assert {Requirement(line).name: str(Requirement(line).specifier) for line in hub_folder.REQUIREMENTS} == {
        name: bounds[name] for name in ("torch", "transformers")
    }


@pytest.mark.parametrize("method", hub_folder.METHODS, ids=lambda m: m.folder)
def test_each_card_has_the_tag_and_the_sections(method) -> None:
    card = (FOLDER / method.folder / "README.md").read_text()
    metadata = re.match(r"---\n(.*?)\n---\n", card, flags=re.DOTALL)
    assert metadata and "library_name: transformers" in metadata.group(1)
    assert re.search(r"^tags:\n(  - .*\n)*  - custom_generate$", metadata.group(1), flags=re.MULTILINE)
    headings = re.findall(r"^## (.+)$", card, flags=re.MULTILINE)
    assert [h for h in headings if h in SECTIONS] == list(SECTIONS)
    assert f'custom_generate="<user>/{method.folder}"' in card and "trust_remote_code=True" in card


def test_build_and_check_round_trip(tmp_path: Path) -> None:
    hub_folder.build(tmp_path)
    assert hub_folder.main([str(tmp_path), "--check"]) == 0
    (tmp_path / "momentum-decoding" / "custom_generate" / "stale.py").write_text("")
    generate = tmp_path / "contrastive-search" / "custom_generate" / "generate.py"
    generate.write_text(generate.read_text() + "# edited\n")
    assert hub_folder.differences(tmp_path) == [
        "changed: contrastive-search/custom_generate/generate.py",
        "extra: momentum-decoding/custom_generate/stale.py",
    ]
    assert hub_folder.main([str(tmp_path), "--check"]) == 1


def test_a_module_importing_inertia_another_way_cannot_be_copied(tmp_path: Path, monkeypatch) -> None:
    """Only `from inertia.<module> import name` can be rewritten for the flat folder; a relative import or an
    `import inertia...` statement is refused, naming the file and line."""
    package = tmp_path / "inertia_hub_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "entry.py").write_text("from .helper import x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(hub_folder, "PACKAGE_ROOT", tmp_path)
    with pytest.raises(ValueError, match=r"entry\.py line 1"):
        hub_folder.module_closure("inertia_hub_probe.entry")


def test_flat_copies_import_their_siblings() -> None:
    copy = hub_folder.flat_copy("inertia.adapters.transformers.momentum_generate")
    assert "from .logits_processor import MomentumDecodingLogitsProcessor" in copy
    assert not re.search(r"^\s*(from|import) inertia", copy, re.M)  # docstring examples may still name inertia


@loads_folder
def test_momentum_folder_gives_the_callables_tokens(model) -> None:
    inputs = left_pad(PROMPTS)
    options = {"md_alpha": 0.3, "md_top_k": 4, "md_resistance": "linear", "max_new_tokens": 16}
    via_folder = model.generate(**inputs, custom_generate=MOMENTUM, trust_remote_code=True, **options)
    via_callable = model.generate(**inputs, custom_generate=momentum_decode, **options)
    greedy = model.generate(**inputs, do_sample=False, max_new_tokens=16)
    assert torch.equal(via_folder, via_callable)
    assert not torch.equal(via_folder, greedy)  # the md_* arguments reached the method


@loads_folder
def test_contrastive_folder_gives_the_callables_tokens(model) -> None:
    inputs = left_pad(PROMPTS)
    options = {"penalty_alpha": 0.6, "top_k": 4, "max_new_tokens": 16}
    via_folder = model.generate(**inputs, custom_generate=CONTRASTIVE, trust_remote_code=True, **options)
    via_callable = model.generate(**inputs, custom_generate=contrastive_search, **options)
    greedy = model.generate(**inputs, do_sample=False, max_new_tokens=16)
    assert torch.equal(via_folder, via_callable)
    assert not torch.equal(via_folder, greedy)


@loads_folder
@pytest.mark.parametrize("folder", [MOMENTUM, CONTRASTIVE], ids=["momentum", "contrastive"])
def test_generates_streamer_reaches_the_method(model, folder) -> None:
    streamer = RecordingStreamer()
    prompt = PROMPTS[0]
    out = model.generate(
        torch.tensor([prompt]), custom_generate=folder, trust_remote_code=True, streamer=streamer, max_new_tokens=6
    )
    assert streamer.puts[0] == prompt
    assert [token for chunk in streamer.puts[1:] for token in chunk] == out[0, len(prompt) :].tolist()
    assert streamer.ended == 1


@loads_folder
def test_a_model_repository_holding_the_folder_does_not_recurse() -> None:
    """``from_pretrained(..., trust_remote_code=True)`` on a repository with ``custom_generate/`` replaces the
    instance's ``generate`` by the folder's function (``functools.partial(fn, model=model)``)."""
    model = tiny_llama()
    expected = model.generate(torch.tensor([PROMPTS[0]]), custom_generate=momentum_decode, max_new_tokens=8)
    loaded = model.load_custom_generate(MOMENTUM, trust_remote_code=True)
    model.generate = functools.partial(loaded, model=model)
    assert torch.equal(model.generate(inputs=torch.tensor([PROMPTS[0]]), max_new_tokens=8), expected)


@loads_folder
@pytest.mark.parametrize("trust", [None, False], ids=["omitted", "false"])
def test_a_folder_needs_trust_remote_code_a_callable_does_not(model, monkeypatch, trust) -> None:
    """transformers 5.23 and 5.24 (the releases we test) both refuse a local folder without
    ``trust_remote_code=True``; transformers 4.x ran a local folder without it."""
    monkeypatch.setattr(transformers.dynamic_module_utils, "TIME_OUT_REMOTE_CODE", 0)  # no interactive prompt
    kwargs = {} if trust is None else {"trust_remote_code": trust}
    prompt = torch.tensor([PROMPTS[0]])
    with pytest.raises(ValueError, match="trust_remote_code"):
        model.generate(prompt, custom_generate=MOMENTUM, max_new_tokens=4, **kwargs)
    assert model.generate(prompt, custom_generate=momentum_decode, max_new_tokens=4).shape == (1, len(PROMPTS[0]) + 4)
