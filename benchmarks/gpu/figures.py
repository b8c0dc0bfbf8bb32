"""The GPU check's figures: timings of inertia's hot paths on the GPU, each set reusing a benchmark's timing code.

Scheduler ``step`` (:mod:`benchmarks.samplers.step_overhead`), the guidance hook per denoiser call
(:mod:`benchmarks.guidance.hook_overhead`), momentum attention's UNet calls
(:mod:`benchmarks.attention.unet_attention_speed`) and momentum decoding per token (here, on a random
SmolLM2-sized Llama: the embedded SmolLM2 cannot travel to the GPU machine). :data:`FIGURES` lists the sets in the
order :func:`run_figures` runs them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any
from unittest import mock

import torch

from benchmarks.common.timing import seconds_of, synchronize

__all__ = [
    "FIGURES",
    "attention_figures",
    "decoding_figures",
    "guidance_figures",
    "run_figures",
    "scheduler_figures",
]


def _median_us(call: Callable[[], Any], device: torch.device, repeats: int) -> float:
    call()  # warm-up: lazy initialisation, allocator
    times = []
    for _ in range(repeats):
        times.append(seconds_of(call, device))
    return statistics.median(times) * 1e6


def _typed_stepper(dtype: torch.dtype) -> type:
    """``step_overhead.SteadyStepper`` with its sample and model output in ``dtype`` (it builds them in fp32)."""
    from benchmarks.samplers import step_overhead

    class TypedStepper(step_overhead.SteadyStepper):
        def __init__(self, scheduler: Any, shape: Sequence[int], device: torch.device, seed: int = 0) -> None:
            super().__init__(scheduler, shape, device, seed)
            self.initial = self.initial.to(dtype)
            self.model_output = self.model_output.to(dtype)
            self._reset()

    return TypedStepper


def scheduler_figures(device: torch.device, quick: bool) -> dict[str, Any]:
    """Steady-state ``step`` time per scheduler (``step_overhead.measure``), fp16 and fp32, and CUDA-graph replays."""
    from benchmarks.samplers import step_overhead

    shapes = ((1, 4, 16, 16),) if quick else step_overhead.SHAPES
    repeats = 10 if quick else 200
    factories = step_overhead.scheduler_factories()
    rows = []
    for dtype in (torch.float16, torch.float32):
        for shape in shapes:
            with mock.patch.object(step_overhead, "SteadyStepper", _typed_stepper(dtype)):
                timings = step_overhead.measure(factories, shape, device, repeats)
            baseline = next(t for t in timings if t.name == step_overhead.BASELINE).median
            for timing in timings:
                low, high = timing.iqr
                rows.append(
                    {
                        "dtype": str(dtype).removeprefix("torch."),
                        "shape": "x".join(map(str, shape)),
                        "scheduler": timing.name,
                        "median_us": round(timing.median * 1e6, 1),
                        "iqr_us": [round(low * 1e6, 1), round(high * 1e6, 1)],
                        "ratio": round(timing.median / baseline, 3),
                    }
                )
    graphs = {}
    if device.type == "cuda":
        for name, factory in factories.items():
            graphs[name] = step_overhead.try_cuda_graph(factory, shapes[0])
    return {"repeats": repeats, "rows": rows, "cuda_graph": graphs}


def guidance_figures(device: torch.device, quick: bool) -> dict[str, Any]:
    """Guidance hook time per denoiser call vs one UNet forward (``guidance.hook_overhead.measure_overhead``), fp32."""
    from benchmarks.guidance.hook_overhead import measure_overhead

    return {"rows": measure_overhead(quick, device, repeats=20 if quick else 200)}


def attention_figures(device: torch.device, quick: bool) -> dict[str, Any]:
    """Per-call UNet time: full, and with momentum attention computed / skipped (``attention.unet_attention_speed.speed``), fp32."""
    from benchmarks.attention.unet_attention_speed import speed
    from benchmarks.common.sd15_unet import QUICK_UNET, SD15_UNET

    result = speed(QUICK_UNET if quick else SD15_UNET, 2 if quick else 5, device)
    return {
        "unet": "tiny" if quick else "SD1.5 (random weights) at 64x64, batch 2",
        "full_ms": round(result.full * 1e3, 3),
        "computed_ms": {k: round(v * 1e3, 3) for k, v in result.computed.items()},
        "skipped_ms": {k: round(v * 1e3, 3) for k, v in result.skipped.items()},
        "rule_ms": {k: round(v, 4) for k, v in result.rule_ms.items()},
    }


def _random_llama(device: torch.device, dtype: torch.dtype, quick: bool) -> Any:
    """A random-weight Llama: SmolLM2-135M's shape (the embedded model, which cannot travel), or a tiny one."""
    from transformers import LlamaConfig, LlamaForCausalLM

    size = (
        {"vocab_size": 1024, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
        | {"num_attention_heads": 4, "num_key_value_heads": 2}
        if quick
        else {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30}
        | {"num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True}
    )
    config = LlamaConfig(**size, pad_token_id=0, bos_token_id=1, eos_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.device(device):
            model = LlamaForCausalLM(config)
    return model.to(dtype).eval()


def decoding_figures(device: torch.device, quick: bool) -> dict[str, Any]:
    """Momentum decoding per token: the processor on [B, V] scores, and ``generate`` with greedy / MD / contrastive."""
    from transformers import LogitsProcessorList

    from inertia.decoders import MomentumDecodingLogitsProcessor, contrastive_search, momentum_decode

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # the text models' default dtype
    vocab, history, repeats = (1024, 32, 10) if quick else (49152, 256, 100)
    generator = torch.Generator().manual_seed(0)
    processor_rows = []
    for batch in (1, 8):
        ids = torch.randint(3, vocab, (batch, history), generator=generator).to(device)
        scores = torch.randn(batch, vocab, generator=generator).to(device, dtype)
        processor = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5)
        processor_rows.append(
            {
                "batch": batch,
                "history": history,
                "vocab": vocab,
                "dtype": str(dtype).removeprefix("torch."),
                "processor_us": round(_median_us(lambda p=processor, i=ids, s=scores: p(i, s), device, repeats), 1),
                "argmax_us": round(_median_us(lambda s=scores: s.argmax(-1), device, repeats), 1),
            }
        )

    model = _random_llama(device, dtype, quick)
    batch, prompt_len, new_tokens = (2, 8, 8) if quick else (8, 32, 64)
    prompt = torch.randint(3, model.config.vocab_size, (batch, prompt_len), generator=generator).to(device)
    methods: dict[str, dict[str, Any]] = {
        "greedy": {"do_sample": False},
        "momentum (processor)": {
            "do_sample": False,
            "logits_processor": LogitsProcessorList([MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5)]),
        },
        "momentum_decode": {"custom_generate": momentum_decode, "md_alpha": 0.2, "md_top_k": 5},
        "contrastive_search": {"custom_generate": contrastive_search, "penalty_alpha": 0.6, "top_k": 5},
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    mask = torch.ones_like(prompt)
    with torch.no_grad():
        for kwargs in methods.values():  # warm-up: kernels, allocator, generation-config caches
            model.generate(prompt, attention_mask=mask, max_new_tokens=4, min_new_tokens=4, **kwargs)
        names = list(methods)
        for round_index in range(1 if quick else 3):  # interleaved rounds, rotating order
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                synchronize(device)
                start = time.perf_counter()
                model.generate(
                    prompt, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **methods[name]
                )
                synchronize(device)
                times[name].append(time.perf_counter() - start)
    generate_rows = [
        {
            "method": name,
            "ms_per_token": round(statistics.median(values) / new_tokens * 1e3, 3),
            "tokens_per_s": round(batch * new_tokens / statistics.median(values), 1),
        }
        for name, values in times.items()
    ]
    shape = (
        f"{model.config.num_hidden_layers} layers, hidden {model.config.hidden_size}, vocab {model.config.vocab_size}"
    )
    return {
        "processor": processor_rows,
        "generate": {"model": f"random Llama ({shape})", "batch": batch, "new_tokens": new_tokens},
        "generate_rows": generate_rows,
    }


FIGURES: dict[str, Callable[[torch.device, bool], dict[str, Any]]] = {
    "schedulers": scheduler_figures,
    "guidance": guidance_figures,
    "attention": attention_figures,
    "decoding": decoding_figures,
}
"""Figure sets, in the order they run: name -> ``(device, quick) -> results``."""


def run_figures(
    device: torch.device, quick: bool, progress: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Runs every figure set; a set that raises is reported under ``figure_errors`` and the others still run.

    Returns ``{"figures": ..., "figure_errors": ..., "figure_seconds": ...}``; ``progress`` gets it after each set.
    """
    done: dict[str, Any] = {"figures": {}, "figure_errors": {}, "figure_seconds": {}}
    for name, figure in FIGURES.items():
        print(f"=== figures: {name} on {device}", flush=True)
        start = time.perf_counter()
        try:
            done["figures"][name] = figure(device, quick)
        except Exception as error:  # one broken figure must not lose the others or the report
            done["figure_errors"][name] = f"{type(error).__name__}: {error}"
            print(f"  failed: {done['figure_errors'][name]}", flush=True)
        done["figure_seconds"][name] = round(time.perf_counter() - start, 1)
        if progress is not None:
            progress(done)
    return done
