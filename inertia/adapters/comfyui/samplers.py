"""SAMPLER nodes: inertia's momentum samplers as ``comfy.samplers.KSAMPLER`` objects for SamplerCustom(Advanced).

Each node checks its inputs when the graph runs the node (before any sampling) and returns
``KSAMPLER(function, extra_options={...})``; ComfyUI then calls ``function(model_k, noise, sigmas, extra_args=...,
callback=..., disable=..., **extra_options)``, the k-diffusion convention our functions take. The update rules are
the papers' (Wizadwongsa & Suwajanakorn, ICLR 2023: HB eq. 13-14, GHVB eq. 15-19, NT App. E; heavy ball on
DPM-Solver++: Wizadwongsa et al., ICLR 2024 App. H); they live in :mod:`inertia.core.samplers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from inertia.core.samplers.plms_momentum import MAX_ORDER, validate_beta, validate_order

__all__ = ["CATEGORY", "DPMSamplerNode", "PLMSSamplerNode", "SamplerFunction", "parse_beta_schedule"]

SamplerFunction = Callable[..., Any]
"""A k-diffusion sampler function ``sample_x(model, x, sigmas, extra_args, callback, disable, **options)``."""

CATEGORY = "sampling/custom_sampling/samplers"
"""Where ComfyUI's own SAMPLER nodes (KSamplerSelect, SamplerDPMPP_2M_SDE, ...) sit in the node menu."""


def parse_beta_schedule(text: str) -> list[float] | None:
    """Per-step β from a node's text field: comma- or space-separated numbers in (0, 1], or None when empty.

    Raises:
        ValueError: naming ``beta_schedule`` for a value that is not a number or is outside (0, 1].

    Example:
        >>> parse_beta_schedule("0.8, 0.8, 0.9 1.0")
        [0.8, 0.8, 0.9, 1.0]
        >>> parse_beta_schedule("  ") is None
        True
    """
    if not isinstance(text, str):
        raise ValueError(f"`beta_schedule` must be text (numbers separated by commas), got {text!r}.")
    items = text.replace(",", " ").split()
    if not items:
        return None
    values = []
    for i, item in enumerate(items):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"`beta_schedule` must hold numbers in (0, 1], got {item!r} at position {i}.") from None
        values.append(validate_beta(value, f"beta_schedule[{i}]"))
    return values


def _ksampler(function: SamplerFunction, options: dict[str, Any]) -> Any:
    from comfy.samplers import KSAMPLER  # ComfyUI is the host: imported only when a node runs inside it

    return KSAMPLER(function, extra_options=options)


def _stock(name: str) -> Any:
    from comfy.samplers import ksampler

    return ksampler(name)  # the very object KSampler's and KSamplerSelect's sampler list give


class DPMSamplerNode:
    """Heavy-ball DPM-Solver++ (2M or 3M) as a SAMPLER: β damps the solver's data-prediction combination.

    At β = 1 with no schedule the 2M node returns ComfyUI's own ``dpmpp_2m`` sampler (``STOCK_AT_BETA_1``): the
    same method, so its default is ComfyUI's sampler bit for bit, not a re-implementation equal to rounding.
    ``beta_schedule`` (optional) gives one β per step (``len(sigmas) - 1`` numbers; the length is checked when
    sampling starts, before the first model call).

    Example:
        >>> from inertia.k_diffusion import sample_hb_dpmpp_2m
        >>> node = type("Node", (DPMSamplerNode,), {"FUNCTION_IMPL": staticmethod(sample_hb_dpmpp_2m)})
        >>> node().options(0.8, "")
        {'beta': 0.8}
    """

    FUNCTION_IMPL: ClassVar[SamplerFunction]
    STOCK_AT_BETA_1: ClassVar[str | None] = None
    """ComfyUI's sampler name that this method is at β = 1 (``"dpmpp_2m"`` for 2M), or None."""
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = CATEGORY
    DESCRIPTION = "Heavy-ball DPM-Solver++ (Wizadwongsa et al., ICLR 2024, App. H); beta = 1 is plain DPM-Solver++."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                # default 1 = ComfyUI's own DPM++ sampler: on Karras sigmas a constant β < 1 loses to it in most
                # regimes (docs/benchmarks/comfyui.md §16), so momentum is the user's choice, never the default
                "beta": (
                    "FLOAT",
                    {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": "β in (0, 1]; 1 = plain DPM++"},
                ),
            },
            "optional": {
                "beta_schedule": (
                    "STRING",
                    {"default": "", "multiline": False, "tooltip": "one β per step, comma-separated (overrides β)"},
                ),
            },
        }

    def options(self, beta: float, beta_schedule: str = "") -> dict[str, Any]:
        """The checked ``extra_options`` of the KSAMPLER."""
        beta = validate_beta(beta, "beta")
        schedule = parse_beta_schedule(beta_schedule)
        return {"beta": beta if schedule is None else schedule}

    def get_sampler(self, beta: float, beta_schedule: str = "") -> tuple[Any]:
        """The node's output: ``(KSAMPLER,)``; ComfyUI's own sampler when β = 1 makes the method its stock one."""
        options = self.options(beta, beta_schedule)
        stock = type(self).STOCK_AT_BETA_1
        if stock is not None and options["beta"] == 1.0:
            return (_stock(stock),)
        return (_ksampler(type(self).FUNCTION_IMPL, options),)


class PLMSSamplerNode:
    """A PLMS-family momentum sampler (HB, GHVB or NT, orders 1-5) as a SAMPLER.

    β = 1 is the method's stock PLMS of that order (inertia's own ``sample_<method>`` at ``beta=1``).

    Example:
        >>> from inertia.k_diffusion import sample_ghvb
        >>> node = type("Node", (PLMSSamplerNode,), {"FUNCTION_IMPL": staticmethod(sample_ghvb)})
        >>> node().options(4, 0.8)
        {'order': 4, 'beta': 0.8}
    """

    FUNCTION_IMPL: ClassVar[SamplerFunction]
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = CATEGORY
    DESCRIPTION = "Momentum on PLMS (Wizadwongsa & Suwajanakorn, ICLR 2023); beta = 1 is plain PLMS of that order."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "order": ("INT", {"default": 4, "min": 1, "max": MAX_ORDER, "tooltip": f"1 to {MAX_ORDER}"}),
                "beta": ("FLOAT", {"default": 0.8, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": "β in (0, 1]"}),
            }
        }

    def options(self, order: int, beta: float) -> dict[str, Any]:
        """The checked ``extra_options`` of the KSAMPLER."""
        return {"order": validate_order(order, "order"), "beta": validate_beta(beta, "beta")}

    def get_sampler(self, order: int, beta: float) -> tuple[Any]:
        """The node's output: ``(KSAMPLER,)``."""
        return (_ksampler(type(self).FUNCTION_IMPL, self.options(order, beta)),)
