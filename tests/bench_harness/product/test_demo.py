"""`python -m benchmarks.product.demo` (the terminal sampler demo) must run and print every sampler."""

from benchmarks.product import demo


def test_demo_prints_every_sampler(capsys) -> None:
    assert demo.main(["--steps", "6", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    for name in demo.solvers(15.0):
        assert name in out
    assert "RMSE@6" in out
