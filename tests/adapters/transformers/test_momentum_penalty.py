"""The momentum penalty inside transformers ``generate()``: sampling at α = 0 is plain sampling bit for bit, the
penalty runs before the warpers, padding, batch order and repeated generations change nothing, and bad input."""

from __future__ import annotations

import copy
import inspect
import pickle
import threading

import pytest
import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from inertia.adapters.transformers.generate_checks import TAIL_PROCESSORS, insert_before_warpers
from inertia.decoders import MomentumDecodingLogitsProcessor, MomentumPenaltyLogitsProcessor, momentum_sample
from tests.adapters.transformers.tiny_lm import PAD, PROMPTS, left_pad, strip, tiny_llama

SAMPLING = [
    {"do_sample": True},
    {"do_sample": True, "temperature": 0.8, "top_p": 0.95},
    {"do_sample": True, "temperature": 0.7, "top_k": 20, "min_p": 0.05},
    {"do_sample": False},
    {"do_sample": False, "num_beams": 3},
]


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


def _generate(model, seed: int = 7, new: int = 30, **kwargs):
    torch.manual_seed(seed)
    return model.generate(**left_pad(PROMPTS), max_new_tokens=new, min_new_tokens=new, **kwargs)


def _penalty(**kwargs) -> LogitsProcessorList:
    return LogitsProcessorList([MomentumPenaltyLogitsProcessor(pad_token_id=PAD, **kwargs)])


def _distinct_4grams(tokens: list[int]) -> int:
    return len({tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3)})


def test_processor_follows_the_transformers_5_contract() -> None:
    processor = MomentumPenaltyLogitsProcessor()
    assert isinstance(processor, LogitsProcessor)
    assert list(inspect.signature(processor.__call__).parameters) == ["input_ids", "scores"]
    assert processor.supports_continuous_batching is False
    scores = torch.randn(2, 16)
    out = LogitsProcessorList([processor])(torch.tensor([[1, 2, 3], [4, 4, 4]]), scores)
    assert out.shape == (2, 16) and out.data_ptr() != scores.data_ptr()


@pytest.mark.parametrize("settings", SAMPLING)
def test_alpha_zero_is_plain_decoding_bit_for_bit(model, settings: dict) -> None:
    plain = _generate(model, **settings)
    for incremental in (True, False, "auto"):
        with_processor = _generate(model, logits_processor=_penalty(alpha=0.0, incremental=incremental), **settings)
        assert torch.equal(plain, with_processor), incremental
    if settings.get("num_beams", 1) == 1:
        assert torch.equal(plain, _generate(model, custom_generate=momentum_sample, mp_alpha=0.0, **settings))


def test_alpha_zero_under_the_models_own_generation_config(model) -> None:
    saved = model.generation_config
    model.generation_config = GenerationConfig(
        do_sample=True, temperature=0.6, top_p=0.9, top_k=30, pad_token_id=PAD, bos_token_id=1, eos_token_id=2
    )
    try:
        plain = _generate(model, seed=3)
        assert torch.equal(plain, _generate(model, seed=3, logits_processor=_penalty(alpha=0.0)))
        assert torch.equal(plain, _generate(model, seed=3, custom_generate=momentum_sample, mp_alpha=0.0))
        assert not torch.equal(plain, _generate(model, seed=3, logits_processor=_penalty(alpha=2.0)))
    finally:
        model.generation_config = saved


def test_the_penalty_runs_before_the_warpers(model) -> None:
    # top_k = 1 after the penalty is greedy on the penalised logits; before it, it would be plain greedy.
    greedy_penalised = _generate(model, do_sample=False, logits_processor=_penalty(alpha=2.0))
    for kwargs in ({"logits_processor": _penalty(alpha=2.0)}, {"custom_generate": momentum_sample, "mp_alpha": 2.0}):
        sampled = _generate(model, do_sample=True, top_k=1, temperature=0.5, **kwargs)
        assert torch.equal(sampled, greedy_penalised)
    assert not torch.equal(greedy_penalised, _generate(model, do_sample=False))


def test_custom_generate_equals_the_processor_under_sampling(model) -> None:
    settings = {"do_sample": True, "temperature": 0.8, "top_p": 0.95}
    via_processor = _generate(model, logits_processor=_penalty(alpha=1.0, resistance="linear"), **settings)
    via_callable = _generate(model, custom_generate=momentum_sample, mp_alpha=1.0, mp_resistance="linear", **settings)
    assert torch.equal(via_processor, via_callable)


def test_the_penalty_breaks_the_tiny_models_loops(model) -> None:
    # The control that makes the identity tests meaningful: the penalty changes what is generated, in the direction
    # it should. Greedy loops on this prompt and greedy on the penalised logits does not; under sampling (where the
    # tiny model's flat logits never loop) it draws tokens of the history less often.
    prompt = torch.tensor([PROMPTS[0]] * 8)
    new = 40

    def continuations(**kwargs) -> list[list[int]]:
        torch.manual_seed(0)
        return model.generate(prompt, max_new_tokens=new, min_new_tokens=new, **kwargs)[:, 6:].tolist()

    assert _distinct_4grams(continuations(do_sample=False)[0]) < 0.7 * (new - 3)
    assert _distinct_4grams(continuations(do_sample=False, logits_processor=_penalty(alpha=1.0))[0]) == new - 3
    cold = {"do_sample": True, "temperature": 0.3}
    plain = sum(len(set(row)) for row in continuations(**cold))
    penalised = sum(len(set(row)) for row in continuations(logits_processor=_penalty(alpha=1.0), **cold))
    assert penalised > 1.2 * plain  # distinct tokens over 8 x 40 sampled ones (238 -> 315 when written)


@pytest.mark.parametrize("incremental", [True, False])
def test_left_padded_batch_equals_one_by_one(model, incremental: bool) -> None:
    inputs = left_pad(PROMPTS)
    width = inputs["input_ids"].shape[1]
    batch = model.generate(
        **inputs, do_sample=False, max_new_tokens=25, logits_processor=_penalty(alpha=1.0, incremental=incremental)
    )
    for row, prompt in zip(batch, PROMPTS, strict=True):
        alone = model.generate(
            torch.tensor([prompt]), do_sample=False, max_new_tokens=25, logits_processor=_penalty(alpha=1.0)
        )
        full = strip(row, width, prompt)
        assert full[: len(alone[0])] == alone[0].tolist()
        assert all(token == PAD for token in full[len(alone[0]) :])  # rows that stopped at eos are padded


def test_batch_order_changes_nothing(model) -> None:
    order = [2, 0, 1]
    processor = _penalty(alpha=1.0, incremental=True)  # one processor for both calls: its cache must rebuild
    inputs = left_pad(PROMPTS)
    forward = model.generate(**inputs, do_sample=False, max_new_tokens=20, logits_processor=processor)
    reordered = {name: tensor[order] for name, tensor in inputs.items()}
    backward = model.generate(**reordered, do_sample=False, max_new_tokens=20, logits_processor=processor)
    assert torch.equal(forward[order], backward)


def test_two_generations_in_a_row_with_one_processor(model) -> None:
    settings = {"do_sample": True, "temperature": 0.8, "top_p": 0.95}
    shared = _penalty(alpha=1.0, incremental=True)
    first = _generate(model, seed=1, new=50, logits_processor=shared, **settings)
    second = _generate(model, seed=2, new=50, logits_processor=shared, **settings)
    assert torch.equal(first, _generate(model, seed=1, new=50, logits_processor=_penalty(alpha=1.0), **settings))
    assert torch.equal(second, _generate(model, seed=2, new=50, logits_processor=_penalty(alpha=1.0), **settings))
    assert shared[0]._local.cache.rebuilds == 2


def test_auto_and_stateless_sample_the_same_tokens(model) -> None:
    settings = {"do_sample": True, "temperature": 0.8}
    auto = _penalty(alpha=0.8)
    sampled = _generate(model, seed=5, new=140, logits_processor=auto, **settings)  # the rows are built at step 129
    stateless = _penalty(alpha=0.8, incremental=False)
    assert torch.equal(sampled, _generate(model, seed=5, new=140, logits_processor=stateless, **settings))
    assert auto[0]._local.cache.rebuilds == 1 and len(auto[0]._local.cache._rows) == 3


def test_threads_keep_their_own_cache() -> None:
    processor = MomentumPenaltyLogitsProcessor(alpha=0.5, incremental=True)
    reference = MomentumPenaltyLogitsProcessor(alpha=0.5, incremental=False)
    failures: list[int] = []

    def run(seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, 6, (2, 40), generator=generator)
        for _ in range(40):
            scores = torch.randn(2, 30, generator=generator)
            if not torch.equal(processor(ids, scores), reference(ids, scores)):
                failures.append(seed)
            ids = torch.cat([ids, torch.randint(0, 6, (2, 1), generator=generator)], dim=1)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_copies_and_pickles_start_without_a_cache() -> None:
    processor = MomentumPenaltyLogitsProcessor(alpha=0.5, incremental=True)
    processor(torch.tensor([[1, 2, 3]]), torch.randn(1, 10))
    for clone in (copy.deepcopy(processor), pickle.loads(pickle.dumps(processor))):
        assert getattr(clone._local, "cache", None) is None
        ids, scores = torch.tensor([[1, 2, 3, 1]]), torch.ones(1, 10)
        assert torch.equal(clone(ids, scores), processor(ids, scores))


def test_generate_puts_only_known_warpers_after_the_users_processors(model) -> None:
    # What insert_before_warpers relies on: everything generate appends after a user's processor is a warper we know.
    config = GenerationConfig(
        do_sample=True, temperature=0.7, top_k=10, top_p=0.9, min_p=0.05, typical_p=0.9, epsilon_cutoff=0.01,
        eta_cutoff=0.01, top_h=0.5, renormalize_logits=True, repetition_penalty=1.1, no_repeat_ngram_size=3,
    )  # fmt: skip
    sentinel = MomentumPenaltyLogitsProcessor()
    built = model._get_logits_processor(config, 4, logits_processor=LogitsProcessorList([sentinel]), device="cpu")
    after = list(built)[list(built).index(sentinel) + 1 :]
    assert after and all(isinstance(processor, TAIL_PROCESSORS) for processor in after)
    without = model._get_logits_processor(config, 4, logits_processor=LogitsProcessorList(), device="cpu")
    assert [type(p) for p in insert_before_warpers(without, sentinel)] == [type(p) for p in built]


class RecordingStreamer(BaseStreamer):
    def __init__(self) -> None:
        self.puts: list[list[int]] = []
        self.ended = 0

    def put(self, value: torch.Tensor) -> None:
        self.puts.append(value.reshape(-1).tolist())

    def end(self) -> None:
        self.ended += 1


def test_streamer_receives_prompt_tokens_and_end(model) -> None:
    streamer = RecordingStreamer()
    prompt = PROMPTS[0]
    out = model.generate(
        torch.tensor([prompt]), custom_generate=momentum_sample, mp_streamer=streamer, do_sample=True, max_new_tokens=8
    )
    assert streamer.puts[0] == prompt
    assert [token for chunk in streamer.puts[1:] for token in chunk] == out[0, len(prompt) :].tolist()
    assert streamer.ended == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_beams": 2}, "num_beams=2"),
        ({"do_sample": True, "num_beams": 2}, "num_beams=2"),
        ({"penalty_alpha": 0.6, "top_k": 4}, "greedy search and sampling only"),
        ({"dola_layers": "low"}, "greedy search and sampling only"),
        ({"prompt_lookup_num_tokens": 3}, "greedy search and sampling only"),
        ({"mp_alpha": -0.1}, r"`alpha` must be in \[0.0, inf\), got -0.1"),
        ({"mp_resistance": "quadratic"}, "`resistance` must be one of"),
        ({"mp_max_ngram": 2}, "`max_ngram`=2 is smaller than the resistance table"),
        ({"logits_processor": LogitsProcessorList([MomentumPenaltyLogitsProcessor()])}, "already holds"),
        ({"logits_processor": LogitsProcessorList([MomentumDecodingLogitsProcessor()])}, "already holds"),
    ],
)
def test_unsupported_modes_and_bad_parameters_raise_before_any_forward(model, kwargs, message) -> None:
    calls = []
    handle = model.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match=message):
            model.generate(torch.tensor([PROMPTS[0]]), custom_generate=momentum_sample, max_new_tokens=4, **kwargs)
    finally:
        handle.remove()
    assert calls == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": -0.5}, r"`alpha` must be in \[0.0, inf\), got -0.5"),
        ({"alpha": float("nan")}, "`alpha` must be a finite number"),
        ({"alpha": float("inf")}, "`alpha` must be a finite number"),
        ({"alpha": "0.2"}, "`alpha`"),
        ({"alpha": True}, "`alpha`"),
        ({"resistance": "quadratic"}, r"`resistance` must be one of \['constant', 'default'"),
        ({"resistance": [0]}, "at least 2 entries"),
        ({"resistance": [0, float("nan")]}, r"R\(1\) = nan"),
        ({"max_ngram": 33}, r"`max_ngram` must be an integer in \[1, 32\], got 33"),
        ({"pad_token_id": -1}, r"`pad_token_id` must be None or an integer >= 0, got -1"),
        ({"pad_token_id": 1.0}, "`pad_token_id`"),
        (
            {"prompt_attention_mask": [[1, 1]]},
            "`prompt_attention_mask` must be None or a \\[B, T0\\] tensor, got list",
        ),
        ({"prompt_attention_mask": torch.ones(3)}, r"of shape \(3,\)"),
        ({"incremental": "yes"}, r"`incremental` must be True, False or 'auto', got 'yes'"),
        ({"incremental": 1}, "`incremental`"),
        ({"incremental": None}, "`incremental`"),
    ],
)
def test_bad_processor_parameters(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        MomentumPenaltyLogitsProcessor(**kwargs)


def test_bad_call_shapes() -> None:
    processor = MomentumPenaltyLogitsProcessor(alpha=0.5)
    with pytest.raises(ValueError, match=r"scores \[B, V\] with the same B"):
        processor(torch.tensor([[1, 2]]), torch.randn(1, 2, 8))
    masked = MomentumPenaltyLogitsProcessor(alpha=0.5, prompt_attention_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"`prompt_attention_mask` \(2, 3\) does not match input_ids \(1, 4\)"):
        masked(torch.tensor([[1, 2, 3, 4]]), torch.randn(1, 8))
