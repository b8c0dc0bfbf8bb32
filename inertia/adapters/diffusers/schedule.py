"""Noise-schedule plumbing shared by inertia's diffusers schedulers (host-adapter layer, no sampler math).

Both schedulers reuse diffusers' own `DPMSolverMultistepScheduler` schedule code for every built-in spacing and sigma
option, so that for the same config they walk exactly the same timesteps and sigmas as the stock DPM-Solver. On top of
it this module adds what the stock class lacks as a drop-in:

- ``set_timesteps(..., sigmas=...)``: custom sigmas, which the Flux pipeline always passes. VP sigmas are the
  σ̄ = σ/α values diffusers' Euler and DPM schedulers store; flow sigmas go through the same shift (static
  ``flow_shift`` or dynamic ``mu``) as `FlowMatchEulerDiscreteScheduler`, which is what the Flux pipeline expects.
- ``mu`` without ``use_dynamic_shifting`` is ignored (as `FlowMatchEulerDiscreteScheduler` does) instead of failing,
  and the schedule no longer leaves ``exp(mu)`` behind in ``config.flow_shift``.
- ``from_config`` of a flow-matching scheduler's config (SD3, Flux) switches to flow mode by itself:
  ``prediction_type="flow_prediction"``, ``use_flow_sigmas=True`` and ``flow_shift = shift``.
- ``scale_noise`` (the flow pipelines' img2img call).
- ``shift_terminal`` (Qwen-Image, LTX-2 configs): the shifted flow sigmas are stretched so that the last one equals it,
  as `FlowMatchEulerDiscreteScheduler` does; custom flow sigmas are shifted in float32 as that class shifts them, so
  the pipelines that always pass ``sigmas=`` (Flux.2, Qwen-Image, Z-Image, LTX-2) see bit-identical timesteps.

Where the stock class silently computes a NaN or wrong schedule, ours raises a ``ValueError`` that names the parameter:
``trained_betas`` of the wrong length, non-finite or outside [0, 1], and a schedule that visits σ = 0 or σ = ∞.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers

from inertia.adapters.diffusers.private_api import reset_step_index, sigma_to_timestep
from inertia.core.validation import check_choice, check_range

__all__ = ["FLOW_SCHEDULER_NAMES", "MomentumScheduleMixin", "flow_defaults_for"]

FLOW_SCHEDULER_NAMES = ("FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler")
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "flow_prediction")
TIMESTEP_SPACINGS = ("linspace", "leading", "trailing")
FINAL_SIGMAS_TYPES = ("zero", "sigma_min")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
TIME_SHIFT_TYPES = ("exponential", "linear")


def _is_flow_config(config: Mapping[str, Any]) -> bool:
    name = str(config.get("_class_name", ""))
    return (
        name.startswith("FlowMatch")
        or ("shift" in config and "beta_start" not in config)  # an in-memory FlowMatch config has no _class_name
        or config.get("prediction_type") == "flow_prediction"
        or bool(config.get("use_flow_sigmas", False))
    )


def flow_defaults_for(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Returns ``overrides`` completed with the flow-mode keys a flow-matching ``config`` implies.

    Keys the caller passed explicitly always win; nothing changes for VP configs.
    """
    out = dict(overrides)
    if not _is_flow_config(config):
        return out
    out.setdefault("prediction_type", "flow_prediction")
    out.setdefault("use_flow_sigmas", True)
    if "shift" in config and "flow_shift" not in config:
        out.setdefault("flow_shift", float(config["shift"]))
    for key in ("invert_sigmas", "stochastic_sampling"):
        if config.get(key):
            warnings.warn(
                f"`{key}`={config[key]!r} of the flow-matching config is not supported and is ignored.", stacklevel=3
            )
    return out


def _check_trained_betas(value: Any, num_train_timesteps: int) -> None:
    """Accepts the ``trained_betas`` diffusers accepts (list, tuple, array, tensor) unless they give NaN sigmas.

    diffusers reads the betas as ``torch.tensor(trained_betas)`` and indexes them with timesteps in
    [0, num_train_timesteps), so a wrong length, a non-finite beta or a beta outside [0, 1] silently yields a wrong
    or NaN noise schedule there. Betas of exactly 0 or 1 are legal here; a schedule that then visits σ = 0 or σ = ∞
    is refused by ``set_timesteps``.
    """
    try:
        betas = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"`trained_betas` must be a 1-D sequence of {num_train_timesteps} numbers in [0, 1] (one beta per training "
            f"timestep), got {type(value).__name__} {value!r:.80}: {err}"
        ) from None
    if betas.ndim != 1:
        raise ValueError(
            f"`trained_betas` must be a 1-D sequence of {num_train_timesteps} numbers in [0, 1] (one beta per training "
            f"timestep), got shape {tuple(betas.shape)}."
        )
    if len(betas) != num_train_timesteps:
        consequence = (
            "timesteps past the last beta would silently reuse it, so part of the schedule is constant and its "
            "sigmas repeat (NaN in multistep solvers)"
            if len(betas) < num_train_timesteps
            else "the schedule would stop at the sigma of timestep "
            f"{num_train_timesteps - 1} and never reach the noise level the model was trained to start from"
        )
        raise ValueError(
            f"`trained_betas` must have exactly `num_train_timesteps`={num_train_timesteps} entries (one per training "
            f"timestep), got {len(betas)}: {consequence}. Pass num_train_timesteps={len(betas)} with these betas."
        )
    bad = ~torch.isfinite(betas) | (betas < 0.0) | (betas > 1.0)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"`trained_betas` must be finite numbers in [0, 1], got {float(betas[i])!r} at index {i}: a beta outside "
            "[0, 1] makes alphas_cumprod leave [0, 1], so the sigmas sqrt((1 - alphas_cumprod) / alphas_cumprod) are "
            "NaN."
        )


class MomentumScheduleMixin:
    """Schedule behaviour shared by `MomentumPLMSScheduler` and `MomentumDPMSolverMultistepScheduler`.

    A class using it provides ``_grid``: the `DPMSolverMultistepScheduler` whose schedule code computes the sigmas
    (the scheduler itself for the DPM subclass, a private instance for the PLMS scheduler).

    Example:
        >>> from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler
        >>> schedulers = (MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler)
        >>> all(issubclass(c, MomentumScheduleMixin) for c in schedulers)
        True
        >>> "DDIMScheduler" in MomentumPLMSScheduler._compatibles   # so `from_config(ddim.config)` is offered
        True
    """

    # Names resolved by diffusers with getattr(diffusers, name): every VP solver and the flow-matching schedulers.
    _compatibles = [e.name for e in KarrasDiffusionSchedulers] + list(FLOW_SCHEDULER_NAMES)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None, return_unused_kwargs: bool = False, **kwargs: Any):
        """Like `ConfigMixin.from_config`, and switches to flow mode when ``config`` is a flow-matching config.

        Example:
            >>> from diffusers import FlowMatchEulerDiscreteScheduler
            >>> from inertia.samplers import MomentumDPMSolverMultistepScheduler
            >>> flux = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True)
            >>> s = MomentumDPMSolverMultistepScheduler.from_config(flux.config)
            >>> s.config.prediction_type, s.config.use_flow_sigmas, s.config.flow_shift
            ('flow_prediction', True, 3.0)
        """
        if isinstance(config, Mapping):
            kwargs = flow_defaults_for(config, kwargs)
        return super().from_config(config, return_unused_kwargs, **kwargs)  # type: ignore[misc]

    @property
    def _grid(self) -> DPMSolverMultistepScheduler:  # pragma: no cover - overridden
        raise NotImplementedError

    def _validate_schedule_config(self) -> None:
        """Raises ``ValueError`` naming the first invalid schedule key (shared vocabulary with diffusers)."""
        cfg = self.config  # type: ignore[attr-defined]
        n = cfg.num_train_timesteps
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"`num_train_timesteps` must be an integer >= 2, got {n!r}.")
        if cfg.trained_betas is None:
            check_choice("beta_schedule", cfg.beta_schedule, BETA_SCHEDULES)
            check_range("beta_start", cfg.beta_start, 0.0, 1.0, low_open=True)
            check_range("beta_end", cfg.beta_end, 0.0, 1.0, low_open=True)
        else:
            _check_trained_betas(cfg.trained_betas, n)
        check_choice("prediction_type", cfg.prediction_type, PREDICTION_TYPES)
        check_choice("timestep_spacing", cfg.timestep_spacing, TIMESTEP_SPACINGS)
        check_choice("final_sigmas_type", cfg.final_sigmas_type, FINAL_SIGMAS_TYPES)
        check_choice("time_shift_type", cfg.time_shift_type, TIME_SHIFT_TYPES)
        if isinstance(cfg.steps_offset, bool) or not isinstance(cfg.steps_offset, int) or cfg.steps_offset < 0:
            raise ValueError(f"`steps_offset` must be an integer >= 0, got {cfg.steps_offset!r}.")
        check_range("flow_shift", cfg.flow_shift, 0.0, low_open=True)
        if cfg.prediction_type == "flow_prediction" and not cfg.use_flow_sigmas:
            raise ValueError(
                "`prediction_type`='flow_prediction' needs `use_flow_sigmas`=True (a flow model's sigmas are in "
                "[0, 1]); got use_flow_sigmas=False."
            )
        chosen = [k for k in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas") if cfg[k]]
        if len(chosen) > 1:
            raise ValueError(
                f"Only one of `use_karras_sigmas`, `use_exponential_sigmas`, `use_beta_sigmas` may be set, got {chosen}."
            )
        if cfg.use_flow_sigmas and (chosen or cfg.use_lu_lambdas):
            raise ValueError(
                f"`use_flow_sigmas`=True cannot be combined with {chosen or ['use_lu_lambdas']}: those options "
                "reshape VP sigmas; pass custom flow `sigmas` to `set_timesteps` instead."
            )
        check_range("momentum_guidance_scale", cfg.momentum_guidance_scale, 0.0)
        terminal = cfg.get("shift_terminal")
        if terminal is not None:
            check_range("shift_terminal", terminal, 0.0, 1.0, low_open=True)
            if terminal >= 1.0:
                raise ValueError(f"`shift_terminal` must be in (0, 1), got {terminal!r}.")

    def _auto_schedule_kind(self) -> str:
        """The ``schedule_kind`` of :func:`~inertia.core.samplers.beta_policy.auto_beta` for this config and the last
        `set_timesteps` call: ``"flow"``, ``"karras"``, ``"vp"`` (a built-in timestep spacing), or ``"other"`` for
        grids the policy was not measured on (exponential, beta or Lu λ sigmas, zero terminal SNR, custom VP
        ``timesteps``/``sigmas``), where ``"auto"`` is β = 1."""
        cfg = self.config  # type: ignore[attr-defined]
        if cfg.use_flow_sigmas:
            return "flow"
        unmeasured = (cfg.use_exponential_sigmas, cfg.use_beta_sigmas, cfg.use_lu_lambdas, cfg.rescale_betas_zero_snr)
        if getattr(self, "_custom_vp_grid", False) or any(unmeasured):
            return "other"
        return "karras" if cfg.use_karras_sigmas else "vp"

    @property
    def momentum_beta(self) -> float:
        """The β in use for the current schedule (resolves ``"auto"`` after `set_timesteps`)."""
        return self._beta  # type: ignore[attr-defined]

    def _reset_momentum(self) -> None:  # pragma: no cover - overridden
        """Copies the new schedule where needed, clears every momentum state and resolves ``"auto"``."""
        raise NotImplementedError

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        mu: float | None = None,
        timesteps: Sequence[float] | None = None,
        sigmas: Sequence[float] | None = None,
    ) -> None:
        """Sets the schedule and resets all solver and momentum state (called once per generation by pipelines).

        The positional order is that of `DPMSolverMultistepScheduler.set_timesteps` (``num_inference_steps``,
        ``device``, ``mu``, ``timesteps``), so every call that works on the stock class works here, with the same
        timesteps and sigmas (computed by its own code); ``sigmas`` comes after them.

        Args:
            num_inference_steps: number of denoising steps.
            device: where ``timesteps`` live (``sigmas`` stay on the CPU, as in diffusers).
            mu: resolution shift for ``use_dynamic_shifting`` (SD3/Flux); ignored otherwise.
            timesteps: custom descending timesteps (VP: integers in [0, num_train_timesteps)).
            sigmas: custom descending sigmas (VP: σ̄ = σ/α as in diffusers' Euler scheduler; flow: σ ∈ (0, 1],
                shifted like `FlowMatchEulerDiscreteScheduler`). The terminal sigma is appended.

        Raises:
            ValueError: for invalid arguments, and for schedules on which the stock class silently computes NaN or
                nothing: a VP sigma of 0 or ∞ before the last step (betas of 0 or 1), or every step at one timestep
                ("leading" spacing with about ``num_train_timesteps`` steps).
        """
        self._set_schedule(num_inference_steps, device, timesteps, sigmas, mu)
        # a VP grid of the caller's own: not a grid `momentum_beta="auto"` was measured on
        flow = self._grid.config.use_flow_sigmas
        self._custom_vp_grid = (timesteps is not None or sigmas is not None) and not flow
        self._check_vp_sigmas()
        self._check_collapsed_timesteps()
        self._reset_momentum()

    # ------------------------------------------------------------------------------------------------------------
    # set_timesteps
    def _set_schedule(
        self,
        num_inference_steps: int | None,
        device: str | torch.device | None,
        timesteps: Sequence[float] | None,
        sigmas: Sequence[float] | None,
        mu: float | None,
    ) -> None:
        """Fills ``self._grid.sigmas`` / ``.timesteps`` / ``.num_inference_steps`` and resets its solver state."""
        grid = self._grid
        cfg = grid.config
        given = [name for name, v in (("timesteps", timesteps), ("sigmas", sigmas)) if v is not None]
        if len(given) > 1:
            raise ValueError("Pass at most one of `timesteps` or `sigmas` to `set_timesteps`.")
        if num_inference_steps is None and not given:
            raise ValueError("`set_timesteps` needs `num_inference_steps`, `timesteps` or `sigmas`.")
        if num_inference_steps is not None:
            if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int | np.integer):
                raise ValueError(f"`num_inference_steps` must be an integer >= 1, got {num_inference_steps!r}.")
            if not 1 <= num_inference_steps <= cfg.num_train_timesteps:
                raise ValueError(
                    f"`num_inference_steps` must be in [1, {cfg.num_train_timesteps}] (`num_train_timesteps`), "
                    f"got {num_inference_steps}."
                )
            custom = timesteps if timesteps is not None else sigmas
            if custom is not None and len(custom) != num_inference_steps:
                raise ValueError(
                    f"`{given[0]}` has {len(custom)} entries but `num_inference_steps`={num_inference_steps}."
                )
        if mu is not None and not cfg.use_dynamic_shifting:
            mu = None  # FlowMatchEulerDiscreteScheduler ignores mu without dynamic shifting; so do we.
        if mu is not None:
            check_range("mu", float(mu) if isinstance(mu, np.floating) else mu, -math.inf)

        if cfg.use_flow_sigmas and timesteps is not None:
            # Flow timesteps are σ·T: derive the sigmas (shifted, like FlowMatchEuler) and keep the timesteps as given.
            self._check_custom_values("timesteps", np.asarray(timesteps, dtype=np.float64), 0, cfg.num_train_timesteps)
            base = np.asarray(timesteps, dtype=np.float64) / cfg.num_train_timesteps
            self._set_custom_sigmas(base, mu, device, keep_timesteps=np.asarray(timesteps, dtype=np.float32))
        elif sigmas is not None:
            self._set_custom_sigmas(np.asarray(sigmas, dtype=np.float64), mu, device)
        elif cfg.use_flow_sigmas and mu is not None and cfg.time_shift_type == "linear":
            # diffusers' DPM-Solver only knows the exponential shift; apply the linear one to its unshifted grid.
            n = num_inference_steps
            base = np.flip(1.0 - np.linspace(1, 1 / cfg.num_train_timesteps, n + 1))[:-1].copy()
            self._set_custom_sigmas(base, mu, device)
        else:
            if timesteps is not None:
                self._check_custom_values(
                    "timesteps", np.asarray(timesteps, dtype=np.float64), 0, cfg.num_train_timesteps - 1
                )
            flow_shift = cfg["flow_shift"]
            DPMSolverMultistepScheduler.set_timesteps(
                grid,
                num_inference_steps=None if timesteps is not None else num_inference_steps,
                device=device,
                mu=mu,
                timesteps=timesteps,
            )
            # DPM-Solver writes exp(mu) into config.flow_shift; restore it so no schedule state outlives the call.
            cfg.flow_shift = flow_shift
            if cfg.use_flow_sigmas and self._shift_terminal() is not None and timesteps is None:
                stretched = self._stretch(grid.sigmas[:-1].double().numpy())
                grid.sigmas = torch.cat([torch.from_numpy(stretched).float(), grid.sigmas[-1:]])
                # integer σ·T, as DPM-Solver's own flow timesteps
                grid.timesteps = torch.from_numpy((stretched * cfg.num_train_timesteps).astype(np.int64)).to(device)

    def _shift_terminal(self) -> float | None:
        value = self.config.get("shift_terminal")  # type: ignore[attr-defined]
        return None if value is None or value == 0 else float(value)

    def _stretch(self, sigmas: np.ndarray) -> np.ndarray:
        """Stretches shifted flow sigmas so the last one is ``shift_terminal``: 1 − (1 − σ)·(1 − s_T)/(1 − σ_last)."""
        terminal = self._shift_terminal()
        if terminal is None:
            return sigmas
        one_minus = 1.0 - sigmas
        scale = one_minus[-1] / (1.0 - terminal)  # FlowMatchEuler's stretch_shift_to_terminal (LTX-Video's rule)
        return 1.0 - one_minus / scale

    def _max_distinct_steps(self) -> int:
        """The most steps "linspace" and "leading" spacing give without repeating a timestep (DPM-Solver's rule).

        Both spread the steps over [0, T − c − 1], where c is the number of final training timesteps cut off by
        ``lambda_min_clipped``; more steps than T − c − 1 make two rounded timesteps coincide.
        """
        grid = self._grid
        clipped = int(torch.searchsorted(torch.flip(grid.lambda_t, [0]), grid.config.lambda_min_clipped))
        return grid.config.num_train_timesteps - clipped - 1

    def _check_collapsed_timesteps(self) -> None:
        """Refuses a schedule whose every step is the same timestep ("leading" with too many steps: step ratio 0)."""
        grid = self._grid
        n = len(grid.timesteps)
        if n > 1 and bool((grid.timesteps == grid.timesteps[0]).all()):
            cfg = grid.config
            raise ValueError(
                f"`num_inference_steps`={n} with `timestep_spacing`={cfg.timestep_spacing!r} puts every step at "
                f"timestep {int(grid.timesteps[0])} (its step ratio rounds to 0), so no step removes any noise. Use "
                f"num_inference_steps in [1, {self._max_distinct_steps()}] or timestep_spacing='trailing'."
            )

    def _check_vp_sigmas(self) -> None:
        """Refuses a VP schedule that visits σ = 0 or σ = ∞ before its last step (ᾱ = 1 or 0, e.g. from betas of 0 or 1).

        From such a sigma the data prediction x0 = (x − σ·ε)/α, or the log-SNR step, divides by zero, and both
        DPM-Solver and PLMS return NaN (the stock `DPMSolverMultistepScheduler` does so silently).
        """
        grid = self._grid
        cfg = grid.config
        if cfg.use_flow_sigmas:
            return
        head = grid.sigmas[:-1].double()
        bad = ~torch.isfinite(head) | (head <= 0.0)
        if not bool(bad.any()):
            return
        i = int(torch.nonzero(bad)[0])
        t = int(grid.timesteps[i])
        where = f"step {i} (timestep {t})" if 0 <= t < cfg.num_train_timesteps else f"step {i}"
        cause = "`trained_betas` give" if cfg.trained_betas is not None else "The schedule gives"
        raise ValueError(
            f"{cause} sigma={float(head[i])!r} at {where} of this {len(head)}-step schedule: alphas_cumprod reaches 0 "
            "or 1, so x0 = (x - sigma * eps) / alpha or the log-SNR step divides by zero and every sample would be "
            "NaN. Valid schedules keep alphas_cumprod in (0, 1) at every visited timestep: use betas in (0, 1), or a "
            "final beta of 1 only with `rescale_betas_zero_snr`=True (which clamps it, as diffusers does)."
        )

    @staticmethod
    def _check_custom_values(name: str, values: np.ndarray, low: float, high: float) -> None:
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"`{name}` must be a non-empty 1-D sequence, got shape {values.shape}.")
        if not np.all(np.isfinite(values)) or values.min() < low or values.max() > high:
            raise ValueError(f"`{name}` must be finite values in [{low}, {high}], got {values.tolist()}.")
        if values.size > 1 and not np.all(np.diff(values) < 0):
            raise ValueError(f"`{name}` must be strictly decreasing, got {values.tolist()}.")

    def _set_custom_sigmas(
        self,
        sigmas: np.ndarray,
        mu: float | None,
        device: str | torch.device | None,
        keep_timesteps: np.ndarray | None = None,
    ) -> None:
        grid = self._grid
        cfg = grid.config
        n = len(sigmas)
        if cfg.use_flow_sigmas:
            self._check_custom_values("sigmas", sigmas, 0.0, 1.0)
            if sigmas.min() <= 0.0:
                raise ValueError(f"`sigmas` must be > 0 (the terminal 0 is appended), got {sigmas.tolist()}.")
            # FlowMatchEuler shifts custom sigmas in float32; so do we, for bit-identical timesteps.
            sigmas = sigmas.astype(np.float32)
            if mu is not None:
                # Resolution-dependent shift of FlowMatchEuler (SD3/Flux): exp(mu)/(exp(mu) + (1/σ − 1)), or linear.
                m = math.exp(mu) if cfg.time_shift_type == "exponential" else mu
                sigmas = m / (m + (1.0 / sigmas - 1.0))
            else:
                # Static shift σ' = sσ / (1 + (s − 1)σ) with s = flow_shift.
                s = cfg.flow_shift
                sigmas = s * sigmas / (1.0 + (s - 1.0) * sigmas)
            sigmas = self._stretch(sigmas)
            if keep_timesteps is not None:
                timesteps_t = torch.from_numpy(np.asarray(keep_timesteps, dtype=np.float32)).to(device=device)
            else:  # float32 σ·T, computed as FlowMatchEulerDiscreteScheduler does, so Flux sees the same timesteps
                timesteps_t = (torch.from_numpy(sigmas.astype(np.float32)) * cfg.num_train_timesteps).to(device=device)
        else:
            self._check_custom_values("sigmas", sigmas, 0.0, math.inf)
            if sigmas.min() <= 0.0:
                raise ValueError(f"`sigmas` must be > 0 (the terminal sigma is appended), got {sigmas.tolist()}.")
            log_sigmas = np.log(np.array(((1 - grid.alphas_cumprod) / grid.alphas_cumprod) ** 0.5))
            timesteps = np.array([sigma_to_timestep(grid, s, log_sigmas) for s in sigmas])
            if cfg.beta_schedule != "squaredcos_cap_v2":
                timesteps = timesteps.round()
            timesteps_t = torch.from_numpy(timesteps).to(device=device, dtype=torch.int64)
        if cfg.final_sigmas_type == "sigma_min":
            last = float(((1 - grid.alphas_cumprod[0]) / grid.alphas_cumprod[0]) ** 0.5)
        else:
            last = 0.0
        grid.sigmas = torch.from_numpy(np.concatenate([sigmas, [last]]).astype(np.float32))
        grid.timesteps = timesteps_t
        grid.num_inference_steps = n
        grid.model_outputs = [None] * cfg.solver_order
        grid.lower_order_nums = 0
        reset_step_index(grid)

    # ------------------------------------------------------------------------------------------------------------
    def scale_noise(
        self, sample: torch.Tensor, timestep: float | torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Forward process for img2img in flow pipelines (SD3, Flux): σ·noise + (1 − σ)·sample in flow mode.

        In VP mode it is the usual α·sample + σ·noise. Same index rules as ``add_noise`` (``begin_index``).
        """
        if noise is None:
            raise ValueError("`scale_noise` needs a `noise` tensor.")
        if not isinstance(timestep, torch.Tensor):
            timestep = torch.tensor([timestep])
        if timestep.ndim == 0:
            timestep = timestep[None]
        return self.add_noise(sample, noise, timestep)  # type: ignore[attr-defined]
