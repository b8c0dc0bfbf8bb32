"""Per-generation state: reset rules, read-only evaluations, and the CFG/APG -> HiGS chain."""

import torch

from inertia.core.guidance.apg import apg_guidance, cfg_guidance
from inertia.core.guidance.higs import higs_update
from inertia.core.guidance.state import GuidanceState, guide
from inertia.guidance import APG, CFG, HiGS

KEY = ((2, 4, 8, 8), torch.float32, torch.device("cpu"))


def test_observe_commits_once_per_timestep():
    state = GuidanceState()
    assert state.observe(999.0, KEY) is True
    assert state.observe(999.0, KEY) is False  # repeat: read-only
    assert state.observe(500.0, KEY, first_order=False) is False  # Heun corrector: read-only
    assert state.observe(500.0, KEY) is True  # Heun's next predictor at the same timestep commits
    assert state.steps == 2 and state.last_timestep == 500.0


def test_observe_resets_on_rising_timestep_batch_change_and_new_marker():
    state = GuidanceState()
    marker = torch.arange(3)
    state.observe(999.0, KEY, marker)
    state.observe(500.0, KEY, marker)
    state.momentum = state.history = torch.ones(1)
    state.cache["x"] = 1
    assert state.observe(999.0, KEY, marker) and state.momentum is None and state.steps == 1 and not state.cache
    state.momentum = torch.ones(1)
    other = ((1, 4, 8, 8), torch.float32, torch.device("cpu"))
    assert state.observe(100.0, other, marker) and state.momentum is None
    state.momentum = torch.ones(1)
    assert state.observe(50.0, other, torch.arange(3)) and state.momentum is None  # a new set_timesteps
    state.momentum = torch.ones(1)
    assert state.observe(25.0, other, None) and state.momentum is not None  # no marker: no reset from it


def test_guide_without_methods_is_the_pipeline_cfg():
    cond, uncond = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    for combiner in (None, CFG(), APG(eta=1.0, momentum=0.0, norm_threshold=float("inf"))):
        out = guide(GuidanceState(), combiner, None, cond, uncond, 6.0, commit=True)
        assert torch.equal(out, cfg_guidance(cond, uncond, 6.0))
    assert guide(GuidanceState(), APG(), None, cond, None, 6.0, commit=True) is cond  # no uncond: no guidance


def test_guide_chains_apg_then_higs_and_commits_only_when_asked():
    generator = torch.Generator().manual_seed(0)
    apg, higs = APG(space="model_output", norm_threshold=3.0), HiGS(weight=1.0, space="model_output", cutoff=None)
    state = GuidanceState()
    momentum = history = None
    for step, t in enumerate((1.0, 0.8, 0.6)):
        cond, uncond = torch.randn(1, 2, 4, 4, generator=generator), torch.randn(1, 2, 4, 4, generator=generator)
        times = torch.tensor([t])
        out = guide(state, apg, higs, cond, uncond, 5.0, commit=True, t=times)
        pred, momentum = apg_guidance(cond, uncond, 5.0, momentum, eta=0.0, momentum=-0.5, norm_threshold=3.0)
        expected, history = higs_update(
            pred, history, times, weight=1.0, ema=0.75, t_min=0.4, t_max=1.0, eta=0.0, cutoff=None, sharpness=50.0
        )
        assert torch.allclose(out, expected, atol=1e-6), step
        assert torch.equal(state.momentum, momentum) and torch.allclose(state.history, history)
    before = (state.momentum, state.history)
    guide(state, apg, higs, cond, uncond, 5.0, commit=False, t=torch.tensor([0.5]))
    assert state.momentum is before[0] and state.history is before[1]


def test_guide_keeps_dtype_and_converts_spaces():
    cond, uncond = torch.randn(1, 2, 4, 4).half(), torch.randn(1, 2, 4, 4).half()
    calls = []

    def to_x0(v):
        calls.append(("to", v.dtype))
        return v * 2

    def from_x0(v):
        calls.append(("from", v.dtype))
        return v / 2

    out = guide(GuidanceState(), APG(), None, cond, uncond, 4.0, commit=True, to_x0=to_x0, from_x0=from_x0)
    assert out.dtype == torch.float16
    assert calls == [("to", torch.float32), ("to", torch.float32), ("from", torch.float32)]
