"""APG / HiGS on the 2026 pipelines: `apply_guidance` on the classic ones, our guiders on the modular ones.

Each cell of the guidance columns in docs/hosts/pipelines.md names one of these tests."""

from __future__ import annotations

import contextlib

import pytest
import torch
from diffusers.guiders import ClassifierFreeGuidance, LTX2Guidance
from tiny_pipelines_flux2_qwen_wan_zimage_ltx2 import (
    cached_modular,
    cached_pipeline,
    make_call_kwargs,
    make_components,
    make_modular_kwargs,
    run,
    run_modular,
)

from inertia.adapters.diffusers.guidance_layouts import Layout, unpack
from inertia.guidance import APG, APGGuider, GuidanceLayoutError, HiGS, HiGSGuider, apply_guidance, remove_guidance

SCALE = 4.0
CFG_CLASSIC = ("wan", "zimage", "ltx2")  # classic pipelines whose CFG the hook replaces
# APG that equals CFG but takes the hook's full path (x0 conversion, layout, packing): a clip that never triggers.
CFG_VIA_APG = APG(eta=1.0, momentum=0.0, norm_threshold=1e9)
HIGS = HiGS(weight=1.0, t_min=0.0)


@contextlib.contextmanager
def guided(kind: str, *methods):
    pipe = cached_pipeline(kind)
    apply_guidance(pipe, *methods)
    try:
        yield pipe
    finally:
        remove_guidance(pipe)


def _run(kind: str, *methods, cfg: bool = True) -> torch.Tensor:
    with guided(kind, *methods) as pipe:
        return run(pipe, **make_call_kwargs(kind, guidance_scale=SCALE, cfg=cfg))


def _stock(kind: str, cfg: bool = True) -> torch.Tensor:
    return run(cached_pipeline(kind), **make_call_kwargs(kind, guidance_scale=SCALE, cfg=cfg))


# --- classic: APG ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CFG_CLASSIC)
def test_neutral_apg_is_stock_cfg_bit_for_bit(kind: str) -> None:
    assert torch.equal(_run(kind, APG(eta=1.0, momentum=0.0, norm_threshold=float("inf"))), _stock(kind))


@pytest.mark.parametrize("kind", CFG_CLASSIC)
def test_apg_through_the_hook_reproduces_the_pipelines_cfg(kind: str) -> None:
    """Layout check: Wan's two calls, Z-Image's lists / −v / 1 − σ / c + s(c − u), LTX-2's tokens."""
    torch.testing.assert_close(_run(kind, CFG_VIA_APG), _stock(kind), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", CFG_CLASSIC)
def test_apg_and_higs_change_the_result_repeatably(kind: str) -> None:
    stock = _stock(kind)
    for methods in ((APG(norm_threshold=0.5),), (HIGS,), (APG(norm_threshold=0.5), HIGS)):
        first = _run(kind, *methods)
        assert torch.isfinite(first).all() and not torch.allclose(first, stock, atol=1e-3), methods
        assert torch.equal(first, _run(kind, *methods))


@pytest.mark.parametrize(
    ("kind", "why"),
    [("flux2", "guidance-distilled"), ("qwenimage", "true_cfg_scale")],
)
def test_apg_is_refused_where_no_hook_can_replace_the_cfg(kind: str, why: str) -> None:
    with pytest.raises(ValueError, match=f"{why}.*APG cannot apply; use HiGS alone"):
        apply_guidance(cached_pipeline(kind), APG())
    assert not hasattr(cached_pipeline(kind).transformer, "_diffusers_hook") or (
        cached_pipeline(kind).transformer._diffusers_hook.get_hook("inertia_guidance") is None
    )


# --- classic: HiGS -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ("flux2", "qwenimage", "wan", "zimage", "ltx2"))
def test_higs_on_the_single_branch(kind: str) -> None:
    stock = _stock(kind, cfg=False)
    assert torch.equal(_run(kind, HiGS(weight=0.0), cfg=False), stock)  # neutral: the stock pipeline
    first = _run(kind, HIGS, cfg=False)
    assert torch.isfinite(first).all() and not torch.allclose(first, stock, atol=1e-3)
    assert torch.equal(first, _run(kind, HIGS, cfg=False))


def test_qwenimage_true_cfg_is_refused_at_call_time() -> None:
    with pytest.raises(GuidanceLayoutError, match="true CFG"):
        _run("qwenimage", HIGS)


def test_wan22_with_two_experts_is_refused() -> None:
    pipe = cached_pipeline("wan")
    pipe.transformer_2 = make_components("wan", seed=1)["transformer"]
    try:
        with pytest.raises(ValueError, match="transformer_2"):
            apply_guidance(pipe, APG())
    finally:
        pipe.transformer_2 = None


def test_zimage_cfg_truncation_is_refused() -> None:
    with guided("zimage", APG()) as pipe:
        with pytest.raises(GuidanceLayoutError, match="cfg_truncation"):
            run(pipe, **make_call_kwargs("zimage", guidance_scale=SCALE), cfg_truncation=0.5)


@pytest.mark.parametrize("kind", ("flux2", "qwenimage", "ltx2"))
def test_unpacking_matches_the_pipelines_own(kind: str) -> None:
    pipe = cached_pipeline(kind)
    if kind == "ltx2":
        latents = torch.randn(2, 4, 3, 4, 6)
        tokens = pipe._pack_latents(latents, 1, 1)
        layout, grid = Layout("flow", "flow", 1.0, packing="ltx"), (3, 4, 6)
    else:
        latents = torch.randn(2, 4, 8, 12)
        tokens = pipe._pack_latents(latents, 2, 4, 8, 12) if kind == "qwenimage" else None
        if kind == "flux2":
            tokens = pipe._pack_latents(pipe._patchify_latents(latents))
        layout, grid = Layout("flow", "flow", 1000.0, packing="flux" if kind == "flux2" else "qwen"), (4, 6)
    assert torch.equal(unpack(tokens, layout, grid), latents)


# --- modular: our guiders ----------------------------------------------------------------------------------------
def _modular(kind: str, guider, audio_guider=None) -> torch.Tensor:
    pipe = cached_modular(kind)
    stock = {name: getattr(pipe, name) for name in ("guider", "audio_guider") if name in pipe.component_names}
    pipe.update_components(guider=guider, **({"audio_guider": audio_guider} if audio_guider is not None else {}))
    try:
        return run_modular(pipe, **make_modular_kwargs(kind))
    finally:
        pipe.update_components(**stock)


def _ours(cls, kind: str, **kwargs):
    return cls(guidance_scale=SCALE, prediction_type="sample" if kind == "ltx2" else "flow", **kwargs)


def _theirs(kind: str):
    return LTX2Guidance(guidance_scale=SCALE) if kind == "ltx2" else ClassifierFreeGuidance(guidance_scale=SCALE)


def _pair(kind: str, guider):
    """LTX-2 has a video and an audio guider; ours go in both (a fresh copy for the audio stream)."""
    if kind != "ltx2":
        return guider, None
    return guider, type(guider).from_config(guider.config)


@pytest.mark.parametrize("kind", ("qwenimage", "wan", "zimage", "ltx2"))
def test_neutral_apg_guider_reproduces_diffusers_cfg(kind: str) -> None:
    stock = _modular(kind, *_pair(kind, _theirs(kind)))
    ours = _modular(kind, *_pair(kind, _ours(APGGuider, kind, eta=1.0, momentum=0.0, norm_threshold=1e9)))
    torch.testing.assert_close(ours, stock, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ("qwenimage", "wan", "zimage", "ltx2"))
def test_guiders_change_the_result_repeatably(kind: str) -> None:
    stock = _modular(kind, *_pair(kind, _theirs(kind)))
    for guider in (_ours(APGGuider, kind, norm_threshold=0.5), _ours(HiGSGuider, kind, weight=1.0, cutoff=None)):
        first = _modular(kind, *_pair(kind, guider))
        assert torch.isfinite(first).all() and not torch.allclose(first, stock, atol=1e-3), type(guider).__name__
        assert torch.equal(first, _modular(kind, *_pair(kind, guider)))


@pytest.mark.parametrize("kind", ("wan", "zimage"))
def test_higs_guider_filters_spatial_latents(kind: str) -> None:
    without = _modular(kind, _ours(HiGSGuider, kind, weight=1.0, cutoff=None))
    filtered = _modular(kind, _ours(HiGSGuider, kind, weight=1.0))
    assert torch.isfinite(filtered).all() and not torch.allclose(filtered, without, atol=1e-4)


@pytest.mark.parametrize("kind", ("qwenimage", "ltx2"))
def test_higs_guider_refuses_its_filter_on_packed_tokens(kind: str) -> None:
    with pytest.raises(GuidanceLayoutError, match="cutoff=None"):
        _modular(kind, *_pair(kind, _ours(HiGSGuider, kind, weight=1.0)))


def test_flux2_modular_has_no_guider_to_replace() -> None:
    """FLUX.2 [dev] is guidance-distilled: its modular pipeline has no guider component (not applicable)."""
    pipe = cached_modular("flux2")
    assert "guider" not in pipe.component_names
    assert "guidance_scale" in {spec.name for spec in pipe.blocks.inputs}  # the embedded, distilled scale
