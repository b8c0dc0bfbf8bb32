"""Tests of the diffusers-facing PreconditionedUNet wrapper."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from inertia.core.diffusion.precond import Preconditioning
from inertia.models.preconditioned_unet import PreconditionedUNet

VARIANTS = [("vp", "edm"), ("edm", "edm"), ("fdm", "edm"), ("fdm", "vp")]


@pytest.fixture(scope="module")
def models() -> dict[str, PreconditionedUNet]:
    torch.manual_seed(0)
    return {v: PreconditionedUNet.tiny(preconditioning=v).eval() for v in ("vp", "edm", "fdm")}


def _x(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


class _OracleNet(torch.nn.Module):
    """Ideal F for a data set of the single image x0 (ideal D = x0), given the batch's σ."""

    def __init__(self, precond: Preconditioning, x0: torch.Tensor, sigma: torch.Tensor) -> None:
        super().__init__()
        self.precond, self.x0, self.sigma = precond, x0, sigma

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, class_labels: torch.Tensor | None = None):
        c = self.precond.coefficients(self.sigma)
        x_hat = x_in / c.c_in.reshape(-1, 1, 1, 1)
        out = (self.x0 - c.c_skip.reshape(-1, 1, 1, 1) * x_hat) / c.c_out.reshape(-1, 1, 1, 1)
        return type("Out", (), {"sample": out})()


@pytest.mark.parametrize(("variant", "base"), VARIANTS)
@pytest.mark.parametrize("schedule", ["scaled_linear", "linear"])
def test_oracle_eps_is_true_noise(variant: str, base: str, schedule: str) -> None:
    betas = {"scaled_linear": (0.00085, 0.012), "linear": (1e-4, 0.02)}[schedule]
    model = PreconditionedUNet.tiny(
        preconditioning=variant, fdm_base=base, beta_start=betas[0], beta_end=betas[1], beta_schedule=schedule
    )
    g = torch.Generator().manual_seed(3)
    t = torch.tensor([0, 3, 250, 600, 999])
    x0 = (torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1).expand(5, -1, -1, -1)
    noise = torch.randn(5, 3, 16, 16, generator=g, dtype=torch.float64)
    ac = model.schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    x_t = ac.sqrt() * x0 + (1 - ac).sqrt() * noise  # diffusers' add_noise
    model.unet = _OracleNet(model.precond, x0, model.schedule.sigma_at(t))
    eps = model(x_t, t).sample
    assert eps.dtype == torch.float64
    assert torch.allclose(eps, noise, atol=1e-5, rtol=0)
    # float32 input: the same within float32 rounding
    eps32 = model(x_t.float(), t).sample
    assert eps32.dtype == torch.float32
    assert torch.allclose(eps32.double(), noise, atol=2e-4, rtol=0)


def test_output_shape_and_timestep_forms(models) -> None:
    model = models["fdm"]
    x = _x()
    with torch.no_grad():
        ref = model(x, torch.tensor([250, 250])).sample
        assert ref.shape == x.shape and ref.dtype == x.dtype
        for t in (250, 250.0, torch.tensor(250), torch.tensor(250.0), torch.tensor([250]), torch.tensor([250.0, 250])):
            assert torch.allclose(model(x, t).sample, ref, atol=1e-6), t
        frac = model(x, 250.5).sample
        assert bool(torch.isfinite(frac).all()) and not torch.equal(frac, ref)
        (tup,) = model(x, 250, return_dict=False)
        assert torch.equal(tup, ref)


def test_none_label_is_null_label(models) -> None:
    model = models["edm"]
    x = _x()
    with torch.no_grad():
        a = model(x, 100).sample
        b = model(x, 100, class_labels=torch.tensor([10, 10])).sample
        c = model(x, 100, class_labels=torch.tensor([3, 3])).sample
    assert model.null_class_label == 10
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_denoise_x0_consistent_with_forward(models) -> None:
    model = models["edm"]
    x_t = _x().double()
    t = torch.tensor([40, 900])
    with torch.no_grad():
        eps = model(x_t, t, class_labels=torch.tensor([1, 2])).sample
        x_hat, sigma = model.schedule.vp_to_edm(x_t, t)
        d = model.denoise_x0(x_hat, sigma, class_labels=torch.tensor([1, 2]))
    assert torch.allclose(eps, (x_hat - d) / sigma.reshape(-1, 1, 1, 1), atol=1e-5)


def test_save_load_round_trip(models, tmp_path) -> None:
    model = models["fdm"]
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = PreconditionedUNet.from_pretrained(tmp_path).eval()
    assert loaded.config.preconditioning == "fdm" and loaded.config.fdm_multiplier == 2.0
    x = _x()
    with torch.no_grad():
        assert torch.equal(
            model(x, 321, class_labels=torch.tensor([4, 9])).sample, loaded(x, 321, torch.tensor([4, 9])).sample
        )


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, DPMSolverMultistepScheduler])
@pytest.mark.parametrize("variant", ["vp", "edm", "fdm"])
def test_diffusers_scheduler_loop(models, scheduler_cls, variant: str) -> None:
    model = models[variant]
    scheduler = scheduler_cls(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )
    scheduler.set_timesteps(4)
    x = _x() * scheduler.init_noise_sigma
    labels = torch.tensor([7, 10])
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = model(scheduler.scale_model_input(x, t), t, class_labels=labels).sample
            x = scheduler.step(eps, t, x).prev_sample
    assert x.shape == (2, 3, 16, 16) and bool(torch.isfinite(x).all())


def test_training_loss(models) -> None:
    model = PreconditionedUNet.tiny(preconditioning="fdm")
    x0 = _x(4).clamp(-1, 1)
    g = torch.Generator().manual_seed(0)
    loss, stats = model.training_loss(x0, torch.tensor([0, 1, 2, 3]), g, cond_drop_prob=0.5)
    loss.backward()
    assert bool(torch.isfinite(loss)) and stats["sigma"].shape == (4,)
    assert any(p.grad is not None for p in model.parameters())
    # cond_drop_prob = 1 trains only the null label
    kw = {"sigma": torch.tensor([0.5] * 4), "noise": torch.zeros_like(x0)}
    with torch.no_grad():
        dropped, _ = model.training_loss(x0, torch.tensor([0, 1, 2, 3]), g, cond_drop_prob=1.0, **kw)
        null, _ = model.training_loss(x0, None, g, **kw)
    assert torch.equal(dropped, null)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"preconditioning": "ve"}, "preconditioning"),
        ({"fdm_multiplier": -1.0}, "fdm_multiplier"),
        ({"out_channels": 1}, "out_channels"),
        ({"norm_num_groups": 3}, "norm_num_groups"),
        ({"beta_schedule": "cosine"}, "beta_schedule"),
        ({"num_class_embeds": 1}, "num_class_embeds"),
        ({"resnet_time_scale_shift": "film"}, "resnet_time_scale_shift"),
    ],
)
def test_bad_config_raises(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        PreconditionedUNet.tiny(**kwargs)


def test_adaptive_group_norm_round_trips(tmp_path) -> None:
    """``resnet_time_scale_shift="scale_shift"`` reaches every ResNet (2x wider embedding projection) and is saved."""
    torch.manual_seed(0)
    model = PreconditionedUNet.tiny(preconditioning="vp", resnet_time_scale_shift="scale_shift").eval()
    resnets = [m for m in model.unet.modules() if type(m).__name__ == "ResnetBlock2D"]
    assert resnets and all(r.time_embedding_norm == "scale_shift" for r in resnets)
    assert all(r.time_emb_proj.out_features == 2 * r.conv2.out_channels for r in resnets)
    model.save_pretrained(tmp_path)
    loaded = PreconditionedUNet.from_pretrained(tmp_path).eval()
    x = _x()
    with torch.no_grad():
        assert torch.equal(model(x, 500, class_labels=3).sample, loaded(x, 500, class_labels=3).sample)
    assert loaded.config.resnet_time_scale_shift == "scale_shift"


def test_bad_call_raises(models) -> None:
    model = models["vp"]
    x = _x()
    with pytest.raises(ValueError, match="class_labels"):
        model(x, 10, class_labels=torch.tensor([11, 0]))
    with pytest.raises(ValueError, match="class_labels"):
        model(x, 10, class_labels=torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="class_labels"):
        model(x, 10, class_labels=torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="sample"):
        model(torch.randn(2, 1, 16, 16), 10)
    with pytest.raises(ValueError, match="timestep"):
        model(x, 1000)
    with pytest.raises(ValueError, match="timestep"):
        model(x, -1)
    with pytest.raises(ValueError, match="timestep"):
        model(x, torch.tensor([1, 2, 3]))
