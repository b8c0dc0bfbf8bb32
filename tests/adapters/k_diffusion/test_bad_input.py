"""(e) Bad arguments raise a ValueError that names the parameter, before the model is ever called."""

from __future__ import annotations

import pytest
import torch

from inertia.k_diffusion import sample_ghvb, sample_hb, sample_hb_dpmpp_2m, sample_hb_dpmpp_3m, sample_nt
from tests.adapters.k_diffusion.references import gaussian_denoiser

ALL = [sample_hb_dpmpp_2m, sample_hb_dpmpp_3m, sample_hb, sample_ghvb, sample_nt]
PLMS = [sample_hb, sample_ghvb, sample_nt]
GOOD_SIGMAS = torch.tensor([4.0, 2.0, 1.0, 0.0])


class CountingModel:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        self.calls += 1
        return gaussian_denoiser(x, sigma)


def _raises(fn, match: str, x=None, sigmas=None, model=None, **kwargs) -> None:
    counting = CountingModel()
    x = torch.ones(2, 3) * 4.0 if x is None else x
    sigmas = GOOD_SIGMAS if sigmas is None else sigmas
    with pytest.raises(ValueError, match=match):
        fn(counting if model is None else model, x, sigmas, disable=True, **kwargs)
    assert counting.calls == 0, "the model was called before the arguments were checked"


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("beta", [0.0, -0.5, 1.5, float("nan"), True, "0.8", None])
def test_beta_outside_0_1(fn, beta) -> None:
    _raises(fn, r"`beta` must be a number in \(0, 1\]", beta=beta)


@pytest.mark.parametrize("fn", PLMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("order", [0, 6, -1, 2.0, True, "4"])
def test_order_outside_1_5(fn, order) -> None:
    _raises(fn, r"`order` must be an integer in \[1, 5\]", order=order)


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("sigmas", "match"),
    [
        (torch.tensor([[4.0, 2.0, 0.0]]), "non-empty 1-D"),
        (torch.tensor([]), "non-empty 1-D"),
        ([4.0, 2.0, 0.0], "non-empty 1-D torch.Tensor"),
        (torch.tensor(3.0), "non-empty 1-D"),
        (torch.tensor([1.0, 2.0, 0.0]), r"strictly decreasing.*sigmas\[0\]=1.0 followed by sigmas\[1\]=2.0"),
        (torch.tensor([4.0, 2.0, 2.0, 0.0]), r"strictly decreasing.*sigmas\[2\]=2.0"),
        (torch.tensor([4.0, 2.0, -1.0]), r"finite and >= 0.*sigmas\[2\]=-1.0"),
        (torch.tensor([float("nan"), 2.0, 0.0]), r"finite and >= 0.*sigmas\[0\]=nan"),
        (torch.tensor([float("inf"), 2.0, 0.0]), r"finite and >= 0.*sigmas\[0\]=inf"),
        (torch.tensor([1 + 0j, 0j]), "real numbers"),
    ],
)
def test_bad_sigmas(fn, sigmas, match: str) -> None:
    _raises(fn, rf"`sigmas` .*{match}", sigmas=sigmas)


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_bad_model_x_extra_args_and_callback(fn) -> None:
    _raises(fn, "`model` must be a callable denoiser", model="unet")
    _raises(fn, "`x` must be a floating-point torch.Tensor", x=[1.0, 2.0])
    _raises(fn, "`x` must be a floating-point torch.Tensor.*torch.int64", x=torch.ones(2, 3, dtype=torch.long))
    _raises(fn, "`x` must be .*batch dimension", x=torch.tensor(1.0))
    _raises(fn, "`extra_args` must be a mapping", extra_args=[("cond", 1)])
    _raises(fn, "`callback` must be callable", callback="print")


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_a_model_returning_the_wrong_shape_is_named(fn) -> None:
    with pytest.raises(ValueError, match=r"`model` must return a denoised tensor of the shape of `x` \(2, 3\)"):
        fn(lambda x, sigma: x[:1], torch.ones(2, 3), GOOD_SIGMAS, disable=True)
    with pytest.raises(ValueError, match=r"`model` must return .*got tuple"):
        fn(lambda x, sigma: (x,), torch.ones(2, 3), GOOD_SIGMAS, disable=True)


def test_unknown_options_are_refused_by_python() -> None:
    with pytest.raises(TypeError):
        sample_hb_dpmpp_2m(gaussian_denoiser, torch.ones(2, 3), GOOD_SIGMAS, order=2)  # 2M has no `order`


@pytest.mark.parametrize("fn", [sample_hb_dpmpp_2m, sample_hb_dpmpp_3m], ids=lambda f: f.__name__)
def test_a_per_step_beta_of_the_wrong_length_or_with_a_bad_value(fn) -> None:
    steps = len(GOOD_SIGMAS) - 1
    _raises(fn, r"`beta` as a sequence must hold one value per step, len\(sigmas\) - 1 = 3, got 2", beta=[0.8, 0.8])
    _raises(fn, r"`beta\[1\]` must be a number in \(0, 1\] \(1 = no momentum\), got 1.5", beta=[0.8, 1.5, 0.8][:steps])
