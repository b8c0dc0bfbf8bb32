"""Momentum attention for language models (Dai et al.) as a transformers attention implementation.

Not to be confused with :func:`inertia.attention.apply_momentum_attention`, which is momentum across the denoising
steps of a diffusion model. This one is the paper's in-context momentum (arXiv 2212.10559, §5): every attention layer
returns SDPA's output plus λ·Σ_{i<t} η^(t-i) v_i (:mod:`inertia.core.lm_attention.value_ema`).

It is registered with transformers' ``AttentionInterface`` (and ``AttentionMaskInterface``, so that padding masks
are built as for SDPA) under :data:`LM_MOMENTUM_ATTENTION` when this module is imported. Its parameters live in
``model.config.momentum_attention`` (a dict: ``eta``, ``scale``, and optionally ``normalized``, ``window``,
``layers``), so they survive ``save_pretrained`` / ``from_pretrained``. Setting that dict and calling
``model.set_attn_implementation(LM_MOMENTUM_ATTENTION)`` is all it takes; :func:`enable_lm_momentum_attention`
does both, with validation, and :func:`disable_lm_momentum_attention` switches back.

Works for every causal LM whose attention goes through the interface (Llama, Qwen2/3, Mistral, Gemma, GPT-2, ...),
with ``generate()`` and dynamic or static caches, left padding, batches and grouped-query attention: the term is
computed from the cached values with the mask each query sees, so it needs no state of its own.

Example:
    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> _ = torch.manual_seed(0)
    >>> model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
    ...                                      num_attention_heads=2, num_key_value_heads=1)).eval()
    >>> ids = torch.tensor([[3, 4, 5, 6]])
    >>> plain = model(ids).logits
    >>> enable_lm_momentum_attention(model, eta=0.0)    # eta 0: exactly SDPA
    >>> bool(torch.equal(model(ids).logits, plain))
    True
    >>> enable_lm_momentum_attention(model, eta=0.1)
    >>> model.config.momentum_attention["eta"], bool(torch.equal(model(ids).logits, plain))
    (0.1, False)
    >>> disable_lm_momentum_attention(model)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from inertia.core.lm_attention.config import CONFIG_KEY, LMMomentumAttention
from inertia.core.lm_attention.value_ema import query_positions_from_mask, value_momentum, value_weights

__all__ = [
    "LM_MOMENTUM_ATTENTION",
    "LMMomentumAttention",
    "MomentumGates",
    "add_momentum_gates",
    "attention_modules",
    "disable_lm_momentum_attention",
    "enable_lm_momentum_attention",
    "lm_momentum_attention",
    "lm_momentum_attention_forward",
    "load_momentum_gates",
]

from inertia.core.lm_attention.config import LM_MOMENTUM_ATTENTION


@functools.lru_cache(maxsize=64)
def _parse(items: tuple[tuple[str, Any], ...]) -> LMMomentumAttention:
    return LMMomentumAttention.from_dict(dict(items))


def _parameters(module: torch.nn.Module) -> LMMomentumAttention:
    config = getattr(module, "config", None)
    values = getattr(config, CONFIG_KEY, None) if config is not None else None
    if values is None:
        raise ValueError(
            f"attn_implementation={LM_MOMENTUM_ATTENTION!r} needs `model.config.{CONFIG_KEY}` (a dict with at least "
            "`eta` and `scale`); use inertia.adapters.transformers.attention_interface.enable_lm_momentum_attention(model, eta=...)."
        )
    if not isinstance(values, dict):
        raise ValueError(f"`config.{CONFIG_KEY}` must be a dict, got {type(values).__name__}.")
    # keyed by the contents, not the dict: an in-place edit of the config takes effect on the next forward
    return _parse(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items())))


def _visible(attention_mask: torch.Tensor | None, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor | None:
    """The boolean ``[B, (H,) S_q, S_k]`` visibility of the keys, or None for SDPA's mask-free causal cases."""
    if attention_mask is None:
        return None
    mask = attention_mask if attention_mask.dtype == torch.bool else attention_mask > torch.finfo(query.dtype).min / 2
    mask = mask[..., : key.shape[-2]]
    return mask.expand(query.shape[0], -1, -1, -1)


def lm_momentum_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA plus λ·Σ_{i<t} η^(t-i) v_i (the transformers attention-function signature).

    ``query`` is ``[B, H, S_q, D]``, ``key``/``value`` ``[B, H_kv, S_k, D]`` (cache included); returns
    ``([B, S_q, H, D], None)`` like SDPA. Layers outside ``layers``, and η = 0 or λ = 0, return SDPA's output as is.
    """
    output, weights = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    params = _parameters(module)
    layer = getattr(module, "layer_idx", None)
    gates = getattr(module, "momentum_gates", None)
    if params.layers is not None and layer not in params.layers:
        return output, weights
    if gates is not None:  # learned per-head η_h and λ_h (fine-tuning, inertia.training.lm_momentum)
        eta, scale = torch.sigmoid(gates.eta_logit), gates.scale
    elif params.is_identity:
        return output, weights
    else:
        eta, scale = params.eta, params.scale
    q_len, k_len = query.shape[2], key.shape[2]
    visible = _visible(attention_mask, query, key)
    if visible is not None:
        positions = query_positions_from_mask(visible if visible.dim() == 3 else visible[:, 0])
    elif q_len > 1 and k_len > q_len:  # SDPA's mask-free prefill into an empty static cache: keys from slot 0
        positions = torch.arange(q_len, device=query.device).expand(query.shape[0], -1)
        visible = (torch.arange(k_len, device=query.device) < q_len).expand(query.shape[0], q_len, -1)
    else:  # no padding: the queries are the last q_len keys
        positions = torch.arange(k_len - q_len, k_len, device=query.device).expand(query.shape[0], -1)
    if visible is None and gates is None and q_len == 1:  # decoding: one weight row, shared by every layer
        row = _decode_weights(k_len, params.eta, params.normalized, params.window, value.device)
        term = (row @ value.to(row.dtype)).to(value.dtype)  # [B, H_kv, 1, D]
        term = term * params.scale if params.scale != 1.0 else term
    else:
        term = value_momentum(
            value, positions, eta, scale, visible, params.normalized, params.window
        )  # [B, H_kv or H, S_q, D]: scalar weights do not depend on the query, so grouped heads share them
    batch, heads, groups = output.shape[0], output.shape[2], term.shape[1]
    if groups == heads:
        return output + term.transpose(1, 2).to(output.dtype), weights
    # grouped-query attention: add each value head's term to its group of query heads without copying it
    grouped = output.view(batch, q_len, groups, heads // groups, -1) + term.transpose(1, 2).unsqueeze(3).to(
        output.dtype
    )
    return grouped.view_as(output), weights


@functools.lru_cache(maxsize=8)
def _decode_weights_cached(
    k_len: int, eta: float, normalized: bool, window: int | None, device: torch.device, inference: bool
) -> torch.Tensor:
    position = torch.tensor([[k_len - 1]], device=device)
    return value_weights(position, k_len, eta, None, normalized, window)[:, None]  # [1, 1, 1, S_k]


def _decode_weights(
    k_len: int, eta: float, normalized: bool, window: int | None, device: torch.device
) -> torch.Tensor:
    """The weight row of a decoding step without padding: the same for every layer of that step, so it is built once
    (keyed by inference mode too: an inference tensor must not reach autograd)."""
    return _decode_weights_cached(k_len, eta, normalized, window, device, torch.is_inference_mode_enabled())


AttentionInterface.register(LM_MOMENTUM_ATTENTION, lm_momentum_attention_forward)
AttentionMaskInterface.register(LM_MOMENTUM_ATTENTION, sdpa_mask)  # padding masks as for SDPA


def enable_lm_momentum_attention(
    model: Any,
    eta: float,
    scale: float = 1.0,
    normalized: bool = False,
    window: int | None = None,
    layers: tuple[int, ...] | list[int] | None = None,
) -> None:
    """Stores the parameters in ``model.config.momentum_attention`` and switches the model to this implementation.

    Raises:
        ValueError: an invalid parameter (before anything changes).
    """
    params = LMMomentumAttention(eta, scale, normalized, window, None if layers is None else tuple(layers))
    setattr(model.config, CONFIG_KEY, params.to_dict())
    model.set_attn_implementation(LM_MOMENTUM_ATTENTION)


def disable_lm_momentum_attention(model: Any, implementation: str = "sdpa") -> None:
    """Switches the model back to ``implementation`` and removes the parameters from its config."""
    model.set_attn_implementation(implementation)
    if hasattr(model.config, CONFIG_KEY):
        delattr(model.config, CONFIG_KEY)


@contextmanager
def lm_momentum_attention(model: Any, params: LMMomentumAttention | None) -> Iterator[Any]:
    """Runs the block with ``params`` switched on (None: unchanged), then restores the model's implementation and
    config exactly, so a shared model serves the next request as it was (hold the model's lock around it)."""
    if params is None:
        yield model
        return
    previous_impl = model.config._attn_implementation
    had, previous = hasattr(model.config, CONFIG_KEY), getattr(model.config, CONFIG_KEY, None)
    setattr(model.config, CONFIG_KEY, params.to_dict())
    model.set_attn_implementation(LM_MOMENTUM_ATTENTION)
    try:
        yield model
    finally:
        model.set_attn_implementation(previous_impl)
        if had:
            setattr(model.config, CONFIG_KEY, previous)
        elif hasattr(model.config, CONFIG_KEY):
            delattr(model.config, CONFIG_KEY)


class MomentumGates(torch.nn.Module):
    """Learnable per-head momentum-attention parameters of one attention layer, for fine-tuning a pretrained model.

    λ_h (``scale``) starts at 0, so the model is exactly its SDPA self at step 0; η_h = sigmoid(``eta_logit``) starts
    at ``eta``. While an attention module has ``momentum_gates``, they replace the config's ``eta`` and ``scale``.

    Example:
        >>> gates = MomentumGates(num_heads=4, eta=0.1)
        >>> [round(v, 3) for v in torch.sigmoid(gates.eta_logit).tolist()], gates.scale.tolist()
        ([0.1, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0])
    """

    def __init__(self, num_heads: int, eta: float = 0.05) -> None:
        super().__init__()
        if not 0.0 < eta < 1.0:
            raise ValueError(f"`eta` must be in (0, 1) to start the learned η_h, got {eta!r}.")
        self.scale = torch.nn.Parameter(torch.zeros(num_heads))
        self.eta_logit = torch.nn.Parameter(torch.full((num_heads,), math.log(eta / (1.0 - eta))))


def attention_modules(model: Any) -> list[torch.nn.Module]:
    """The attention modules that call the attention interface (they carry a ``layer_idx``), in layer order."""
    found = [m for m in model.modules() if type(m).__name__.endswith("Attention") and hasattr(m, "layer_idx")]
    if not found:
        raise ValueError(f"{type(model).__name__} has no attention modules with a `layer_idx` (AttentionInterface).")
    return found


def add_momentum_gates(model: Any, eta: float = 0.05) -> list[MomentumGates]:
    """Attaches :class:`MomentumGates` to every attention layer and switches the model to momentum attention.

    Returns the gates (their parameters are what a fine-tune adds). The model's output is unchanged until λ_h move.
    """
    heads = int(model.config.num_attention_heads)
    gates = []
    for module in attention_modules(model):
        module.momentum_gates = MomentumGates(heads, eta).to(next(model.parameters()).device)
        gates.append(module.momentum_gates)
    enable_lm_momentum_attention(model, eta=eta)
    return gates


def load_momentum_gates(model: Any, path: str | Path) -> list[MomentumGates]:
    """Attaches gates to ``model`` (:func:`add_momentum_gates`) and loads learned values saved by
    :func:`inertia.training.lm_momentum.save_gates` (the fine-tune's ``gates.safetensors``; its trained shared
    weights are in ``shared.safetensors``: ``model.load_state_dict(load_file(...), strict=False)``).

    Raises:
        ValueError: the file's layers or heads do not match the model (nothing is changed then).
    """
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    modules = attention_modules(model)
    heads = int(model.config.num_attention_heads)
    expected = {f"layer.{m.layer_idx}.{name}" for m in modules for name in ("scale", "eta_logit")}
    if set(tensors) != expected or any(t.shape != (heads,) for t in tensors.values()):
        raise ValueError(
            f"{path} holds gates for {len(tensors) // 2} layers of {next(iter(tensors.values())).numel()} heads; the "
            f"model has {len(modules)} attention layers of {heads} heads."
        )
    gates = add_momentum_gates(model)
    with torch.no_grad():
        for module, gate in zip(modules, gates, strict=True):
            gate.scale.copy_(tensors[f"layer.{module.layer_idx}.scale"])
            gate.eta_logit.copy_(tensors[f"layer.{module.layer_idx}.eta_logit"])
    return gates


SMOLLM2_ADAPTER = Path(__file__).resolve().parents[2] / "models" / "lm_momentum"
"""The shipped fine-tune of the embedded SmolLM2-135M (gates + normalisation weights; model card in the folder)."""


def load_momentum_adapter(model: Any, folder: str | Path = SMOLLM2_ADAPTER, prefix: str = "smollm2-135m-lee") -> Any:
    """Loads a momentum-attention fine-tune into ``model``: its normalisation weights (``<prefix>-norms``) and its
    gates (``<prefix>-gates``); the default is the shipped SmolLM2-135M one (docs/benchmarks/lm-attention.md §8).

    Raises:
        ValueError: a weight the model does not have, or gates that do not fit it (before anything changes).
    """
    from safetensors.torch import load_file

    norms = load_file(str(Path(folder) / f"{prefix}-norms.safetensors"))
    names = dict(model.named_parameters())
    missing = sorted(set(norms) - set(names))
    if missing or any(names[k].shape != v.shape for k, v in norms.items() if k in names):
        raise ValueError(f"the adapter's weights do not fit {type(model).__name__}: {missing[:3] or 'shapes differ'}")
    load_momentum_gates(model, Path(folder) / f"{prefix}-gates.safetensors")
    with torch.no_grad():
        for key, value in norms.items():
            names[key].copy_(value)
    return model
