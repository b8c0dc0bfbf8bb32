"""Contract tests against the real llama-cpp-python on the shipped SmolLM2 GGUF: what the processor is given, that
llama.cpp then takes its argmax, α = 0 is llama.cpp's greedy search token for token, loops are removed, every step
is the authors' choice on the logits llama.cpp produced, state never carries over, and llama.cpp's own samplers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from inertia.adapters.llama_cpp.generate import (
    BanTokensUntil,
    end_of_generation_tokens,
    generate_greedy,
    generate_momentum,
    generate_penalized,
    generate_sampled,
)
from inertia.adapters.llama_cpp.logits_processor import MomentumDecodingLlamaCppProcessor
from inertia.core.decoding.momentum import DEFAULT_RESISTANCE
from tests.adapters.llama_cpp.smollm2 import needs_llama_cpp, shared_llama
from tests.adapters.transformers.reference import reference_choice

pytestmark = [needs_llama_cpp, pytest.mark.xdist_group("llama_cpp")]

# Prompts on which llama.cpp's greedy decoding of the Q4_1 SmolLM2 falls into a verbatim loop within 64 tokens (the
# first three loop on the float32 transformers backend too; its fourth, "Paris is the capital of France. It is", does
# not loop on llama.cpp: the two backends' logits differ a little).
LOOPY_PROMPTS = (
    "My favourite food is pizza because",
    "Once upon a time there was a little girl who",
    "The following is a list of the most important inventions:",
    "The weather today is",
)
NEW_TOKENS = 64


def longest_repeat(tokens: list[int]) -> int:
    """Length of the longest token n-gram that occurs at least twice."""
    best = 0
    for n in range(1, len(tokens)):
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        if len(set(grams)) == len(grams):
            break
        best = n
    return best


def ids_of(prompt: str) -> list[int]:
    return shared_llama().tokenize(prompt.encode("utf-8"), add_bos=True, special=False)


class Recorder:
    """A processor that records what llama-cpp-python gives it and what the wrapped processor returns."""

    def __init__(self, inner=None) -> None:
        self.inner, self.calls = inner, []

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        out = scores if self.inner is None else self.inner(input_ids, scores)
        self.calls.append((np.array(input_ids), np.array(scores, dtype=np.float32), np.array(out)))
        return out


def run_with(processors: list, prompt: list[int], new_tokens: int) -> list[int]:
    """llama-cpp-python's own loop at temperature 0 with ``processors`` (exactly ``new_tokens`` tokens)."""
    from llama_cpp import LogitsProcessorList

    llama = shared_llama()
    llama.reset()
    out = []
    for token in llama.generate(
        prompt, temp=0.0, repeat_penalty=1.0, logits_processor=LogitsProcessorList(processors)
    ):
        out.append(token)
        if len(out) == new_tokens:
            return out
    return out


@pytest.fixture(scope="module")
def runs() -> dict[str, list[list[int]]]:
    llama = shared_llama()
    out: dict[str, list[list[int]]] = {"greedy": [], "momentum": [], "alpha0": []}
    for prompt in LOOPY_PROMPTS:
        ids = ids_of(prompt)
        out["greedy"].append(list(generate_greedy(llama, ids, NEW_TOKENS, min_new_tokens=NEW_TOKENS)))
        out["momentum"].append(list(generate_momentum(llama, ids, NEW_TOKENS, min_new_tokens=NEW_TOKENS)))
        out["alpha0"].append(list(generate_momentum(llama, ids, NEW_TOKENS, alpha=0.0, min_new_tokens=NEW_TOKENS)))
    return out


def test_the_real_llama_cpp_package_is_tested() -> None:
    import llama_cpp

    assert "site-packages" in Path(llama_cpp.__file__).parts  # not a tests/ folder shadowing it
    assert tuple(int(x) for x in llama_cpp.__version__.split(".")[:3]) >= (0, 3, 36)


def test_the_processor_gets_the_history_and_every_logit_in_id_order_and_llama_cpp_takes_its_argmax() -> None:
    prompt = ids_of(LOOPY_PROMPTS[0])
    recorder = Recorder(MomentumDecodingLlamaCppProcessor(alpha=0.2, top_k=5))
    chosen = run_with([recorder], prompt, 12)
    assert len(recorder.calls) == 12
    vocab = shared_llama().n_vocab()
    for step, (history, scores, out) in enumerate(recorder.calls):
        assert history.tolist() == prompt + chosen[:step]  # prompt + tokens generated so far
        assert scores.shape == (vocab,) and np.isfinite(scores).all()  # the whole vocabulary, raw logits
        assert int(np.argmax(out)) == chosen[step]  # llama.cpp's greedy sampler picks the processor's argmax
    # the logits are in token-id order: an identity processor's argmax is llama.cpp's greedy token
    identity = Recorder()
    greedy = run_with([identity], prompt, 12)
    assert [int(np.argmax(scores)) for _, scores, _ in identity.calls] == greedy


def test_alpha_zero_is_llama_cpp_greedy_token_for_token(runs) -> None:
    assert runs["alpha0"] == runs["greedy"]


def test_momentum_decoding_removes_greedys_verbatim_loops(runs) -> None:
    llama = shared_llama()
    for greedy, momentum in zip(runs["greedy"], runs["momentum"], strict=True):
        assert longest_repeat(greedy) >= 12, llama.detokenize(greedy)  # a verbatim loop
        assert longest_repeat(momentum) <= 5, llama.detokenize(momentum)


def test_every_step_is_the_authors_choice_and_the_transformers_processors_on_llama_cpp_logits() -> None:
    # Records the logits llama.cpp produced at each momentum step (after the end-of-generation ban) and replays the
    # authors' loop and our transformers processor on them: the same choices, so any difference from the
    # transformers backend comes from the logits (Q4_1 arithmetic vs float32), never from the decoding.
    from inertia.decoders import MomentumDecodingLogitsProcessor

    for prompt in LOOPY_PROMPTS[:2]:
        ids = ids_of(prompt)
        recorder = Recorder(MomentumDecodingLlamaCppProcessor())
        chosen = run_with([recorder], ids, NEW_TOKENS)
        torch_processor = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5, incremental=False)
        history = list(ids)
        for step, (seen, scores, out) in enumerate(recorder.calls):
            assert seen.tolist() == history
            logits = torch.from_numpy(scores)
            expected, _, _ = reference_choice(history, logits, 0.2, 5, DEFAULT_RESISTANCE)
            assert chosen[step] == expected, (prompt, step)
            ours = torch_processor(torch.tensor([history]), logits[None])[0]
            assert torch.equal(ours, torch.from_numpy(out)), (prompt, step)  # bit for bit
            history.append(chosen[step])


def test_state_never_carries_over_from_one_completion_to_the_next(runs) -> None:
    llama = shared_llama()
    shared = MomentumDecodingLlamaCppProcessor()  # one processor reused by every completion, as a user might
    for _ in range(2):
        for row, prompt in enumerate(LOOPY_PROMPTS[:3]):
            assert run_with([shared], ids_of(prompt), 24) == runs["momentum"][row][:24]
    # and the generators build a fresh processor per call: the same prompt twice, another one in between
    first = list(generate_momentum(llama, ids_of(LOOPY_PROMPTS[1]), 24, min_new_tokens=24))
    list(generate_momentum(llama, ids_of(LOOPY_PROMPTS[2]), 24, min_new_tokens=24))
    assert list(generate_momentum(llama, ids_of(LOOPY_PROMPTS[1]), 24, min_new_tokens=24)) == first


def test_create_completion_with_the_processor_is_momentum_decoding() -> None:
    from llama_cpp import LogitsProcessorList

    llama = shared_llama()
    prompt = LOOPY_PROMPTS[1]
    ours = list(generate_momentum(llama, ids_of(prompt), 32))
    llama.reset()
    out = llama.create_completion(
        prompt,
        max_tokens=32,
        temperature=0.0,
        logits_processor=LogitsProcessorList([MomentumDecodingLlamaCppProcessor(alpha=0.2, top_k=5)]),
    )
    assert out["choices"][0]["text"] == llama.detokenize(ours).decode("utf-8", errors="ignore")


def test_generation_stops_at_end_of_generation_unless_banned() -> None:
    llama = shared_llama()
    chat = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = llama.tokenize(chat.encode("utf-8"), add_bos=True, special=True)
    eog = end_of_generation_tokens(llama)
    assert eog and llama.token_eos() in eog
    free = list(generate_greedy(llama, ids, 64))
    assert 0 < len(free) < 16 and not eog & set(free)  # a short answer; the end token is not yielded
    exact = list(generate_momentum(llama, ids, 64, min_new_tokens=64))
    assert len(exact) == 64 and not eog & set(exact)


def test_llama_cpps_neutral_penalties_and_dry_are_its_greedy_search(runs) -> None:
    llama = shared_llama()
    ids = ids_of(LOOPY_PROMPTS[0])
    neutral = list(generate_penalized(llama, ids, NEW_TOKENS, min_new_tokens=NEW_TOKENS))
    assert neutral == runs["greedy"][0]
    # a real penalty and DRY change the text and shorten greedy's loop
    for kwargs in ({"repeat_penalty": 1.3, "penalty_last_n": -1}, {"dry_multiplier": 0.8}):
        tokens = list(generate_penalized(llama, ids, NEW_TOKENS, min_new_tokens=NEW_TOKENS, **kwargs))
        assert len(tokens) == NEW_TOKENS and longest_repeat(tokens) < longest_repeat(runs["greedy"][0]), kwargs


def test_repetition_penalty_on_the_whole_history_is_the_ctrl_rule() -> None:
    # llama.cpp's repeat penalty divides a seen token's positive logit (multiplies a negative one), as transformers'
    # repetition_penalty does, over the prompt and what was generated (the prompt is accepted into the chain): the
    # same rule as a Python processor in llama-cpp-python's loop gives the same tokens.
    llama = shared_llama()
    ids = ids_of(LOOPY_PROMPTS[2])
    penalty = np.float32(1.3)

    def ctrl(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        out = np.array(scores, dtype=np.float32)
        seen = np.unique(input_ids)
        out[seen] = np.where(out[seen] > 0, out[seen] / penalty, out[seen] * penalty)
        return out

    ban = BanTokensUntil(sorted(end_of_generation_tokens(llama)), len(ids) + NEW_TOKENS)
    penalized = list(
        generate_penalized(llama, ids, NEW_TOKENS, repeat_penalty=1.3, penalty_last_n=-1, min_new_tokens=NEW_TOKENS)
    )
    assert penalized == run_with([ban, ctrl], ids, NEW_TOKENS)


def test_sampling_is_repeatable_by_seed() -> None:
    llama = shared_llama()
    ids = ids_of(LOOPY_PROMPTS[3])
    first = list(generate_sampled(llama, ids, 16, seed=3, top_p=0.95))
    assert list(generate_sampled(llama, ids, 16, seed=3, top_p=0.95)) == first
    assert list(generate_sampled(llama, ids, 16, seed=4, top_p=0.95)) != first


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda llama: generate_momentum(llama, [1, 2], 0), "`max_new_tokens` must be an integer >= 1, got 0"),
        (lambda llama: generate_momentum(llama, [1, 2], 4, min_new_tokens=5), r"`min_new_tokens` must be an integer"),
        (lambda llama: generate_momentum(llama, [], 4), "`prompt_tokens` must hold at least one token id"),
        (lambda llama: generate_momentum(llama, [1, 10**6], 4), r"`prompt_tokens` must be token ids in \[0, 49151\]"),
        (lambda llama: generate_momentum(llama, [1, 2], 4, alpha=-1), "`alpha` must be a finite number >= 0"),
        (lambda llama: generate_momentum(llama, [1, 2], 4, top_k=10**6), "`top_k`=1000000 exceeds the vocabulary"),
        (lambda llama: generate_greedy(llama, [1, 2], 10**5), r"`max_new_tokens`=100000 after a 2-token prompt"),
        (
            lambda llama: generate_penalized(llama, [1], 4, repeat_penalty=0),
            r"`repeat_penalty` must be in \(0.0, inf\)",
        ),
        (lambda llama: generate_penalized(llama, [1], 4, dry_base=0.5), r"`dry_base` must be in \[1.0, inf\)"),
        (lambda llama: generate_penalized(llama, [1], 4, dry_sequence_breakers=[""]), "`dry_sequence_breakers`"),
        (lambda llama: generate_sampled(llama, [1], 4, top_p=0), r"`top_p` must be in \(0.0, 1.0\]"),
        (lambda llama: generate_sampled(llama, [1], 4, temperature=math.inf), "`temperature` must be a finite"),
    ],
)
def test_bad_arguments_are_named_before_anything_is_evaluated(call, message: str) -> None:
    llama = shared_llama()
    llama.reset()
    with pytest.raises(ValueError, match=message):
        call(llama)  # raised at the call, not at the first next()
    assert llama.n_tokens == 0  # nothing was evaluated
