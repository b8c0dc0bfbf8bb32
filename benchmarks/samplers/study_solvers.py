"""The sampler-study candidate solvers, in k-diffusion variables x = x0 + σ·ε.

The problems they solve are :mod:`benchmarks.samplers.study_problems`.

Candidates (all on data predictions D, newest first). Heavy-ball DPM-Solver++(2M) is inertia's own sampler
(:func:`inertia.k_diffusion.sample_hb_dpmpp_2m`) and the variations below are built from inertia's math
(:mod:`inertia.core.samplers.heavy_ball_dpm`: the 2M combination, the heavy ball and the step), not a transcription of it:

* ``dpm``: DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095, Alg. 2) with heavy-ball momentum on its
  combination U (Wizadwongsa et al. 2024, arXiv 2307.11118, eq. 13 and App. H), a per-step β, a fractional order
  (the 2M correction scaled by ``order - 1``, GHVB's idea of a non-integer order on the DPM-Solver++ basis) and a
  bound ``max_weight`` on the 2M correction weight ½·h/h_last (the extrapolation that blows up after a short step).
* ``unipc``: UniPC-2 with the B(h) = e^{h} − 1 variant (Zhao et al. 2023, arXiv 2302.04867, Alg. 2 with UniC), with
  heavy ball applied to both the predictor's and the corrector's combination.
* any of them on re-spaced sigmas: the stock first and last nonzero σ kept, the interior placed by Karras et al.'s
  ρ-spacing (EDM, arXiv 2206.00364, eq. 5); ρ = 1 is uniform in σ, large ρ tends to uniform in log σ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from benchmarks.samplers.study_problems import GuidedX0
from inertia.core.samplers.heavy_ball_dpm import dpmpp_2m_combination, dpmpp_update, heavy_ball
from inertia.k_diffusion import sample_hb_dpmpp_2m

__all__ = ["Candidate", "reference_solution", "respace", "solve", "solve_variant"]


def respace(sigmas: torch.Tensor, rho: float | None) -> torch.Tensor:
    """Same first and last nonzero σ and the same count; interior by ρ-spacing (EDM eq. 5); None = unchanged."""
    if rho is None:
        return sigmas
    high, low, count = float(sigmas[0]), float(sigmas[-2]), len(sigmas) - 1
    ramp = torch.linspace(0, 1, count, dtype=torch.float64)
    # σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ  (Karras et al. eq. 5)
    inner = (high ** (1 / rho) + ramp * (low ** (1 / rho) - high ** (1 / rho))) ** rho
    inner[0], inner[-1] = high, low
    return torch.cat([inner, sigmas.new_zeros(1)])


@dataclass(frozen=True)
class Candidate:
    """A solver setting: base solver, heavy-ball β (or one per step), order, correction bound and spacing."""

    base: str = "dpm"  # "dpm" or "unipc"
    beta: float = 1.0
    early_beta: float | None = None  # if set, β on the first half of the steps (per-step schedule), 1 after
    order: float = 2.0  # 1..2: fractional order of the 2M correction
    max_weight: float | None = None  # bound on ½·h/h_last
    rho: float | None = None  # ρ-spacing of the interior sigmas; None = the host's own sigmas
    tags: tuple[str, ...] = field(default=(), compare=False)

    @property
    def name(self) -> str:
        parts = [self.base]
        if self.beta != 1.0:
            parts.append(f"β{self.beta:g}")
        if self.early_beta is not None:
            parts.append(f"early-β{self.early_beta:g}")
        if self.order != 2.0:
            parts.append(f"order{self.order:g}")
        if self.max_weight is not None:
            parts.append(f"bound{self.max_weight:g}")
        parts.append("stock-σ" if self.rho is None else f"ρ{self.rho:g}")
        return " ".join(parts)

    @property
    def is_hb_dpmpp_2m(self) -> bool:
        """Whether this is plain heavy-ball DPM-Solver++(2M) (any β, any spacing): inertia's own sampler."""
        return self.base == "dpm" and self.order == 2.0 and self.max_weight is None

    def step_beta(self, i: int, steps: int) -> float:
        """β of step ``i`` of ``steps`` (``early_beta`` on the first half, then 1, when set)."""
        if self.early_beta is None:
            return self.beta
        return self.early_beta if i < steps / 2 else 1.0

    def combination(self, m0: torch.Tensor, m1: torch.Tensor, h: float, h_last: float) -> torch.Tensor:
        """This setting's U from the newest data predictions m0 and m1 (newest first), λ steps h and h_last.

        The 2M combination is inertia's own (:func:`~inertia.core.samplers.heavy_ball_dpm.dpmpp_2m_combination`,
        U = D0 + ½·(h/h_last)·(D0 − D1), = UniP-2). The study's two variations of it scale its correction: the weight
        ½·h/h_last is bounded by ``max_weight`` and multiplied by ``order − 1`` (order 1 = DDIM, 2 = 2M).
        """
        combination = dpmpp_2m_combination(m0, m1, h, h_last)
        weight = 0.5 * h / h_last
        scaled = (weight if self.max_weight is None else min(weight, self.max_weight)) * (self.order - 1.0)
        if scaled == weight:
            return combination
        return torch.lerp(m0, combination, scaled / weight)  # D0 + (scaled/weight)·(U − D0)


def _unic_weights(h: float, r: float) -> tuple[float, float]:
    """UniC-2 weights (ρ_1, ρ_t) for B(h) = e^{h} − 1 (Zhao et al. Alg. 2 with R = [[1, 1], [r, 1]]).

    The corrected combination is U_c = m0 + ρ_1·(m1 − m0)/r + ρ_t·(m_t − m0), r = (λ_s1 − λ_s0)/h < 0.
    """
    b_h = math.expm1(-h)
    phi_1 = b_h / -h - 1.0  # φ_1 of the UniPC paper at −h (data prediction)
    phi_2 = phi_1 / -h - 0.5
    b1, b2 = phi_1 / b_h, 2.0 * phi_2 / b_h
    rho_1 = (b1 - b2) / (1.0 - r)
    return rho_1, b1 - rho_1


def solve(
    candidate: Candidate, model: GuidedX0, x: torch.Tensor, sigmas: torch.Tensor, labels: torch.Tensor, guidance: float
) -> torch.Tensor:
    """Sample with ``candidate`` on ``sigmas`` (ending in 0) from ``x`` at ``sigmas[0]``; NFE = len(sigmas) − 1.

    Heavy-ball DPM-Solver++(2M) itself (base ``dpm``, order 2, no bound: our method, with one β or a per-step β) is
    inertia's :func:`~inertia.k_diffusion.sample_hb_dpmpp_2m`; the study's variations of it (UniPC, the bounded or
    fractional-order correction) run in :func:`solve_variant`.
    """
    placed = respace(sigmas, candidate.rho)
    if not candidate.is_hb_dpmpp_2m:
        return solve_variant(candidate, model, x, placed, labels, guidance)
    steps = len(placed) - 1
    betas = [candidate.step_beta(i, steps) for i in range(steps)]

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return model(x, float(sigma[0]), labels, guidance)

    return sample_hb_dpmpp_2m(denoiser, x, placed, disable=True, beta=betas)


def solve_variant(
    candidate: Candidate, model: GuidedX0, x: torch.Tensor, sigmas: torch.Tensor, labels: torch.Tensor, guidance: float
) -> torch.Tensor:
    """:func:`solve` for the study's variations of DPM-Solver++(2M), on ``sigmas`` as given (already re-spaced).

    The step, the 2M combination and the heavy ball are inertia's (:mod:`inertia.core.samplers.heavy_ball_dpm`); what is
    the study's own is UniPC's corrector and the scaled correction (:meth:`Candidate.combination`).
    """
    levels = [float(s) for s in sigmas]
    steps = len(levels) - 1
    velocity: torch.Tensor | None = None
    history: list[tuple[torch.Tensor, float]] = []  # (D, λ) of the last two points, newest first
    pending = None  # UniPC: the last step, to correct with the new prediction
    for i in range(steps):
        denoised = model(x, levels[i], labels, guidance)
        lam = -math.log(levels[i])
        if pending is not None:
            # UniC (no extra model call): re-take the last step with U_c, which uses this step's prediction.
            x_s, m0, d1_term, h, beta, velocity_before = pending
            if d1_term is None:
                corrected = m0 + 0.5 * (denoised - m0)  # UniC-1: ρ_t = ½
            else:
                rho_1, rho_t = _unic_weights(h, d1_term[1])
                corrected = m0 + rho_1 * d1_term[0] + rho_t * (denoised - m0)
            if d1_term is not None:
                velocity = heavy_ball(velocity_before, corrected, beta)
                corrected = velocity
            x = dpmpp_update(x_s, corrected, h, levels[i] / levels[i - 1])
        if levels[i + 1] == 0.0:
            return denoised  # the step to σ = 0 returns D (first order, as diffusers with final σ 0)
        h = math.log(levels[i] / levels[i + 1])  # h = λ_t − λ_s
        beta = candidate.step_beta(i, steps)
        velocity_before = velocity
        d1_term = None
        if not history:
            combination = denoised  # first step: DPM-Solver++(1) / UniP-1, no momentum
        else:
            m1, lam1 = history[0]
            h_last = lam - lam1
            combination = candidate.combination(denoised, m1, h, h_last)
            d1_term = ((m1 - denoised) * (h / -h_last), -h_last / h)  # UniPC's D1 = (m1 − m0)/r and r
            velocity = heavy_ball(velocity, combination, beta)
            combination = velocity
        x_s = x
        x = dpmpp_update(x, combination, h, levels[i + 1] / levels[i])  # x_t = (σ_t/σ_s)·x − (e^{−h}−1)·U
        if candidate.base == "unipc" and i + 1 < steps and levels[i + 2] > 0.0:
            pending = (x_s, denoised, d1_term, h, beta, velocity_before)
        history = [(denoised, lam)]
    return x


def reference_solution(
    model: GuidedX0, x: torch.Tensor, sigma_max: float, labels: torch.Tensor, guidance: float, steps: int = 1000
) -> torch.Tensor:
    """DPM-Solver++(2M) with ``steps`` steps uniform in log σ from ``sigma_max`` to 0.005, then to 0."""
    high = min(sigma_max, 1e4)
    lams = torch.linspace(-math.log(high), -math.log(0.005), steps, dtype=torch.float64)
    sigmas = torch.cat([torch.exp(-lams), torch.zeros(1, dtype=torch.float64)])
    sigmas[0] = sigma_max if math.isfinite(sigma_max) else high
    return solve(Candidate(), model, x, sigmas, labels, guidance)
