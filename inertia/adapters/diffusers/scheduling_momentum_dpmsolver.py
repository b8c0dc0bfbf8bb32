"""`MomentumDPMSolverMultistepScheduler`: DPM-Solver++ multistep with Polyak heavy-ball momentum (diffusers adapter).

Paper: Wizadwongsa et al., ICLR 2024 (arXiv 2307.11118), §4.1 and App. H ("DPM-Solver++ w/ HB").
Every DPM-Solver++ multistep step has the exponential-integrator form

    x_t = (σ_t/σ_s0)·x_s − α_t·(e^{−h} − 1)·U                       (DPM-Solver++, Lu et al. 2022, eq. 5 and 2M/3M)

where U is the solver's estimate of the data prediction averaged over the step (2M midpoint: U = D0 + ½·D1).
Heavy ball replaces U by its exponential moving average, v ← (1−β)·v + β·U, and steps with v. β = 1 is the stock
solver, bit for bit (the parent's code runs unchanged).

Deviations from the authors' code, on purpose:
- ``solver_type="heun"`` and ``solver_order=3`` also get momentum. For heun, U = D0 − ((e^{−h}−1)/h + 1)/(e^{−h}−1)·D1
  (our extension, not in the paper). For order 3 we divide the 3M update by −α_t(e^{−h}−1) the same way:
  U = D0 − ((e^{−h}−1)/h + 1)/(e^{−h}−1)·D1 + ((e^{−h}−1+h)/h² − ½)/(e^{−h}−1)·D2, i.e. the 3M data-prediction
  combination, and damp that; warm-up steps use the 2M combination with the same velocity. The paper did not do this;
  BENCHMARKS.md measures whether it helps.
- First-order steps (the first step, and the final step when `final_sigmas_type="zero"` or `lower_order_final`
  forces order 1) get no momentum and leave the velocity untouched, as in the authors' SD path.
- State resets in `set_timesteps` (the authors needed a manual `clear_temp()`).

Where diffusers' `DPMSolverMultistepScheduler` silently returns NaN or a wrong shape, a ``ValueError`` names the
parameter instead: a multistep step after two equal sigmas (``num_inference_steps`` close to ``num_train_timesteps``
with "linspace"/"leading" spacing, or betas of 0), and ``variance_type="learned"/"learned_range"`` with a sample that
is not 3-channel (diffusers keeps the first 3 output channels). ``algorithm_type="sde-dpmsolver"`` with
``solver_order=3``, where diffusers fails inside its 3rd-order update, raises a ``ValueError`` as well.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin  # noqa: F401  (pipeline loading looks it up here)

from inertia.adapters.diffusers.private_api import sigma_to_alpha_sigma_t
from inertia.adapters.diffusers.schedule import MomentumScheduleMixin
from inertia.core.samplers.beta_policy import auto_beta
from inertia.core.samplers.heavy_ball_dpm import dpmpp_2m_combination, dpmpp_3m_combination, dpmpp_update, heavy_ball
from inertia.core.samplers.plms_momentum import validate_beta

__all__ = ["MomentumDPMSolverMultistepScheduler"]


class MomentumDPMSolverMultistepScheduler(MomentumScheduleMixin, DPMSolverMultistepScheduler):
    """DPM-Solver++ (2M / 3M, midpoint or heun) with heavy-ball momentum on the data-prediction combination.

    A drop-in for any diffusers pipeline: VP models (SD 1.x/2.x, SDXL; ε, v and x0 prediction) and flow models (SD3,
    Flux; a flow-matching config switches to flow mode by itself and custom ``sigmas``/``mu`` are accepted).

    Config keys are those of `DPMSolverMultistepScheduler` plus:
        momentum_beta (`float` or `"auto"`, defaults to 0.8): damping β ∈ (0, 1]; 1 = no momentum (stock solver),
            smaller = more damping of divergence artifacts. ``"auto"`` picks β at `set_timesteps` with
            :func:`~inertia.core.samplers.beta_policy.auto_beta` from the guidance scale, the step count,
            ``solver_order`` and the schedule: β = 1 (the stock solver, bit for bit) wherever damping was not
            measured to help, and always for ``solver_type="heun"``.
        momentum_guidance_scale (`float`, defaults to 7.5): the CFG scale the pipeline will use; read only when
            ``momentum_beta="auto"``.
        base_shift, max_shift, base_image_seq_len, max_image_seq_len: kept from flow-matching configs so that the
            SD3/Flux pipelines compute the same resolution shift ``mu`` as with their stock scheduler.
        shift_terminal (`float`, *optional*): flow mode only; stretches the shifted sigmas so that the last one equals
            it, as `FlowMatchEulerDiscreteScheduler` does (Qwen-Image and LTX-2 configs set it).

    Momentum needs ``algorithm_type="dpmsolver++"`` and ``solver_order`` 2 or 3.

    Example:
        >>> from diffusers import DPMSolverMultistepScheduler
        >>> from inertia.samplers import MomentumDPMSolverMultistepScheduler
        >>> base = DPMSolverMultistepScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
        >>> sched = MomentumDPMSolverMultistepScheduler.from_config(base.config, momentum_beta=0.8)
        >>> sched.set_timesteps(10)
        >>> len(sched.timesteps)
        10

    In a pipeline: ``pipe.scheduler = MomentumDPMSolverMultistepScheduler.from_config(pipe.scheduler.config,
    momentum_beta=0.8)``. Memory: one extra latent-sized float32 tensor (the velocity).
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
        algorithm_type: Literal["dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"] = "dpmsolver++",
        solver_type: Literal["midpoint", "heun"] = "midpoint",
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
        momentum_beta: float | Literal["auto"] = 0.8,
        momentum_guidance_scale: float = 7.5,
        base_shift: float = 0.5,
        max_shift: float = 1.15,
        base_image_seq_len: int = 256,
        max_image_seq_len: int = 4096,
        shift_terminal: float | None = None,
    ):
        if momentum_beta != "auto":
            validate_beta(momentum_beta, "momentum_beta")
        # Names diffusers accepts (it maps DEIS/UniPC names to dpmsolver++ / midpoint).
        if algorithm_type not in ("dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++", "deis"):
            raise ValueError(
                "`algorithm_type` must be one of ('dpmsolver++', 'sde-dpmsolver++', 'dpmsolver', 'sde-dpmsolver'), "
                f"got {algorithm_type!r}."
            )
        if solver_type not in ("midpoint", "heun", "logrho", "bh1", "bh2"):
            raise ValueError(f"`solver_type` must be one of ('midpoint', 'heun'), got {solver_type!r}.")
        if momentum_beta == "auto" or momentum_beta < 1.0:
            if algorithm_type not in ("dpmsolver++", "deis"):  # diffusers maps DEIS configs to dpmsolver++
                raise ValueError(
                    f"`momentum_beta`<1 needs `algorithm_type`='dpmsolver++', got algorithm_type={algorithm_type!r}; "
                    "use momentum_beta=1.0 for the other algorithm types."
                )
            if solver_order not in (2, 3):
                raise ValueError(
                    f"`momentum_beta`<1 needs `solver_order` 2 or 3 (order 1 has no multistep combination to damp), "
                    f"got solver_order={solver_order!r}."
                )
        if solver_order not in (1, 2, 3):
            raise ValueError(f"`solver_order` must be 1, 2 or 3, got {solver_order!r}.")
        self._validate_schedule_config()
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
        )
        self._beta = 1.0 if momentum_beta == "auto" else float(momentum_beta)
        self._velocity: torch.Tensor | None = None
        self._repeated_sigma_steps: frozenset[int] = frozenset()
        self._repeated_sigma_message = ""

    @property
    def _grid(self) -> DPMSolverMultistepScheduler:
        return self

    def _reset_momentum(self) -> None:
        self._velocity = None
        cfg = self.config
        if cfg.momentum_beta == "auto":
            # measured with the midpoint (2M) / 3M updates; the heun form keeps the stock solver (β = 1)
            kind = self._auto_schedule_kind() if cfg.solver_type == "midpoint" else "other"
            steps = int(self.num_inference_steps)
            self._beta = auto_beta("hb-dpm++", steps, cfg.momentum_guidance_scale, kind, order=cfg.solver_order)
        self._find_repeated_sigmas()

    def _find_repeated_sigmas(self) -> None:
        """Records the steps i with σ_i = σ_{i−1}; a multistep update there divides by a zero log-SNR step.

        The 2M/3M updates divide by h_0 = λ_i − λ_{i−1} (and 3M by h_1 = λ_{i−1} − λ_{i−2}), so the stock solver
        returns NaN after a repeated sigma. Repeats come from timestep rounding (``timestep_spacing`` "linspace" or
        "leading" with about ``num_train_timesteps`` steps) or from betas of 0. The check runs in python ints at
        step time, so a run that never reaches those steps (img2img) works as with the stock class.
        """
        sigmas = self.sigmas.double()
        repeated = torch.nonzero(sigmas[1:-1] == sigmas[:-2]).flatten() + 1
        self._repeated_sigma_steps = frozenset(int(i) for i in repeated)
        self._repeated_sigma_message = ""
        if not self._repeated_sigma_steps:
            return
        i = min(self._repeated_sigma_steps)
        cfg = self.config
        t_prev, t_now = int(self.timesteps[i - 1]), int(self.timesteps[i])
        if t_prev == t_now:
            most = self._max_distinct_steps()
            self._repeated_sigma_message = (
                f"`num_inference_steps`={self.num_inference_steps} repeats timestep {t_now} at steps {i - 1} and {i} "
                f"(`timestep_spacing`={cfg.timestep_spacing!r}, `num_train_timesteps`={cfg.num_train_timesteps}), so "
                "two sigmas are equal and DPM-Solver's multistep update divides by their zero log-SNR step and "
                "returns NaN (the stock DPMSolverMultistepScheduler does so silently). Use num_inference_steps in "
                f"[1, {most}], timestep_spacing='trailing' or solver_order=1."
            )
        else:
            self._repeated_sigma_message = (
                f"`trained_betas` give equal sigmas at timesteps {t_prev} and {t_now} (steps {i - 1} and {i}): betas "
                "of 0 leave alphas_cumprod unchanged, so DPM-Solver's multistep update divides by a zero log-SNR "
                "step and returns NaN (the stock DPMSolverMultistepScheduler does so silently). Use betas in (0, 1) "
                "or solver_order=1."
            )

    def _check_multistep(self, order: int) -> None:
        i = self.step_index
        if i is None:
            return
        if i in self._repeated_sigma_steps or (order == 3 and i - 1 in self._repeated_sigma_steps):
            raise ValueError(self._repeated_sigma_message)

    def _check_learned_variance(self, model_output: torch.Tensor, sample: torch.Tensor) -> None:
        # diffusers keeps model_output[:, :3] for learned variances (its split for 3-channel pixel models such as
        # DeepFloyd IF); for other channel counts that is a silent broadcast (1 channel) or a shape error.
        if sample.ndim < 2 or sample.shape[1] != 3 or model_output.ndim < 2 or model_output.shape[1] < 3:
            got = tuple(sample.shape[1:2]) if sample.ndim >= 2 else ()
            raise ValueError(
                f"`variance_type`={self.config.variance_type!r} needs a 3-channel `sample` and a `model_output` with "
                f"at least 3 channels: DPM-Solver keeps the first 3 channels of the output as the prediction, as "
                f"diffusers does for pixel models like DeepFloyd IF. Got sample channels {got} and model_output shape "
                f"{tuple(model_output.shape)}; split the variance channels off yourself and use variance_type=None."
            )
        if model_output.shape[0] != sample.shape[0] or model_output.shape[2:] != sample.shape[2:]:
            raise ValueError(
                f"`model_output` shape {tuple(model_output.shape)} does not match `sample` shape "
                f"{tuple(sample.shape)} outside the channel dimension."
            )

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ):
        """One DPM-Solver++ step with heavy-ball momentum; same signature and outputs as the parent's `step`."""
        if self.num_inference_steps is not None and self.step_index is not None:
            if self.step_index >= self.num_inference_steps:
                raise ValueError(
                    f"`step` was called {self.step_index + 1} times for a {self.num_inference_steps}-step schedule; "
                    "call `set_timesteps` before a new generation."
                )
        if self.config.variance_type in ("learned", "learned_range"):
            self._check_learned_variance(model_output, sample)
        elif model_output.shape != sample.shape:
            raise ValueError(
                f"`model_output` shape {tuple(model_output.shape)} differs from `sample` shape {tuple(sample.shape)}."
            )
        previous = self.model_outputs[-1] if self.step_index is not None else None
        if previous is not None and previous.shape != sample.shape:  # stored outputs are x0-shaped like `sample`
            raise ValueError(
                f"`model_output` batch shape changed from {tuple(previous.shape)} to {tuple(sample.shape)} mid-run; "
                "call `set_timesteps` before sampling a new batch."
            )
        return super().step(model_output, timestep, sample, generator, variance_noise, return_dict)

    def convert_model_output(self, model_output: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The parent's conversion to x0, never the denoiser's own tensor: with ``prediction_type="sample"`` diffusers
        returns ``model_output`` itself and keeps it as history, which a denoiser that reuses one output buffer (CUDA
        graphs, ``torch.compile``) would overwrite on the next call. Otherwise identical (same values, no copy)."""
        converted = super().convert_model_output(model_output, *args, **kwargs)
        return converted.clone() if converted is model_output else converted

    def _momentum_active(self) -> bool:
        return self._beta < 1.0 and self.config.algorithm_type == "dpmsolver++"

    def _heavy_ball_update(
        self,
        combination: torch.Tensor,
        sample: torch.Tensor,
        h: torch.Tensor,
        scale: torch.Tensor,
        alpha_t: torch.Tensor,
    ) -> torch.Tensor:
        if self._velocity is not None and self._velocity.shape != combination.shape:
            raise ValueError(
                f"`model_output` batch shape changed from {tuple(self._velocity.shape)} to "
                f"{tuple(combination.shape)} mid-run; call `set_timesteps` before sampling a new batch."
            )
        # v ← (1−β)·v + β·U (paper eq. 13 applied to the data-prediction combination U, App. H), as one lerp.
        self._velocity = heavy_ball(self._velocity, combination, self._beta)
        # x_t = (σ_t/σ_s0)·x_s − α_t·(e^{−h} − 1)·v  (DPM-Solver++ exponential integrator with U replaced by v).
        return dpmpp_update(sample, self._velocity, h, scale, alpha_t)

    def _lambdas(self, count: int) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        i = self.step_index
        alpha_t, sigma_t = sigma_to_alpha_sigma_t(self, self.sigmas[i + 1])
        lambdas, first_sigma = [], None
        for k in range(count):
            a, s = sigma_to_alpha_sigma_t(self, self.sigmas[i - k])
            lambdas.append(torch.log(a) - torch.log(s))
            if k == 0:
                first_sigma = s
        lambda_t = torch.log(alpha_t) - torch.log(sigma_t)
        return lambda_t, lambdas, alpha_t, sigma_t / first_sigma

    def multistep_dpm_solver_second_order_update(
        self,
        model_output_list: list[torch.Tensor],
        *args: Any,
        sample: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """2M step; with β < 1 it steps with the velocity of U = D0 + ½·D1 (midpoint) or the heun combination."""
        self._check_multistep(2)
        if not self._momentum_active() or args or sample is None:
            return super().multistep_dpm_solver_second_order_update(
                model_output_list, *args, sample=sample, noise=noise, **kwargs
            )
        lambda_t, (lambda_s0, lambda_s1), alpha_t, scale = self._lambdas(2)
        m0, m1 = model_output_list[-1], model_output_list[-2]
        h, h_0 = lambda_t - lambda_s0, lambda_s0 - lambda_s1
        # U = D0 + ½·D1 (midpoint) or the heun combination, with D1 = (m0 − m1)/r0 and r0 = h_0/h.
        combination = dpmpp_2m_combination(m0, m1, h, h_0, self.config.solver_type)
        return self._heavy_ball_update(combination, sample, h, scale, alpha_t)

    def multistep_dpm_solver_third_order_update(
        self,
        model_output_list: list[torch.Tensor],
        *args: Any,
        sample: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """3M step; with β < 1 it steps with the velocity of the 3M data-prediction combination (see module doc)."""
        self._check_multistep(3)
        if self.config.algorithm_type == "sde-dpmsolver":
            # diffusers has no 3rd-order SDE-DPM-Solver update (its method fails with UnboundLocalError here).
            raise ValueError(
                "`solver_order`=3 is not available with `algorithm_type`='sde-dpmsolver' (diffusers implements "
                "orders 1-2 for it): use solver_order in [1, 2], or algorithm_type='sde-dpmsolver++'."
            )
        if not self._momentum_active() or args or sample is None:
            return super().multistep_dpm_solver_third_order_update(
                model_output_list, *args, sample=sample, noise=noise, **kwargs
            )
        lambda_t, (lambda_s0, lambda_s1, lambda_s2), alpha_t, scale = self._lambdas(3)
        m0, m1, m2 = model_output_list[-1], model_output_list[-2], model_output_list[-3]
        h, h_0, h_1 = lambda_t - lambda_s0, lambda_s0 - lambda_s1, lambda_s1 - lambda_s2
        # 3M: x_t = (σ_t/σ_s0)x − α_t·em1·D0 + α_t(em1/h + 1)·D1 − α_t((em1 + h)/h² − ½)·D2 = (σ_t/σ_s0)x − α_t·em1·U.
        combination = dpmpp_3m_combination(m0, m1, m2, h, h_0, h_1)
        return self._heavy_ball_update(combination, sample, h, scale, alpha_t)
