"""Harness of the sampler-peers benchmark: the k-diffusion wrapper of the exact denoiser, NFE accounting, the report."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks.common.exact_denoiser import ExactDenoiser, make_dataset
from benchmarks.peers import k_diffusion as K
from benchmarks.samplers import vs_peers as B
from benchmarks.samplers import vs_peers_grid as G
from benchmarks.samplers.accuracy_grid import diffusers_solvers, inertia_solvers
from benchmarks.samplers.vs_peers_report import evaluate_targets, markdown_report, write_outputs
from inertia.core.samplers.beta_policy import auto_beta


@pytest.fixture(scope="module")
def denoiser() -> ExactDenoiser:
    return ExactDenoiser(make_dataset(num_classes=3, per_class=16, shape=(2, 8, 8)))


def test_wrapper_is_the_vp_posterior_mean_in_ve_variables(denoiser: ExactDenoiser):
    labels = torch.tensor([0, 2])
    wrapped = B.KDiffusionDenoiser(denoiser, labels, guidance_scale=4.0)
    x_vp = torch.randn(2, *denoiser.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t in (0, 371, 999):
        sigma = denoiser.ratios[t]
        assert float(wrapped.timestep(sigma.reshape(1))) == pytest.approx(t, abs=1e-9)
        alpha = 1 / math.sqrt(1 + float(sigma) ** 2)
        eps = denoiser(x_vp, torch.tensor([t, t]), labels, guidance_scale=4.0)
        x0_vp = (x_vp - math.sqrt(1 - alpha**2) * eps) / alpha  # x0 from the VP eps prediction
        x0 = wrapped(x_vp / alpha, sigma.repeat(2))
        torch.testing.assert_close(x0, x0_vp, rtol=1e-9, atol=1e-9)
    # fractional noise levels map to the timestep whose interpolated ratio is exactly sigma
    sigmas = torch.tensor([0.05, 0.7, 3.3, 14.0], dtype=torch.float64)
    alpha, sig = denoiser.noise_level(wrapped.timestep(sigmas))
    torch.testing.assert_close(sig / alpha, sigmas, rtol=1e-12, atol=0)


def test_function_peers_cover_every_k_diffusion_sampler_on_both_grids():
    peers = G.function_peers()
    for grid in G.GRIDS:
        names = {p.name for p in peers if p.grid == grid and p.family == G.KDIFF}
        assert names == set(K.SAMPLERS)
        assert {p.name for p in peers if p.grid == grid and p.family == "auto"} == {"auto hb_dpmpp_2m"}
    heun = next(p for p in peers if p.name == "heun")
    assert [heun.steps_for(n) for n in (6, 15, 20)] == [3, 8, 10]


def test_a_tiny_run_counts_nfe_honestly_and_writes_the_report(tmp_path):
    grid = G.PeerGrid(guidances=(15.0,), nfes=(6,), batch=2, reference_steps=40)
    peers = [p for p in G.function_peers() if p.name in {"heun", "dpmpp_2m", "dpmpp_2m_sde", "auto hb_dpmpp_2m"}]
    solvers = [s for s in diffusers_solvers() + inertia_solvers() if s.name in {"DPM++2M", "HB-DPM++2M β=0.8"}]
    records, meta = B.run_peers(grid, solvers, peers, check=True, log=lambda message: None)
    by_name = {(r.name, r.grid): r for r in records}
    assert len(records) == len(solvers) + len(peers)
    assert by_name[("heun", "karras")].nfe == 5 and by_name[("heun", "karras")].steps == 3  # 2 steps x 2 + 1
    assert by_name[("dpmpp_2m", "discrete")].nfe == 6
    assert by_name[("dpmpp_2m_sde", "karras")].reference == "SDE"
    # the measured auto policy, read per grid (Karras sigmas; the "discrete" grid as a VP timestep spacing): the stock
    # DPM-Solver++(2M), which never diverged on every tuning problem
    assert by_name[("auto hb_dpmpp_2m", "karras")].beta == auto_beta("hb-dpm++", 6, 15.0, "karras") == 1.0
    assert by_name[("auto hb_dpmpp_2m", "discrete")].beta == auto_beta("hb-dpm++", 6, 15.0, "vp") == 1.0
    assert all(math.isfinite(r.rmse) and r.nfe <= r.nfe_budget for r in records)
    # k-diffusion's DPM++2M on the same trailing-like budget: the wrapper agrees with diffusers' reference
    assert meta["reference_checks"]["15"]["k-diffusion dpmpp_2m vs ODE reference"] < 1e-3
    paths = write_outputs(records, meta, tmp_path, "_test")
    text = paths["md"].read_text()
    assert "| sampler | grid | vs | g 15, NFE 6 |" in text and "best inertia (per cell)" in text
    assert "| dpmpp_2m_sde | karras | SDE |" in text and "†" in text
    assert len(json.loads(paths["json"].read_text())["records"]) == len(records)


def _record(name: str, family: str, value: float, *, nfe: int = 10, stochastic: bool = False) -> G.PeerRecord:
    return G.PeerRecord(
        name=name,
        family=family,
        grid="karras",
        stochastic=stochastic,
        reference="SDE" if stochastic else "ODE",
        guidance=15.0,
        nfe_budget=nfe,
        nfe=nfe,
        steps=nfe,
        rmse=value,
        median_error=value,
        far_fraction=0.0,
        magnitude=0.0,
        nonfinite=0.0,
        data_distance=0.0,
        beta=None,
        seconds=0.0,
    )


def test_targets_compare_ours_with_every_deterministic_peer_only():
    records = [
        _record("dpmpp_2m", G.KDIFF, 0.30),
        _record("DPM++2M", "diffusers", 0.25),
        _record("hb", G.INERTIA, 0.20),
        _record("dpmpp_sde", G.KDIFF, 0.01, stochastic=True),  # another target: not in the comparison
        _record("dpmpp_2m", G.KDIFF, 0.30, nfe=6),  # outside NFE 8-20
    ]
    assert evaluate_targets(records)[0].startswith("PASS") and "(1/1 cells)" in evaluate_targets(records)[0]
    records.append(_record("heun", G.KDIFF, 0.19))
    lines = evaluate_targets(records)
    assert lines[0].startswith("MISS") and "heun (karras) 0.19" in lines[1]
    meta = {"grid": {"guidances": [15.0], "nfes": [10], "batch": 1}, "ode_reference": "r", "sde_reference": "s"}
    assert "**heun (karras)** 0.19" in markdown_report(records, {**meta, "model_calls": 0})


def test_any_sampler_runs_on_any_sigma_grid_and_converges_to_one_solution(denoiser: ExactDenoiser):
    labels = torch.tensor([1, 2])
    sigma_min, sigma_max = float(denoiser.ratios[0]), float(denoiser.ratios[-1])
    runs = [
        B.sample_on_sigmas(
            K.sample_dpmpp_2m, denoiser, labels, 3.0, K.get_sigmas_exponential(150, sigma_min, sigma_max)
        ),
        B.sample_on_sigmas(K.sample_heun, denoiser, labels, 3.0, K.get_sigmas_karras(150, sigma_min, sigma_max)),
    ]
    assert float((runs[0] - runs[1]).abs().max()) < 1e-3
    noisy = [
        B.sample_on_sigmas(
            K.sample_dpmpp_2m_sde, denoiser, labels, 3.0, K.get_sigmas_karras(8, sigma_min, sigma_max), noise_seed=seed
        )
        for seed in (1, 1, 2)
    ]
    torch.testing.assert_close(noisy[0], noisy[1], rtol=0, atol=0)  # the noise is the path's, nothing else
    assert not torch.equal(noisy[0], noisy[2])
