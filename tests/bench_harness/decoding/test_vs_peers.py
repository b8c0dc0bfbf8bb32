"""``python -m benchmarks.decoding.vs_peers`` on the tiny random LM with a word-level tokenizer built in code: the
news cut, the target logic, MAUVE's table, and --quick / --tune end to end (fast, offline)."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from benchmarks.decoding import vs_peers as bench
from benchmarks.decoding import vs_peers_grid as peers_grid
from benchmarks.decoding import vs_peers_report as peers_report
from benchmarks.decoding.human_reference import lee_items, mauve_table, split_lee
from tests.adapters.transformers.tiny_lm import tiny_llama

WORDS = (
    "the a of to and in on at for with is was are were has had said police city council minister government "
    "people fire storm water day night year week new old two three first last state south north today "
    "report court house plan vote town school man woman officials workers group leader it they"
).split()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """64 ids like the tiny LM: <pad> 0, <s> 1, </s> 2, <unk> 3, ".", then words."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, ".": 4}
    for word in WORDS[: 64 - len(vocab)]:
        vocab[word] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
    )


def articles(count: int = 40, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 12))) + "." for _ in range(12)]
        out.append(" ".join(sentences))
    out.append("too short .")
    return out


class BagOfWords:
    """A stand-in for the MiniLM scorer: unit-norm word counts (embed) and their cosine (mean)."""

    def __init__(self) -> None:
        self.index = {w: i for i, w in enumerate(WORDS)}

    def embed(self, texts: list[str]) -> torch.Tensor:
        rows = torch.zeros(len(texts), len(WORDS) + 1)
        for r, text in enumerate(texts):
            for word in text.split():
                rows[r, self.index.get(word, len(WORDS))] += 1
            rows[r, -1] += 1e-3 * (r + 1)  # no all-zero row
        return torch.nn.functional.normalize(rows, dim=-1)

    def mean(self, prompts: list[str], texts: list[str]) -> float:
        return float((self.embed(prompts) * self.embed(texts)).sum(-1).mean())


@pytest.fixture(scope="module")
def tiny() -> tuple:
    return tiny_llama(), tiny_tokenizer()


def test_news_cut_ends_at_a_sentence_and_keeps_the_true_continuation(tiny) -> None:
    _, tokenizer = tiny
    items = lee_items(tokenizer, articles(), prompt_tokens=24, min_prompt_tokens=8, continuation_tokens=16)
    assert len(items) == 40  # the short article is skipped
    for item in items:
        size = len(tokenizer(item["prompt"], add_special_tokens=False)["input_ids"])
        assert 8 <= size <= 24 and item["prompt"].endswith(".")
        assert len(tokenizer(item["human"], add_special_tokens=False)["input_ids"]) == 16
    source = " ".join(articles()[0].split())
    assert (
        source.startswith(items[0]["prompt"])
        and source[len(items[0]["prompt"]) :].split()[:3] == (items[0]["human"].split()[:3])
    )
    reported, tuning = split_lee(items, limit=20)
    assert len(tuning) == 8 and len(reported) == 20
    assert not {i["index"] for i in tuning} & {i["index"] for i in split_lee(items, None)[0]}


def test_mauve_table_separates_a_far_distribution_from_a_near_one() -> None:
    rng = np.random.default_rng(0)
    human = rng.normal(size=(60, 8)).astype(np.float32)
    near = human + 0.05 * rng.normal(size=human.shape).astype(np.float32)
    far = rng.normal(loc=3.0, size=(60, 8)).astype(np.float32)
    table = mauve_table(human, {"near": near, "far": far}, seeds=2, bootstrap=4, compare=["near"])
    assert table["settings"]["num_buckets"] == 6
    assert table["rows"]["near"]["mauve"] > 0.9 > 0.5 > table["rows"]["far"]["mauve"]
    assert table["wins"] == {"near": {"far": 1.0}}


def _summary(momentum: dict) -> dict:
    def block(rows: dict) -> dict:
        return {"quality": {n: {"diversity": d, "coherence": c, "rep-4": 0.0} for n, (d, c, _) in rows.items()}}

    rows = {
        "greedy": (0.2, 0.5, 0.3),
        "DRY": (0.9, 0.48, 0.6),
        "momentum (0.2, 5)": momentum,
        peers_grid.NUCLEUS: (1, 0, 1),
    }
    news = block(rows) | {"mauve": {"rows": {n: {"mauve": m} for n, (_, _, m) in rows.items()}}}
    return {"sets": {"news": news, "ours": block(rows)}}


def test_targets_pass_and_fail_at_their_thresholds() -> None:
    good = peers_report.evaluate_targets(_summary((0.9, 0.475, 0.61)))
    assert len(good) == 5 and all(t["met"] for t in good)
    assert good[0]["against"] == "DRY" and good[0]["threshold"] == 0.6  # the best deterministic peer, not nucleus
    bad = peers_report.evaluate_targets(_summary((0.89, 0.474, 0.6)))
    assert not any(t["met"] for t in bad)


def test_quick_run_on_the_tiny_lm_writes_every_output(tiny, tmp_path) -> None:
    model, tokenizer = tiny
    code = bench.main(
        ["--quick", "--out", str(tmp_path)],
        loader=lambda: (model, tokenizer),
        articles=articles(),
        scorer=BagOfWords(),
    )
    assert code == 0
    summary = json.loads((tmp_path / "peers_decoding_quick.json").read_text())
    rows = list(peers_grid.methods())
    news, ours = summary["sets"]["news"], summary["sets"]["ours"]
    assert list(news["quality"]) == [*rows, peers_grid.HUMAN] and list(ours["quality"]) == rows
    assert news["prompts"] == 6 and ours["prompts"] == 6
    assert set(news["mauve"]["rows"]) == set(rows)
    for row in news["mauve"]["rows"].values():
        assert 0.0 < row["seed_min"] <= row["mauve"] <= row["seed_max"] <= 1.0
    assert set(news["mauve"]["wins"][peers_grid.MOMENTUM]) == set(rows) - {peers_grid.MOMENTUM, peers_grid.NUCLEUS}
    assert all(v > 0 for v in news["tokens_per_s"].values())
    assert [t["row"] for t in summary["targets"]] == [peers_grid.MOMENTUM] * 5 + [peers_grid.MOMENTUM_STRONG] * 5
    assert len(summary["winners"]) == 7
    samples = [json.loads(line) for line in (tmp_path / "peers_decoding_quick_samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12 and set(rows) <= set(samples[0]) and peers_grid.HUMAN in samples[0]
    report = (tmp_path / "peers_decoding_quick.md").read_text()
    assert "| DRY (0.8, 1.75, 2) |" in report and "## Targets" in report and "## Winners" in report


def test_tune_mode_picks_within_the_coherence_floor(tiny, tmp_path) -> None:
    model, tokenizer = tiny
    code = bench.main(
        ["--quick", "--tune", "--out", str(tmp_path)],
        loader=lambda: (model, tokenizer),
        articles=articles(),
        scorer=BagOfWords(),
    )
    assert code == 0
    result = json.loads((tmp_path / "peers_decoding_tune.json").read_text())
    assert result["prompts"] == 6 and len(result["quality"]) == 1 + len(peers_grid.TUNE_GRID)
    floor = 0.95 * result["quality"]["greedy"]["coherence"]
    eligible = {
        peers_grid.momentum_row_name(s): result["quality"][peers_grid.momentum_row_name(s)]
        for s in peers_grid.TUNE_GRID
        if result["quality"][peers_grid.momentum_row_name(s)]["coherence"] >= floor
    }
    if result["pick"] is None:
        assert not eligible
    else:
        best = max(q["diversity"] for q in eligible.values())
        assert math.isclose(result["quality"][peers_grid.momentum_row_name(result["pick"])]["diversity"], best)
