"""What the sampler benchmark runs and what it records: the grid, the solver catalogue and the result records.

The catalogue holds the stock diffusers solvers and the inertia settings (fixed-β heavy-ball DPM-Solver++, GHVB and
heavy-ball PLMS by momentum number, and the ``momentum_beta="auto"`` settings), each as a :class:`Solver` whose
``factory`` builds a fresh scheduler from the shared SD1.5 config (:func:`base_config`). :class:`Grid` says which
NFE values, guidance scales and batch size to run; :class:`Record` is one (solver, guidance, NFE) result and
:class:`BenchmarkResult` everything a run produced. The run loop is in :mod:`benchmarks.samplers.accuracy`, the
analysis and report in :mod:`benchmarks.samplers.accuracy_report`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from diffusers import (
    DDIMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

__all__ = [
    "AUTO",
    "DIFFUSERS",
    "DPM_BETAS",
    "FULL_GRID",
    "GHVB_NUMBERS",
    "HB_NUMBERS",
    "QUICK_GRID",
    "SD15_BASE_KWARGS",
    "BenchmarkResult",
    "Grid",
    "Record",
    "Solver",
    "base_config",
    "diffusers_solvers",
    "inertia_solvers",
]

#: Scheduler config shared by every solver: SD1.5's schedule (as in its DDIM/PNDM config).
SD15_BASE_KWARGS: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
}

DIFFUSERS = "diffusers"
AUTO = "auto"


@dataclass(frozen=True)
class Grid:
    """What to run: NFE values, guidance scales, batch size and seeds."""

    nfes: tuple[int, ...]
    guidances: tuple[float, ...]
    batch: int
    reference_steps: int = 1000
    check_reference: bool = True


FULL_GRID = Grid(nfes=(5, 6, 8, 10, 15, 20, 30), guidances=(1.0, 3.0, 7.5, 15.0, 22.5), batch=64)
QUICK_GRID = Grid(nfes=(6, 10), guidances=(3.0, 15.0), batch=16, reference_steps=250, check_reference=False)


@dataclass(frozen=True)
class Solver:
    """A named solver setting.

    Attributes:
        name: unique display name (e.g. ``"GHVB 3.8"``).
        family: ``"diffusers"``, an inertia family (``"HB-DPM++2M"``, ``"GHVB-PLMS"``, ...) or ``"auto"``.
        setting: the swept parameter in words (e.g. ``"β=0.8"``), empty for diffusers solvers.
        factory: ``factory(base_config, guidance_scale) -> scheduler`` (a fresh instance on every call).
        auto_family: for ``"auto"`` solvers, the family whose sweep it should match.
    """

    name: str
    family: str
    setting: str
    factory: Callable[[Mapping[str, Any], float], Any]
    auto_family: str = ""

    @property
    def is_inertia(self) -> bool:
        return self.family != DIFFUSERS


@dataclass
class Record:
    """One (solver, guidance, NFE) result."""

    solver: str
    family: str
    setting: str
    guidance: float
    nfe: int
    steps: int
    rmse: float
    magnitude: float
    nonfinite: float
    median_error: float
    far_fraction: float
    final_sigma: float
    beta: float | None
    seconds: float


def base_config(spacing: str = "trailing") -> Mapping[str, Any]:
    """The SD1.5 DDIM-style config every solver is built from (``from_config``), with ``timestep_spacing`` set."""
    return DDIMScheduler(**SD15_BASE_KWARGS, timestep_spacing=spacing).config


def _from_config(cls: type, **overrides: Any) -> Callable[[Mapping[str, Any], float], Any]:
    def factory(config: Mapping[str, Any], guidance_scale: float) -> Any:
        del guidance_scale
        return cls.from_config(config, **overrides)

    return factory


def diffusers_solvers() -> list[Solver]:
    """The stock diffusers solvers of the comparison."""
    return [
        Solver("DDIM", DIFFUSERS, "", _from_config(DDIMScheduler)),
        Solver("PLMS", DIFFUSERS, "", _from_config(PNDMScheduler, skip_prk_steps=True)),
        Solver("DPM++2M", DIFFUSERS, "", _from_config(DPMSolverMultistepScheduler, solver_order=2)),
        Solver("DPM++3M", DIFFUSERS, "", _from_config(DPMSolverMultistepScheduler, solver_order=3)),
        Solver("UniPC", DIFFUSERS, "", _from_config(UniPCMultistepScheduler)),
        Solver("DEIS", DIFFUSERS, "", _from_config(DEISMultistepScheduler)),
        Solver("Euler", DIFFUSERS, "", _from_config(EulerDiscreteScheduler)),
    ]


DPM_BETAS = (0.9, 0.8, 0.7, 0.6, 0.5)
GHVB_NUMBERS = (0.5, 0.8, 1.5, 1.8, 2.5, 2.8, 3.5, 3.8, 3.9, 4.0)
HB_NUMBERS = (1.8, 2.8, 3.8, 3.9)


def inertia_solvers() -> list[Solver]:
    """The inertia sweeps and "auto" settings. Raises ``ImportError`` if :mod:`inertia.samplers` is unavailable."""
    from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

    def number_factory(number: float, method: str) -> Callable[[Mapping[str, Any], float], Any]:
        def factory(config: Mapping[str, Any], guidance_scale: float) -> Any:
            del guidance_scale
            return MomentumPLMSScheduler.from_momentum_number(config, number, method=method)

        return factory

    def auto_factory(cls: type, **overrides: Any) -> Callable[[Mapping[str, Any], float], Any]:
        def factory(config: Mapping[str, Any], guidance_scale: float) -> Any:
            return cls.from_config(config, momentum_beta="auto", momentum_guidance_scale=guidance_scale, **overrides)

        return factory

    solvers = []
    for order in (2, 3):
        for beta in DPM_BETAS:
            solvers.append(
                Solver(
                    f"HB-DPM++{order}M β={beta}",
                    f"HB-DPM++{order}M",
                    f"β={beta}",
                    _from_config(MomentumDPMSolverMultistepScheduler, solver_order=order, momentum_beta=beta),
                )
            )
    solvers += [Solver(f"GHVB {r}", "GHVB-PLMS", f"r={r}", number_factory(r, "ghvb")) for r in GHVB_NUMBERS]
    solvers += [Solver(f"HB-PLMS {r}", "HB-PLMS", f"r={r}", number_factory(r, "hb")) for r in HB_NUMBERS]
    solvers += [
        Solver(
            "auto HB-DPM++2M",
            AUTO,
            "β=auto",
            auto_factory(MomentumDPMSolverMultistepScheduler, solver_order=2),
            auto_family="HB-DPM++2M",
        ),
        Solver(
            "auto GHVB-PLMS4",
            AUTO,
            "r=3+auto",
            auto_factory(MomentumPLMSScheduler, momentum_method="ghvb", solver_order=4),
            auto_family="GHVB-PLMS",
        ),
    ]
    return solvers


@dataclass
class BenchmarkResult:
    """Everything a run produced."""

    records: list[Record]
    solvers: list[Solver]
    grid: Grid
    reference_magnitude: dict[float, float]
    reference_check: dict[float, dict[str, float]]
    meta: dict[str, Any]
