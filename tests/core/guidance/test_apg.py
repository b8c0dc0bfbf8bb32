"""APG core: hand-computed projection / clipping / momentum cases, CFG identity, diffusers parity."""

import math

import pytest
import torch

from inertia.core.guidance.apg import apg_guidance, apg_update, cfg_guidance, clip_norm, project

INF = float("inf")


def test_projection_hand_case():
    delta = torch.tensor([[3.0, 4.0]])
    onto = torch.tensor([[2.0, 0.0]])
    parallel, orthogonal = project(delta, onto)
    assert torch.equal(parallel, torch.tensor([[3.0, 0.0]]))
    assert torch.equal(orthogonal, torch.tensor([[0.0, 4.0]]))


def test_projection_is_per_sample_and_orthogonal():
    torch.manual_seed(0)
    delta, onto = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    parallel, orthogonal = project(delta, onto)
    assert torch.allclose(parallel + orthogonal, delta, atol=1e-6)
    dots = (orthogonal.double() * onto.double()).flatten(1).sum(1)
    assert dots.abs().max() < 1e-5
    # sample 1 alone gives the same split: nothing mixes across the batch
    p1, o1 = project(delta[1:2], onto[1:2])
    assert torch.equal(p1, parallel[1:2]) and torch.equal(o1, orthogonal[1:2])


def test_projection_onto_zero_is_zero():
    parallel, orthogonal = project(torch.ones(1, 3), torch.zeros(1, 3))
    assert torch.equal(parallel, torch.zeros(1, 3)) and torch.equal(orthogonal, torch.ones(1, 3))


def test_clip_norm_hand_case():
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4]])  # norms 5 and 0.5
    clipped = clip_norm(x, 1.0)
    assert torch.allclose(clipped, torch.tensor([[0.6, 0.8], [0.3, 0.4]]))
    assert torch.equal(clipped[1], x[1])  # below the threshold: untouched


def test_momentum_is_a_running_sum():
    """M_k = Δ_k + β M_{k-1}: with β = -0.5 and Δ = 1, 2, 3 -> 1, 1.5, 2.25 (no (1 - β) factor)."""
    cond = torch.ones(1, 2)
    buffer = None
    seen = []
    for value in (1.0, 2.0, 3.0):
        update, buffer = apg_update(
            torch.full((1, 2), value), cond, buffer, eta=1.0, momentum=-0.5, norm_threshold=INF
        )
        seen.append(update[0, 0].item())
    assert seen == [1.0, 1.5, 2.25]


def test_apg_full_hand_case():
    """Δ = (3, 4), r = 2.5 -> (1.5, 2); onto D_c = (1, 0): Δ∥ = (1.5, 0), Δ⊥ = (0, 2); η = 0.5, w = 3."""
    cond = torch.tensor([[1.0, 0.0]])
    uncond = cond - torch.tensor([[3.0, 4.0]])
    out, buffer = apg_guidance(cond, uncond, 3.0, None, eta=0.5, momentum=0.0, norm_threshold=2.5)
    expected = cond + 2.0 * torch.tensor([[0.75, 2.0]])  # D_c + (w - 1)(Δ⊥ + ηΔ∥)
    assert torch.allclose(out, expected, atol=1e-6)
    assert buffer is None


def test_momentum_before_clipping_before_projection():
    """Paper code order: the clipped quantity is the momentum sum, and the buffer stores the unclipped sum."""
    cond = torch.tensor([[0.0, 1.0]])
    first, buffer = apg_update(torch.tensor([[4.0, 0.0]]), cond, None, eta=1.0, momentum=0.5, norm_threshold=1.0)
    assert torch.allclose(first, torch.tensor([[1.0, 0.0]]))
    assert torch.equal(buffer, torch.tensor([[4.0, 0.0]]))
    second, buffer = apg_update(torch.tensor([[0.0, 0.0]]), cond, buffer, eta=1.0, momentum=0.5, norm_threshold=1.0)
    assert torch.equal(buffer, torch.tensor([[2.0, 0.0]]))
    assert torch.allclose(second, torch.tensor([[1.0, 0.0]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_neutral_apg_is_cfg_bit_for_bit(dtype):
    torch.manual_seed(1)
    cond, uncond = torch.randn(2, 4, 8, 8).to(dtype), torch.randn(2, 4, 8, 8).to(dtype)
    for scale in (1.0, 3.0, 7.5, 25.0):
        out, buffer = apg_guidance(cond, uncond, scale, None, eta=1.0, momentum=0.0, norm_threshold=INF)
        assert torch.equal(out, cfg_guidance(cond, uncond, scale))
        assert buffer is None


def test_eta_one_without_momentum_differs_from_cfg_only_by_clipping():
    torch.manual_seed(2)
    cond, uncond = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    out, _ = apg_guidance(cond, uncond, 5.0, None, eta=1.0, momentum=0.0, norm_threshold=1.0)
    delta = cond - uncond
    expected = cond + 4.0 * delta / torch.linalg.vector_norm(delta)
    assert torch.allclose(out, expected, atol=1e-5)


def test_scale_one_returns_conditional():
    torch.manual_seed(3)
    cond, uncond = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    out, _ = apg_guidance(cond, uncond, 1.0, None, eta=0.0, momentum=-0.5, norm_threshold=2.0)
    assert torch.allclose(out, cond, atol=1e-6)


def test_parity_with_diffusers_original_formulation_over_20_steps():
    """Model-output-space APG equals diffusers' AdaptiveProjectedGuidance(use_original_formulation=True, w - 1)."""
    from diffusers.guiders import AdaptiveProjectedGuidance

    from inertia.guidance import APGGuider

    w, eta, beta, r = 7.5, 0.25, -0.5, 6.0
    theirs = AdaptiveProjectedGuidance(
        guidance_scale=w - 1,
        adaptive_projected_guidance_momentum=beta,
        adaptive_projected_guidance_rescale=r,
        eta=eta,
        use_original_formulation=True,
    )
    ours = APGGuider(guidance_scale=w, eta=eta, momentum=beta, norm_threshold=r, space="model_output")
    generator = torch.Generator().manual_seed(4)
    timesteps = torch.linspace(999, 0, 20).round()
    buffer = None
    for step, t in enumerate(timesteps):
        cond = torch.randn(2, 4, 16, 16, generator=generator) * 2
        uncond = cond + 0.7 * torch.randn(2, 4, 16, 16, generator=generator)
        for guider in (theirs, ours):
            guider.set_state(step=step, num_inference_steps=20, timestep=t)
            guider.prepare_inputs({})
        expected = theirs.forward(cond, uncond).pred
        got = ours.forward(cond, uncond).pred
        assert (got - expected).abs().max() <= 1e-6 * max(1.0, expected.abs().max().item()), step
        # and the pure core agrees with both
        core, buffer = apg_guidance(cond, uncond, w, buffer, eta=eta, momentum=beta, norm_threshold=r)
        assert torch.allclose(core, got, atol=1e-6, rtol=0)
    assert math.isclose(ours.config.guidance_scale, w)
