"""The momentum penalty against the real llama-cpp-python on the shipped SmolLM2 GGUF: α = 0 is llama.cpp's sampling
token for token (same seed), the incremental processor in llama.cpp's loop draws what the stateless core would, the
penalty removes sampling's verbatim loops, and bad arguments are named before anything is evaluated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inertia.adapters.llama_cpp.generate import BanTokensUntil, end_of_generation_tokens, generate_sampled
from inertia.core.decoding.momentum_penalty import apply_momentum_penalty, momentum_penalty_table
from tests.adapters.llama_cpp.smollm2 import needs_llama_cpp, shared_llama
from tests.adapters.llama_cpp.test_smollm2 import LOOPY_PROMPTS, ids_of, longest_repeat

pytestmark = [needs_llama_cpp, pytest.mark.xdist_group("llama_cpp")]

NEW_TOKENS = 64
# At temperature 0.5 and top-p 0.95, llama.cpp's sampling of the Q4_1 SmolLM2 falls into a verbatim loop of 10 or
# more tokens on these prompts with seed 0.
LOOPY = {"temperature": 0.5, "top_p": 0.95, "seed": 0}


def sampled(prompt: str, new_tokens: int = NEW_TOKENS, **kwargs) -> list[int]:
    return list(generate_sampled(shared_llama(), ids_of(prompt), new_tokens, min_new_tokens=new_tokens, **kwargs))


@pytest.mark.parametrize(
    ("prompt", "settings"),
    [(LOOPY_PROMPTS[0], LOOPY), (LOOPY_PROMPTS[1], {"temperature": 0.8, "top_k": 40, "min_p": 0.05, "seed": 5})],
)
def test_alpha_zero_is_llama_cpps_sampling_token_for_token(prompt: str, settings: dict) -> None:
    plain = sampled(prompt, 32, **settings)
    assert sampled(prompt, 32, momentum_penalty=0.0, **settings) == plain
    assert sampled(prompt, 32, momentum_penalty=0.2, **settings) != plain  # the test could tell them apart


def test_the_processor_in_llama_cpps_loop_draws_what_the_stateless_core_would() -> None:
    # The same chain and seed with the core's stateless eq. (4) as a plain Python processor: the same tokens, so the
    # incremental index follows llama.cpp's history step by step and the penalty runs before the sampling chain.
    from llama_cpp import LogitsProcessorList

    llama = shared_llama()
    table = momentum_penalty_table(0.3)

    def stateless(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(np.array(input_ids, dtype=np.int64))[None]
        logits = torch.from_numpy(np.array(scores, dtype=np.float32))[None]
        return apply_momentum_penalty(ids, logits, table)[0].numpy()

    for prompt in (LOOPY_PROMPTS[2],):
        ids = ids_of(prompt)
        ours = sampled(prompt, 48, momentum_penalty=0.3, **LOOPY)
        ban = BanTokensUntil(sorted(end_of_generation_tokens(llama)), len(ids) + 48)
        llama.set_seed(LOOPY["seed"])
        llama.reset()
        reference = []
        for token in llama.generate(
            ids, reset=True, temp=LOOPY["temperature"], top_k=0, top_p=LOOPY["top_p"], min_p=0.0, typical_p=1.0,
            repeat_penalty=1.0, logits_processor=LogitsProcessorList([ban, stateless]),
        ):  # fmt: skip
            reference.append(token)
            if len(reference) == 48:
                break
        assert ours == reference, prompt


def test_the_penalty_removes_samplings_verbatim_loops() -> None:
    llama = shared_llama()
    for prompt in (LOOPY_PROMPTS[0], LOOPY_PROMPTS[2]):
        plain = sampled(prompt, **LOOPY)
        assert longest_repeat(plain) >= 10, llama.detokenize(plain)  # a verbatim loop
        penalised = sampled(prompt, momentum_penalty=0.2, **LOOPY)  # the default α
        assert longest_repeat(penalised) <= 5, llama.detokenize(penalised)


def test_seeds_still_decide_the_draw() -> None:
    first = sampled(LOOPY_PROMPTS[3], 16, momentum_penalty=0.2, seed=3, top_p=0.95)
    assert sampled(LOOPY_PROMPTS[3], 16, momentum_penalty=0.2, seed=3, top_p=0.95) == first
    assert sampled(LOOPY_PROMPTS[3], 16, momentum_penalty=0.2, seed=4, top_p=0.95) != first


@pytest.mark.parametrize(
    ("alpha", "message"),
    [(-0.5, r"`momentum_penalty` must be in \[0.0, inf\), got -0.5"), (np.nan, "`momentum_penalty` must be a finite")],
)
def test_a_bad_alpha_is_named_before_anything_is_evaluated(alpha: float, message: str) -> None:
    llama = shared_llama()
    llama.reset()
    with pytest.raises(ValueError, match=message):
        generate_sampled(llama, [1, 2], 4, momentum_penalty=alpha)  # raised at the call, not at the first next()
    assert llama.n_tokens == 0
