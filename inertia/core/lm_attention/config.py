"""Parameters of Dai et al.'s momentum attention for language models, and the text presets, free of torch.

:class:`LMMomentumAttention` is what ``model.config.momentum_attention`` holds (:mod:`inertia.adapters.transformers.attention_interface` reads
it); :data:`LM_ATTENTION_PRESETS` and :func:`parse_lm_attention` are what the CLI and the UI accept (``"off"``,
``"momentum"`` or ``"momentum:<eta>"``), checked before a model is loaded.

Example:
    >>> parse_lm_attention("momentum:0.1").eta
    0.1
    >>> parse_lm_attention("off") is None
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from inertia.core.presets.lm_attention import LM_ATTENTION_PRESETS, MOMENTUM_PRESET

__all__ = [
    "CONFIG_KEY",
    "LM_ATTENTION_PRESETS",
    "LM_MOMENTUM_ATTENTION",
    "MOMENTUM_PRESET",
    "LMMomentumAttention",
    "parse_lm_attention",
]

LM_MOMENTUM_ATTENTION = "inertia_lm_momentum"
"""The ``attn_implementation`` name of Dai et al.'s momentum attention."""

CONFIG_KEY = "momentum_attention"
"""The attribute of the model config that holds the parameters."""


@dataclass(frozen=True)
class LMMomentumAttention:
    """Parameters of Dai et al.'s momentum attention, as stored in ``model.config.momentum_attention``.

    Attributes:
        eta: η in [0, 1), the decay of the EMA over earlier values (0: plain attention, exactly).
        scale: λ ≥ 0, the weight of the added term (1: the paper's form; 0: plain attention, exactly).
        normalized: divide the EMA by Σ η^(t-i) (a weighted mean of the values) instead of the paper's sum.
        window: keep only the ``window`` most recent earlier values (None: all). The dropped part is at most
            max|v|·η^(window+1)/(1-η) per coordinate.
        layers: indices of the layers that use it (None: all).

    Example:
        >>> LMMomentumAttention.from_dict({"eta": 0.05, "scale": 0.1}).scale
        0.1
        >>> LMMomentumAttention(eta=1.5)
        Traceback (most recent call last):
        ...
        ValueError: `eta` must be a number in [0, 1), got 1.5.
    """

    eta: float = 0.0
    scale: float = 1.0
    normalized: bool = False
    window: int | None = None
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        def number(value: Any) -> bool:
            return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)

        if not number(self.eta) or not 0.0 <= self.eta < 1.0:
            raise ValueError(f"`eta` must be a number in [0, 1), got {self.eta!r}.")
        if not number(self.scale) or self.scale < 0:
            raise ValueError(f"`scale` must be a finite number >= 0, got {self.scale!r}.")
        if not isinstance(self.normalized, bool):
            raise ValueError(f"`normalized` must be True or False, got {self.normalized!r}.")
        if (self.window is not None and (isinstance(self.window, bool) or not isinstance(self.window, int))) or (
            isinstance(self.window, int) and self.window < 1
        ):
            raise ValueError(f"`window` must be None or an integer >= 1, got {self.window!r}.")
        if self.layers is not None:
            layers = tuple(self.layers)
            if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers):
                raise ValueError(f"`layers` must be None or integers >= 0, got {self.layers!r}.")
            object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "eta", float(self.eta))
        object.__setattr__(self, "scale", float(self.scale))

    @property
    def is_identity(self) -> bool:
        """True when the added term is exactly zero (η = 0 or λ = 0)."""
        return self.eta == 0.0 or self.scale == 0.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LMMomentumAttention:
        """From ``model.config.momentum_attention``; unknown keys raise ``ValueError``."""
        if not isinstance(values, dict):
            raise ValueError(f"`config.{CONFIG_KEY}` must be a dict, got {type(values).__name__}.")
        unknown = sorted(set(values) - {"eta", "scale", "normalized", "window", "layers"})
        if unknown:
            raise ValueError(f"`config.{CONFIG_KEY}` has unknown keys {unknown}.")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-friendly dict stored in the config."""
        out = asdict(self)
        out["layers"] = None if self.layers is None else list(self.layers)
        return out


def parse_lm_attention(name: str) -> LMMomentumAttention | None:
    """The parameters of a text-attention preset name (None for ``"off"``).

    Raises:
        ValueError: an unknown name or an invalid eta, naming the valid ones.
    """
    if not isinstance(name, str):
        raise ValueError(f"`attention` must be one of {sorted(LM_ATTENTION_PRESETS)}, got {name!r}.")
    base, _, value = name.strip().lower().partition(":")
    if base not in LM_ATTENTION_PRESETS:
        raise ValueError(f"`attention`={name!r} is not a text-attention preset; valid: off, momentum, momentum:<eta>.")
    if base == "off":
        if value:
            raise ValueError(f"`attention`={name!r}: 'off' takes no value.")
        return None
    if not value:
        return LMMomentumAttention(eta=MOMENTUM_PRESET["eta"], scale=MOMENTUM_PRESET["scale"])
    try:
        eta = float(value)
    except ValueError:
        raise ValueError(f"`attention`={name!r}: {value!r} is not a number (eta in [0, 1)).") from None
    return LMMomentumAttention(eta=eta, scale=MOMENTUM_PRESET["scale"])
