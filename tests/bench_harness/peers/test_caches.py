"""The peers' cache rules (benchmarks.peers.caches / cache_hooks): known answers, and the same outputs as
diffusers' own hooks where those attach (a tiny Flux transformer with two double and two single blocks)."""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxPipeline, FluxTransformer2DModel, UNet2DModel
from diffusers.hooks import (
    FirstBlockCacheConfig,
    MagCacheConfig,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
    apply_first_block_cache,
    apply_mag_cache,
    apply_pyramid_attention_broadcast,
    apply_taylorseer_cache,
)
from diffusers.hooks.mag_cache import FLUX_MAG_RATIOS

from benchmarks.peers.cache_hooks import apply_attention_cache, apply_block_cache
from benchmarks.peers.caches import (
    FirstBlockCache,
    MagCache,
    MagCacheAccumulator,
    PyramidBroadcast,
    TaylorSeer,
    magcache_should_compute,
    nearest_interp,
    taylor_predict,
    taylor_update,
    taylorseer_computes,
)
from benchmarks.peers.unet_cache_hooks import apply_unet_cache
from tests.tiny_pipelines import make_call_kwargs, make_components, single_threaded

STEPS = 8


# -- the rules ---------------------------------------------------------------------------------------------------


def test_taylor_order_one_is_exact_on_a_linear_trajectory_and_order_two_adds_the_curvature_term() -> None:
    f = [torch.tensor([2.0 + 3.0 * s]) for s in range(7)]
    factors = taylor_update(None, [f[0]], None, max_order=1)
    factors = taylor_update(factors, [f[2]], 2, max_order=1)
    assert taylor_predict(factors, 3, [torch.float32])[0].item() == f[5].item()
    q = [torch.tensor([float(s * s)]) for s in range(9)]  # steps 0, 2, 4 computed: Δ1 = 6, Δ2 = (6 − 2) / 2 = 2
    factors = None
    for s, delta in ((0, None), (2, 2), (4, 2)):
        factors = taylor_update(factors, [q[s]], delta, max_order=2)
    assert [t.item() for t in factors[0]] == [16.0, 6.0, 2.0]
    assert taylor_predict(factors, 1, [torch.float32])[0].item() == 16.0 + 6.0 + 2.0 / 2


def test_schedules_and_validation() -> None:
    # diffusers' defaults (interval 5, before 3): steps 0-2, then 4, 9, 14, 19
    assert [s for s in range(20) if taylorseer_computes(s, 5, 3)] == [0, 1, 2, 4, 9, 14, 19]
    assert TaylorSeer(max_order=2, interval=3, before=4).num_skipped(20) == 11
    assert PyramidBroadcast(3).computes(3, 500.0, True) and not PyramidBroadcast(3).computes(4, 500.0, True)
    assert list(nearest_interp(torch.arange(5.0), 3)) == [0.0, 2.0, 4.0]
    for bad in (
        lambda: TaylorSeer(interval=0),
        lambda: PyramidBroadcast(timestep_range=(800, 100)),
        lambda: FirstBlockCache(threshold=-1.0),
        lambda: MagCache(retention_ratio=1.5),
    ):
        with pytest.raises(ValueError, match="must be"):
            bad()


def test_magcache_skips_at_most_k_steps_in_a_row() -> None:
    accumulator, decisions = MagCacheAccumulator(), []
    for step in range(6):
        decisions.append(magcache_should_compute(accumulator, 1.0, step, 1, 0.0, 2, has_residual=step > 0))
    assert decisions == [True, False, False, True, False, False]


# -- the same outputs as diffusers' hooks on Flux --------------------------------------------------------------------


def _flux() -> FluxPipeline:
    components = make_components("flux")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        components["transformer"] = FluxTransformer2DModel(
            patch_size=1,
            in_channels=16,
            num_layers=2,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=16,
            pooled_projection_dim=16,
            axes_dims_rope=(4, 4, 8),
        ).eval()
    from tests.tiny_pipelines import default_scheduler

    pipe = FluxPipeline(scheduler=default_scheduler("flux"), **components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _latents(pipe: FluxPipeline) -> torch.Tensor:
    with single_threaded(), torch.no_grad():
        return pipe(**make_call_kwargs("flux", num_inference_steps=STEPS)).images


@pytest.fixture(scope="module")
def reference() -> torch.Tensor:
    return _latents(_flux())


CASES = {
    "taylorseer-1": (
        lambda pipe: apply_taylorseer_cache(
            pipe.transformer,
            TaylorSeerCacheConfig(cache_interval=2, disable_cache_before_step=2, taylor_factors_dtype=torch.float32),
        ),
        lambda pipe: apply_attention_cache(pipe.transformer, TaylorSeer(max_order=1, interval=2, before=2)),
    ),
    "taylorseer-2": (
        lambda pipe: apply_taylorseer_cache(
            pipe.transformer,
            TaylorSeerCacheConfig(
                cache_interval=3, disable_cache_before_step=2, max_order=2, taylor_factors_dtype=torch.float32
            ),
        ),
        lambda pipe: apply_attention_cache(pipe.transformer, TaylorSeer(max_order=2, interval=3, before=2)),
    ),
    "pab": (
        lambda pipe: apply_pyramid_attention_broadcast(
            pipe.transformer,
            PyramidAttentionBroadcastConfig(
                spatial_attention_block_skip_range=2,
                spatial_attention_timestep_skip_range=(100, 900),
                current_timestep_callback=lambda: pipe.current_timestep,
            ),
        ),
        lambda pipe: apply_attention_cache(
            pipe.transformer, PyramidBroadcast(2, (100, 900)), timestep_callback=lambda: pipe.current_timestep
        ),
    ),
    "fbc": (
        lambda pipe: apply_first_block_cache(pipe.transformer, FirstBlockCacheConfig(threshold=0.4)),
        lambda pipe: apply_block_cache(pipe.transformer, FirstBlockCache(threshold=0.4), STEPS),
    ),
    "magcache": (
        lambda pipe: apply_mag_cache(
            pipe.transformer, MagCacheConfig(threshold=0.1, mag_ratios=FLUX_MAG_RATIOS, num_inference_steps=STEPS)
        ),
        lambda pipe: apply_block_cache(
            pipe.transformer, MagCache(threshold=0.1, mag_ratios=tuple(FLUX_MAG_RATIOS.tolist())), STEPS
        ),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_our_transcription_gives_diffusers_hooks_outputs_on_flux(name: str, reference: torch.Tensor) -> None:
    theirs_apply, ours_apply = CASES[name]
    theirs, ours = _flux(), _flux()
    theirs_apply(theirs)
    handle = ours_apply(ours)
    expected, got = _latents(theirs), _latents(ours)
    skipped = sum(fraction > 0 for _, fraction in handle.work)
    assert 0 < skipped < len(handle.work), handle.work  # the rule really skipped some work, not all
    assert not torch.equal(got, reference)
    assert torch.equal(got, expected)  # bit-identical


# -- UNets -----------------------------------------------------------------------------------------------------------


def _unet() -> UNet2DModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return UNet2DModel(
            sample_size=8,
            block_out_channels=(8, 8),
            norm_num_groups=4,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        ).eval()


def _trajectory(unet: UNet2DModel, steps: int = 6) -> list[torch.Tensor]:
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    outs = []
    with torch.no_grad():
        for t in torch.linspace(900, 100, steps):
            out = unet(x, t).sample
            outs.append(out)
            x = x - 0.1 * out
    return outs


def test_attention_cache_on_residual_modules_reuses_the_attention_part_with_the_current_input() -> None:
    unet = _unet()
    plain = _trajectory(unet)
    handle = apply_attention_cache(unet, PyramidBroadcast(1, (0, 1000)))  # N = 1: always computes
    assert all(torch.equal(a, b) for a, b in zip(plain, _trajectory(unet)))
    handle.remove()
    module = unet.down_blocks[1].attentions[0]
    seen = []
    module.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    handle = apply_attention_cache(unet, PyramidBroadcast(2, (0, 1000)))
    cached = _trajectory(unet)
    assert [fraction for _, fraction in handle.work] == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    r = module.rescale_output_factor
    # step 1 reuses step 0's attention part on top of step 1's own input
    torch.testing.assert_close(seen[1][1] - seen[1][0] / r, seen[0][1] - seen[0][0] / r)
    assert not torch.equal(seen[1][1], seen[0][1])
    assert not torch.equal(cached[1], plain[1])


def test_unet_first_block_cache_and_magcache() -> None:
    unet = _unet()
    plain = _trajectory(unet)
    handle = apply_unet_cache(unet, FirstBlockCache(threshold=0.0), 6)  # 0: never skips
    assert all(torch.equal(a, b) for a, b in zip(plain, _trajectory(unet)))
    assert len(handle.ratios) == 6 and handle.ratios[0] == 1.0  # calibration ratios come for free
    handle.remove()
    handle = apply_unet_cache(unet, FirstBlockCache(threshold=1e9), 6)  # huge: always skips after step 0
    outs = _trajectory(unet)
    assert [kind for kind, _ in handle.work] == ["full"] + ["probe"] * 5
    assert all(torch.equal(out, plain[0]) for out in outs)
    handle.remove()
    handle = apply_unet_cache(unet, MagCache(0.0, 1, 0.0, mag_ratios=(1.0,) * 6), 6)
    outs = _trajectory(unet)
    assert [kind for kind, _ in handle.work] == ["full", "none"] * 3
    assert torch.equal(outs[1], outs[0]) and not torch.equal(outs[2], outs[1])
