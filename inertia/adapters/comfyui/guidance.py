"""APG and HiGS as ComfyUI MODEL patches, through ComfyUI's post-CFG hook.

ComfyUI's samplers call ``sampling_function``, which runs the model on the positive and negative conditionings, gets
the two denoised (x0) predictions, forms CFG and then calls every ``sampler_post_cfg_function`` of the model with
``{"denoised", "cond_denoised", "uncond_denoised", "cond_scale", "sigma", "model", "model_options", "uncond", ...}``.
:class:`GuidancePatch` is such a function: it replaces the CFG result with
:func:`inertia.core.guidance.state.guide` on the two x0 predictions, i.e. APG exactly as Sadat et al. (ICLR 2025)
Algorithm 1 on denoised predictions (the paper's space), then HiGS (Sadat, Salehi & Weber) on the result. The math
is the core's; this module only reads ComfyUI's arguments (σ, the run's sigmas, the model's time scale).

The APG and HiGS nodes chain: each clones the model and installs one patch holding both configs, so
``model -> APG -> HiGS`` runs APG followed by HiGS. The state (APG's momentum, HiGS's history) is reset at the start
of every sampling run (ComfyUI's ``on_pre_run`` callback) and by the core's own rules (a rising σ, a new batch
shape); every rule works per batch item.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from inertia.core.guidance.config import APG, TIME_MODES, HiGS
from inertia.core.guidance.state import GuidanceState, guide
from inertia.core.validation import check_real

__all__ = ["CATEGORY", "PATCH_KEY", "APGNode", "GuidancePatch", "HiGSNode", "patched"]

CATEGORY = "model_patches/inertia"
"""The node menu entry of the guidance patches."""
PATCH_KEY = "inertia_guidance"
"""The key of our ``on_pre_run`` callback and of the configs in ``model_options``."""


def _identity(value: torch.Tensor) -> torch.Tensor:
    return value  # ComfyUI's cfg hooks already hand over x0 predictions: the raw output *is* x0


class GuidancePatch:
    """ComfyUI's ``sampler_post_cfg_function`` running APG and/or HiGS on the denoised (x0) predictions.

    Neutral settings (no APG or an identity one, no HiGS or ``weight=0``) return ComfyUI's own CFG result as is, bit
    for bit; so do APG steps outside its interval when no HiGS follows.

    Args:
        apg: the APG config, or None.
        higs: the HiGS config, or None.

    Example:
        >>> patch = GuidancePatch(APG(eta=0.0, momentum=-0.5, norm_threshold=15.0), None)
        >>> patch.apg.momentum, patch.higs
        (-0.5, None)
    """

    def __init__(self, apg: APG | None, higs: HiGS | None) -> None:
        self.apg = apg
        self.higs = higs
        self.state = GuidanceState()

    def reset(self, *_: Any) -> None:
        """Forget APG's momentum and HiGS's history (ComfyUI calls this before every sampling run)."""
        self.state.reset()

    @property
    def is_identity(self) -> bool:
        """Whether the patch changes nothing."""
        return (self.apg is None or self.apg.is_identity) and (self.higs is None or self.higs.is_identity)

    def __call__(self, args: dict[str, Any]) -> torch.Tensor:
        denoised: torch.Tensor = args["denoised"]
        if self.is_identity:
            return denoised
        cond: torch.Tensor = args["cond_denoised"]
        # ComfyUI skips the negative pass at cfg 1 (its "cfg1 optimization"): then `uncond` is None
        uncond = args["uncond_denoised"] if args.get("uncond") is not None else None
        scale = float(args["cond_scale"])
        sigmas_in: torch.Tensor = args["sigma"]
        sigma = float(sigmas_in.reshape(-1)[0])
        run = args.get("model_options", {}).get("transformer_options", {}).get("sample_sigmas")
        levels = [float(s) for s in run] if run is not None else None
        if levels is not None:
            first_order = any(math.isclose(sigma, s, rel_tol=1e-6) for s in levels)
            step = max(sum(s >= sigma * (1 - 1e-6) for s in levels) - 1, 0)  # a midpoint counts to its step
            num_steps: int | None = len(levels) - 1
        else:
            first_order, step, num_steps = True, None, None
        commit = self.state.observe(sigma, key=(tuple(cond.shape), cond.dtype, cond.device), first_order=first_order)
        apg_applies = self.apg is not None and not self.apg.is_identity and uncond is not None
        if apg_applies and self.apg is not None and self.apg.has_interval:
            apg_applies = self.apg.in_interval(step, num_steps, sigma)
        if not apg_applies and (self.higs is None or self.higs.is_identity):
            return denoised  # ComfyUI's own CFG, bit for bit (APG's momentum is left as it is)
        t = self._time(args["model"], sigmas_in) if self.higs is not None else None
        return guide(
            self.state,
            self.apg,
            self.higs,
            cond,
            uncond,
            scale,
            commit=commit,
            t=t,
            to_x0=_identity,
            from_x0=_identity,
            step=step,
            num_steps=num_steps,
            sigma=sigma,
        )

    def _time(self, model: Any, sigma: torch.Tensor) -> torch.Tensor:
        """HiGS's normalised time per sample (1 = noise)."""
        assert self.higs is not None
        sigma = sigma.to(torch.float32)
        if self.higs.time_mode == "sigma_fraction":
            return sigma / (1.0 + sigma)  # the community convention for VP models
        sampling = model.model_sampling
        # timestep / num_train_timesteps: ComfyUI's discrete VP models map σ to t in [0, 999]; flow models map σ to
        # σ·multiplier (1000 for SD3, 1 for Flux), so dividing by the multiplier gives σ
        scale = float(getattr(sampling, "multiplier", 1000.0))
        return sampling.timestep(sigma).to(torch.float32) / scale


def patched(model: Any, apg: APG | None = None, higs: HiGS | None = None) -> Any:
    """A clone of ComfyUI's ``ModelPatcher`` with our guidance patch (replacing an earlier one, keeping its other
    method: ``apg`` or ``higs`` None keeps what an earlier inertia node set)."""
    m = model.clone()
    options = m.model_options
    previous = options.get(PATCH_KEY, {})
    kept_apg: APG | None = apg or previous.get("apg")
    kept_higs: HiGS | None = higs or previous.get("higs")
    patch = GuidancePatch(kept_apg, kept_higs)
    options[PATCH_KEY] = {"apg": kept_apg, "higs": kept_higs}
    functions = [f for f in options.get("sampler_post_cfg_function", []) if not isinstance(f, GuidancePatch)]
    options["sampler_post_cfg_function"] = [*functions, patch]
    m.remove_callbacks_with_key("on_pre_run", PATCH_KEY)
    m.add_callback_with_key("on_pre_run", PATCH_KEY, patch.reset)
    return m


def _float(tooltip: str, default: float, low: float, high: float, step: float = 0.01) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": default, "min": low, "max": high, "step": step, "tooltip": tooltip})


class APGNode:
    """Adaptive projected guidance (Sadat et al., ICLR 2025, Algorithm 1) on the denoised predictions.

    Per step, with ``Δ = D_c − D_u``: ``M ← Δ + βM``, ``Δ ← M·min(1, r/‖M‖)``, ``Δ = Δ⊥ + ηΔ∥`` (projection onto
    ``D_c``), ``D = D_c + (w − 1)Δ`` with w the sampler's cfg. APG applies on steps ``int(start·n) <= i <
    int(stop·n)`` and, when ``sigma_high > 0``, on calls with ``sigma_low < σ <= sigma_high``; elsewhere it is
    ComfyUI's CFG.

    Example:
        >>> APGNode().config(eta=0.0, momentum=-0.5, norm_threshold=0.0, start=0.0, stop=1.0,
        ...                  sigma_low=0.0, sigma_high=0.0).norm_threshold
        inf
    """

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = CATEGORY
    DESCRIPTION = "APG as in Sadat et al. (ICLR 2025) Algorithm 1, on x0 predictions, with a guidance interval."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL",),
                "eta": _float("η: weight of the parallel component, [0, 1]", 0.0, 0.0, 1.0),
                "momentum": _float(
                    "β: M ← Δ + βM, (-1, 1); negative is the paper's reverse momentum", -0.5, -0.99, 0.99
                ),
                "norm_threshold": _float(
                    "r > 0: per-sample L2 bound on the update; 0 = no clipping", 15.0, 0.0, 100.0, 0.1
                ),
                "start": _float("first fraction of the steps with APG, [0, 1]", 0.0, 0.0, 1.0),
                "stop": _float("end fraction of the steps with APG, [start, 1]", 1.0, 0.0, 1.0),
                "sigma_low": _float("APG only where sigma_low < σ <= sigma_high", 0.0, 0.0, 1000.0),
                "sigma_high": _float("0 = no σ limit", 0.0, 0.0, 1000.0),
            }
        }

    def config(
        self,
        eta: float,
        momentum: float,
        norm_threshold: float,
        start: float,
        stop: float,
        sigma_low: float,
        sigma_high: float,
    ) -> APG:
        """The checked :class:`~inertia.core.guidance.config.APG`; errors name the node's inputs."""
        threshold = check_real("norm_threshold", norm_threshold)
        if threshold < 0:
            raise ValueError(f"`norm_threshold` must be >= 0 (0 disables clipping), got {norm_threshold!r}.")
        low, high = check_real("sigma_low", sigma_low), check_real("sigma_high", sigma_high)
        if high < 0:
            raise ValueError(f"`sigma_high` must be >= 0 (0 means no σ limit), got {sigma_high!r}.")
        if high != 0.0 and not 0.0 <= low <= high:
            raise ValueError(
                f"`sigma_low` must be in [0, sigma_high] = [0, {high}] (the interval ends before it starts), "
                f"got {sigma_low!r}."
            )
        if high == 0.0 and low != 0.0:
            raise ValueError(f"`sigma_low` needs `sigma_high` > 0 (0 means no σ limit), got sigma_low={sigma_low!r}.")
        return APG(
            eta=eta,
            momentum=momentum,
            norm_threshold=threshold if threshold > 0 else math.inf,
            space="x0",
            start=start,
            stop=stop,
            sigma_range=(low, high) if high > 0 else None,
        )

    def patch(self, model: Any, **inputs: float) -> tuple[Any]:
        """The node's output: ``(patched model,)``."""
        return (patched(model, apg=self.config(**inputs)),)


class HiGSNode:
    """History-guided sampling (Sadat, Salehi & Weber, Eqs. 5-9) on the guided x0 prediction.

    Chained after :class:`APGNode` it corrects APG's output (APG, then HiGS); alone it corrects ComfyUI's CFG.

    Example:
        >>> HiGSNode().config(weight=1.0, ema=0.75, t_min=0.4, t_max=1.0, eta=0.0, cutoff=0.05, sharpness=50.0,
        ...                   time_mode="timestep_fraction").weight
        1.0
    """

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = CATEGORY
    DESCRIPTION = "HiGS (history-guided sampling) on x0 predictions; after an inertia APG node it follows APG."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL",),
                "weight": _float("w_h >= 0; 0 = off", 1.0, 0.0, 10.0),
                "ema": _float("α: history EMA weight, (0, 1]", 0.75, 0.01, 1.0),
                "t_min": _float("window start (exclusive), [0, 1)", 0.4, 0.0, 0.99),
                "t_max": _float("window end (inclusive), (t_min, 1]", 1.0, 0.01, 1.0),
                "eta": _float("weight of the parallel component, [0, 1]", 0.0, 0.0, 1.0),
                "cutoff": _float("DCT high-pass radius R_c, [0, √2]; 0 = no filter", 0.05, 0.0, 1.41),
                "sharpness": _float("λ > 0 of the high-pass", 50.0, 0.1, 1000.0, 0.1),
                "time_mode": (list(TIME_MODES), {"default": "timestep_fraction"}),
            }
        }

    def config(
        self,
        weight: float,
        ema: float,
        t_min: float,
        t_max: float,
        eta: float,
        cutoff: float,
        sharpness: float,
        time_mode: str,
    ) -> HiGS:
        """The checked :class:`~inertia.core.guidance.config.HiGS`; errors name the node's inputs."""
        cut = check_real("cutoff", cutoff)
        if cut < 0:
            raise ValueError(f"`cutoff` must be in [0, √2] (0 = no high-pass filter), got {cutoff!r}.")
        return HiGS(
            weight=weight,
            ema=ema,
            t_min=t_min,
            t_max=t_max,
            eta=eta,
            cutoff=cut if cut > 0 else None,
            sharpness=sharpness,
            space="x0",
            time_mode=time_mode,
        )

    def patch(self, model: Any, **inputs: Any) -> tuple[Any]:
        """The node's output: ``(patched model,)``."""
        return (patched(model, higs=self.config(**inputs)),)
