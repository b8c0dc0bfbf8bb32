"""What the samplers-vs-peers benchmark runs and records: the grids, the function peers and the result records.

:class:`PeerGrid` says which guidance scales, NFE budgets and batch to run (:data:`FULL`, :data:`QUICK`);
:func:`function_peers` lists the k-diffusion-style sampler functions (k-diffusion's own, transcribed in
:mod:`benchmarks.peers.k_diffusion`, and inertia's ``sample_hb_dpmpp_2m``/``_3m``) on every sigma grid;
:class:`PeerRecord` is one (peer, guidance, NFE budget) result. The run loop is :mod:`benchmarks.samplers.vs_peers`,
the tables and targets :mod:`benchmarks.samplers.vs_peers_report`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.peers import k_diffusion as K
from benchmarks.samplers.accuracy_grid import AUTO, DPM_BETAS

__all__ = [
    "FULL",
    "GRIDS",
    "INERTIA",
    "KDIFF",
    "QUICK",
    "FunctionPeer",
    "PeerGrid",
    "PeerRecord",
    "function_peers",
]

KDIFF = "k-diffusion"
INERTIA = "inertia"
GRIDS = ("discrete", "karras")
"""The sigma grids the k-diffusion-style samplers run on (names of :func:`benchmarks.peers.k_diffusion.get_sigmas`)."""


@dataclass(frozen=True)
class PeerGrid:
    """What to run: guidance scales, NFE budgets, batch and reference step counts."""

    guidances: tuple[float, ...]
    nfes: tuple[int, ...]
    batch: int
    reference_steps: int = 1000
    seed: int = 0
    noise_seed: int = 1


FULL = PeerGrid(guidances=(3.0, 7.5, 15.0, 22.5), nfes=(6, 8, 10, 15, 20), batch=64)
QUICK = PeerGrid(guidances=(3.0, 15.0), nfes=(8, 15), batch=8, reference_steps=200)


@dataclass
class PeerRecord:
    """One (peer, guidance, NFE budget) result."""

    name: str
    family: str  # "diffusers", "k-diffusion", "inertia" or "auto"
    grid: str  # "trailing" (diffusers' timesteps), "discrete" or "karras"
    stochastic: bool
    reference: str  # "ODE" or "SDE": what rmse is measured against
    guidance: float
    nfe_budget: int
    nfe: int
    steps: int
    rmse: float
    median_error: float
    far_fraction: float
    magnitude: float
    nonfinite: float
    data_distance: float
    beta: float | None
    seconds: float


@dataclass(frozen=True)
class FunctionPeer:
    """A k-diffusion-style sampler function on one sigma grid.

    Attributes:
        name: display name.
        family: ``"k-diffusion"``, ``"inertia"`` or ``"auto"``.
        grid: the sigma grid (see :data:`GRIDS`).
        function: ``function(model, x, sigmas, disable=True, **options)``.
        evals_per_step: model calls per step (except the last).
        stochastic: whether it injects noise (then it gets the shared Brownian path as ``noise_sampler``).
        options: ``options(guidance, steps) -> kwargs`` (e.g. the auto β).
    """

    name: str
    family: str
    grid: str
    function: Callable[..., torch.Tensor]
    evals_per_step: int = 1
    stochastic: bool = False
    options: Callable[[float, int], dict[str, Any]] = field(default=lambda guidance, steps: {})

    def steps_for(self, nfe: int) -> int:
        return K.SamplerInfo(self.function, self.evals_per_step, self.stochastic).steps_for_nfe(nfe)


def function_peers(grids: Sequence[str] = GRIDS) -> list[FunctionPeer]:
    """k-diffusion's samplers and inertia's k-diffusion-style HB-DPM-Solver++ functions on every grid."""
    from inertia.core.samplers.beta_policy import auto_beta
    from inertia.k_diffusion import sample_hb_dpmpp_2m, sample_hb_dpmpp_3m

    peers = []
    for grid in grids:
        for name, info in K.SAMPLERS.items():
            peers.append(FunctionPeer(name, KDIFF, grid, info.function, info.evals_per_step, info.stochastic))
        for order, function in ((2, sample_hb_dpmpp_2m), (3, sample_hb_dpmpp_3m)):
            for beta in DPM_BETAS:
                peers.append(
                    FunctionPeer(f"hb_dpmpp_{order}m β={beta}", INERTIA, grid, function, options=_fixed(beta))
                )
        kind = "karras" if grid == "karras" else "vp"  # the "discrete" grid: the model's sigmas at even timesteps
        peers.append(FunctionPeer("auto hb_dpmpp_2m", AUTO, grid, sample_hb_dpmpp_2m, options=_auto(auto_beta, kind)))
    return peers


def _fixed(beta: float) -> Callable[[float, int], dict[str, Any]]:
    return lambda guidance, steps: {"beta": beta}


def _auto(rule: Callable[..., float], kind: str) -> Callable[[float, int], dict[str, Any]]:
    return lambda guidance, steps: {"beta": rule("hb-dpm++", steps, guidance, kind)}
