"""Tests of the training recipe (inertia.training.train) and the weight EMA (inertia.training.ema).

Everything uses the tiny model at 16x16 with a global batch of 8 and a handful of steps on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from inertia.models.preconditioned_unet import PreconditionedUNet
from inertia.training.config import MODEL_PRESETS
from inertia.training.ema import EMA
from inertia.training.train import (
    TrainConfig,
    build_parser,
    latest_checkpoint,
    make_default_evaluate,
    train,
)

REPO = Path(__file__).resolve().parents[2]


def tiny_config(output_dir: Path, **overrides) -> TrainConfig:
    base = {
        "preconditioning": "fdm",
        "fdm_warmup_steps": 4,
        "model_size": "tiny",
        "batch_size": 8,
        "max_steps": 6,
        "lr_warmup_steps": 2,
        "lr": 1e-3,
        "checkpoint_every": 3,
        "eval_every": 0,
        "log_every": 1,
        "ema_halflife_kimg": 0.016,
        "seed": 3,
        "output_dir": str(output_dir),
        "progress_bar": False,
    }
    return TrainConfig(**{**base, **overrides})


def read_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "log.jsonl").read_text().splitlines()]


def unet_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors")


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> tuple[Path, dict, list]:
    """6 FDM steps with checkpoints at 3 and 6 and an evaluation stub at step 3 and the end."""
    out = tmp_path_factory.mktemp("reference")
    calls: list[int] = []

    def evaluate(pipe) -> dict:
        calls.append(int(pipe.unet.config.sample_size))
        return {"dummy": 1.5}

    result = train(tiny_config(out, eval_every=3), evaluate)
    return out, result, calls


# ----------------------------------------------------------------------------------------------------------------
# Training runs
# ----------------------------------------------------------------------------------------------------------------


def test_run_logs_finite_losses_and_evaluations(reference_run):
    out, result, calls = reference_run
    assert result["step"] == 6 and not result["stopped_early"]
    assert len(result["losses"]) == 6 and all(torch.isfinite(torch.tensor(result["losses"])))
    log = read_log(out)
    train_lines = [r for r in log if "loss" in r]
    assert [r["step"] for r in train_lines] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in train_lines] == pytest.approx(result["losses"])
    for r in train_lines:
        assert {"lr", "images_per_s", "wall_time_s", "epoch"} <= r.keys() and r["images_per_s"] > 0
    assert train_lines[0]["lr"] == pytest.approx(5e-4) and train_lines[-1]["lr"] == pytest.approx(1e-3)
    assert [r["step"] for r in log if "eval" in r] == [3, 6]
    assert calls == [16, 16] and result["eval"] == {"dummy": 1.5}


def test_checkpoint_contents(reference_run):
    out, result, _ = reference_run
    assert latest_checkpoint(out) == out / "checkpoint-6" == Path(result["checkpoint_dir"])
    for step in (3, 6):
        ckpt = out / f"checkpoint-{step}"
        names = {p.name for p in ckpt.iterdir()}
        assert {"model.safetensors", "optimizer.bin", "random_states_0.pkl", "training_state.pt"} <= names
        state = torch.load(ckpt / "training_state.pt", weights_only=False)
        assert state["step"] == step
        assert state["ema"]["num_images"] == 8 * step
        assert state["loss_weight_warmup"]["steps"] == step and state["loss_weight_warmup"]["warmup_steps"] == 4
        assert json.loads((ckpt / "training_state.json").read_text())["config"]["preconditioning"] == "fdm"
    # the saved pipeline holds the EMA weights, not the raw ones
    raw = load_file(out / "checkpoint-6" / "model.safetensors")
    ema = torch.load(out / "checkpoint-6" / "training_state.pt", weights_only=False)["ema"]["shadow"]
    pipe_w = unet_weights(out)
    key = "unet.conv_in.weight"
    assert torch.equal(pipe_w[key], ema[key]) and not torch.equal(pipe_w[key], raw["unet." + key])


def test_saved_pipeline_loads_and_generates(reference_run):
    from diffusers import DPMSolverMultistepScheduler

    from inertia.models.preconditioned_unet import PreconditionedUNet
    from inertia.pipelines.digits import DigitsPipeline

    out, _, _ = reference_run
    pipe = DigitsPipeline.from_pretrained(out / "pipeline")
    assert isinstance(pipe.unet, PreconditionedUNet) and pipe.unet.config.preconditioning == "fdm"
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    assert pipe.scheduler.config.beta_schedule == pipe.unet.config.beta_schedule
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        [0, 7],
        num_images_per_prompt=2,
        num_inference_steps=3,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    ).images
    assert images.shape == (4, 3, 16, 16) and torch.isfinite(images).all()
    assert images.min() >= 0 and images.max() <= 1


def test_deterministic_under_seed(reference_run, tmp_path):
    out, result, _ = reference_run
    again = train(tiny_config(tmp_path / "again", eval_every=3), lambda pipe: {"dummy": 1.5})
    assert again["losses"] == result["losses"]
    assert [r.get("loss") for r in read_log(tmp_path / "again")] == [r.get("loss") for r in read_log(out)]
    assert_same_tensors(unet_weights(tmp_path / "again"), unet_weights(out))
    assert_same_tensors(
        load_file(tmp_path / "again" / "checkpoint-6" / "model.safetensors"),
        load_file(out / "checkpoint-6" / "model.safetensors"),
    )


def test_resume_matches_uninterrupted_run(reference_run, tmp_path):
    out, result, _ = reference_run
    first = train(tiny_config(tmp_path, max_steps=3))
    assert first["losses"] == result["losses"][:3]
    second = train(tiny_config(tmp_path, max_steps=6, resume="latest"))
    assert second["resumed_from"] == str(tmp_path / "checkpoint-3")
    assert second["losses"] == result["losses"][3:]
    assert [r["step"] for r in read_log(tmp_path)] == [1, 2, 3, 4, 5, 6]
    assert_same_tensors(
        load_file(tmp_path / "checkpoint-6" / "model.safetensors"),
        load_file(out / "checkpoint-6" / "model.safetensors"),
    )
    assert_same_tensors(unet_weights(tmp_path), unet_weights(out))  # EMA weights
    a = torch.load(tmp_path / "checkpoint-6" / "training_state.pt", weights_only=False)
    b = torch.load(out / "checkpoint-6" / "training_state.pt", weights_only=False)
    assert a["loss_weight_warmup"] == b["loss_weight_warmup"] and a["ema"]["num_images"] == b["ema"]["num_images"]


def test_wall_clock_budget_stops_and_checkpoints(tmp_path):
    result = train(tiny_config(tmp_path, preconditioning="edm", max_minutes=1e-9, checkpoint_every=0, resume="latest"))
    assert result["stopped_early"] and result["step"] == 1 and result["resumed_from"] is None  # nothing to resume
    assert (tmp_path / "checkpoint-1" / "training_state.pt").is_file()
    assert (tmp_path / "pipeline" / "model_index.json").is_file()


# ----------------------------------------------------------------------------------------------------------------
# Validation and command line
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("preconditioning", "ve"),
        ("fdm_base", "ve"),
        ("fdm_multiplier", 0.0),
        ("fdm_warmup_steps", -1),
        ("model_size", "huge"),
        ("resolution", 20),
        ("batch_size", 0),
        ("lr", -1e-3),
        ("max_steps", 0),
        ("max_steps", 2.5),
        ("cond_drop_prob", 1.5),
        ("ema_halflife_kimg", 0),
        ("checkpoint_every", -1),
        ("log_every", 0),
        ("seed", -1),
        ("mixed_precision", "fp8"),
        ("max_minutes", 0),
        ("resume", "/nonexistent/checkpoint-3"),
        ("adam_betas", (0.9, 1.0)),
        ("lr_decay_from", -1),
        ("lr_decay_from", 6),  # tiny_config trains 6 steps: the decay must start before the end
    ],
)
def test_bad_config_raises_naming_the_field(tmp_path, field, value):
    cfg = tiny_config(tmp_path / "run", **{field: value})
    with pytest.raises(ValueError, match=f"`{field}`"):
        cfg.validate()
    with pytest.raises(ValueError, match=f"`{field}`"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # no work done


def test_batch_size_larger_than_data_set_raises_before_work(tmp_path):
    with pytest.raises(ValueError, match="`batch_size` must be at most the data set size"):
        train(tiny_config(tmp_path / "run", batch_size=100_000))
    assert not (tmp_path / "run").exists()


def test_batch_size_must_divide_over_processes(tmp_path):
    with pytest.raises(ValueError, match=r"`batch_size` must be divisible by the number of processes \(2\), got 7"):
        tiny_config(tmp_path, batch_size=7).validate(num_processes=2)
    tiny_config(tmp_path, batch_size=8).validate(num_processes=2)


def test_lr_schedule_warmup_constant_and_linear_decay():
    from inertia.training.train import _lr_at

    cfg = TrainConfig(lr=1e-3, lr_warmup_steps=2, max_steps=10, lr_decay_from=6)
    rates = [_lr_at(cfg, step) for step in range(10)]
    assert rates[:6] == [5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3]
    assert rates[6:] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])  # (10 - step) / (10 - 6) of the peak
    assert [_lr_at(TrainConfig(lr=1e-3, lr_warmup_steps=0, max_steps=10), s) for s in (0, 9)] == [1e-3, 1e-3]


@pytest.mark.parametrize("size", sorted(MODEL_PRESETS))
def test_every_model_size_builds_its_unet(size):
    """Each ``--model-size`` preset is a valid PreconditionedUNet config (AdaGN only where the name says so)."""
    model = PreconditionedUNet(**TrainConfig(model_size=size, resolution=32, preconditioning="vp").unet_config())
    assert model.unet.config.sample_size == 32
    want = "scale_shift" if size.endswith("-adagn") else "default"
    assert model.unet.config.resnet_time_scale_shift == want


def test_fdm_warmup_default():
    assert TrainConfig(preconditioning="fdm").effective_fdm_warmup_steps == 400
    assert TrainConfig(preconditioning="edm").effective_fdm_warmup_steps is None
    assert TrainConfig(preconditioning="fdm", fdm_warmup_steps=0).effective_fdm_warmup_steps is None


def test_cli_flags_mirror_config():
    args = build_parser().parse_args(
        [
            "--preconditioning",
            "fdm",
            "--max-steps",
            "2000",
            "--output-dir",
            "runs/fdm",
            "--resume",
            "latest",
            "--max-grad-norm",
            "none",
            "--model-size",
            "tiny",
            "--max-minutes",
            "30",
        ]
    )
    assert (args.preconditioning, args.max_steps, args.output_dir, args.resume) == ("fdm", 2000, "runs/fdm", "latest")
    assert args.max_grad_norm is None and args.model_size == "tiny" and args.max_minutes == 30.0
    fields = set(TrainConfig.__dataclass_fields__)
    assert (
        set(vars(args)) - {"no_progress_bar", "no_eval", "eval_images_per_digit", "eval_steps", "eval_guidance_scale"}
        <= fields
    )


# ----------------------------------------------------------------------------------------------------------------
# Metrics hook
# ----------------------------------------------------------------------------------------------------------------


def _tiny_pipe():
    from inertia.models.preconditioned_unet import PreconditionedUNet
    from inertia.training.train import build_pipeline

    torch.manual_seed(0)
    return build_pipeline(PreconditionedUNet.tiny())


def test_saved_scheduler_config_turns_ddim_clipping_off():
    """DDIM/DDPM swapped in by ``from_config`` must not clip x0 (their class default): the config carries the flag."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    scheduler = _tiny_pipe().scheduler
    assert isinstance(scheduler, DPMSolverMultistepScheduler) and scheduler.config.clip_sample is False
    assert DDIMScheduler.from_config(scheduler.config).config.clip_sample is False


def test_default_evaluate_without_metrics_module_warns_once(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "_missing_digit_metrics", None)  # import fails
    evaluate = make_default_evaluate(
        images_per_digit=1, num_inference_steps=2, metrics_module="_missing_digit_metrics"
    )
    pipe = _tiny_pipe()
    with caplog.at_level("WARNING"):
        assert evaluate(pipe) == {} and evaluate(pipe) == {}
    assert sum("skipping evaluation metrics" in r.message for r in caplog.records) == 1


def test_default_evaluate_uses_metrics_module(monkeypatch):
    seen = {}
    fake = types.ModuleType("_fake_digit_metrics")
    fake.load_digit_classifier = lambda: object()

    def class_accuracy(images, labels):
        seen["shape"], seen["labels"] = tuple(images.shape), labels.tolist()
        return torch.tensor(0.25)

    fake.class_accuracy = class_accuracy
    fake.fd_digits = lambda images: 12.0
    fake.colour_stats = lambda images: {"saturation": 0.5}
    monkeypatch.setitem(sys.modules, "_fake_digit_metrics", fake)
    evaluate = make_default_evaluate(images_per_digit=2, num_inference_steps=2, metrics_module="_fake_digit_metrics")
    out = evaluate(_tiny_pipe())
    assert out == {"class_accuracy": 0.25, "fd_digits": 12.0, "colour/saturation": 0.5}
    assert seen["shape"] == (20, 3, 16, 16) and seen["labels"] == [d for d in range(10) for _ in range(2)]


# ----------------------------------------------------------------------------------------------------------------
# EMA
# ----------------------------------------------------------------------------------------------------------------


def _scalar_model(value: float) -> torch.nn.Module:
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def test_ema_hand_computed_without_rampup():
    model = _scalar_model(0.0)
    ema = EMA(model, halflife_images=8, rampup_ratio=None)
    assert ema.decay(8) == 0.5 and ema.decay(16) == 0.25
    model.weight.data.fill_(4.0)
    assert ema.update(model, batch_size=8) == 0.5  # 0.5·0 + 0.5·4 = 2
    model.weight.data.fill_(10.0)
    assert ema.update(model, batch_size=16) == 0.25  # 0.25·2 + 0.75·10 = 8
    assert ema.shadow["weight"].item() == pytest.approx(8.0) and ema.num_images == 24


def test_ema_hand_computed_with_rampup():
    model = _scalar_model(1.0)
    ema = EMA(model, halflife_images=100, rampup_ratio=0.5)
    model.weight.data.fill_(3.0)
    assert ema.update(model, batch_size=8) == 0.0  # n = 0: half-life 0, copy
    assert ema.shadow["weight"].item() == 3.0
    model.weight.data.fill_(7.0)
    assert ema.update(model, batch_size=8) == pytest.approx(0.25)  # h = min(100, 0.5·8) = 4: 0.5^(8/4)
    assert ema.shadow["weight"].item() == pytest.approx(0.25 * 3 + 0.75 * 7)


def test_ema_store_restore_copy_and_state_dict():
    model = _scalar_model(0.0)
    ema = EMA(model, halflife_images=8, rampup_ratio=None)
    model.weight.data.fill_(4.0)
    ema.update(model, 8)
    ema.store(model)
    ema.copy_to(model)
    assert model.weight.item() == 2.0
    ema.restore(model)
    assert model.weight.item() == 4.0
    with pytest.raises(ValueError, match="`restore` must follow `store`"):
        ema.restore(model)
    other = EMA(_scalar_model(9.0), halflife_images=1)
    other.load_state_dict(ema.state_dict())
    assert other.shadow["weight"].item() == 2.0 and other.num_images == 8 and other.halflife_images == 8
    assert other.rampup_ratio is None


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"halflife_images": 0}, "halflife_images"), ({"halflife_images": 1, "rampup_ratio": -1}, "rampup_ratio")],
)
def test_ema_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        EMA(_scalar_model(0.0), **kwargs)
    with pytest.raises(ValueError, match="`batch_size`"):
        EMA(_scalar_model(0.0), 1.0).decay(0)
    with pytest.raises(ValueError, match="`model` must have the parameters"):
        EMA(_scalar_model(0.0), 1.0).update(torch.nn.Linear(1, 1), 1)


# ----------------------------------------------------------------------------------------------------------------
# Two processes
# ----------------------------------------------------------------------------------------------------------------


def test_two_process_launch(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        str(REPO / ".venv" / "bin" / "accelerate"), "launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",  # torchrun; with --cpu below: gloo on the CPU
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "inertia.training.train",
        "--cpu", "--model-size", "tiny", "--batch-size", "8", "--max-steps", "3", "--log-every", "1",
        "--checkpoint-every", "0", "--eval-every", "0", "--no-eval", "--no-progress-bar",
        "--output-dir", str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = read_log(out)
    assert [r["step"] for r in log] == [1, 2, 3]  # one writer: the main process
    assert all(torch.isfinite(torch.tensor([r["loss"] for r in log])))
    assert (out / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    ckpt = out / "checkpoint-3"
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in ckpt.iterdir()}
    meta = json.loads((ckpt / "training_state.json").read_text())
    assert meta["num_processes"] == 2
    print(f"two-process launch took {elapsed:.1f} s")
