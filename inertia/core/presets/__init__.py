"""Every named preset of inertia, in one registry: pure data, no torch, no host library.

| kind | table | names | applied by |
| --- | --- | --- | --- |
| ``sampler`` | :data:`~inertia.core.presets.pipeline.SAMPLER_PRESETS` | ``hb-dpm++:0.8``, ``ghvb:3.8``, ... | :func:`inertia.pipelines.configure` |
| ``guidance`` | :data:`~inertia.core.presets.pipeline.GUIDANCE_PRESETS` | ``apg``, ``higs``, ``apg+higs``, ... | :func:`inertia.pipelines.configure` |
| ``attention`` | :data:`~inertia.core.presets.pipeline.ATTENTION_PRESETS` | ``extrapolate``, ``first_order``, ... | :func:`inertia.pipelines.configure` |
| ``apg`` | :data:`~inertia.core.presets.apg.APG_PRESETS` | ``sdxl``, ``sd15``, ... (per model family) | ``APG.preset(name)`` |
| ``lm_attention`` | :data:`~inertia.core.presets.lm_attention.LM_ATTENTION_PRESETS` | ``off``, ``momentum:<eta>`` | the CLI, the UI |
| ``resistance`` | :data:`~inertia.core.presets.decoding.RESISTANCE_PRESETS` | ``default``, ``linear``, ... | momentum decoding |

Per-model tuned values (what ``apg`` or ``ghvb`` mean for one trained model) live in the model's folder as
``inertia_presets.json``, read and checked by :mod:`inertia.core.presets.models`.

Example:
    >>> sorted(PRESETS)
    ['apg', 'attention', 'guidance', 'lm_attention', 'resistance', 'sampler']
    >>> "ghvb" in PRESETS["sampler"]
    True
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from inertia.core.presets.apg import APG_PRESETS
from inertia.core.presets.decoding import RESISTANCE_PRESETS
from inertia.core.presets.lm_attention import LM_ATTENTION_PRESETS
from inertia.core.presets.pipeline import ATTENTION_PRESETS, GUIDANCE_PRESETS, SAMPLER_PRESETS

PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "sampler": SAMPLER_PRESETS,
        "guidance": GUIDANCE_PRESETS,
        "attention": ATTENTION_PRESETS,
        "apg": APG_PRESETS,
        "lm_attention": LM_ATTENTION_PRESETS,
        "resistance": RESISTANCE_PRESETS,
    }
)
"""Every preset table by kind."""

__all__ = ["PRESETS"]
