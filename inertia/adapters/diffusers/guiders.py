"""APG and HiGS as diffusers guiders (``BaseGuidance`` subclasses) for modular pipelines.

Modular pipelines give a guider only the predictions, not the noisy input, so an x0-space guider records the
denoiser's ``(sample, timestep)`` with a forward pre-hook that ``prepare_models`` installs and ``cleanup_models``
removes. It converts with the training schedule named in its config (SD/SDXL's scaled-linear schedule by
default; ``prediction_type="flow"`` for SD3-style models, where σ = timestep / num_train_timesteps).

Both guiders are `ConfigMixin` objects: ``save_pretrained`` / ``from_pretrained`` / ``new(**overrides)`` work, and
``pipe.update_components(guider=APGGuider(...))`` swaps them into any modular pipeline that takes a guider. State is
per thread and resets at step 0 of every run (and on a rising timestep or batch change).

:class:`APGGuider` has two windows: diffusers' ``start``/``stop`` (outside it: no guidance and no uncond pass, as for
every diffusers guider) and APG's own interval ``apg_start``/``apg_stop``/``apg_sigma_range`` inside it (outside that:
plain CFG, momentum untouched; see :class:`inertia.guidance.APG`). Both use the step index and step count diffusers'
``set_state`` gives, so fractions carry over from diffusers' guiders unchanged.
"""

from __future__ import annotations

import inspect
import math
import threading
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.guiders.guider_utils import BaseGuidance, GuiderOutput

from inertia.adapters.diffusers.guidance_hook import GuidanceLayoutError, call_argument
from inertia.core.guidance.config import APG, HiGS
from inertia.core.guidance.spaces import PREDICTION_TYPES, flow_alpha_sigma, from_x0, to_x0, vp_alpha_sigma, vp_sigma
from inertia.core.guidance.state import GuidanceState, guide
from inertia.core.validation import check_real

_SCHEDULE_DEFAULTS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def _identity(value: torch.Tensor) -> torch.Tensor:
    return value


class _MomentumGuider(BaseGuidance):
    """Shared machinery: condition batching, the window, the sample capture, the per-thread state."""

    _input_predictions = ["pred_cond", "pred_uncond"]  # noqa: RUF012 (diffusers convention)
    spatio_temporal_guidance_blocks = None  # read by LTX-2's modular denoiser from its video guider: no STG pass

    def active_predictions(self) -> list[str]:
        """The predictions this step needs (LTX-2's modular denoiser runs one pass per name)."""
        return self._input_predictions[: self.num_conditions]

    def _setup(self, guidance_scale: float, prediction_type: str, num_train_timesteps: int, schedule: dict) -> None:
        scale = check_real("guidance_scale", guidance_scale, finite=False)
        if not (0.0 <= scale < math.inf):
            raise ValueError(f"`guidance_scale` must be finite and >= 0, got {guidance_scale!r}.")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"`prediction_type` must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")
        if (
            isinstance(num_train_timesteps, bool)
            or not isinstance(num_train_timesteps, int)
            or num_train_timesteps < 2
        ):
            raise ValueError(f"`num_train_timesteps` must be an int >= 2, got {num_train_timesteps!r}.")
        self.guidance_scale = scale
        self._alphas_cumprod = None
        if prediction_type != "flow":
            from diffusers import DDPMScheduler

            self._alphas_cumprod = DDPMScheduler(num_train_timesteps=num_train_timesteps, **schedule).alphas_cumprod
        self._local = threading.local()
        self._handle: Any = None

    # --- what the subclasses define -------------------------------------------------------------------------
    combiner: APG | None = None
    higs: HiGS | None = None

    @property
    def _needs_x0(self) -> bool:
        spaces = [m.space for m in (self.combiner, self.higs) if m is not None and not m.is_identity]
        # prediction_type="sample": the predictions are x0 already (LTX-2's modular denoiser converts them first)
        return "x0" in spaces and self.config.prediction_type != "sample"

    # --- BaseGuidance protocol --------------------------------------------------------------------------------
    def _in_window(self) -> bool:
        if not self._enabled:
            return False
        if self._num_inference_steps is None:
            return True
        return int(self._start * self._num_inference_steps) <= self._step < int(self._stop * self._num_inference_steps)

    def _guides(self) -> bool:
        return self._in_window() and self.guidance_scale > 1.0

    @property
    def num_conditions(self) -> int:
        return 2 if self._guides() else 1

    @property
    def is_conditional(self) -> bool:
        return self._count_prepared == 1

    def _state(self) -> GuidanceState:
        state = getattr(self._local, "state", None)
        if state is None or self._step == 0:
            state = self._local.state = GuidanceState()
        return state

    def prepare_inputs(self, data: dict[str, Any]) -> list[Any]:
        self._state()  # a fresh state at step 0
        indices = [0] if self.num_conditions == 1 else [0, 1]
        return [self._prepare_batch(data, i, name) for i, name in zip(indices, self._input_predictions, strict=False)]

    def prepare_inputs_from_block_state(self, data: Any, input_fields: dict[str, str | tuple[str, str]]) -> list[Any]:
        self._state()
        indices = [0] if self.num_conditions == 1 else [0, 1]
        return [
            self._prepare_batch_from_block_state(input_fields, data, i, name)
            for i, name in zip(indices, self._input_predictions, strict=False)
        ]

    def prepare_models(self, denoiser: torch.nn.Module) -> None:
        super().prepare_models(denoiser)
        if self._needs_x0 and self.is_conditional and self._handle is None:
            signature = inspect.signature(type(denoiser).forward)

            def capture(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
                sample = None
                for name in ("sample", "hidden_states", "x"):  # x: Z-Image, a list of (C, 1, H, W) latents
                    sample = call_argument(signature, args, kwargs, name) if sample is None else sample
                if isinstance(sample, list | tuple) and sample and all(isinstance(v, torch.Tensor) for v in sample):
                    sample = torch.stack(list(sample))
                self._local.sample = sample

            self._handle = denoiser.register_forward_pre_hook(capture, with_kwargs=True)

    def cleanup_models(self, denoiser: torch.nn.Module) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def forward(self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor | None = None) -> GuiderOutput:
        if not self._in_window():
            return GuiderOutput(pred=pred_cond, pred_cond=pred_cond, pred_uncond=pred_uncond)
        if self._timestep is None:
            raise GuidanceLayoutError(f"{type(self).__name__} needs `set_state(step, num_inference_steps, timestep)`.")
        state = self._state() if getattr(self._local, "state", None) is None else self._local.state
        batch = pred_cond.shape[0]
        timesteps = torch.as_tensor(self._timestep, device=pred_cond.device).float().flatten()
        timesteps = timesteps.expand(batch) if timesteps.numel() == 1 else timesteps[:batch]
        host_timestep = float(timesteps[0])
        commit = state.observe(host_timestep, key=(tuple(pred_cond.shape), pred_cond.dtype, pred_cond.device))
        num_train = float(self.config.num_train_timesteps)
        sigma = None  # only an APG with `apg_sigma_range` needs it
        if self.combiner is not None and self.combiner.sigma_range is not None:
            if self._alphas_cumprod is None:
                sigma = host_timestep / num_train
            else:  # the table is a CPU tensor: no device sync
                sigma = float(vp_sigma(torch.tensor([host_timestep], dtype=torch.float64), self._alphas_cumprod)[0])
        if self._alphas_cumprod is None:
            a, s = flow_alpha_sigma(timesteps / num_train)
            t = timesteps / num_train
        else:
            a, s = vp_alpha_sigma(timesteps, self._alphas_cumprod)
            fraction = self.higs is None or self.higs.time_mode == "timestep_fraction"
            t = timesteps / num_train if fraction else (s / a) / (1 + s / a)
        to_x0_fn = from_x0_fn = None
        if self.config.prediction_type == "sample":
            to_x0_fn = from_x0_fn = _identity
        elif self._needs_x0:
            sample = getattr(self._local, "sample", None)
            if isinstance(sample, torch.Tensor) and sample.shape != pred_cond.shape:
                if sample.shape[0] == batch and sample.numel() == pred_cond.numel():
                    sample = sample.reshape(pred_cond.shape)  # Z-Image: (B, C, 1, H, W) in, (B, C, H, W) out
            if sample is None or sample.shape[0] != batch:
                raise GuidanceLayoutError(
                    f"{type(self).__name__} in x0 space needs the denoiser input: call `prepare_models(denoiser)` "
                    "before the conditional forward (modular pipelines do), or use space='model_output'."
                )
            shape = (-1, *([1] * (pred_cond.ndim - 1)))
            kind = self.config.prediction_type

            def to_x0_fn(value: torch.Tensor) -> torch.Tensor:
                return to_x0(value, sample.to(value.dtype), a.view(shape), s.view(shape), kind)

            def from_x0_fn(value: torch.Tensor) -> torch.Tensor:
                return from_x0(value, sample.to(value.dtype), a.view(shape), s.view(shape), kind)

        if self.higs is not None and not self.higs.is_identity and self.higs.cutoff is not None and pred_cond.ndim < 4:
            raise GuidanceLayoutError(
                f"HiGS's high-pass filter (`cutoff`={self.higs.cutoff!r}) needs spatial (..., H, W) predictions, but "
                f"this pipeline's are packed tokens of shape {tuple(pred_cond.shape)}; pass cutoff=None (or use the "
                "classic pipeline's apply_guidance, which unpacks them)."
            )
        uncond = pred_uncond if self._guides() else None
        pred = guide(
            state,
            self.combiner,
            self.higs,
            pred_cond,
            uncond,
            self.guidance_scale,
            commit=commit,
            t=t,
            to_x0=to_x0_fn,
            from_x0=from_x0_fn,
            step=self._step,
            num_steps=self._num_inference_steps,
            sigma=sigma,
        )
        return GuiderOutput(pred=pred, pred_cond=pred_cond, pred_uncond=pred_uncond)


class APGGuider(_MomentumGuider):
    """Adaptive projected guidance for modular diffusers pipelines, faithful to the paper (x0 space, ``w`` scale).

    Unlike diffusers' ``AdaptiveProjectedGuidance`` (raw outputs, ``D_u + w·U`` unless
    ``use_original_formulation``), this guider projects denoised predictions and uses ``D_c + (w − 1)U``; with
    ``space="model_output"`` it equals diffusers' guider with ``use_original_formulation=True`` and
    ``guidance_scale = w − 1``.

    Args:
        guidance_scale: w ≥ 0 (1 = no guidance, the uncond pass is skipped); default 15, the paper's SDXL setting.
        eta, momentum, norm_threshold, space, norm_dims: see :class:`inertia.guidance.APG`.
        prediction_type: the denoiser output: ``"epsilon"``, ``"v_prediction"``, ``"sample"`` or ``"flow"``.
        num_train_timesteps, beta_start, beta_end, beta_schedule: the VP training schedule (SD/SDXL defaults).
        start, stop: fractions of the steps where guidance is on (diffusers convention; outside: no guidance).
        enabled: diffusers' switch.
        apg_start, apg_stop, apg_sigma_range: APG's interval inside the guidance window (outside it: plain CFG),
            the ``start``/``stop``/``sigma_range`` of :class:`inertia.guidance.APG`.

    Example:
        >>> from inertia.guidance import APGGuider
        >>> guider = APGGuider(guidance_scale=15.0)
        >>> guider.new(momentum=-0.75).config.momentum
        -0.75
        >>> APGGuider(apg_start=0.2, apg_stop=0.8).combiner.in_interval(step=1, num_steps=10)
        False
    """

    @register_to_config
    def __init__(
        self,
        guidance_scale: float = 15.0,
        eta: float = 0.0,
        momentum: float = -0.5,
        norm_threshold: float = 15.0,
        space: str = "x0",
        prediction_type: str = "epsilon",
        num_train_timesteps: int = 1000,
        beta_start: float = _SCHEDULE_DEFAULTS["beta_start"],
        beta_end: float = _SCHEDULE_DEFAULTS["beta_end"],
        beta_schedule: str = _SCHEDULE_DEFAULTS["beta_schedule"],
        start: float = 0.0,
        stop: float = 1.0,
        enabled: bool = True,
        apg_start: float = 0.0,
        apg_stop: float = 1.0,
        apg_sigma_range: tuple[float, float] | None = None,
        norm_dims: str | tuple[int, ...] = "per_sample",
    ) -> None:
        try:
            self.combiner = APG(
                eta=eta,
                momentum=momentum,
                norm_threshold=norm_threshold,
                space=space,
                start=apg_start,
                stop=apg_stop,
                sigma_range=apg_sigma_range,
                norm_dims=norm_dims,
            )
        except ValueError as err:  # name the guider's own keys for APG's interval
            message = str(err)
            for name in ("start", "stop", "sigma_range"):
                message = message.replace(f"`{name}`", f"`apg_{name}`")
            raise ValueError(message) from None
        super().__init__(start, stop, enabled)
        schedule = {"beta_start": beta_start, "beta_end": beta_end, "beta_schedule": beta_schedule}
        self._setup(guidance_scale, prediction_type, num_train_timesteps, schedule)


class HiGSGuider(_MomentumGuider):
    """Classifier-free guidance plus history-guided sampling for modular diffusers pipelines.

    Runs CFG (``D_u + w(D_c − D_u)``) and applies HiGS on its output; with ``guidance_scale <= 1`` the uncond pass
    is skipped and HiGS corrects the conditional prediction alone (the paper's unguided mode).

    Args:
        guidance_scale: CFG scale w ≥ 0.
        weight, ema, t_min, t_max, eta, cutoff, sharpness, space, time_mode: see :class:`inertia.guidance.HiGS`.
        prediction_type, num_train_timesteps, beta_start, beta_end, beta_schedule: as in :class:`APGGuider`.
        start, stop, enabled: diffusers' window and switch.

    Example:
        >>> from inertia.guidance import HiGSGuider
        >>> HiGSGuider(guidance_scale=5.0, weight=1.0).num_conditions
        2
    """

    @register_to_config
    def __init__(
        self,
        guidance_scale: float = 7.5,
        weight: float = 1.75,
        ema: float = 0.75,
        t_min: float = 0.4,
        t_max: float = 1.0,
        eta: float = 0.0,
        cutoff: float | None = 0.05,
        sharpness: float = 50.0,
        space: str = "x0",
        time_mode: str = "timestep_fraction",
        prediction_type: str = "epsilon",
        num_train_timesteps: int = 1000,
        beta_start: float = _SCHEDULE_DEFAULTS["beta_start"],
        beta_end: float = _SCHEDULE_DEFAULTS["beta_end"],
        beta_schedule: str = _SCHEDULE_DEFAULTS["beta_schedule"],
        start: float = 0.0,
        stop: float = 1.0,
        enabled: bool = True,
    ) -> None:
        self.higs = HiGS(
            weight=weight,
            ema=ema,
            t_min=t_min,
            t_max=t_max,
            eta=eta,
            cutoff=cutoff,
            sharpness=sharpness,
            space=space,
            time_mode=time_mode,
        )
        super().__init__(start, stop, enabled)
        schedule = {"beta_start": beta_start, "beta_end": beta_end, "beta_schedule": beta_schedule}
        self._setup(guidance_scale, prediction_type, num_train_timesteps, schedule)
