"""`make bench` = `python -m benchmarks.run_all`: every suite, in order, with the right arguments and exit status."""

import importlib
from pathlib import Path

import pytest

from benchmarks import run_all
from inertia.cli import BENCH_SUITES


def test_every_suite_is_importable():
    for module, _ in run_all.SUITES.values():
        assert callable(importlib.import_module(module).main)


def test_every_suite_is_reachable_from_the_cli():
    assert {name: BENCH_SUITES[name] for name in run_all.SUITES} == {
        name: module for name, (module, _) in run_all.SUITES.items()
    }


def test_runs_the_chosen_suites_in_order_and_reports_a_failure(monkeypatch, tmp_path: Path):
    calls = []
    for name, (module, _) in run_all.SUITES.items():
        code = 3 if name == "guidance" else 0
        monkeypatch.setattr(
            importlib.import_module(module), "main", lambda argv, n=name, c=code: calls.append((n, argv)) or c
        )
    assert run_all.main(["--quick", "--device", "cuda", "--out", str(tmp_path)]) == 3  # the others still ran
    assert [name for name, _ in calls] == list(run_all.SUITES)
    arguments = dict(calls)
    assert arguments["overhead"] == ["--device", "cuda", "--quick", "--out", str(tmp_path)]
    assert arguments["guidance"] == ["--device", "cuda", "--quick", "--out", str(tmp_path / "guidance")]
    assert arguments["samplers"] == ["--quick", "--out", str(tmp_path)]  # CPU-only suites get no --device
    calls.clear()
    assert run_all.main(["--only", "decoding,samplers"]) == 0
    assert [name for name, _ in calls] == ["decoding", "samplers"]


@pytest.mark.parametrize("only", ["", "samplers,nope", ","])
def test_unknown_suites_are_refused(only: str, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_all.main(["--only", only])
    assert exit_info.value.code == 2
    assert (
        "--only takes names from samplers, peers-samplers, karras-probe, overhead, guidance, peers-guidance, attention, peers-caches, decoding, peers-decoding, lm-attention, ui"
        in capsys.readouterr().err
    )


def test_quick_overhead_runs_for_real(tmp_path: Path):
    assert run_all.main(["--only", "overhead", "--quick", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "overhead_quick.md").is_file()
