"""`MomentumPLMSScheduler`: PLMS (Adams-Bashforth) with heavy-ball, generalized heavy-ball or Nesterov momentum.

Paper: Wizadwongsa et al., ICLR 2024 (arXiv 2307.11118), §4 and Algorithms 1-2. The math lives
in :mod:`inertia.core.samplers.plms_momentum`; this class adapts it to the diffusers scheduler contract.

Each step works on the ODE dx̄/dσ̄ = ε (paper eq. 2) with x̄ = x/α and σ̄ = σ/α:

    u     = direction(ε_n, state)                      # HB (eq. 13-14), GHVB (eq. 15-19) or NT (App. E)
    x_t   = α_t·(x_s/α_s + (σ̄_t − σ̄_s)·u)             # the authors' "scale" output mode

Model outputs of every prediction type are first turned into ε (as the authors' code does): v → α·v + σ·x,
x0 → (x − α·x0)/σ, flow velocity → x + (1−σ)·v. For flow models (SD3, Flux; α = 1−σ, σ̄ = σ/(1−σ)) this is the paper's
update in the flow model's own x̄/σ̄ coordinates (our extension: the authors never ran flow models; BENCHMARKS.md has
no flow figure yet). Where the schedule starts at pure noise (flow σ = 1, α = 0, σ̄ = ∞) the first step is the exact
DDIM step x_t = α_t·x̂0 + σ_t·ε, which is what the formula gives in the limit because the first direction is u = ε.

Deviation from the authors' code: state resets in `set_timesteps` (no manual `clear_temp()`), the step index comes
from diffusers' `begin_index` rules (no `.nonzero().item()` per step), and every coefficient is precomputed in float64
at `set_timesteps`, so `step` has no host syncs.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin, SchedulerOutput

from inertia.adapters.diffusers.private_api import DPMSolverIndexing, init_step_index
from inertia.adapters.diffusers.schedule import MomentumScheduleMixin
from inertia.core.samplers.beta_policy import auto_beta
from inertia.core.samplers.plms_momentum import (
    MOMENTUM_METHODS,
    MomentumState,
    momentum_direction,
    momentum_number_to_order_beta,
    validate_beta,
    validate_order,
)

__all__ = ["MomentumPLMSScheduler"]

# Keys of our config that define the noise schedule; they are handed to diffusers' DPM-Solver schedule code.
_SCHEDULE_KEYS = (
    "num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type",
    "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas",
    "flow_shift", "final_sigmas_type", "lambda_min_clipped", "timestep_spacing", "steps_offset",
    "rescale_betas_zero_snr", "use_dynamic_shifting", "time_shift_type",
)  # fmt: skip


class MomentumPLMSScheduler(MomentumScheduleMixin, DPMSolverIndexing, SchedulerMixin, ConfigMixin):
    """PLMS-k sampler with heavy-ball (``"hb"``), generalized heavy-ball (``"ghvb"``) or Nesterov (``"nt"``) momentum.

    One model evaluation per step; memory ≤ ``solver_order + 1`` latent-sized float32 tensors.

    Args:
        momentum_method: ``"ghvb"`` (default: keeps order k for every β, Theorem 2), ``"hb"`` (PLMS-k with heavy
            ball; first order for β < 1, Theorem 1) or ``"nt"`` (Nesterov; also first order).
        solver_order: the PLMS order k, 1-5. With β = 1 every method is plain PLMS-k (AB-k with a lower-order start).
        momentum_beta: damping β ∈ (0, 1], or ``"auto"``: chosen at `set_timesteps` by
            :func:`~inertia.core.samplers.beta_policy.auto_beta` from ``momentum_guidance_scale``, the step count,
            ``solver_order`` and the schedule; 1 (plain PLMS-k) wherever damping was not measured to help.
            1 = no momentum; smaller = more damping.
        momentum_guidance_scale: the CFG scale the pipeline will use; read only when ``momentum_beta="auto"``.
        num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type, timestep_spacing,
            steps_offset, use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas, use_lu_lambdas,
            use_flow_sigmas, flow_shift, final_sigmas_type, lambda_min_clipped, rescale_betas_zero_snr,
            use_dynamic_shifting, time_shift_type: the diffusers schedule vocabulary, with the meaning and defaults
            of `DPMSolverMultistepScheduler` (the schedule is computed by its code, so both walk the same sigmas).
        base_shift, max_shift, base_image_seq_len, max_image_seq_len: kept from flow-matching configs for the SD3/Flux
            pipelines' resolution shift.
        shift_terminal: flow mode only; stretches the shifted sigmas so that the last one equals it, as
            `FlowMatchEulerDiscreteScheduler` does (Qwen-Image and LTX-2 configs set it).

    The papers' "momentum number" (GHVB 3.8 = order 4, β 0.8) is accepted by `from_momentum_number`.

    Example:
        >>> from diffusers import DDIMScheduler
        >>> from inertia.samplers import MomentumPLMSScheduler
        >>> base = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
        >>> sched = MomentumPLMSScheduler.from_momentum_number(base.config, 3.8, method="ghvb")
        >>> (sched.config.solver_order, sched.config.momentum_beta)
        (4, 0.8)

    In a pipeline: ``pipe.scheduler = MomentumPLMSScheduler.from_config(pipe.scheduler.config,
    momentum_method="ghvb", solver_order=4, momentum_beta=0.8)``.
    """

    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        momentum_method: Literal["hb", "ghvb", "nt"] = "ghvb",
        solver_order: int = 4,
        momentum_beta: float | Literal["auto"] = 0.8,
        momentum_guidance_scale: float = 7.5,
        prediction_type: Literal["epsilon", "sample", "v_prediction", "flow_prediction"] = "epsilon",
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_lu_lambdas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
        lambda_min_clipped: float = -float("inf"),
        rescale_betas_zero_snr: bool = False,
        use_dynamic_shifting: bool = False,
        time_shift_type: Literal["exponential", "linear"] = "exponential",
        base_shift: float = 0.5,
        max_shift: float = 1.15,
        base_image_seq_len: int = 256,
        max_image_seq_len: int = 4096,
        shift_terminal: float | None = None,
    ):
        if momentum_method not in MOMENTUM_METHODS:
            raise ValueError(f"`momentum_method` must be one of {MOMENTUM_METHODS}, got {momentum_method!r}.")
        validate_order(solver_order, "solver_order")
        if momentum_beta != "auto":
            validate_beta(momentum_beta, "momentum_beta")
        self._validate_schedule_config()
        self._schedule = DPMSolverMultistepScheduler(**{k: self.config[k] for k in _SCHEDULE_KEYS})
        self.init_noise_sigma = 1.0
        self.betas = self._schedule.betas
        self.alphas = self._schedule.alphas
        self.alphas_cumprod = self._schedule.alphas_cumprod
        self.sigmas = self._schedule.sigmas
        self.timesteps = self._schedule.timesteps
        self.num_inference_steps: int | None = None
        self._beta = 1.0 if momentum_beta == "auto" else float(momentum_beta)
        self._state = MomentumState()
        self._coefficients: list[tuple[float, float, float, float, float]] = []
        self._step_index: int | None = None
        self._begin_index: int | None = None

    # diffusers' own index bookkeeping (img2img `begin_index`, duplicate timesteps), used as is.

    @property
    def _grid(self) -> DPMSolverMultistepScheduler:
        return self._schedule

    @classmethod
    def from_momentum_number(
        cls, config: dict[str, Any], momentum_number: float, method: str = "ghvb", **kwargs: Any
    ) -> MomentumPLMSScheduler:
        """Builds the scheduler from the papers' notation: r = 3.8 → order 4, β 0.8; r = 2 → PLMS2 (paper §4.2).

        Args:
            config: any scheduler config (e.g. ``pipe.scheduler.config``).
            momentum_number: r ∈ (0, 5].
            method: ``"ghvb"``, ``"hb"`` or ``"nt"``.
            **kwargs: further config overrides.
        """
        if method not in MOMENTUM_METHODS:
            raise ValueError(f"`method` must be one of {MOMENTUM_METHODS}, got {method!r}.")
        order, beta = momentum_number_to_order_beta(momentum_number)
        return cls.from_config(config, momentum_method=method, solver_order=order, momentum_beta=beta, **kwargs)

    def _reset_momentum(self) -> None:
        self.sigmas = self._schedule.sigmas
        self.timesteps = self._schedule.timesteps
        self.num_inference_steps = int(self._schedule.num_inference_steps)
        self._state.reset()
        self._step_index = None
        self._begin_index = None
        if self.config.momentum_beta == "auto":
            cfg = self.config
            self._beta = auto_beta(
                cfg.momentum_method,
                self.num_inference_steps,
                cfg.momentum_guidance_scale,
                self._auto_schedule_kind(),
                order=cfg.solver_order,
            )
        self._coefficients = [self._step_coefficients(i) for i in range(self.num_inference_steps)]
        if self.config.prediction_type != "flow_prediction" and any(c[0] == 0.0 for c in self._coefficients):
            raise ValueError(
                f"The schedule starts at pure noise (alpha = 0), where `prediction_type`="
                f"{self.config.prediction_type!r} cannot give x0; use prediction_type='flow_prediction' for flow models."
            )

    def _alpha_sigma(self, sigma: float) -> tuple[float, float, float]:
        """(α, σ, σ̄) in float64 for a stored sigma: VP stores σ̄ = σ/α, flow stores σ with α = 1 − σ."""
        if self.config.use_flow_sigmas:
            alpha = 1.0 - sigma
            return alpha, sigma, (sigma / alpha if alpha > 0 else math.inf)
        alpha = 1.0 / math.sqrt(sigma * sigma + 1.0)
        return alpha, sigma * alpha, sigma

    def _step_coefficients(self, i: int) -> tuple[float, float, float, float, float]:
        alpha_s, sigma_s, bar_s = self._alpha_sigma(float(self.sigmas[i]))
        alpha_t, sigma_t, _ = self._alpha_sigma(float(self.sigmas[i + 1]))
        if alpha_s == 0.0:
            return alpha_s, sigma_s, math.nan, alpha_t, sigma_t
        # x_t = α_t·(x_s/α_s + (σ̄_t − σ̄_s)·u) = (α_t/α_s)·x_s + (σ_t − α_t·σ̄_s)·u
        return alpha_s, sigma_s, alpha_t / alpha_s, alpha_t, sigma_t - alpha_t * bar_s

    def _to_epsilon(self, output: torch.Tensor, sample: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        kind = self.config.prediction_type
        if kind == "epsilon":
            return output
        if kind == "v_prediction":
            return output * alpha + sample * sigma  # ε = α·v + σ·x
        if kind == "sample":
            return (sample - output * alpha) / sigma  # ε = (x − α·x0)/σ
        return sample + output * alpha  # flow: ε = x + (1 − σ)·v, with α = 1 − σ

    def scale_model_input(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Identity: the model sees x_t as is (VP and flow latents), as with DDIM and DPM-Solver."""
        return sample

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor]:
        """Advances one step with the configured momentum method.

        Args:
            model_output: the (guided) model output at ``timestep``, of the configured ``prediction_type``.
            timestep: the current timestep (used once, to find the start index when ``begin_index`` is unset).
            sample: the current latents x_t.
            generator: unused (deterministic sampler); accepted for pipeline compatibility.
            return_dict: return a `SchedulerOutput` (default) or a 1-tuple.

        Returns:
            The previous sample, in ``model_output``'s dtype.
        """
        if self.num_inference_steps is None:
            raise ValueError("`step` was called before `set_timesteps`; call `scheduler.set_timesteps(...)` first.")
        if model_output.shape != sample.shape:
            raise ValueError(
                f"`model_output` shape {tuple(model_output.shape)} differs from `sample` shape {tuple(sample.shape)}."
            )
        if self.step_index is None:
            init_step_index(self, timestep)
        i = self.step_index
        if i >= self.num_inference_steps:
            raise ValueError(
                f"`step` was called {i + 1} times for a {self.num_inference_steps}-step schedule; call "
                "`set_timesteps` before a new generation."
            )
        alpha_s, sigma_s, scale, alpha_t, gain = self._coefficients[i]
        x = sample.to(torch.float32)
        out = model_output.to(torch.float32)
        if alpha_s == 0.0:
            # Pure noise (flow σ = 1): ε = x and x̂0 = x − σ·v = x − v; the first direction is u = ε, so this is
            # exactly the DDIM step x_t = α_t·x̂0 + σ_t·ε.
            if self._state.velocity is not None or self._state.history:
                raise ValueError("A sigma of 1 (pure noise) may only start a schedule; got it mid-run.")
            eps = _own(self._to_epsilon(out, x, alpha_s, sigma_s), model_output, sample)
            momentum_direction(self.config.momentum_method, self._state, eps, self.config.solver_order, self._beta)
            prev = (x - out) * alpha_t + eps * gain
        else:
            eps = _own(self._to_epsilon(out, x, alpha_s, sigma_s), model_output, sample)
            u = momentum_direction(self.config.momentum_method, self._state, eps, self.config.solver_order, self._beta)
            prev = x * scale + u * gain  # x_t = (α_t/α_s)·x_s + α_t(σ̄_t − σ̄_s)·u
        prev = prev.to(model_output.dtype)
        self._step_index = i + 1
        if not return_dict:
            return (prev,)
        return SchedulerOutput(prev_sample=prev)

    def __len__(self) -> int:
        return self.config.num_train_timesteps


def _own(eps: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
    """``eps`` as a tensor the history may keep: a copy when it *is* one of the caller's inputs (fp32 ε output, or
    the sample at σ = 1), since a graphed or compiled denoiser overwrites its one output buffer every call."""
    return eps.clone() if any(eps is given for given in inputs) else eps
