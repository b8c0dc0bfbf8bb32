"""Finding the attention modules of a diffusers denoiser and classifying them as self- or cross-attention.

Host adapter (imports diffusers). Attention modules are the classes diffusers' own cache hooks treat as attention
(diffusers' own cache classes, :data:`inertia.adapters.diffusers.private_api.ATTENTION_CLASSES`: ``Attention``, ``MochiAttention`` and every
``AttentionModuleMixin``, which covers ``FluxAttention``). A module is cross-attention when it says so
(``is_cross_attention=True``, the UNet ``attn2`` modules); everything else, including the joint text-image attention
of SD3 / Flux and the single-stream Flux blocks, is self-attention.
"""

from __future__ import annotations

import re

import torch

from inertia.adapters.diffusers.private_api import ATTENTION_CLASSES
from inertia.core.attention.config import MomentumAttention

__all__ = ["attention_kind", "find_attention_modules", "select_modules"]


def attention_kind(module: torch.nn.Module) -> str:
    """``"cross"`` for modules with ``is_cross_attention=True``, else ``"self"``."""
    return "cross" if getattr(module, "is_cross_attention", False) is True else "self"


def find_attention_modules(denoiser: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """All attention modules of ``denoiser`` as ``(qualified name, module)``, in ``named_modules`` order.

    A module nested inside another attention module is not listed on its own.
    """
    found: list[tuple[str, torch.nn.Module]] = []
    for name, module in denoiser.named_modules():
        if not name or not isinstance(module, ATTENTION_CLASSES):
            continue
        if any(name.startswith(parent + ".") for parent, _ in found):
            continue
        found.append((name, module))
    return found


def select_modules(denoiser: torch.nn.Module, config: MomentumAttention) -> list[tuple[str, torch.nn.Module]]:
    """The attention modules of ``denoiser`` that ``config.targets`` and ``config.layers`` select.

    Raises:
        ValueError: when nothing matches; the message lists the attention modules that exist and their kinds.
    """
    modules = find_attention_modules(denoiser)
    selected = [
        (name, module)
        for name, module in modules
        if attention_kind(module) in config.targets
        and (config.layers is None or any(re.search(p, name) for p in config.layers))
    ]
    if not selected:
        found = ", ".join(f"{name} ({attention_kind(module)})" for name, module in modules[:12])
        more = f", ... ({len(modules)} in all)" if len(modules) > 12 else ""
        raise ValueError(
            f"`targets`={config.targets!r}"
            + (f" with `layers`={config.layers!r}" if config.layers is not None else "")
            + f" match no attention module of {type(denoiser).__name__}; its attention modules are: "
            + (found + more if modules else "none")
            + "."
        )
    return selected
