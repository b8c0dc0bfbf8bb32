"""Momentum attention: training-free momentum on attention outputs across denoising steps.

`MomentumAttention` configures the rule (``"extrapolate"`` skips attention on some steps and predicts its output
with a heavy-ball extrapolation; ``"ema"`` and ``"heavy_ball"`` are experimental filters; ``"first_order"`` is
FasterCache's rule, the baseline); `apply_momentum_attention` installs it on a pipeline's denoiser with diffusers
model hooks and `remove_momentum_attention` takes it off again. See docs/methods/momentum-attention.md.

Example:
    >>> from inertia.attention import MomentumAttention, apply_momentum_attention, remove_momentum_attention
    >>> config = MomentumAttention(mode="extrapolate", skip_every=2, window=(4, None))
    >>> config.num_skipped(20)   # attention skipped on steps 5, 7, ..., 19
    8
    >>> # apply_momentum_attention(pipe, config); images = pipe(...).images; remove_momentum_attention(pipe)

Momentum attention for *language models* (Dai et al. 2023: an EMA of the earlier value vectors added to each
attention output) is a different method: :mod:`inertia.attention.lm` (``enable_lm_momentum_attention``, the
``"inertia_lm_momentum"`` attention implementation). Names are imported on first use, so that the torch-free
:mod:`inertia.attention.lm_config` loads without diffusers.
"""

from inertia._lazy import lazy_attributes

_NAMES = {
    **dict.fromkeys(
        ("DEFAULTS", "EXPERIMENTAL_MODES", "MODES", "SKIP_MODES", "TARGETS", "MomentumAttention"), ".config"
    ),
    **dict.fromkeys(
        (
            "LAYER_HOOK_NAME",
            "ROOT_HOOK_NAME",
            "MomentumAttentionHook",
            "MomentumAttentionRootHook",
            "apply_momentum_attention",
            "get_momentum_attention_tracker",
            "remove_momentum_attention",
        ),
        ".hooks",
    ),
    **dict.fromkeys(
        (
            "TensorState",
            "ema_step",
            "extrapolate_observe",
            "extrapolate_predict",
            "first_order_observe",
            "first_order_predict",
            "heavy_ball_step",
        ),
        ".rules",
    ),
    "CallTracker": ".session",
    **dict.fromkeys(("attention_kind", "find_attention_modules", "select_modules"), ".targets"),
    **dict.fromkeys(
        ("LM_MOMENTUM_ATTENTION", "LMMomentumAttention", "LM_ATTENTION_PRESETS", "parse_lm_attention"), ".lm_config"
    ),
    **dict.fromkeys(("enable_lm_momentum_attention", "disable_lm_momentum_attention"), ".lm"),
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
