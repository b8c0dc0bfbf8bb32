"""The sampling study's harness: rows, tuning rule, resumable store, front, and (with llama.cpp) its generator."""

from __future__ import annotations

import importlib.util

import pytest

from benchmarks.decoding import sampling_study_report
from benchmarks.decoding.sampling_study import SampleStore
from benchmarks.decoding.sampling_study_grid import ROWS, Row, StudyConfig, tuned_rows
from benchmarks.decoding.sampling_study_report import pareto_front, render, summarise

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None


def test_pareto_front_keeps_only_undominated_rows() -> None:
    points = {"a": (0.9, 0.40), "b": (0.8, 0.45), "c": (0.7, 0.40), "d": (0.9, 0.40)}
    assert pareto_front(points) == ["a", "b", "d"]  # equal points do not dominate each other; c is dominated


def test_tuned_rows_skip_settings_equal_to_a_fixed_row() -> None:
    assert tuned_rows(None) == ()
    rows = tuned_rows({"dry": [0.8, 1.75, 2], "momentum_penalty": 1.0})  # DRY's tuned setting is the default one
    assert [row.name for row in rows] == ["momentum penalty tuned 1.0"]
    assert rows[0].momentum_penalty == 1.0 and rows[0].seeded


def test_rows_are_distinct_and_only_momentum_decoding_is_greedy() -> None:
    assert len({row.name for row in ROWS}) == len(ROWS)
    assert [row.name for row in ROWS if row.greedy] == ["momentum decoding (greedy, 0.2, 5)"]


def test_store_resumes_from_its_file(tmp_path) -> None:
    path = tmp_path / "samples.jsonl"
    store = SampleStore(path)
    item = {
        "stage": "report",
        "row": "sampling",
        "seed": 0,
        "set": "news",
        "index": 3,
        "prompt": "p",
        "text": "t",
        "new_tokens": 4,
        "seconds": 0.1,
    }
    store.add(item)
    again = SampleStore(path)
    assert again.has("report", "sampling", 0, "news", 3)
    assert not again.has("report", "sampling", 1, "news", 3)
    assert again.select("report", "sampling", 0, "news") == [item]


def _sample(row: str, seed: int, set_name: str, index: int, text: str) -> dict:
    return {"stage": "report", "row": row, "seed": seed, "set": set_name, "index": index, "prompt": "p", "text": text,
            "new_tokens": 4, "seconds": 0.1}  # fmt: skip


def test_select_with_a_limit_keeps_the_first_prompts(tmp_path) -> None:
    store = SampleStore(tmp_path / "samples.jsonl")
    for index in (4, 0, 2, 1, 3):
        store.add(_sample("sampling", 0, "ours", index, f"text {index}"))
    assert [item["index"] for item in store.select("report", "sampling", 0, "ours")] == [0, 1, 2, 3, 4]
    assert [item["index"] for item in store.select("report", "sampling", 0, "ours", 3)] == [0, 1, 2]


class _FlatScorer:
    def score(self, prompts: list[str], texts: list[str]) -> list[float]:
        return [0.5] * len(texts)


def test_a_store_with_more_prompts_than_the_run_still_reports_every_row(tmp_path, monkeypatch) -> None:
    # a store grown by a larger run (here 5 prompts) must still give a complete 3-prompt table, titled by set size
    monkeypatch.setattr(sampling_study_report, "_scorer", lambda: _FlatScorer())
    store = SampleStore(tmp_path / "samples.jsonl")
    rows = (ROWS[0],)
    for seed in (0, 1):
        for index in range(5 if seed == 0 else 3):
            store.add(_sample(ROWS[0].name, seed, "ours", index, f"the cat sat on mat number {index} today"))
    sets = {"news": [], "ours": [{"prompt": "p"}] * 3}
    cfg = StudyConfig(our_prompts=3, seeds=(0, 1), long_prompts=1)
    summary = summarise(store, rows, cfg, sets, {"news": 180, "ours": 104})
    block = summary["stages"]["report"]["ours"]
    assert block["rows"][ROWS[0].name]["seeds"] == 2 and block["prompts"] == 3 and block["available"] == 104
    assert "#### the first 3 of our 104 prompts, 128 new tokens" in render(summary)


@pytest.mark.skipif(not HAS_LLAMA, reason='llama.cpp is not installed (pip install "inertia[llama]")')
def test_engine_is_seeded_and_a_zero_penalty_is_plain_sampling() -> None:
    from benchmarks.decoding.sampling_study_engine import LlamaStudyEngine
    from inertia.pipelines.text import smollm2_gguf_path

    engine = LlamaStudyEngine(str(smollm2_gguf_path()), threads=1, n_ctx=128)
    prompt = "The river rose overnight and"
    plain = engine.generate(prompt, ROWS[0], seed=7, max_new_tokens=8)
    again = engine.generate(prompt, ROWS[0], seed=7, max_new_tokens=8)
    zero = engine.generate(prompt, Row("momentum penalty 0", momentum_penalty=0.0), seed=7, max_new_tokens=8)
    assert len(plain["tokens"]) == 8
    assert again["tokens"] == plain["tokens"]  # nothing leaks from one call to the next
    assert zero["tokens"] == plain["tokens"]  # α = 0 is plain sampling, token for token


@pytest.mark.skipif(not HAS_LLAMA, reason='llama.cpp is not installed (pip install "inertia[llama]")')
def test_engine_dry_and_penalties_change_a_looping_continuation() -> None:
    # guards the bindings: a DRY window of -1 or a misplaced penalty window silently turns the sampler off
    from benchmarks.decoding.sampling_study_engine import LlamaStudyEngine
    from inertia.pipelines.text import smollm2_gguf_path

    engine = LlamaStudyEngine(str(smollm2_gguf_path()), threads=1, n_ctx=128)
    prompt = "one two three one two three one two three one two"
    greedy = engine.generate(prompt, Row("greedy", greedy=True), seed=0, max_new_tokens=8)["tokens"]
    dry = engine.generate(prompt, Row("dry", greedy=True, dry=(5.0, 1.75, 2)), seed=0, max_new_tokens=8)["tokens"]
    penalty = Row("rep", greedy=True, penalties=(5.0, 0.0, 0.0))
    repeat = engine.generate(prompt, penalty, seed=0, max_new_tokens=8)["tokens"]
    assert dry != greedy
    assert repeat != greedy


def test_backend_check_runs_the_study_rows_with_the_study_sampler() -> None:
    from benchmarks.decoding.sampling_study_backends import ROWS_CHECKED, transformers_kwargs
    from benchmarks.decoding.sampling_study_grid import SAMPLING
    from inertia.adapters.transformers.momentum_penalty import MomentumPenaltyLogitsProcessor

    assert [row.name for row in ROWS_CHECKED] == ["sampling", "momentum penalty 0.2", "no-repeat-3-gram"]
    plain, penalty, no_repeat = (transformers_kwargs(row) for row in ROWS_CHECKED)
    assert plain == {"do_sample": True, **SAMPLING, "top_k": 40}
    (processor,) = penalty.pop("logits_processor")
    assert isinstance(processor, MomentumPenaltyLogitsProcessor) and processor.alpha == 0.2
    assert penalty == plain
    assert no_repeat == {**plain, "no_repeat_ngram_size": 3}


def test_seed_and_size_options_are_checked_before_any_model_loads(capsys) -> None:
    from benchmarks.decoding.sampling_study import main

    for argv, named in ((["--seeds", "0,x"], "--seeds"), (["--news-prompts", "0"], "--news-prompts")):
        with pytest.raises(SystemExit):
            main(argv)
        assert named in capsys.readouterr().err
