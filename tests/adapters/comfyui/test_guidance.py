"""APG (Sadat et al., ICLR 2025, Algorithm 1) and HiGS as ComfyUI post-CFG patches: on random tensors against the
algorithm written out here, and through ComfyUI's own CFGGuider on a tiny SD1.5-layout model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch

from inertia.adapters.comfyui import APGNode, GuidancePatch, HiGSNode, node_mappings
from inertia.core.guidance.config import APG, HiGS
from inertia.k_diffusion import SAMPLERS
from tests.adapters.comfyui.host import FOLDER, SKIP, conditioning, tiny_sd15

CLASSES, _ = node_mappings(SAMPLERS)
APG_INPUTS = {"eta": 0.0, "momentum": -0.5, "norm_threshold": 5.0, "start": 0.0, "stop": 1.0, "sigma_low": 0.0,
              "sigma_high": 0.0}  # fmt: skip
HIGS_INPUTS = {"weight": 1.0, "ema": 0.75, "t_min": 0.4, "t_max": 1.0, "eta": 0.0, "cutoff": 0.05,
               "sharpness": 50.0, "time_mode": "sigma_fraction"}  # fmt: skip


def algorithm_1(conds: list[torch.Tensor], unconds: list[torch.Tensor], w: float, eta: float, beta: float, r: float):
    """Sadat et al., Algorithm 1, step by step in float64: Δ = D_c − D_u; M ← Δ + βM; Δ ← M·min(1, r/‖M‖);
    Δ∥ = (⟨Δ, D_c⟩/‖D_c‖²)D_c, Δ⊥ = Δ − Δ∥; D = D_c + (w − 1)(Δ⊥ + ηΔ∥). Norms per sample."""
    out, m = [], torch.zeros_like(conds[0], dtype=torch.float64)
    for c, u in zip(conds, unconds, strict=True):
        c, u = c.double(), u.double()
        m = (c - u) + beta * m
        norm = m.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = m * torch.clamp(r / norm, max=1.0)
        parallel = (delta * c).flatten(1).sum(1).view(-1, 1, 1, 1) / (c * c).flatten(1).sum(1).view(-1, 1, 1, 1) * c
        out.append(c + (w - 1) * (delta - parallel + eta * parallel))
    return out


def post_cfg_args(cond: torch.Tensor, uncond: torch.Tensor, sigma: float, levels: torch.Tensor, w: float) -> dict:
    """The arguments ComfyUI's cfg_function hands a post-CFG function (those our patch reads)."""
    return {
        "denoised": uncond + (cond - uncond) * w,
        "cond_denoised": cond,
        "uncond_denoised": uncond,
        "cond_scale": w,
        "sigma": torch.full((cond.shape[0],), sigma),
        "uncond": [{}],
        "model": None,
        "model_options": {"transformer_options": {"sample_sigmas": levels}},
    }


def test_apg_patch_is_algorithm_1_on_random_tensors() -> None:
    generator = torch.Generator().manual_seed(0)
    levels = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.3, 0.0])
    conds = [torch.randn(3, 4, 8, 8, generator=generator, dtype=torch.float64) for _ in range(5)]
    unconds = [c + 0.5 * torch.randn(3, 4, 8, 8, generator=generator, dtype=torch.float64) for c in conds]
    expected = algorithm_1(conds, unconds, w=7.5, eta=0.3, beta=-0.5, r=5.0)
    patch = GuidancePatch(APGNode().config(**{**APG_INPUTS, "eta": 0.3}), None)
    for _ in range(2):  # the reset before each run (ComfyUI's on_pre_run) makes the second run the same
        patch.reset()
        for i, (c, u) in enumerate(zip(conds, unconds, strict=True)):
            got = patch(post_cfg_args(c, u, float(levels[i]), levels, 7.5))
            torch.testing.assert_close(got, expected[i], rtol=1e-12, atol=1e-12)
    # batch items are independent: item 1 alone gives the same output as inside the batch
    patch.reset()
    for i, (c, u) in enumerate(zip(conds, unconds, strict=True)):
        got = patch(post_cfg_args(c[1:2], u[1:2], float(levels[i]), levels, 7.5))
        torch.testing.assert_close(got, expected[i][1:2], rtol=1e-12, atol=1e-12)


def test_apg_interval_is_comfyuis_cfg_outside_it() -> None:
    generator = torch.Generator().manual_seed(1)
    levels = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.3, 0.0])
    patch = GuidancePatch(APGNode().config(**{**APG_INPUTS, "start": 0.4, "stop": 0.8}), None)  # steps 2, 3 of 5
    for i in range(5):
        c, u = (torch.randn(2, 4, 8, 8, generator=generator) for _ in range(2))
        args = post_cfg_args(c, u, float(levels[i]), levels, 5.0)
        assert (patch(args) is args["denoised"]) == (i not in (2, 3))


def test_neutral_settings_return_comfyuis_result_itself() -> None:
    c, u = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    args = post_cfg_args(c, u, 3.0, torch.tensor([3.0, 0.0]), 5.0)
    neutral = APGNode().config(**{**APG_INPUTS, "eta": 1.0, "momentum": 0.0, "norm_threshold": 0.0})
    assert neutral.is_identity and GuidancePatch(neutral, HiGS(weight=0.0))(args) is args["denoised"]


@SKIP
def test_the_folder_loads_through_comfyuis_load_custom_node() -> None:
    import nodes

    assert asyncio.run(nodes.load_custom_node(str(FOLDER)))
    for node_id, cls in CLASSES.items():
        loaded = nodes.NODE_CLASS_MAPPINGS[node_id]
        assert loaded.INPUT_TYPES() == cls.INPUT_TYPES() and loaded.RETURN_TYPES == cls.RETURN_TYPES
    assert nodes.NODE_DISPLAY_NAME_MAPPINGS["InertiaAPG"] == "APG, Algorithm 1 (inertia)"


def _sample(model: Any, sampler_id: str = "InertiaHBDPMPP2M", cfg: float = 6.0, steps: int = 6) -> torch.Tensor:
    """ComfyUI's SamplerCustom path: CFGGuider.sample with our SAMPLER node, on a tiny 8x8 latent."""
    import comfy.samplers

    options = {"beta": 0.8} if "DPMPP" in sampler_id else {"order": 4, "beta": 0.8}
    (sampler,) = CLASSES[sampler_id]().get_sampler(**options)
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(conditioning(1), conditioning(2))
    guider.set_cfg(cfg)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras", steps)
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    return guider.sample(noise, torch.zeros_like(noise), sampler, sigmas, disable_pbar=True, seed=3)


@pytest.fixture(scope="module")
def tiny() -> Any:
    return tiny_sd15()


@SKIP
def test_apg_through_comfyuis_guider_is_algorithm_1(tiny: Any) -> None:
    seen: dict[str, list[torch.Tensor]] = {"cond": [], "uncond": [], "out": []}

    def before(args: dict) -> torch.Tensor:
        seen["cond"].append(args["cond_denoised"].clone())
        seen["uncond"].append(args["uncond_denoised"].clone())
        return args["denoised"]

    def after(args: dict) -> torch.Tensor:
        seen["out"].append(args["denoised"].clone())
        return args["denoised"]

    base = tiny.clone()
    base.set_model_sampler_post_cfg_function(before)
    (model,) = APGNode().patch(base, **APG_INPUTS)
    model.set_model_sampler_post_cfg_function(after)
    first = _sample(model)
    expected = algorithm_1(seen["cond"], seen["uncond"], w=6.0, eta=0.0, beta=-0.5, r=5.0)
    assert len(seen["out"]) == 6
    for got, want in zip(seen["out"], expected, strict=True):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)  # float32 model outputs
    assert torch.equal(_sample(model), first)  # the state is reset for every run
    assert not torch.equal(_sample(tiny), first)


@SKIP
def test_neutral_patches_reproduce_comfyui_bit_for_bit(tiny: Any) -> None:
    neutral = {**APG_INPUTS, "eta": 1.0, "momentum": 0.0, "norm_threshold": 0.0}
    (model,) = APGNode().patch(tiny, **neutral)
    (model,) = HiGSNode().patch(model, **{**HIGS_INPUTS, "weight": 0.0})
    assert torch.equal(_sample(model), _sample(tiny))


@SKIP
def test_apg_then_higs_chain_into_one_patch(tiny: Any) -> None:
    (apg,) = APGNode().patch(tiny, **APG_INPUTS)
    (both,) = HiGSNode().patch(apg, **HIGS_INPUTS)
    patches = [f for f in both.model_options["sampler_post_cfg_function"] if isinstance(f, GuidancePatch)]
    assert len(patches) == 1 and isinstance(patches[0].apg, APG) and isinstance(patches[0].higs, HiGS)
    assert "sampler_post_cfg_function" not in tiny.model_options  # the input model is left as it was
    out = _sample(both, "InertiaGHVBPLMS")
    assert torch.isfinite(out).all() and not torch.equal(out, _sample(apg, "InertiaGHVBPLMS"))
