"""Momentum attention hooks on the 2026 pipelines, classic and modular (docs/hosts/pipelines.md, last column)."""

from __future__ import annotations

import pytest
import torch
from tiny_pipelines_flux2_qwen_wan_zimage_ltx2 import (
    KINDS,
    STEPS,
    cached_modular,
    cached_pipeline,
    make_call_kwargs,
    make_modular_kwargs,
    run_modular,
)
from tiny_pipelines_flux2_qwen_wan_zimage_ltx2 import run as run_classic

from inertia.attention import (
    MomentumAttention,
    apply_momentum_attention,
    find_attention_modules,
    remove_momentum_attention,
)

SKIP = MomentumAttention(mode="extrapolate", skip_every=2, window=(1, None))  # skips steps 1 and 3 of 4
# Attention classes each transformer uses (what `find_attention_modules` must see).
ATTENTION_CLASSES = {
    "flux2": {"Flux2Attention", "Flux2ParallelSelfAttention"},
    "qwenimage": {"Attention"},
    "wan": {"WanAttention"},
    "zimage": {"Attention"},
    "ltx2": {"LTX2Attention"},
}
CASES = [(kind, modular) for kind in KINDS for modular in (False, True)]
IDS = [f"{kind}-{'modular' if modular else 'classic'}" for kind, modular in CASES]


def _pipe(kind: str, modular: bool):
    return cached_modular(kind) if modular else cached_pipeline(kind)


def _run(kind: str, modular: bool) -> torch.Tensor:
    if modular:
        return run_modular(cached_modular(kind), **make_modular_kwargs(kind))
    return run_classic(cached_pipeline(kind), **make_call_kwargs(kind))


def _count_attention_calls(pipe, kind: str, modular: bool) -> int:
    """How often the attention modules compute (a pre-hook on each module's first linear layer)."""
    calls = []
    handles = []
    for _, module in find_attention_modules(pipe.transformer):
        linear = next(m for m in module.modules() if isinstance(m, torch.nn.Linear))
        handles.append(linear.register_forward_pre_hook(lambda *_: calls.append(1)))
    try:
        _run(kind, modular)
    finally:
        for handle in handles:
            handle.remove()
    return len(calls)


@pytest.mark.parametrize("kind", KINDS)
def test_attention_modules_are_found(kind: str) -> None:
    modules = find_attention_modules(cached_pipeline(kind).transformer)
    assert modules and {type(m).__name__ for _, m in modules} == ATTENTION_CLASSES[kind]


@pytest.mark.parametrize(("kind", "modular"), CASES, ids=IDS)
def test_skip_mode_skips_the_documented_steps_and_removes_cleanly(kind: str, modular: bool) -> None:
    pipe = _pipe(kind, modular)
    stock = _run(kind, modular)
    computed = _count_attention_calls(pipe, kind, modular)
    names = apply_momentum_attention(pipe, SKIP)
    try:
        assert len(names) == len(find_attention_modules(pipe.transformer))
        # attention is computed on the steps it does not skip, in every CFG branch
        skipped = SKIP.num_skipped(STEPS)
        assert skipped == 2
        assert _count_attention_calls(pipe, kind, modular) * STEPS == computed * (STEPS - skipped)
        first = _run(kind, modular)
        assert torch.isfinite(first).all() and not torch.allclose(first, stock, atol=1e-4)
        assert torch.equal(first, _run(kind, modular))  # state resets per pipeline call
    finally:
        assert remove_momentum_attention(pipe)
    assert torch.equal(_run(kind, modular), stock)


@pytest.mark.parametrize(("kind", "modular"), CASES, ids=IDS)
def test_neutral_config_is_the_stock_pipeline(kind: str, modular: bool) -> None:
    pipe = _pipe(kind, modular)
    stock = _run(kind, modular)
    apply_momentum_attention(pipe, MomentumAttention.off())
    try:
        assert torch.equal(_run(kind, modular), stock)
    finally:
        remove_momentum_attention(pipe)


@pytest.mark.parametrize("kind", ("wan", "qwenimage"))
def test_a_filter_mode_changes_the_result(kind: str) -> None:
    pipe = cached_pipeline(kind)
    stock = _run(kind, False)
    apply_momentum_attention(pipe, MomentumAttention(mode="ema", beta=0.5))
    try:
        out = _run(kind, False)
        assert torch.isfinite(out).all() and not torch.allclose(out, stock, atol=1e-4)
    finally:
        remove_momentum_attention(pipe)


def test_targets_that_match_nothing_name_the_modules_that_exist() -> None:
    with pytest.raises(ValueError, match=r"match no attention module of WanTransformer3DModel.*attn1"):
        apply_momentum_attention(cached_pipeline("wan"), MomentumAttention(mode="ema", layers=("nowhere",)))
