"""The hooks on a toy denoiser whose attention outputs are known: every output checked against the rules by hand."""

from __future__ import annotations

import threading

import pytest
import torch
from diffusers.hooks import HookRegistry, ModelHook

from inertia.attention import (
    LAYER_HOOK_NAME,
    MomentumAttention,
    apply_momentum_attention,
    get_momentum_attention_tracker,
    remove_momentum_attention,
)

from .toy import ToyDenoiser, constant, run_loop


def hooked(config: MomentumAttention, **toy_kwargs) -> ToyDenoiser:
    model = ToyDenoiser(**toy_kwargs)
    apply_momentum_attention(model, config)
    return model


def test_ema_inside_the_window_only() -> None:
    # window (1, 3), β = 0.5 on A = 4, 8, 0, 8: step 0 outside; M_1 = A_1 = 8; M_2 = 0.5·0 + 0.5·8 = 4; step 3 outside
    model = hooked(MomentumAttention(mode="ema", beta=0.5, window=(1, 3)))
    assert run_loop(model, [4, 8, 0, 8]) == [4.0, 8.0, 4.0, 8.0]


def test_heavy_ball_sequence() -> None:
    model = hooked(MomentumAttention(mode="heavy_ball", beta=0.5, lookahead=1.0, window=(0, None)))
    assert run_loop(model, [1, 3, 4, 4]) == [1.0, 5.0, 6.0, 5.0]


def test_extrapolate_sequence_and_skipped_computations() -> None:
    # computed at steps 0, 2, 4 (A = 0, 4, 6); skipped steps predict 0, 4 + 2, 6 + (0.5·2 + 1); the 99s are never seen
    model = hooked(MomentumAttention(mode="extrapolate", beta=0.5, lookahead=1.0, skip_every=2, window=(0, None)))
    assert run_loop(model, [0, 99, 4, 99, 6, 99]) == [0.0, 0.0, 4.0, 6.0, 6.0, 8.0]
    assert model.processor.calls == 3


def test_first_order_sequence_is_faster_cache() -> None:
    model = hooked(MomentumAttention.faster_cache(window=(0, None)))
    assert run_loop(model, [2, 99, 6, 99, 9, 99]) == [2.0, 2.0, 6.0, 8.0, 9.0, 9.5]
    assert model.processor.calls == 3


def test_skip_modes_compute_every_step_outside_the_window() -> None:
    model = hooked(MomentumAttention(mode="extrapolate", beta=0.0, lookahead=1.0, skip_every=2, window=(2, 5)))
    # steps 0, 1 computed (outside); 2 computed (phase); 3 skipped: 3 + (3 − 2) = 4; 4 computed; 5, 6 outside
    assert run_loop(model, [1, 2, 3, 99, 5, 6, 7]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert model.processor.calls == 6


def test_residual_modules_extrapolate_the_attention_part_and_use_the_current_input() -> None:
    # output = (10x + x)/r with r = 2, so the attention part is 5x; a skipped step returns predicted part + x/r.
    # x = 1, 7, 3, 7: step 0 out 5.5 (part 5); step 1 part 5 (V = 0) + 3.5 = 8.5; step 2 out 16.5 (part 15,
    # V = (15 − 5)/2 = 5); step 3 part 15 + 5 = 20, + 3.5 = 23.5
    config = MomentumAttention(mode="extrapolate", beta=0.0, lookahead=1.0, skip_every=2, window=(0, None))
    model = hooked(config, residual=True, rescale_output_factor=2.0)
    assert run_loop(model, [1, 7, 3, 7]) == [5.5, 8.5, 16.5, 23.5]
    assert model.processor.calls == 2


def test_residual_modules_ema_acts_on_the_attention_part() -> None:
    # r = 1: part = 10x; x = 1, 3: M = 10, then 0.5·30 + 0.5·10 = 20, plus the current input 3 -> 23
    model = hooked(MomentumAttention(mode="ema", beta=0.5), residual=True)
    assert run_loop(model, [1, 3]) == [11.0, 23.0]


def test_a_rising_timestep_starts_a_new_call_on_a_bare_denoiser() -> None:
    model = hooked(MomentumAttention(mode="ema", beta=0.5))
    first = run_loop(model, [4, 0, 0])
    assert first == [4.0, 2.0, 1.0]
    assert run_loop(model, [4, 0, 0]) == first  # timestep 1000 again: the state was reset
    # 900 > 800 starts a new call; an equal timestep (Heun, PNDM repeat one) continues the trajectory
    assert run_loop(model, [4, 0, 0], timesteps=[900.0, 900.0, 800.0]) == first
    # a lower timestep continues the previous trajectory: no reset
    assert run_loop(model, [4], timesteps=[700.0]) == [0.5 * 4 + 0.5 * 1.0]


def test_a_shape_change_starts_a_new_call() -> None:
    model = hooked(MomentumAttention(mode="ema", beta=0.5))
    assert model(constant(4), 900.0).reshape(-1)[0].item() == 4.0
    # same decreasing timestep, different batch size: a new trajectory, so the EMA starts again
    assert model(constant(0, (3, 2, 4)), 800.0).reshape(-1)[0].item() == 0.0


def test_cfg_contexts_keep_separate_state() -> None:
    # Flux-style: "cond" and "uncond" calls alternate inside diffusers' cache_context; no mixing between them.
    model = hooked(MomentumAttention(mode="ema", beta=0.5))
    outputs: dict[str, list[float]] = {"cond": [], "uncond": []}
    sequences = {"cond": [4.0, 0.0, 0.0], "uncond": [8.0, 0.0, 8.0]}
    for step in range(3):
        for name in ("cond", "uncond"):
            with model.cache_context(name):
                value = model(constant(sequences[name][step]), 1000.0 - step).reshape(-1)[0].item()
            outputs[name].append(value)
    assert outputs == {"cond": [4.0, 2.0, 1.0], "uncond": [8.0, 4.0, 6.0]}


def test_batch_items_never_mix() -> None:
    config = MomentumAttention(mode="extrapolate", beta=0.5, lookahead=1.0, window=(0, None))
    rows = torch.randn(6, 2, 2, 4, generator=torch.Generator().manual_seed(0))
    together, alone = hooked(config), [hooked(config), hooked(config)]
    for step in range(6):
        both = together(rows[step], 1000.0 - step)
        separate = torch.cat([alone[i](rows[step, i : i + 1], 1000.0 - step) for i in range(2)])
        assert torch.equal(both, separate)


def test_threads_keep_separate_state() -> None:
    # two generations on one hooked denoiser, forced to interleave step by step, match the sequential results
    config = MomentumAttention(mode="extrapolate", beta=0.5, lookahead=1.0, window=(0, None))
    model = hooked(config)
    sequences = [[0.0, 99.0, 4.0, 99.0, 6.0, 99.0], [10.0, 99.0, 6.0, 99.0, 0.0, 99.0]]
    expected = [run_loop(hooked(config), seq) for seq in sequences]
    barrier = threading.Barrier(2)
    results: list[list[float]] = [[], []]

    def worker(index: int) -> None:
        for step, value in enumerate(sequences[index]):
            barrier.wait()
            results[index].append(model(constant(value), 1000.0 - 100.0 * step).reshape(-1)[0].item())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected


def test_buffers_follow_the_documented_memory_and_are_freed_after_the_window() -> None:
    model = hooked(MomentumAttention(mode="ema", beta=0.5, window=(0, 3)), cross=True)
    tracker = get_momentum_attention_tracker(model)
    run_loop(model, [1, 2])
    assert tracker.num_buffers() == 2  # one EMA buffer per hooked layer (attn, cross)
    skip = hooked(MomentumAttention(mode="extrapolate", window=(0, 4)), cross=True)
    skip_tracker = get_momentum_attention_tracker(skip)
    run_loop(skip, [1, 2, 3, 4])
    assert skip_tracker.num_buffers() == 4  # last computed output + velocity, per layer
    run_loop(skip, [1, 2, 3, 4, 5], timesteps=[900.0, 800.0, 700.0, 600.0, 500.0])  # new call; step 4 ends the window
    assert skip_tracker.num_buffers() == 0


def test_targets_select_self_and_cross() -> None:
    model = ToyDenoiser(cross=True)
    assert apply_momentum_attention(model, MomentumAttention(beta=0.5, targets=("cross",))) == ("cross",)
    remove_momentum_attention(model)
    assert apply_momentum_attention(model, MomentumAttention(beta=0.5)) == ("attn", "cross")
    remove_momentum_attention(model)
    assert apply_momentum_attention(model, MomentumAttention(beta=0.5, layers=("^attn$",))) == ("attn",)


class AddOne(ModelHook):
    """Another diffusers hook on the same module: adds 1 to the output."""

    def post_forward(self, module: torch.nn.Module, output: torch.Tensor) -> torch.Tensor:
        return output + 1.0


def test_coexists_with_other_hooks_on_the_same_module() -> None:
    config = MomentumAttention(mode="ema", beta=0.5)
    inner = ToyDenoiser()
    HookRegistry.check_if_exists_or_initialize(inner.attn).register_hook(AddOne(), "add_one")
    apply_momentum_attention(inner, config)
    assert run_loop(inner, [3, -1]) == [4.0, 2.0]  # EMA of A + 1 = 4, 0
    outer = ToyDenoiser()
    apply_momentum_attention(outer, config)
    HookRegistry.check_if_exists_or_initialize(outer.attn).register_hook(AddOne(), "add_one")
    assert run_loop(outer, [3, -1]) == [4.0, 2.0]  # EMA of A = 3, -1 -> 3, 1; then + 1
    assert remove_momentum_attention(outer)
    assert run_loop(outer, [3, -1]) == [4.0, 0.0]  # the other hook stays
    assert outer.attn._diffusers_hook.get_hook("add_one") is not None
    assert outer.attn._diffusers_hook.get_hook(LAYER_HOOK_NAME) is None


def test_reset_stateful_hooks_clears_the_state() -> None:
    model = hooked(MomentumAttention(mode="ema", beta=0.5))
    run_loop(model, [4, 0])
    model._reset_stateful_cache()
    assert get_momentum_attention_tracker(model).num_buffers() == 0
    assert run_loop(model, [0], timesteps=[10.0]) == [0.0]  # a fresh EMA, although the timestep went down


def test_bad_calls() -> None:
    model = ToyDenoiser()
    with pytest.raises(ValueError, match="`config` must be a MomentumAttention, got dict"):
        apply_momentum_attention(model, {"mode": "ema"})
    with pytest.raises(ValueError, match="`pipe_or_denoiser` must be a diffusers DiffusionPipeline"):
        apply_momentum_attention("unet", MomentumAttention())
    with pytest.raises(
        ValueError, match=r"`targets`=\('cross',\) match no attention module of ToyDenoiser; .*attn \(self\)"
    ):
        apply_momentum_attention(model, MomentumAttention(targets=("cross",)))
    with pytest.raises(ValueError, match="match no attention module"):
        apply_momentum_attention(model, MomentumAttention(layers=("up_blocks",)))
    apply_momentum_attention(model, MomentumAttention())
    with pytest.raises(ValueError, match=r"already installed .* call remove_momentum_attention first"):
        apply_momentum_attention(model, MomentumAttention())
    assert remove_momentum_attention(model) is True
    assert remove_momentum_attention(model) is False
    assert get_momentum_attention_tracker(model) is None
    with pytest.raises(ValueError, match="match no attention module of Linear; its attention modules are: none"):
        apply_momentum_attention(torch.nn.Linear(2, 2), MomentumAttention())


def test_attention_called_outside_a_denoiser_forward_is_left_alone() -> None:
    model = hooked(MomentumAttention(mode="extrapolate", window=(0, None)))
    x = constant(3.0)
    assert torch.equal(model.attn(x), x)
