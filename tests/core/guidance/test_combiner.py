"""Custom combiners (the duck-typed `Combiner`): accepted by apply_guidance, run by guide() with step and memory."""

import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel

from inertia.core.guidance.config import check_methods, is_combiner
from inertia.core.guidance.state import GuidanceState, guide
from inertia.guidance import APG, HiGS, apply_guidance, remove_guidance
from inertia.pipelines import DigitsPipeline


class Recorder:
    """CFG on ``space`` that records each call's step and memory, and counts its steps in the memory."""

    is_identity = False

    def __init__(self, space: str = "model_output") -> None:
        self.space, self.calls = space, []

    def combine(self, cond, uncond, scale, *, step, memory):
        self.calls.append((step, None if memory is None else int(memory)))
        return uncond + scale * (cond - uncond), torch.tensor(0 if memory is None else int(memory) + 1)


class CondOnly(Recorder):
    def combine(self, cond, uncond, scale, *, step, memory):
        return cond, memory


def test_check_methods_takes_one_custom_combiner() -> None:
    custom, higs = Recorder(), HiGS()
    assert is_combiner(custom) and not is_combiner(APG()) and not is_combiner(higs)
    assert check_methods((higs, custom)) == (custom, higs)
    with pytest.raises(ValueError, match="one of CFG / APG / a custom combiner"):
        check_methods((APG(), custom))
    with pytest.raises(ValueError, match=r"`methods\[0\].space` must be one of 'x0', 'model_output', got 'pixels'"):
        check_methods((Recorder(space="pixels"),))
    with pytest.raises(TypeError, match=r"`methods\[0\]`.*custom combiner"):
        check_methods((object(),))


def test_guide_passes_step_and_commits_memory_only_when_allowed() -> None:
    cond, uncond = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    custom, state = Recorder(), GuidanceState()
    for t in (999.0, 999.0, 500.0, 100.0):  # the repeat of 999 is read-only
        out = guide(state, custom, None, cond, uncond, 7.5, commit=state.observe(t, key=(1,)))
        assert torch.equal(out, uncond + 7.5 * (cond - uncond))
    assert custom.calls == [(0, None), (0, 0), (1, 0), (2, 1)]
    assert int(state.momentum) == 2
    assert guide(GuidanceState(), custom, None, cond, None, 7.5, commit=True) is not None  # no uncond: not called
    assert len(custom.calls) == 4


def tiny_pipe() -> DigitsPipeline:
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4, num_class_embeds=11,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)  # fmt: skip
    pipe = DigitsPipeline(unet, DDIMScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, scale=7.5):
    generator = torch.Generator().manual_seed(1)
    return pipe([1, 2], num_inference_steps=4, guidance_scale=scale, generator=generator, output_type="pt").images


def test_apply_guidance_runs_a_custom_combiner_through_the_hook() -> None:
    pipe = tiny_pipe()
    stock = run(pipe)
    for space in ("model_output", "x0"):  # CFG is linear: the same in either space
        custom = Recorder(space)
        assert torch.allclose(run(apply_guidance(pipe, custom)), stock, atol=1e-5)
        assert [step for step, _ in custom.calls] == [0, 1, 2, 3]
        assert [memory for _, memory in custom.calls] == [None, 0, 1, 2]  # a fresh run: memory starts empty
    unguided = run(apply_guidance(pipe, CondOnly()))  # the rule really replaces the CFG line: no guidance at all
    assert torch.allclose(unguided, run(remove_guidance(pipe), scale=1.0), atol=1e-5)
    assert not torch.allclose(unguided, stock, atol=1e-3)
