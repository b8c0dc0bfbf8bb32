"""Momentum attention: training-free momentum on attention outputs across denoising steps.

`MomentumAttention` configures the rule (``"extrapolate"`` skips attention on some steps and predicts its output
with a heavy-ball extrapolation; ``"ema"`` and ``"heavy_ball"`` are experimental filters; ``"first_order"`` is
FasterCache's rule, the baseline); `apply_momentum_attention` installs it on a pipeline's denoiser with diffusers
model hooks (:mod:`inertia.adapters.diffusers.attention_hooks`; the rules are :mod:`inertia.core.attention`) and
`remove_momentum_attention` takes it off again. See docs/methods/momentum-attention.md.

Example:
    >>> from inertia.attention import MomentumAttention, apply_momentum_attention, remove_momentum_attention
    >>> config = MomentumAttention(mode="extrapolate", skip_every=2, window=(4, None))
    >>> config.num_skipped(20)   # attention skipped on steps 5, 7, ..., 19
    8
    >>> # apply_momentum_attention(pipe, config); images = pipe(...).images; remove_momentum_attention(pipe)

Momentum attention for *language models* (Dai et al. 2023: an EMA of the earlier value vectors added to each
attention output) is a different method: :mod:`inertia.adapters.transformers.attention_interface`
(``enable_lm_momentum_attention``, the ``"inertia_lm_momentum"`` attention implementation; the math in
:mod:`inertia.core.lm_attention`). Names are imported on first use, so that the configs load without diffusers or
transformers.
"""

from inertia._lazy import lazy_attributes, names_by_module

_NAMES = names_by_module(
    {
        "inertia.core.attention.config": "DEFAULTS EXPERIMENTAL_MODES MODES SKIP_MODES TARGETS MomentumAttention",
        "inertia.adapters.diffusers.attention_hooks": "LAYER_HOOK_NAME ROOT_HOOK_NAME MomentumAttentionHook MomentumAttentionRootHook apply_momentum_attention get_momentum_attention_tracker remove_momentum_attention",
        "inertia.core.attention.rules": "TensorState ema_step extrapolate_observe extrapolate_predict first_order_observe first_order_predict heavy_ball_step",
        "inertia.core.attention.session": "CallTracker",
        "inertia.adapters.diffusers.attention_targets": "attention_kind find_attention_modules select_modules",
        "inertia.core.lm_attention.config": "LM_MOMENTUM_ATTENTION LMMomentumAttention LM_ATTENTION_PRESETS parse_lm_attention",
        "inertia.adapters.transformers.attention_interface": "enable_lm_momentum_attention disable_lm_momentum_attention",
    }
)
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
