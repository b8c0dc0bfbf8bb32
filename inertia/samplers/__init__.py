"""Momentum samplers as drop-in diffusers schedulers (HB, GHVB, NT on PLMS; heavy ball on DPM-Solver++).

Example:
    >>> from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler
    >>> # pipe.scheduler = MomentumDPMSolverMultistepScheduler.from_config(pipe.scheduler.config, momentum_beta=0.8)
    >>> # pipe.scheduler = MomentumPLMSScheduler.from_momentum_number(pipe.scheduler.config, 3.8, method="ghvb")
"""

from .momentum import (
    MOMENTUM_METHODS,
    MomentumState,
    adams_bashforth_coefficients,
    ghvb_coefficients,
    ghvb_direction,
    hb_direction,
    momentum_direction,
    momentum_number_to_order_beta,
    nt_direction,
    order_beta_to_momentum_number,
)
from .recommend import AUTO_METHODS, recommended_beta
from .scheduling_momentum_dpmsolver import MomentumDPMSolverMultistepScheduler
from .scheduling_momentum_plms import MomentumPLMSScheduler

MOMENTUM_SCHEDULERS = {
    "hb-dpm": MomentumDPMSolverMultistepScheduler,
    "plms": MomentumPLMSScheduler,
}
"""Our scheduler classes by short name."""

__all__ = [
    "AUTO_METHODS",
    "MOMENTUM_METHODS",
    "MOMENTUM_SCHEDULERS",
    "MomentumDPMSolverMultistepScheduler",
    "MomentumPLMSScheduler",
    "MomentumState",
    "adams_bashforth_coefficients",
    "ghvb_coefficients",
    "ghvb_direction",
    "hb_direction",
    "momentum_direction",
    "momentum_number_to_order_beta",
    "nt_direction",
    "order_beta_to_momentum_number",
    "recommended_beta",
]
