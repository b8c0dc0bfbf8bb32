"""Math core of heavy-ball DPM-Solver++ (multistep, data prediction): the combinations, the heavy ball and the step.

Pure torch/python: no diffusers import. Shared by the diffusers scheduler
(:class:`~inertia.adapters.diffusers.scheduling_momentum_dpmsolver.MomentumDPMSolverMultistepScheduler`) and the k-diffusion
functions (:mod:`inertia.k_diffusion`), so both take the same steps.

Every DPM-Solver++ multistep step has the exponential-integrator form (Lu et al. 2022, arXiv 2211.01095, eq. 5)

    x_t = (σ_t/σ_s0)·x_s0 − α_t·(e^{−h} − 1)·U,      h = λ_t − λ_s0,  λ = log(α/σ)

where U is the solver's estimate of the data prediction over the step (2M midpoint: U = D0 + ½·D1). Heavy ball
(Wizadwongsa et al., ICLR 2024, arXiv 2307.11118, eq. 13 applied to U as in their App. H "DPM-Solver++ w/ HB")
replaces U by its exponential moving average v ← (1−β)·v + β·U and steps with v. In k-diffusion's variables
(α = 1, λ = −log σ) the same step reads x_t = (σ_t/σ_s0)·x_s0 − (e^{−h} − 1)·v.

The step sizes ``h`` may be python floats or 0-dim tensors (the scheduler passes its float32 sigma tensors through).

Example:
    >>> import torch
    >>> m0, m1 = torch.ones(2), torch.zeros(2)
    >>> u = dpmpp_2m_combination(m0, m1, h=0.5, h_last=0.5)      # D0 + ½·(h/h_last)·(m0 − m1)
    >>> u.tolist()
    [1.5, 1.5]
    >>> v = heavy_ball(None, u, beta=0.5)                          # first call: v = U
    >>> heavy_ball(v, torch.zeros(2), beta=0.5).tolist()           # (1 − β)·v + β·U
    [0.75, 0.75]
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "DPM_SOLVER_TYPES",
    "dpmpp_2m_combination",
    "dpmpp_3m_combination",
    "dpmpp_update",
    "heavy_ball",
]

DPM_SOLVER_TYPES = ("midpoint", "heun")
"""The two second-order DPM-Solver++ combinations (diffusers' ``solver_type``)."""

Scalar = float | torch.Tensor


def _exp(value: Scalar) -> Scalar:
    return torch.exp(value) if isinstance(value, torch.Tensor) else math.exp(value)


def dpmpp_2m_combination(
    m0: torch.Tensor, m1: torch.Tensor, h: Scalar, h_last: Scalar, solver_type: str = "midpoint"
) -> torch.Tensor:
    """U of DPM-Solver++(2M) from the newest data predictions m0 (at s0) and m1 (at s1), newest first.

    With D1 = (m0 − m1)/r0 and r0 = h_last/h: midpoint U = D0 + ½·D1; heun U = D0 − ((e^{−h}−1)/h + 1)/(e^{−h}−1)·D1
    (the heun form is inertia's extension; the paper damps the midpoint form).

    Args:
        m0, m1: data (x0) predictions at the current and the previous noise level.
        h: λ step of this step, λ_t − λ_s0 (> 0).
        h_last: λ step of the previous step, λ_s0 − λ_s1 (> 0).
        solver_type: ``"midpoint"`` or ``"heun"``.
    """
    if solver_type == "midpoint":
        weight = 0.5 * h / h_last  # U = D0 + ½·D1, folded: D1 = (h/h_last)·(m0 − m1)
    elif solver_type == "heun":
        em1 = _exp(-h) - 1.0
        weight = -((em1 / h + 1.0) / em1) * h / h_last  # U = D0 − ((e^{−h}−1)/h + 1)/(e^{−h}−1)·D1
    else:
        raise ValueError(f"`solver_type` must be one of {DPM_SOLVER_TYPES}, got {solver_type!r}.")
    return m0 + weight * (m0 - m1)


def dpmpp_3m_combination(
    m0: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor, h: Scalar, h_0: Scalar, h_1: Scalar
) -> torch.Tensor:
    """U of DPM-Solver++(3M): the 3M update divided by −α_t·(e^{−h} − 1), newest data prediction first.

    With r0 = h_0/h, r1 = h_1/h, D1_0 = (m0 − m1)/r0, D1_1 = (m1 − m2)/r1, D1 = D1_0 + r0/(r0 + r1)·(D1_0 − D1_1) and
    D2 = (D1_0 − D1_1)/(r0 + r1): U = D0 − ((e^{−h}−1)/h + 1)/(e^{−h}−1)·D1 + ((e^{−h}−1+h)/h² − ½)/(e^{−h}−1)·D2.
    Damping it is inertia's extension (the paper damps 2M only).

    Args:
        m0, m1, m2: data predictions at s0, s1, s2.
        h: λ_t − λ_s0; h_0: λ_s0 − λ_s1; h_1: λ_s1 − λ_s2 (all > 0).
    """
    r0, r1 = h_0 / h, h_1 / h
    d1_0, d1_1 = (1.0 / r0) * (m0 - m1), (1.0 / r1) * (m1 - m2)
    d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
    d2 = (1.0 / (r0 + r1)) * (d1_0 - d1_1)
    em1 = _exp(-h) - 1.0
    # 3M: x_t = (σ_t/σ_s0)x − α_t·em1·D0 + α_t(em1/h + 1)·D1 − α_t((em1 + h)/h² − ½)·D2 = (σ_t/σ_s0)x − α_t·em1·U.
    return m0 - ((em1 / h + 1.0) / em1) * d1 + (((em1 + h) / h**2 - 0.5) / em1) * d2


def heavy_ball(velocity: torch.Tensor | None, combination: torch.Tensor, beta: float) -> torch.Tensor:
    """The heavy-ball velocity v ← (1−β)·v + β·U (paper eq. 13, on the DPM-Solver++ combination U, App. H).

    The first call (``velocity`` None) and β = 1 return ``combination`` itself, exactly.

    Args:
        velocity: the previous velocity, or None before the first multistep step.
        combination: this step's U.
        beta: damping β ∈ (0, 1]; 1 = no momentum.
    """
    if velocity is None or beta == 1.0:
        return combination
    return torch.lerp(velocity, combination, beta)  # (1−β)·v + β·U as one lerp


def dpmpp_update(
    sample: torch.Tensor, direction: torch.Tensor, h: Scalar, sample_scale: Scalar, alpha_t: Scalar = 1.0
) -> torch.Tensor:
    """The DPM-Solver++ step x_t = (σ_t/σ_s0)·x_s0 − α_t·(e^{−h} − 1)·direction (Lu et al. eq. 5, U replaced by v).

    Args:
        sample: x_s0.
        direction: U (no momentum) or the heavy-ball velocity v.
        h: λ_t − λ_s0.
        sample_scale: σ_t/σ_s0 (k-diffusion's σ ratio, which is σ̄_t/σ̄_s0 for VP models).
        alpha_t: α_t (1 in k-diffusion's variables).
    """
    return sample_scale * sample - (alpha_t * (_exp(-h) - 1.0)) * direction
