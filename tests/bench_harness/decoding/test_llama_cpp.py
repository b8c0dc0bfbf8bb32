"""benchmarks.decoding.llama_cpp: the quick run writes its report with every section, and the per-step cost helper
times both paths."""

from __future__ import annotations

import json

import pytest

from tests.adapters.llama_cpp.smollm2 import needs_llama_cpp

pytestmark = [needs_llama_cpp, pytest.mark.xdist_group("llama_cpp")]


def test_quick_run_writes_the_report(tmp_path) -> None:
    from benchmarks.decoding import llama_cpp

    argv = [
        "--quick",
        "--out",
        str(tmp_path),
        "--transformers-prompts",
        "0",
        "--prompts",
        "2",
        "--max-new-tokens",
        "4",
    ]
    assert llama_cpp.main(argv) == 0
    text = (tmp_path / "llama_cpp_quick.md").read_text()
    assert "| momentum (0.2, 5) |" in text and "| 1,024 |" in text
    summary = json.loads((tmp_path / "llama_cpp_quick.json").read_text())
    assert summary["config"]["prompts"] == 2 and summary["speed"]["llama.cpp"]["runs"]["greedy"] == 2
    samples = (tmp_path / "llama_cpp_quick_samples.jsonl").read_text().splitlines()
    assert len(samples) == 2 and set(json.loads(samples[0])) >= {"prompt", "greedy", "momentum (0.2, 5)"}


def test_step_costs_time_both_paths() -> None:
    from benchmarks.decoding.llama_cpp import step_costs

    (row,) = step_costs((64,), vocab=100, steps=2)
    assert row["history"] == 64 and 0 < row["incremental_ms"] < 1e3 and 0 < row["stateless_ms"] < 1e3
    assert 0 < row["penalty_ms"] < 1e3 and 0 < row["penalty_build_ms"] < 1e3


def test_bad_arguments_exit_2() -> None:
    from benchmarks.decoding import llama_cpp

    with pytest.raises(SystemExit) as info:
        llama_cpp.main(["--threads", "0"])
    assert info.value.code == 2
