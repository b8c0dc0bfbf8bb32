"""Momentum samplers as drop-in diffusers schedulers (HB, GHVB, NT on PLMS; heavy ball on DPM-Solver++).

The public face of the sampler method: the schedulers live in the diffusers adapter
(:mod:`inertia.adapters.diffusers.scheduling_momentum_dpmsolver`, :mod:`inertia.adapters.diffusers.scheduling_momentum_plms`),
the math in the core (:mod:`inertia.core.samplers.plms_momentum`, :mod:`inertia.core.samplers.heavy_ball_dpm`,
:mod:`inertia.core.samplers.beta_policy`). Names are imported on first use, so that the math-only names load without
diffusers.

Example:
    >>> from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler
    >>> # pipe.scheduler = MomentumDPMSolverMultistepScheduler.from_config(pipe.scheduler.config, momentum_beta=0.8)
    >>> # pipe.scheduler = MomentumPLMSScheduler.from_momentum_number(pipe.scheduler.config, 3.8, method="ghvb")
"""

from typing import Any

from inertia._lazy import lazy_attributes, names_by_module

_NAMES = names_by_module(
    {
        "inertia.core.samplers.plms_momentum": "MOMENTUM_METHODS MomentumState adams_bashforth_coefficients ghvb_coefficients ghvb_direction hb_direction momentum_direction momentum_number_to_order_beta nt_direction order_beta_to_momentum_number",
        "inertia.core.samplers.beta_policy": "AUTO_METHODS AUTO_SAMPLERS SCHEDULE_KINDS auto_beta recommended_beta",
        "inertia.adapters.diffusers.scheduling_momentum_dpmsolver": "MomentumDPMSolverMultistepScheduler",
        "inertia.adapters.diffusers.scheduling_momentum_plms": "MomentumPLMSScheduler",
    }
)
__all__ = sorted([*_NAMES, "MOMENTUM_SCHEDULERS"])
_getattr, _dir = lazy_attributes(__name__, _NAMES)


def __getattr__(name: str) -> Any:
    if name == "MOMENTUM_SCHEDULERS":  # our scheduler classes by short name
        return {"hb-dpm": _getattr("MomentumDPMSolverMultistepScheduler"), "plms": _getattr("MomentumPLMSScheduler")}
    return _getattr(name)


def __dir__() -> list[str]:
    return __all__
