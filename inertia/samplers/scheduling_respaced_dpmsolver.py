"""`RespacedDPMSolverMultistepScheduler`: heavy-ball DPM-Solver++(2M) with its own step placement (diffusers adapter).

The math is in :mod:`inertia.samplers.respaced` (docs/methods/respaced-dpm-solver.md): the host schedule's interior
noise levels re-placed by ρ-spacing (same first and last level, same step count), a bound on the 2M correction
weight, and heavy ball on the 2M combination. With ``momentum_beta=1.0, sigma_rho=None, max_correction_weight=None``
it *is* `DPMSolverMultistepScheduler` (solver order 2, midpoint), bit for bit. ``"auto"`` (the default of all three)
resolves through `recommended_settings`, which is the stock solver for now: the study behind this class
(BENCHMARKS.md §14) found step placements that win 3x on exact-denoiser problems but lose 2-3x on a trained network,
so every part is opt-in.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from diffusers.configuration_utils import register_to_config

from .dpm_momentum import dpmpp_update, heavy_ball
from .momentum import validate_beta
from .respaced import bounded_2m_combination, recommended_settings, respace_sigmas
from .scheduling_momentum_dpmsolver import MomentumDPMSolverMultistepScheduler

__all__ = ["RespacedDPMSolverMultistepScheduler"]


def _check_optional(name: str, value: Any, low_open: float) -> None:
    if value is None or value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= low_open:
        raise ValueError(f'`{name}` must be "auto", None or a finite number > {low_open:g}, got {value!r}.')


class RespacedDPMSolverMultistepScheduler(MomentumDPMSolverMultistepScheduler):
    """DPM-Solver++(2M) with re-placed steps, a bounded 2M correction and heavy-ball momentum.

    A drop-in for diffusers pipelines (VP and flow configs, like `MomentumDPMSolverMultistepScheduler`, whose config
    keys it keeps). Extra config keys:
        sigma_rho (`float`, `None` or `"auto"`, defaults to `"auto"`): ρ of the interior step placement (1 = uniform in
            σ/α, more steps at high noise than the host's spacing); None keeps the host's levels. Custom `sigmas` or
            `timesteps` passed to `set_timesteps` are never re-placed.
        max_correction_weight (`float`, `None` or `"auto"`, defaults to `"auto"`): bound on the 2M weight ½·h/h_last;
            None = unbounded (stock).
        momentum_beta (defaults to `"auto"` here): heavy-ball β, as in the parent.

    Example:
        >>> from diffusers import DDIMScheduler
        >>> from inertia.samplers.scheduling_respaced_dpmsolver import RespacedDPMSolverMultistepScheduler
        >>> config = DDIMScheduler(beta_schedule="scaled_linear", timestep_spacing="trailing").config
        >>> scheduler = RespacedDPMSolverMultistepScheduler.from_config(config, sigma_rho=3.0, max_correction_weight=0.5)
        >>> scheduler.set_timesteps(8)
        >>> scheduler.timesteps.tolist()
        [999, 961, 913, 851, 765, 632, 408, 124]
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        solver_order: int = 2,
        prediction_type: Literal["epsilon", "sample", "v_prediction", "flow_prediction"] = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        algorithm_type: str = "dpmsolver++",
        solver_type: str = "midpoint",
        lower_order_final: bool = True,
        euler_at_final: bool = False,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_lu_lambdas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
        lambda_min_clipped: float = -float("inf"),
        variance_type: Literal["learned", "learned_range"] | None = None,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
        use_dynamic_shifting: bool = False,
        time_shift_type: Literal["exponential", "linear"] = "exponential",
        momentum_beta: float | Literal["auto"] = "auto",
        momentum_guidance_scale: float = 7.5,
        base_shift: float = 0.5,
        max_shift: float = 1.15,
        base_image_seq_len: int = 256,
        max_image_seq_len: int = 4096,
        sigma_rho: float | Literal["auto"] | None = "auto",
        max_correction_weight: float | Literal["auto"] | None = "auto",
    ):
        _check_optional("sigma_rho", sigma_rho, 0.0)
        _check_optional("max_correction_weight", max_correction_weight, 0.0)
        changes = momentum_beta != 1.0 or sigma_rho is not None or max_correction_weight is not None
        if changes and (solver_order != 2 or solver_type != "midpoint"):
            raise ValueError(
                "RespacedDPMSolverMultistepScheduler damps, bounds and re-places DPM-Solver++(2M) midpoint steps: "
                f"got solver_order={solver_order!r}, solver_type={solver_type!r}; use solver_order=2, "
                "solver_type='midpoint', or MomentumDPMSolverMultistepScheduler for the other combinations."
            )
        if momentum_beta != "auto":
            validate_beta(momentum_beta, "momentum_beta")
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            solver_order=solver_order,
            prediction_type=prediction_type,
            thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio,
            sample_max_value=sample_max_value,
            algorithm_type=algorithm_type,
            solver_type=solver_type,
            lower_order_final=lower_order_final,
            euler_at_final=euler_at_final,
            use_karras_sigmas=use_karras_sigmas,
            use_exponential_sigmas=use_exponential_sigmas,
            use_beta_sigmas=use_beta_sigmas,
            use_lu_lambdas=use_lu_lambdas,
            use_flow_sigmas=use_flow_sigmas,
            flow_shift=flow_shift,
            final_sigmas_type=final_sigmas_type,
            lambda_min_clipped=lambda_min_clipped,
            variance_type=variance_type,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
            use_dynamic_shifting=use_dynamic_shifting,
            time_shift_type=time_shift_type,
            momentum_beta=momentum_beta,
            momentum_guidance_scale=momentum_guidance_scale,
            base_shift=base_shift,
            max_shift=max_shift,
            base_image_seq_len=base_image_seq_len,
            max_image_seq_len=max_image_seq_len,
        )
        self._rho: float | None = None
        self._max_weight: float | None = None

    @property
    def settings(self):
        """The resolved (β, ρ, bound) of the current schedule (after `set_timesteps`)."""
        from .respaced import RespacedSettings

        return RespacedSettings(beta=self._beta, rho=self._rho, max_weight=self._max_weight)

    def _resolve(self) -> None:
        cfg = self.config
        auto = recommended_settings(float(cfg.momentum_guidance_scale), int(self.num_inference_steps))
        self._beta = auto.beta if cfg.momentum_beta == "auto" else float(cfg.momentum_beta)
        self._rho = auto.rho if cfg.sigma_rho == "auto" else cfg.sigma_rho
        self._max_weight = auto.max_weight if cfg.max_correction_weight == "auto" else cfg.max_correction_weight

    def _reset_momentum(self) -> None:
        self._velocity = None
        self._resolve()
        self._find_repeated_sigmas()

    def set_timesteps(self, num_inference_steps=None, device=None, mu=None, timesteps=None, sigmas=None) -> None:
        """The parent's schedule, then (unless custom `timesteps`/`sigmas` were given) the interior re-placed by ρ."""
        super().set_timesteps(num_inference_steps, device, mu, timesteps, sigmas)
        if self._rho is None or timesteps is not None or sigmas is not None or len(self.timesteps) < 3:
            return
        self._respace(device)
        self._reset_momentum()

    def _respace(self, device) -> None:
        levels = self.sigmas[:-1].double()
        flow = bool(self.config.use_flow_sigmas)
        bar = levels / (1.0 - levels) if flow else levels  # flow: σ̄ = t/(1 − t); VP sigmas already are σ̄
        if flow and bool((levels >= 1.0).any()):
            return  # a flow level at t = 1 has σ̄ = ∞: keep the host's levels
        placed = respace_sigmas(bar, self._rho)
        if flow:
            new = placed / (1.0 + placed)
            timesteps = (new * self.config.num_train_timesteps).to(self.timesteps.dtype)
        else:
            # Round to integer timesteps (the model is called at t) and take their exact σ̄, so σ and t agree.
            train = ((1.0 - self.alphas_cumprod.double()) / self.alphas_cumprod.double()).sqrt()
            log_train = train.log().numpy()
            t = np.array([self._sigma_to_t(s, log_train) for s in placed.numpy()]).round().astype(np.int64)
            if np.any(np.diff(t) >= 0):
                return  # too many steps for distinct integer timesteps: keep the host's levels
            new, timesteps = train[torch.from_numpy(t)], torch.from_numpy(t)
        self.sigmas = torch.cat([new.to(self.sigmas.dtype), self.sigmas[-1:]])
        self.timesteps = timesteps.to(device=device if device is not None else self.timesteps.device)

    def _momentum_active(self) -> bool:
        return (self._beta < 1.0 or self._max_weight is not None) and self.config.algorithm_type == "dpmsolver++"

    def multistep_dpm_solver_second_order_update(
        self,
        model_output_list: list[torch.Tensor],
        *args: Any,
        sample: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """2M step with the bounded weight and the heavy-ball velocity; the stock step when both are off."""
        self._check_multistep(2)
        if not self._momentum_active() or args or sample is None:
            return super().multistep_dpm_solver_second_order_update(
                model_output_list, *args, sample=sample, noise=noise, **kwargs
            )
        lambda_t, (lambda_s0, lambda_s1), alpha_t, scale = self._lambdas(2)
        m0, m1 = model_output_list[-1], model_output_list[-2]
        h, h_0 = lambda_t - lambda_s0, lambda_s0 - lambda_s1
        # U = D0 + min(½·h/h_0, bound)·(D0 − D1)  (DPM-Solver++(2M), Lu et al. Alg. 2, with the weight bounded)
        combination = bounded_2m_combination(m0, m1, h, h_0, self._max_weight)
        # v ← (1−β)·v + β·U (Wizadwongsa et al. eq. 13, App. H); β = 1 returns U itself
        self._velocity = heavy_ball(self._velocity, combination, self._beta)
        return dpmpp_update(sample, self._velocity, h, scale, alpha_t)
