"""Fine-tuning a pretrained language model to Dai et al.'s momentum attention, with a plain-attention control.

Dai et al. (arXiv 2212.10559, §5) trained their models with momentum attention from scratch. This recipe adapts a
pretrained one instead: every attention layer gets learnable per-head gates λ_h, initialised at 0 (so step 0 is the
pretrained model exactly), and per-head decays η_h = sigmoid(θ_h) (:class:`inertia.adapters.transformers.attention_interface.MomentumGates`).
Both arms train the same shared parameters on the same data in the same order (``shared="norms"``: the weights of
every normalisation layer, a cheap adapter that needs no extra library); the ``momentum`` arm adds the gates, the
``control`` arm keeps plain attention. Compare them at equal steps on held-out text
(``python -m benchmarks.training.lm_finetune``).

Example:
    >>> cfg = LMFinetuneConfig(arm="momentum", steps=2, batch_size=1, seq_len=8, eval_every=0)
    >>> cfg.arm, cfg.shared
    ('momentum', 'norms')
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from inertia.adapters.transformers.attention_interface import MomentumGates, add_momentum_gates, attention_modules

__all__ = ["ARMS", "LMFinetuneConfig", "finetune", "held_out_nll", "save_gates", "text_blocks"]

ARMS = ("momentum", "control")
SHARED = ("norms", "none")


@dataclass(frozen=True)
class LMFinetuneConfig:
    """One fine-tuning run (validated at construction).

    Attributes:
        arm: ``"momentum"`` (gates + shared parameters) or ``"control"`` (shared parameters, plain attention).
        steps: optimizer steps.
        batch_size: blocks per step.
        seq_len: tokens per block.
        lr: AdamW learning rate of the gates.
        shared_lr: AdamW learning rate of the shared parameters.
        shared: ``"norms"`` (normalisation weights, both arms) or ``"none"`` (gates only; the control then trains
            nothing and is the pretrained model).
        eta: the initial η_h.
        eval_every: evaluate the held-out NLL every this many steps (0: only at the end).
        seed: data order and initialisation.
        max_minutes: stop after this wall-clock budget (None: no limit).
    """

    arm: str = "momentum"
    steps: int = 200
    batch_size: int = 4
    seq_len: int = 256
    lr: float = 1e-2
    shared_lr: float = 1e-4
    shared: str = "norms"
    eta: float = 0.05
    eval_every: int = 50
    seed: int = 0
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ValueError(f"`arm` must be one of {ARMS}, got {self.arm!r}.")
        if self.shared not in SHARED:
            raise ValueError(f"`shared` must be one of {SHARED}, got {self.shared!r}.")
        for name in ("steps", "batch_size", "seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
        if isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ValueError(f"`eval_every` must be an integer >= 0, got {self.eval_every!r}.")
        for name in ("lr", "shared_lr"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
        if not 0.0 < self.eta < 1.0:
            raise ValueError(f"`eta` must be in (0, 1), got {self.eta!r}.")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"`max_minutes` must be None or > 0, got {self.max_minutes!r}.")


def text_blocks(tokenizer: Any, texts: Sequence[str], seq_len: int) -> torch.Tensor:
    """``[N, seq_len]`` token blocks of the concatenated texts (an EOS between texts where the tokenizer has one)."""
    ids: list[int] = []
    eos = getattr(tokenizer, "eos_token_id", None)
    for text in texts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
    count = len(ids) // seq_len
    if count < 1:
        raise ValueError(f"the training texts have {len(ids)} tokens, fewer than one block of `seq_len`={seq_len}.")
    return torch.tensor(ids[: count * seq_len]).view(count, seq_len)


def held_out_nll(model: Any, tokenizer: Any, texts: Sequence[str], tokens: int = 256) -> list[float]:
    """Mean next-token NLL of each held-out text (its first ``tokens`` tokens), one forward each."""
    out = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :tokens].to(device)
            logits = model(ids).logits[0, :-1].float()
            out.append(float(torch.nn.functional.cross_entropy(logits, ids[0, 1:])))
    return out


def _shared_parameters(model: Any, shared: str) -> list[torch.nn.Parameter]:
    if shared == "none":
        return []
    return [p for m in model.modules() if "norm" in type(m).__name__.lower() for p in m.parameters(recurse=False)]


def finetune(
    model: Any,
    tokenizer: Any,
    train_texts: Sequence[str],
    eval_texts: Sequence[str],
    config: LMFinetuneConfig,
    output_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tunes ``model`` in place (one arm) and returns its log and the final held-out NLL per text.

    Writes ``log.jsonl``, ``result.json``, ``shared.safetensors`` (the trained shared weights) and, for the
    momentum arm, ``gates.safetensors`` into ``output_dir``.
    """
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=next(model.parameters()).device.type == "cpu")
    torch.manual_seed(config.seed)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    groups = []
    shared = _shared_parameters(model, config.shared)
    if shared:
        groups.append({"params": shared, "lr": config.shared_lr})
    if config.arm == "momentum":
        gates = add_momentum_gates(model, config.eta)
        groups.append({"params": [p for g in gates for p in g.parameters()], "lr": config.lr})
    for group in groups:
        for parameter in group["params"]:
            parameter.requires_grad_(True)
    if not groups:
        raise ValueError("nothing to train: the control arm with `shared`='none' is the pretrained model itself.")
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    blocks = text_blocks(tokenizer, train_texts, config.seq_len)
    order = random.Random(config.seed)
    log: list[dict[str, Any]] = []
    folder = None if output_dir is None else Path(output_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def evaluate(step: int) -> list[float]:
        model.eval()
        nll = held_out_nll(model, tokenizer, eval_texts)
        model.train()
        record = {"step": step, "eval_nll": sum(nll) / len(nll), "seconds": time.perf_counter() - start}
        log.append(record)
        return nll

    evaluate(0)
    model.train()
    step = 0
    for step in range(1, config.steps + 1):
        batch = blocks[[order.randrange(len(blocks)) for _ in range(config.batch_size)]].to(accelerator.device)
        loss = model(input_ids=batch, labels=batch).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        log.append({"step": step, "loss": float(loss.detach())})
        if config.eval_every and step % config.eval_every == 0 and step < config.steps:
            evaluate(step)
        if config.max_minutes is not None and time.perf_counter() - start > 60 * config.max_minutes:
            break
    final = evaluate(step)
    result = {
        "config": asdict(config),
        "steps_done": step,
        "eval_nll": final,
        "eval_ppl": math.exp(sum(final) / len(final)),
        "log": log,
        "gates": _gate_summary(model),
    }
    if folder is not None:
        (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
        (folder / "result.json").write_text(json.dumps({k: v for k, v in result.items() if k != "log"}, indent=2))
        if config.arm == "momentum":
            save_gates(model, folder / "gates.safetensors")
        if shared:  # the trained shared weights: with the gates, the whole fine-tuned difference
            from safetensors.torch import save_file

            ids = {id(p) for p in shared}
            trained = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if id(p) in ids}
            save_file(trained, str(folder / "shared.safetensors"))
    return result


def _gate_summary(model: Any) -> dict[str, Any] | None:
    gates = [
        m.momentum_gates
        for m in attention_modules(model)
        if isinstance(getattr(m, "momentum_gates", None), MomentumGates)
    ]
    if not gates:
        return None
    scale = torch.stack([g.scale.detach().float() for g in gates])
    eta = torch.stack([torch.sigmoid(g.eta_logit.detach().float()) for g in gates])
    return {
        "scale_mean_abs": float(scale.abs().mean()),
        "scale_max_abs": float(scale.abs().max()),
        "eta_mean": float(eta.mean()),
        "eta_min": float(eta.min()),
        "eta_max": float(eta.max()),
    }


def save_gates(model: Any, path: str | Path) -> Path:
    """Saves every layer's gates (``layer.<i>.scale`` / ``layer.<i>.eta_logit``) as one small safetensors file."""
    from safetensors.torch import save_file

    tensors = {}
    for module in attention_modules(model):
        gates = getattr(module, "momentum_gates", None)
        if gates is not None:
            tensors[f"layer.{module.layer_idx}.scale"] = gates.scale.detach().cpu().contiguous()
            tensors[f"layer.{module.layer_idx}.eta_logit"] = gates.eta_logit.detach().cpu().contiguous()
    save_file(tensors, str(path))
    return Path(path)
