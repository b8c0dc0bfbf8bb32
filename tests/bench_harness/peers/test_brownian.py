"""The seeded Brownian path the SDE sampler peers draw their noise from (benchmarks.peers.brownian)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.peers.brownian import BrownianNoiseSampler


def test_values_do_not_depend_on_the_order_of_queries():
    x = torch.zeros(3, 5)
    forward = BrownianNoiseSampler(x, 0.1, 10.0, seed=4, cache_size=0)
    backward = BrownianNoiseSampler(x, 0.1, 10.0, seed=4, cache_size=0)
    points = [9.0, 5.5, 2.0, 0.7, 0.2]
    first = [forward.value(p) for p in points]
    second = [backward.value(p) for p in reversed(points)][::-1]
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = BrownianNoiseSampler(x, 0.1, 10.0, seed=5)
    assert not torch.equal(other.value(5.5), forward.value(5.5))


def test_it_is_a_brownian_motion():
    """W(σ_min) = 0, increments over disjoint intervals are independent with variance equal to their length."""
    x = torch.zeros(40000)
    path = BrownianNoiseSampler(x, 0.0, 4.0, seed=0)
    torch.testing.assert_close(path.value(0.0), torch.zeros(40000, dtype=torch.float64))
    a, b, c = path.value(0.3), path.value(1.7), path.value(3.1)
    first, second = b - a, c - b
    assert float(first.var()) == pytest.approx(1.4, rel=0.03)
    assert float(second.var()) == pytest.approx(1.4, rel=0.03)
    assert abs(float(torch.corrcoef(torch.stack([first, second]))[0, 1])) < 0.03
    assert float((c - a).var()) == pytest.approx(2.8, rel=0.03)


def test_noise_is_the_normalised_signed_increment():
    x = torch.zeros(20000, dtype=torch.float32)
    noise = BrownianNoiseSampler(x, 0.03, 14.6, seed=1)
    down = noise(2.0, 1.5)  # samplers step down in σ: (W(1.5) − W(2.0)) / sqrt(0.5)
    expected = (noise.value(1.5) - noise.value(2.0)) / 0.5**0.5
    torch.testing.assert_close(down, expected.float())
    torch.testing.assert_close(noise(1.5, 2.0), -down)
    assert down.dtype == torch.float32 and float(down.std()) == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"sigma_min": 2.0, "sigma_max": 1.0}, "sigma_min < sigma_max"), ({"resolution": 0.0}, "`resolution`")],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str):
    arguments = {"sigma_min": 0.1, "sigma_max": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        BrownianNoiseSampler(torch.zeros(2), **arguments)
    with pytest.raises(ValueError, match="empty interval"):
        BrownianNoiseSampler(torch.zeros(2), 0.1, 1.0)(0.5, 0.5)
