"""The paper's divergence magnitude score (inertia.metrics.magnitude_score)."""

import math

import pytest
import torch

from inertia.metrics import SD_LATENT_MEAN, SD_LATENT_STD, magnitude_score


def at_mean(batch: int = 2, size: int = 16) -> torch.Tensor:
    return torch.tensor(SD_LATENT_MEAN).view(1, 4, 1, 1).expand(batch, 4, size, size).clone()


def test_in_range_latents_score_zero() -> None:
    assert magnitude_score(at_mean()) == 0.0
    x = at_mean()
    x[:, 1] += 2.9 * SD_LATENT_STD[1]  # below τ = 3 everywhere
    assert magnitude_score(x) == 0.0


def test_one_out_of_range_block_hand_computed() -> None:
    x = at_mean(batch=2, size=16)  # 16x16 → 4x4 pooled cells, 32 cells over 2 samples
    x[0, 2, 4:8, 4:8] += 10.0 * SD_LATENT_STD[2]  # exactly one pooled cell at 10 std
    assert magnitude_score(x) == pytest.approx(10.0 / 32)


def test_max_over_channels_and_pool_window() -> None:
    x = at_mean(batch=1, size=8)  # 2x2 cells
    x[0, 0, 0, 0] -= 5.0 * SD_LATENT_STD[0]  # |−5| in cell (0, 0)
    x[0, 3, 1, 1] += 7.0 * SD_LATENT_STD[3]  # 7 in the same cell, another channel: the max wins
    assert magnitude_score(x) == pytest.approx(7.0 / 4)
    assert magnitude_score(x, kernel_size=8) == pytest.approx(7.0)


def test_matches_the_authors_formula_on_random_latents() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 64, 64, generator=g) * 2.5
    mean = torch.tensor(SD_LATENT_MEAN, dtype=torch.float64).view(1, 4, 1, 1)
    std = torch.tensor(SD_LATENT_STD, dtype=torch.float64).view(1, 4, 1, 1)
    z = ((x.double() - mean) / std).abs().amax(dim=1)  # (B, 64, 64)
    pooled = z.view(3, 16, 4, 16, 4).amax(dim=(2, 4))
    expected = float(torch.where(pooled < 3, 0.0, pooled).mean())
    assert magnitude_score(x) == pytest.approx(expected, rel=1e-12)


def test_non_finite_samples_are_left_out() -> None:
    x = at_mean(batch=2, size=8)
    x[1, 0, 0, 0] = float("nan")
    x[0, 0, 0, 0] += 8 * SD_LATENT_STD[0]
    assert magnitude_score(x) == pytest.approx(8.0 / 4)
    assert math.isnan(magnitude_score(torch.full((1, 4, 8, 8), float("inf"))))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"latents": torch.zeros(4, 8, 8)}, "latents"),
        ({"latents": torch.zeros(1, 3, 8, 8)}, "mean"),
        ({"latents": torch.zeros(1, 4, 8, 8), "std": (1.0, 1.0, 0.0, 1.0)}, "std"),
        ({"latents": torch.zeros(1, 4, 8, 8), "tau": 0.0}, "tau"),
        ({"latents": torch.zeros(1, 4, 8, 8), "kernel_size": 0}, "kernel_size"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        magnitude_score(**kwargs)
