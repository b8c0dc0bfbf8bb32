"""Exponential moving average (EMA) of model weights with EDM's half-life-in-images schedule (pure torch).

After every optimizer step the shadow weights move towards the model's:
``ema ← β·ema + (1 − β)·θ`` with ``β = 0.5 ** (batch_size / h)``, where ``h`` is the half-life in *images* (Karras et
al. 2022, ``training_loop.py``): the contribution of a weight snapshot halves after ``h`` more training images, so the
average does not depend on the batch size. With ``rampup_ratio`` set, ``h = min(halflife_images, rampup_ratio·n)``
with ``n`` the images seen *before* the update (EDM uses 0.05), so early on the average forgets the random
initialisation quickly: the first update (n = 0) copies the weights (β = 0).

Only floating-point parameters are averaged (kept in float32, or float64 for float64 parameters); buffers are not
tracked (a ``UNet2DModel`` has none that change in training).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from inertia.core.tensors import compute_dtype
from inertia.core.validation import check_range

__all__ = ["EMA"]


class EMA:
    """EMA of a model's floating-point parameters with a half-life measured in training images (EDM style).

    Args:
        model: The model whose parameters are averaged (pass the unwrapped model, not a DDP wrapper).
        halflife_images: Half-life ``h`` of the average in images, > 0 (EDM: 500k for 200M-image runs).
        rampup_ratio: If set (> 0), the half-life is capped at ``rampup_ratio × images seen`` (EDM: 0.05); ``None``
            uses ``halflife_images`` from the start.

    Attributes:
        num_images: Images seen by the updates so far (the sum of their ``batch_size``).
        shadow: Parameter name → averaged tensor.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(1, 1, bias=False)
        >>> _ = torch.nn.init.constant_(model.weight, 0.0)
        >>> ema = EMA(model, halflife_images=4, rampup_ratio=None)
        >>> _ = torch.nn.init.constant_(model.weight, 1.0)
        >>> ema.update(model, batch_size=4)   # β = 0.5 ** (4 / 4)
        0.5
        >>> ema.shadow["weight"].item()
        0.5
        >>> with ema.average_parameters(model):   # evaluate with the EMA weights
        ...     model.weight.item()
        0.5
        >>> model.weight.item()
        1.0
    """

    def __init__(self, model: nn.Module, halflife_images: float, rampup_ratio: float | None = 0.05) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        check_range("halflife_images", halflife_images, 0.0, low_open=True)
        if rampup_ratio is not None:
            check_range("rampup_ratio", rampup_ratio, 0.0, low_open=True)
        self.halflife_images = float(halflife_images)
        self.rampup_ratio = None if rampup_ratio is None else float(rampup_ratio)
        self.num_images = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().to(self._dtype(p)).clone() for name, p in self._params(model)
        }
        self._backup: dict[str, torch.Tensor] | None = None

    @staticmethod
    def _dtype(p: torch.Tensor) -> torch.dtype:
        return compute_dtype(p.dtype)

    @staticmethod
    def _params(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
        for name, p in model.named_parameters():
            if p.is_floating_point():
                yield name, p

    def _matched(self, model: nn.Module) -> list[tuple[str, torch.Tensor]]:
        params = list(self._params(model))
        names = [n for n, _ in params]
        if sorted(names) != sorted(self.shadow):
            missing = sorted(set(self.shadow) - set(names))[:3]
            extra = sorted(set(names) - set(self.shadow))[:3]
            raise ValueError(
                f"`model` must have the parameters the EMA was built from; missing {missing}, unexpected {extra}."
            )
        return params

    def decay(self, batch_size: int) -> float:
        """β of the next update for a batch of ``batch_size`` images (depends on :attr:`num_images`)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an integer in [1, inf), got {batch_size!r}.")
        halflife = self.halflife_images
        if self.rampup_ratio is not None:
            halflife = min(halflife, self.num_images * self.rampup_ratio)  # EDM's ema_rampup_ratio
        return 0.5 ** (batch_size / max(halflife, 1e-8))

    @torch.no_grad()
    def update(self, model: nn.Module, batch_size: int) -> float:
        """Moves the average towards ``model``'s weights after a step on ``batch_size`` images; returns the β used."""
        beta = self.decay(batch_size)
        for name, p in self._matched(model):
            shadow = self.shadow[name]
            shadow.lerp_(p.detach().to(shadow.device, shadow.dtype), 1.0 - beta)  # β·ema + (1 − β)·θ
        self.num_images += batch_size
        return beta

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Writes the averaged weights into ``model`` (cast to each parameter's dtype and device)."""
        for name, p in self._matched(model):
            p.copy_(self.shadow[name].to(p.device, p.dtype))

    @torch.no_grad()
    def store(self, model: nn.Module) -> None:
        """Saves ``model``'s current weights so :meth:`restore` can put them back (e.g. around an evaluation)."""
        self._backup = {name: p.detach().clone() for name, p in self._matched(model)}

    @torch.no_grad()
    def restore(self, model: nn.Module) -> None:
        """Puts back the weights saved by :meth:`store`."""
        if self._backup is None:
            raise ValueError("`restore` must follow `store`: no weights were stored.")
        for name, p in self._matched(model):
            p.copy_(self._backup[name])
        self._backup = None

    @contextlib.contextmanager
    def average_parameters(self, model: nn.Module) -> Iterator[nn.Module]:
        """Context manager: ``model`` holds the EMA weights inside the block, its own weights again after it."""
        self.store(model)
        try:
            self.copy_to(model)
            yield model
        finally:
            self.restore(model)

    def to(self, device: torch.device | str) -> EMA:
        """Moves the shadow weights to ``device`` (in place); returns ``self``."""
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        return self

    def state_dict(self) -> dict[str, Any]:
        """Serializable state: settings, :attr:`num_images` and the shadow tensors (on the CPU)."""
        return {
            "halflife_images": self.halflife_images,
            "rampup_ratio": self.rampup_ratio,
            "num_images": self.num_images,
            "shadow": {k: v.detach().cpu().clone() for k, v in self.shadow.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict` output (shadow tensors keep their current device)."""
        shadow = state["shadow"]
        if sorted(shadow) != sorted(self.shadow):
            raise ValueError("`state['shadow']` must hold the same parameter names as this EMA.")
        num_images = state["num_images"]
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 0:
            raise ValueError(f"`num_images` must be an integer in [0, inf), got {num_images!r}.")
        check_range("halflife_images", state["halflife_images"], 0.0, low_open=True)
        if state["rampup_ratio"] is not None:
            check_range("rampup_ratio", state["rampup_ratio"], 0.0, low_open=True)
        self.halflife_images = float(state["halflife_images"])
        self.rampup_ratio = None if state["rampup_ratio"] is None else float(state["rampup_ratio"])
        self.num_images = num_images
        self.shadow = {k: shadow[k].to(self.shadow[k].device, self.shadow[k].dtype).clone() for k in self.shadow}
