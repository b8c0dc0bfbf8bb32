"""The momentum schedulers on CUDA: fp16/bf16 in and out, no host syncs in ``step``, CUDA-graph capture.

What a CUDA graph can hold (docs/gpu.md): ``step`` keeps Python-side state (diffusers' ``step_index`` counter, the
multistep history lists, the warm-up order, our velocity), and a replay advances none of it. So one captured ``step``
is *that* step index, with its coefficients baked in as kernel arguments. Two patterns are honest and tested here:

1. the whole denoising loop (``step`` at every index, with the model) captured as one graph and replayed per
   generation from a new initial noise copied into the static input;
2. one graph per step index, captured in order during one pass and replayed in the same order, with the model run
   outside the graphs writing into a separate static output buffer per step.

Neither can start without ``set_begin_index``: the first ``step`` otherwise looks its timestep up in the schedule on
the host (diffusers' ``index_for_timestep``), which is a sync when the timesteps live on the GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from tests.adapters.diffusers.schedulers.conformance_cases import CASE_IDS, FLOW, SCHEDULE_OVERRIDES, make

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.filterwarnings("ignore:__array:DeprecationWarning"),
]

SD = SCHEDULE_OVERRIDES["scaled-linear"]
SCHEDULES: dict[str, dict] = {"sd-eps": SD, "sd-v": {**SD, "prediction_type": "v_prediction"}, "flow": FLOW}
STEPS = 10
SHAPE = (2, 4, 32, 32)
HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}
# Relative tolerance (max |Δ| / max |fp32 CPU result|) of a 10-step half-precision loop: storage rounding only, since
# `step` computes in float32 (fp16: 11-bit mantissa, bf16: 8-bit).
HALF_TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 5e-2}
GRAPH_CASES = ["plms-default", "plms-hb-2", "plms-nt-4", "plms-beta1", "dpm-default", "dpm-3-heun", "dpm-beta1"]


def toy_model(x: torch.Tensor, t: float) -> torch.Tensor:
    """A smooth nonlinear stand-in for a denoiser, computed in ``x``'s dtype on ``x``'s device (no host reads)."""
    return 0.8 * torch.tanh(x) + (0.05 * t / 1000.0) * x


def initial_noise(seed: int = 0, shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def scheduler(case: str, schedule: str):
    return make(case, **SCHEDULES[schedule])


def prepare(sched, device: torch.device, steps: int = STEPS) -> list[float]:
    """``set_timesteps`` on ``device`` plus ``set_begin_index(0)``; returns the timesteps as Python floats."""
    sched.set_timesteps(steps, device=device)
    sched.set_begin_index(0)
    return [float(t) for t in sched.timesteps.cpu()]


def sample_loop(
    sched,
    latents: torch.Tensor,
    device: torch.device,
    model: Callable[[torch.Tensor, float], torch.Tensor] = toy_model,
    check: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """One eager generation: ``prepare`` then ``step`` at every timestep; ``check`` sees every ``prev_sample``."""
    times = prepare(sched, device)
    x = latents
    for t, t_host in zip(sched.timesteps, times):
        x = sched.step(model(x, t_host), t, x).prev_sample
        if check is not None:
            check(x)
    return x


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    scale = max(1.0, float(reference.abs().max()))
    return float((result.detach().float().cpu() - reference.float()).abs().max()) / scale


# --------------------------------------------------------------------------------------------------------------------
# precision and placement


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("case", CASE_IDS)
def test_fp32_on_the_device_matches_the_cpu(device, case, schedule) -> None:
    reference = sample_loop(scheduler(case, schedule), initial_noise(), torch.device("cpu"))
    result = sample_loop(scheduler(case, schedule), initial_noise().to(device), device)
    assert result.device.type == device.type and result.dtype == torch.float32
    assert relative_error(result, reference) < 1e-4


@pytest.mark.parametrize("dtype", list(HALF.values()), ids=list(HALF))
@pytest.mark.parametrize("schedule", ["sd-eps", "flow"])
@pytest.mark.parametrize("case", CASE_IDS)
def test_half_precision_stays_half_finite_and_close_to_fp32_cpu(device, case, schedule, dtype) -> None:
    def check(x: torch.Tensor) -> None:
        assert x.dtype == dtype and x.device.type == device.type
        assert bool(torch.isfinite(x).all())

    reference = sample_loop(scheduler(case, schedule), initial_noise(), torch.device("cpu"))
    result = sample_loop(scheduler(case, schedule), initial_noise().to(device, dtype), device, check=check)
    error = relative_error(result, reference)
    assert error < HALF_TOLERANCE[dtype], f"{case}/{schedule} in {dtype}: relative error {error:.2e}"


# --------------------------------------------------------------------------------------------------------------------
# host syncs


def test_sync_debug_mode_catches_a_sync(cuda, forbid_syncs) -> None:
    # The control: the guard used below does raise on a host read.
    x = torch.ones(2, device=cuda)
    with pytest.raises(RuntimeError, match="synchroniz"), forbid_syncs():
        x.sum().item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("case", CASE_IDS)
def test_step_has_no_host_syncs(cuda, forbid_syncs, case, schedule, dtype) -> None:
    sched = scheduler(case, schedule)
    times = prepare(sched, cuda)
    x = initial_noise().to(cuda, dtype)
    timesteps = list(sched.timesteps)  # 0-d CUDA tensors, as pipelines pass them
    for t, t_host in zip(timesteps, times):
        output = toy_model(x, t_host)
        with forbid_syncs():
            x = sched.step(output, t, x).prev_sample
    assert sched.step_index == STEPS
    assert bool(torch.isfinite(x).all())


@pytest.mark.parametrize("case", ["plms-default", "dpm-default"])
def test_first_step_without_begin_index_looks_the_timestep_up_on_the_host(cuda, forbid_syncs, case) -> None:
    # Documents why every capture below calls `set_begin_index`: diffusers' `index_for_timestep` runs `nonzero()` and
    # `.item()` on the CUDA timesteps. Pipelines that never call `set_begin_index` (SD text-to-image) pay one sync
    # per generation, on the first step only.
    sched = scheduler(case, "sd-eps")
    sched.set_timesteps(STEPS, device=cuda)
    x = initial_noise().to(cuda)
    with pytest.raises(RuntimeError, match="synchroniz"), forbid_syncs():
        sched.step(toy_model(x, 999.0), sched.timesteps[0], x)


# --------------------------------------------------------------------------------------------------------------------
# CUDA graphs


def _warm_up(sched, latents: torch.Tensor, device: torch.device) -> None:
    """One eager generation on a side stream (allocator, kernel and library initialisation), as torch advises."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        sample_loop(sched, latents.clone(), device)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()


def _assert_replay_matches(replayed: torch.Tensor, eager: torch.Tensor) -> None:
    if replayed.dtype == torch.float32:
        torch.testing.assert_close(replayed, eager, rtol=1e-5, atol=1e-6)
    else:
        torch.testing.assert_close(replayed, eager)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("schedule", ["sd-eps", "flow"])
@pytest.mark.parametrize("case", GRAPH_CASES)
def test_whole_loop_graph_replays_eager_generations(cuda, case, schedule, dtype) -> None:
    sched = scheduler(case, schedule)
    static_in = initial_noise(0).to(cuda, dtype)
    _warm_up(sched, static_in, cuda)

    times = prepare(sched, cuda)
    timesteps = list(sched.timesteps)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        x = static_in
        for t, t_host in zip(timesteps, times):
            x = sched.step(toy_model(x, t_host), t, x).prev_sample
    static_out = x

    for seed in (1, 2):  # two generations from one capture, each from new noise
        noise = initial_noise(seed).to(cuda, dtype)
        static_in.copy_(noise)
        graph.replay()
        torch.cuda.synchronize()
        eager = sample_loop(scheduler(case, schedule), noise, cuda)
        _assert_replay_matches(static_out, eager)
    first = sample_loop(scheduler(case, schedule), initial_noise(1).to(cuda, dtype), cuda)
    assert not torch.equal(static_out, first)  # the second replay really recomputed


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", GRAPH_CASES)
def test_one_graph_per_step_index_with_the_model_outside(cuda, case, dtype) -> None:
    sched = scheduler(case, "sd-eps")
    static_in = initial_noise(0).to(cuda, dtype)
    _warm_up(sched, static_in, cuda)

    times = prepare(sched, cuda)
    timesteps = list(sched.timesteps)
    outputs = [torch.zeros_like(static_in) for _ in timesteps]  # one model-output buffer per step index
    pool = torch.cuda.graph_pool_handle()
    graphs, samples = [], []
    x = static_in
    for index, t in enumerate(timesteps):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            x = sched.step(outputs[index], t, x).prev_sample
        graphs.append(graph)
        samples.append(x)

    for seed in (3, 4):
        noise = initial_noise(seed).to(cuda, dtype)
        static_in.copy_(noise)
        current = static_in
        for index, graph in enumerate(graphs):
            outputs[index].copy_(toy_model(current, times[index]))
            graph.replay()
            current = samples[index]
        torch.cuda.synchronize()
        eager = sample_loop(scheduler(case, schedule="sd-eps"), noise, cuda)
        _assert_replay_matches(current, eager)


def test_plms_per_step_graphs_with_one_shared_model_output_buffer(cuda) -> None:
    sched = scheduler("plms-default", "sd-eps")
    static_in = initial_noise(0).to(cuda)
    _warm_up(sched, static_in, cuda)
    times = prepare(sched, cuda)
    output = torch.zeros_like(static_in)  # one buffer for every step: what a graphed denoiser hands back
    graphs, samples, x = [], [], static_in
    pool = torch.cuda.graph_pool_handle()
    for t in list(sched.timesteps):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            x = sched.step(output, t, x).prev_sample
        graphs.append(graph)
        samples.append(x)
    current = static_in
    for index, graph in enumerate(graphs):
        output.copy_(toy_model(current, times[index]))
        graph.replay()
        current = samples[index]
    torch.cuda.synchronize()
    eager = sample_loop(scheduler("plms-default", "sd-eps"), initial_noise(0).to(cuda), cuda)
    _assert_replay_matches(current, eager)


def test_a_captured_step_does_not_advance_the_python_state(cuda) -> None:
    # What "capturing step" cannot do: a replay reruns the kernels of the captured index; the counter moved once, at
    # capture time, and the next eager step is the next index, not a repeat.
    sched = scheduler("dpm-default", "sd-eps")
    static_in = initial_noise(0).to(cuda)
    _warm_up(sched, static_in, cuda)
    times = prepare(sched, cuda)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = sched.step(toy_model(static_in, times[0]), sched.timesteps[0], static_in).prev_sample
    assert sched.step_index == 1
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    assert sched.step_index == 1
    reference = scheduler("dpm-default", "sd-eps")
    prepare(reference, cuda)
    expected = reference.step(toy_model(static_in, times[0]), reference.timesteps[0], static_in).prev_sample
    _assert_replay_matches(out, expected)
