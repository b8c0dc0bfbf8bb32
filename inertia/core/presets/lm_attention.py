"""The text-attention presets (Dai et al.'s momentum attention for language models) and what each does.

Example:
    >>> sorted(LM_ATTENTION_PRESETS)
    ['momentum', 'off']
"""

from __future__ import annotations

__all__ = ["LM_ATTENTION_PRESETS", "MOMENTUM_PRESET"]

MOMENTUM_PRESET = {"eta": 0.05, "scale": 0.1}
"""The ``"momentum"`` preset: η 0.05 with the term scaled by λ 0.1. Training-free, the paper's form (λ = 1) at this η
makes a pretrained model worse, and the scaled form is within noise of plain attention (docs/methods/lm-momentum-attention.md); the method needs a
model trained or fine-tuned with it. The preset exists to try it, not because it helps."""

LM_ATTENTION_PRESETS: dict[str, str] = {
    "off": "plain attention (the model's own)",
    "momentum": "Dai et al.'s momentum attention, eta 0.05, scale 0.1 (experimental); `momentum:<eta>` sets eta",
}
"""Text-attention presets and what each does."""
