"""Momentum attention: training-free momentum on attention outputs across denoising steps (spec C.2).

`MomentumAttention` configures the rule (``"extrapolate"`` skips attention on some steps and predicts its output
with a heavy-ball extrapolation; ``"ema"`` and ``"heavy_ball"`` are experimental filters; ``"first_order"`` is
FasterCache's rule, the baseline); `apply_momentum_attention` installs it on a pipeline's denoiser with diffusers
model hooks and `remove_momentum_attention` takes it off again. See docs/attention.md.

Example:
    >>> from inertia.attention import MomentumAttention, apply_momentum_attention, remove_momentum_attention
    >>> config = MomentumAttention(mode="extrapolate", skip_every=2, window=(4, None))
    >>> config.num_skipped(20)   # attention skipped on steps 5, 7, ..., 19
    8
    >>> # apply_momentum_attention(pipe, config); images = pipe(...).images; remove_momentum_attention(pipe)
"""

from .config import DEFAULTS, EXPERIMENTAL_MODES, MODES, SKIP_MODES, TARGETS, MomentumAttention
from .hooks import (
    LAYER_HOOK_NAME,
    ROOT_HOOK_NAME,
    MomentumAttentionHook,
    MomentumAttentionRootHook,
    apply_momentum_attention,
    get_momentum_attention_tracker,
    remove_momentum_attention,
)
from .rules import (
    TensorState,
    ema_step,
    extrapolate_observe,
    extrapolate_predict,
    first_order_observe,
    first_order_predict,
    heavy_ball_step,
)
from .session import CallTracker
from .targets import attention_kind, find_attention_modules, select_modules

__all__ = [
    "DEFAULTS",
    "EXPERIMENTAL_MODES",
    "LAYER_HOOK_NAME",
    "MODES",
    "ROOT_HOOK_NAME",
    "SKIP_MODES",
    "TARGETS",
    "CallTracker",
    "MomentumAttention",
    "MomentumAttentionHook",
    "MomentumAttentionRootHook",
    "TensorState",
    "apply_momentum_attention",
    "attention_kind",
    "ema_step",
    "extrapolate_observe",
    "extrapolate_predict",
    "find_attention_modules",
    "first_order_observe",
    "first_order_predict",
    "get_momentum_attention_tracker",
    "heavy_ball_step",
    "remove_momentum_attention",
    "select_modules",
]
