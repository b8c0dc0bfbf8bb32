"""`python -m benchmarks.samplers.accuracy --quick` runs end to end and writes its report, data and table."""

from __future__ import annotations

import json

import pytest

from benchmarks.samplers import accuracy
from benchmarks.samplers.accuracy_grid import QUICK_GRID


@pytest.mark.slow
# diffusers' DEIS step calls np.interp on a tensor (a NumPy 2 deprecation inside diffusers, not ours).
@pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")
def test_quick_benchmark_runs(tmp_path) -> None:
    assert accuracy.main(["--quick", "--out", str(tmp_path), "--no-figure-copy"]) == 0
    report = (tmp_path / "samplers_quick.md").read_text()
    assert report.startswith("# Exact-denoiser sampler benchmark")
    payload = json.loads((tmp_path / "samplers_quick.json").read_text())
    records = payload["records"]
    assert {r["guidance"] for r in records} == set(QUICK_GRID.guidances)
    assert {r["nfe"] for r in records} == set(QUICK_GRID.nfes)
    assert all(r["steps"] >= 1 for r in records)
    assert (tmp_path / "samplers_quick.csv").exists()
