"""The study's solvers take diffusers' steps, and its runner produces finite errors on a tiny grid."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

from benchmarks.samplers.accuracy_grid import base_config
from benchmarks.samplers.study_problems import GuidedX0, Problem, start_noise, stock_sigmas
from benchmarks.samplers.study_solvers import Candidate, respace, solve, solve_variant


def _diffusers_run(scheduler, model, noise, labels, guidance, steps, stop):
    """``stop`` steps of a stock VP epsilon loop with the study's x0 model; returns x in x0 + σ·ε variables."""
    scheduler.set_timesteps(steps)
    x = noise.float()
    for i, t in enumerate(scheduler.timesteps[:stop]):
        sigma = float(scheduler.sigmas[i])
        x_ve = x.double() * math.sqrt(1.0 + sigma * sigma)
        eps = (x_ve - model(x_ve, sigma, labels, guidance)) / sigma
        x = scheduler.step(eps.float(), t, x).prev_sample
    return x.double() * math.sqrt(1.0 + float(scheduler.sigmas[stop]) ** 2)


@pytest.mark.parametrize(
    ("cls", "candidate"),
    [(DPMSolverMultistepScheduler, Candidate()), (UniPCMultistepScheduler, Candidate(base="unipc"))],
)
def test_study_solvers_match_diffusers(cls, candidate):
    problem = Problem("t", 5, 5, "sd15", "tune", per_class=16)
    dataset = problem.dataset()
    model = GuidedX0(dataset)
    labels = torch.arange(8) % 10
    noise = start_noise(problem, 8, dataset.shape)
    sigmas, scale = stock_sigmas("sd15", 8)
    # Compared after 5 of 8 steps, before the exact posterior collapses onto one data point.
    ours = solve(candidate, model, noise * scale, sigmas[:6], labels, 7.5)
    theirs = _diffusers_run(cls.from_config(base_config("trailing")), model, noise, labels, 7.5, 8, stop=5)
    assert (ours - theirs).abs().max() < 1e-4 * theirs.abs().max()
    # and a different candidate takes different steps (the comparison can fail)
    other = solve(Candidate(beta=0.6, base=candidate.base), model, noise * scale, sigmas[:6], labels, 7.5)
    assert (other - theirs).abs().max() > 1e-3


def test_respace_keeps_ends_and_count():
    sigmas, _ = stock_sigmas("sd15", 6)
    placed = respace(sigmas, 1.0)
    assert len(placed) == len(sigmas) and placed[0] == sigmas[0] and placed[-2] == sigmas[-2] and placed[-1] == 0
    gaps = (placed[:-2] - placed[1:-1]).tolist()
    assert max(gaps) - min(gaps) < 1e-9  # ρ = 1: uniform in σ
    assert torch.equal(respace(sigmas, None), sigmas)


@pytest.mark.parametrize("candidate", [Candidate(beta=0.8), Candidate(early_beta=0.6, rho=3.0)])
def test_heavy_ball_candidates_are_inertias_sampler(candidate):
    """Plain HB-DPM++(2M) runs as inertia's `sample_hb_dpmpp_2m`; the study's own loop takes the same steps."""
    problem = Problem("t", 5, 5, "sd15", "tune", per_class=16)
    dataset = problem.dataset()
    model = GuidedX0(dataset)
    labels = torch.arange(4) % 10
    sigmas, scale = stock_sigmas("sd15", 8)
    x = start_noise(problem, 4, dataset.shape) * scale
    assert candidate.is_hb_dpmpp_2m
    ours = solve(candidate, model, x, sigmas, labels, 7.5)
    loop = solve_variant(candidate, model, x, respace(sigmas, candidate.rho), labels, 7.5)
    torch.testing.assert_close(ours, loop, rtol=1e-10, atol=1e-10)
