"""`benchmarks.peers.guidance`: every peer rule equals diffusers' guider class, through our state/step path."""

import math

import pytest
import torch
from diffusers.guiders import (
    AdaptiveProjectedGuidance,
    ClassifierFreeGuidance,
    ClassifierFreeZeroStarGuidance,
    FrequencyDecoupledGuidance,
    MagnitudeAwareGuidance,
    TangentialClassifierFreeGuidance,
)

from benchmarks.peers.guidance import (
    PEERS,
    CFGPeer,
    CFGZeroStar,
    DiffusersAPG,
    FrequencyDecoupled,
    MagnitudeAware,
    TangentialCFG,
    cfg,
    from_pyramid,
    laplacian_pyramid,
)
from inertia.core.guidance.state import GuidanceState, guide

SCALES = (1.5, 7.5, 25.0)
SHAPES = ((2, 4, 8, 8), (3, 3, 16, 16))
STEPS = 5


def predictions(shape, steps=STEPS, seed=0, dtype=torch.float64):
    """Per step a (cond, uncond) pair of correlated random predictions, as a denoiser's two branches are."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(steps):
        base = torch.randn(shape, generator=g, dtype=dtype)
        pairs.append((base + 0.3 * torch.randn(shape, generator=g, dtype=dtype), base))
    return pairs


def run_diffusers(guider, pairs):
    """The guider's public modular-pipeline API, step by step: set_state, prepare_inputs, noise_pred, __call__."""
    outs = []
    for i, (cond, uncond) in enumerate(pairs):
        guider.set_state(step=i, num_inference_steps=len(pairs), timestep=torch.tensor(999 - 100 * i))
        batches = guider.prepare_inputs({})
        for batch, pred in zip(batches, (cond, uncond)):
            batch.noise_pred = pred
        outs.append(guider(batches).pred)
    return outs


def run_ours(peer, pairs, scale):
    """Our path: GuidanceState.observe (one commit per step) and guide() with the peer as combiner."""
    state, outs = GuidanceState(), []
    for i, (cond, uncond) in enumerate(pairs):
        commit = state.observe(999.0 - 100 * i, key=(tuple(cond.shape), cond.dtype))
        outs.append(guide(state, peer, None, cond, uncond, scale, commit=commit))
    return outs


def assert_same(ours, theirs, atol=1e-6):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-6, atol=atol), f"step {i}: max |diff| {(a - b).abs().max().item():.3g}"


# (our combiner, diffusers' guider) at the guider's defaults, then at other settings
CASES = {
    "cfg": lambda w: (CFGPeer(), ClassifierFreeGuidance(guidance_scale=w)),
    "cfg rescale 0.7": lambda w: (CFGPeer(guidance_rescale=0.7), ClassifierFreeGuidance(w, guidance_rescale=0.7)),
    "cfg-zero*": lambda w: (CFGZeroStar(), ClassifierFreeZeroStarGuidance(guidance_scale=w)),
    "cfg-zero* 2 zero steps": lambda w: (
        CFGZeroStar(zero_init_steps=2, guidance_rescale=0.5),
        ClassifierFreeZeroStarGuidance(guidance_scale=w, zero_init_steps=2, guidance_rescale=0.5),
    ),
    "apg defaults": lambda w: (DiffusersAPG(), AdaptiveProjectedGuidance(guidance_scale=w)),
    "apg momentum": lambda w: (
        DiffusersAPG(momentum=-0.5, norm_threshold=2.0, eta=0.0),
        AdaptiveProjectedGuidance(
            guidance_scale=w,
            adaptive_projected_guidance_momentum=-0.5,
            adaptive_projected_guidance_rescale=2.0,
            eta=0.0,
        ),
    ),
    "apg norm dims": lambda w: (
        DiffusersAPG(momentum=0.3, norm_threshold=1.0, eta=0.25, norm_dims=(2, 3), guidance_rescale=0.7),
        AdaptiveProjectedGuidance(
            guidance_scale=w,
            adaptive_projected_guidance_momentum=0.3,
            adaptive_projected_guidance_rescale=1.0,
            adaptive_projected_guidance_norm_dim=(2, 3),
            eta=0.25,
            guidance_rescale=0.7,
        ),
    ),
    "tangential": lambda w: (TangentialCFG(), TangentialClassifierFreeGuidance(guidance_scale=w)),
    "tangential rescale": lambda w: (
        TangentialCFG(guidance_rescale=0.7),
        TangentialClassifierFreeGuidance(guidance_scale=w, guidance_rescale=0.7),
    ),
    "fdg": lambda w: (FrequencyDecoupled(), FrequencyDecoupledGuidance(guidance_scales=[w, w / 2])),
    "fdg 3 levels": lambda w: (
        FrequencyDecoupled(scale_factors=(1.0, 0.6, 0.3), parallel_weights=(0.0, 0.5, 1.0), guidance_rescale=0.7),
        FrequencyDecoupledGuidance(
            guidance_scales=[w, 0.6 * w, 0.3 * w], parallel_weights=[0.0, 0.5, 1.0], guidance_rescale=0.7
        ),
    ),
    "magnitude-aware": lambda w: (MagnitudeAware(), MagnitudeAwareGuidance(guidance_scale=w)),
    "magnitude-aware alpha 2": lambda w: (
        MagnitudeAware(alpha=2.0, guidance_rescale=0.7),
        MagnitudeAwareGuidance(guidance_scale=w, alpha=2.0, guidance_rescale=0.7),
    ),
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_equals_diffusers_guider(case: str, scale: float, shape: tuple[int, ...]) -> None:
    ours, theirs = CASES[case](scale)
    pairs = predictions(shape, seed=sum(map(ord, case)) + int(10 * scale) + shape[0])
    if case.startswith("magnitude"):  # diffusers' rule fails on 4-D inputs (torch.norm over 3 dims): give it tokens
        pairs = [(c.flatten(2).transpose(1, 2), u.flatten(2).transpose(1, 2)) for c, u in pairs]
    ours_out, theirs_out = run_ours(ours, pairs, scale), run_diffusers(theirs, pairs)
    if case == "cfg-zero* 2 zero steps":  # diffusers rescales its zero-init zeros to NaN (0/0); ours stay zero
        assert all(not o.any() and t.isnan().all() for o, t in zip(ours_out[:2], theirs_out[:2]))
        ours_out, theirs_out = ours_out[2:], theirs_out[2:]
    if case.startswith("tangential"):  # diffusers runs TCFG's SVD in float32 even on float64 inputs
        assert_same(ours_out, theirs_out, atol=1e-5 * scale)
    else:
        assert_same(ours_out, theirs_out)


@pytest.mark.parametrize("case", ["apg momentum", "fdg", "cfg-zero*", "magnitude-aware"])
def test_rule_equals_diffusers_guider_in_float32(case: str) -> None:
    ours, theirs = CASES[case](7.5)
    pairs = predictions((2, 3, 16, 16), dtype=torch.float32)
    if case.startswith("magnitude"):
        pairs = [(c.flatten(2), u.flatten(2)) for c, u in pairs]
    ours_out, theirs_out = run_ours(ours, pairs, 7.5), run_diffusers(theirs, pairs)
    for a, b in zip(ours_out, theirs_out):
        assert a.dtype == torch.float32 and torch.allclose(a, b, rtol=1e-5, atol=2e-5)


def test_stateful_rules_keep_state_across_steps_and_reset_per_run() -> None:
    pairs = predictions((2, 4, 8, 8))
    apg = DiffusersAPG(momentum=-0.5, norm_threshold=2.0, eta=0.0)
    # momentum matters: from step 1 on, the result differs from a fresh buffer at every step
    fresh = [guide(GuidanceState(), apg, None, c, u, 7.5, commit=True) for c, u in pairs]
    chained = run_ours(apg, pairs, 7.5)
    assert torch.equal(fresh[0], chained[0]) and not torch.allclose(fresh[2], chained[2])
    # a second run (the timestep rises again) starts from an empty buffer: the same outputs again
    state = GuidanceState()
    for _ in range(2):
        outs = [guide(state, apg, None, c, u, 7.5, commit=state.observe(999.0 - 100 * i, key=(1,)))
                for i, (c, u) in enumerate(pairs)]  # fmt: skip
        assert all(torch.equal(a, b) for a, b in zip(outs, chained))
    # CFG-Zero*: zero on the first zero_init_steps steps only, also on a read-only repeat of that step
    zero = CFGZeroStar(zero_init_steps=2)
    state = GuidanceState()
    outs = []
    for i, (c, u) in enumerate(pairs[:3]):
        outs.append(guide(state, zero, None, c, u, 7.5, commit=state.observe(999.0 - 100 * i, key=(1,))))
    repeat = guide(state, zero, None, *pairs[2], 7.5, commit=state.observe(799.0, key=(1,)))
    assert not outs[0].any() and not outs[1].any() and outs[2].abs().sum() > 0 and torch.equal(repeat, outs[2])


def test_neutral_settings_reduce_to_cfg() -> None:
    cond, uncond = predictions((2, 3, 16, 16), steps=1)[0]
    expected = cfg(cond, uncond, 7.5)
    for peer in (CFGPeer(), DiffusersAPG(norm_threshold=0.0), MagnitudeAware(alpha=0.0),
                 FrequencyDecoupled(scale_factors=(1.0, 1.0))):  # fmt: skip
        pred, _ = peer.combine(cond, uncond, 7.5, step=3, memory=None)
        assert torch.allclose(pred, expected, atol=1e-10), type(peer).__name__
    pred, _ = CFGZeroStar(zero_init_steps=0).combine(cond, cond, 7.5, step=0, memory=None)  # s* = 1 when D_u = D_c
    assert torch.allclose(pred, cond)


def test_pyramid_round_trip_and_bands() -> None:
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    bands = laplacian_pyramid(x, 3)
    assert [tuple(b.shape[-2:]) for b in bands] == [(32, 32), (16, 16), (8, 8)]
    assert torch.allclose(from_pyramid(bands), x, atol=1e-12)


def test_diffusers_magnitude_aware_guider_fails_on_image_latents() -> None:
    """Why our benchmark runs MAMBO-G's rule, not diffusers' guider, on (B, C, H, W) predictions (diffusers 0.42.1)."""
    cond, uncond = predictions((2, 3, 8, 8), steps=1)[0]
    with pytest.raises(RuntimeError, match="dim must be a 2-tuple"):
        run_diffusers(MagnitudeAwareGuidance(), [(cond, uncond)])
    assert MagnitudeAware().combine(cond, uncond, 10.0, step=0, memory=None)[0].isfinite().all()


def test_peer_table_holds_the_issue_rows() -> None:
    assert list(PEERS) == ["CFG + rescale 0.7", "CFG-Zero*", "CFG-Zero*, no zero-init", "APG (diffusers defaults)",
                           "tangential CFG", "frequency-decoupled", "magnitude-aware"]  # fmt: skip
    assert all(not peer.is_identity and peer.space == "model_output" for peer in PEERS.values())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CFGPeer(guidance_rescale=1.5), r"`guidance_rescale` must be a real number in \[0.0, 1.0\], got 1.5"),
        (lambda: CFGPeer(space="latent"), r"`space` must be one of .*got 'latent'"),
        (lambda: CFGZeroStar(zero_init_steps=-1), r"`zero_init_steps` must be an int >= 0, got -1"),
        (lambda: CFGZeroStar(zero_init_steps=1.5), r"`zero_init_steps` must be an int >= 0, got 1.5"),
        (lambda: DiffusersAPG(eta=2.0), r"`eta` must be a real number in \[0.0, 1.0\], got 2.0"),
        (lambda: DiffusersAPG(norm_threshold=-1.0), r"`norm_threshold` must be a real number in \[0.0, inf\]"),
        (lambda: DiffusersAPG(momentum=math.nan), r"`momentum`"),
        (lambda: DiffusersAPG(norm_dims=[1]), r"`norm_dims` must be None or a non-empty tuple"),
        (lambda: FrequencyDecoupled(scale_factors=()), r"`scale_factors` must be a tuple of 1-6 positive numbers"),
        (lambda: FrequencyDecoupled(scale_factors=(1.0, -0.5)), r"`scale_factors` must be a real number"),
        (lambda: FrequencyDecoupled(parallel_weights=(0.5,)), r"`parallel_weights` must be None or a tuple of 2"),
        (lambda: MagnitudeAware(alpha=-1.0), r"`alpha` must be a real number in \[0.0, 1000000.0\], got -1.0"),
    ],
)
def test_bad_parameters_name_the_parameter(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_shapes_fail_before_any_work() -> None:
    cond = torch.randn(1, 3, 12, 10)
    with pytest.raises(ValueError, match=r"divisible by 2 and at least 3, got 12x10|divisible by 4"):
        FrequencyDecoupled(scale_factors=(1.0, 0.5, 0.25)).combine(cond, cond, 7.5, step=0, memory=None)
    with pytest.raises(ValueError, match=r"needs \(B, C, H, W\) predictions"):
        FrequencyDecoupled().combine(torch.randn(2, 8), torch.randn(2, 8), 7.5, step=0, memory=None)
    with pytest.raises(ValueError, match="norm_dims"):
        DiffusersAPG(norm_dims=(4,)).combine(cond, cond, 7.5, step=0, memory=None)
