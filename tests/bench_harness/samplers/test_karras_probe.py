"""`benchmarks.samplers.karras_probe`: the β schedules, the identity row and the report."""

from __future__ import annotations

import json

import pytest

from benchmarks.samplers import karras_probe as probe
from benchmarks.samplers.vs_peers_grid import PeerGrid


def test_schedules_give_one_beta_per_step() -> None:
    assert probe.constant(0.9)(4) == [0.9] * 4
    assert probe.early(0.6, 0.5)(4) == [0.6, 0.6, 1.0, 1.0]
    assert probe.late(0.8, 0.25)(8) == [1.0] * 6 + [0.8, 0.8]
    assert all(len(schedule(10)) == 10 for schedule in probe.SETTINGS.values())


def test_beta_1_row_is_dpmpp_2m_karras_and_the_report_names_the_best(tmp_path) -> None:
    grid = PeerGrid(guidances=(15.0,), nfes=(8,), batch=4, reference_steps=40)
    results = probe.run(grid, (15.0,), (8,))
    cell = results["g 15, NFE 8"]
    assert cell["β 1 (= DPM++2M)"] == pytest.approx(1.0, abs=1e-6)  # inertia's β = 1 is k-diffusion's DPM++2M
    assert cell["β 0.9"] != pytest.approx(1.0, abs=1e-6)  # damping reaches the result
    text = probe.render(results, 1.0, grid)
    assert "| g 15, NFE 8 |" in text and text.count("\n| β") == len(probe.SETTINGS)


def test_quick_cli_writes_both_outputs(tmp_path, monkeypatch) -> None:
    small = PeerGrid(guidances=(15.0,), nfes=(8,), batch=2, reference_steps=20)
    monkeypatch.setattr(probe, "QUICK", small)
    assert probe.main(["--quick", "--out", str(tmp_path)]) == 0
    assert "g 15, NFE 8" in json.loads((tmp_path / "karras_momentum_probe_quick.json").read_text())
    assert (tmp_path / "karras_momentum_probe_quick.md").read_text().startswith("`python -m")


def test_bad_threads_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        probe.main(["--threads", "0"])
    assert info.value.code == 2
