"""benchmarks.decoding.momentum_penalty: the top-k alternative charges exactly the shipped penalty on its k tokens and
nothing elsewhere; the repeat measures count what they say; bad arguments are named before the model loads."""

import pytest
import torch

from benchmarks.decoding import momentum_penalty as bench
from inertia.core.decoding.momentum_penalty import apply_momentum_penalty, momentum_penalty_table
from inertia.decoders import MomentumPenaltyLogitsProcessor
from tests.adapters.transformers.tiny_lm import PROMPTS, tiny_llama


def test_top_k_alternative_is_the_penalty_on_the_top_k_only() -> None:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 6, (3, 40), generator=generator)
    scores = torch.randn(3, 12, generator=generator) * 3
    out = bench.TopKPenalty(0.5, 4, None)(ids, scores)
    every = apply_momentum_penalty(ids, scores, momentum_penalty_table(0.5))
    top = torch.zeros_like(scores, dtype=torch.bool).scatter(1, scores.topk(4).indices, True)
    assert torch.equal(out[top], every[top]) and torch.equal(out[~top], scores[~top])


def test_repeat_share_counts_level_three_tokens() -> None:
    # prompt "1 2 3"; generated 1 2 3: "1 2" then 3 closes the trigram (1, 2, 3) -> level 3 (1 and 2 are below)
    assert bench.repeat_share([[1, 2, 3]], [[1, 2, 3]]) == pytest.approx(1 / 3)
    assert bench.repeat_share([[1, 2, 3]], [[4, 5, 6]]) == 0.0


def test_repeat_mass_is_a_probability_that_the_penalty_lowers() -> None:
    model = tiny_llama()
    prompts = [list(PROMPTS[0]) * 2, list(PROMPTS[2])]
    new = [list(PROMPTS[0][:4]), list(PROMPTS[2][:3])]  # continuations that re-enter the prompt's n-grams
    mass = bench.repeat_mass(
        model,
        prompts,
        new,
        {"none": None, "every": MomentumPenaltyLogitsProcessor(0.3, incremental=False)},
    )
    assert 0 <= mass["every"] < mass["none"] <= 1  # top-p may drop every penalised repeat of this flat model


def test_rows_name_every_variant() -> None:
    rows = bench.quality_rows((0.2, 1.0), pad_token_id=0)
    assert len(rows) == 6 and sum("top-5 only" in name for name in rows) == 2


@pytest.mark.parametrize("argv", [["--prompts", "0"], ["--steps", "0"], ["--alphas", "-1"], ["--part", "speed"]])
def test_bad_arguments_are_named(argv, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2 and argv[0].lstrip("-") in capsys.readouterr().err
