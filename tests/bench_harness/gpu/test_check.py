"""`python -m benchmarks.gpu.check` on a machine without CUDA: the report and the exit status."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from benchmarks.common.paths import REPO_ROOT
from benchmarks.gpu import check as gpu_check
from benchmarks.gpu import figures as gpu_figures

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")

GPU_TEST_MODULES = (
    "test_schedulers",
    "test_hooks",
    "test_decoders",
    "test_products",
    "test_lm_attention",
    "test_momentum_penalty",
)

no_cuda = pytest.mark.skipif(
    torch.cuda.is_available(), reason="on a CUDA machine run `python -m benchmarks.gpu.check` itself (minutes)"
)


def _report(folder: Path) -> tuple[dict, str]:
    return json.loads((folder / "gpu_report.json").read_text()), (folder / "gpu_report.md").read_text()


def test_every_gpu_test_module_is_marked_gpu() -> None:
    # What keeps them out of `make test` (`-m "not slow and not gpu"`).
    found = sorted(path.stem for path in (REPO_ROOT / "tests" / "gpu").glob("test_*.py"))
    assert found == sorted(GPU_TEST_MODULES)
    for name in GPU_TEST_MODULES:
        marks = importlib.import_module(f"tests.gpu.{name}").pytestmark
        marks = marks if isinstance(marks, list) else [marks]
        assert "gpu" in {mark.name for mark in marks}, name


@no_cuda
def test_without_cuda_the_tests_skip_and_the_report_says_so(tmp_path: Path) -> None:
    assert gpu_check.main(["--out", str(tmp_path)]) == 0
    result, text = _report(tmp_path)
    tests = result["tests"]
    assert tests["total"] > 100 and tests["skipped"] == tests["total"] and tests["failed"] == tests["errors"] == 0
    assert (tmp_path / "gpu_tests.xml").is_file() and "skipped" in (tmp_path / "gpu_tests.log").read_text()
    assert "CUDA is not available on this machine" in text
    assert "CUDA is not available: no GPU figures" in text
    assert result["environment"]["cuda_available"] is False and result["environment"]["diffusers"] != "missing"
    assert "figures" not in result


@no_cuda
def test_quick_figures_on_the_cpu(tmp_path: Path) -> None:
    assert gpu_check.main(["--out", str(tmp_path), "--quick", "--device", "cpu", "--skip-tests"]) == 0
    result, text = _report(tmp_path)
    figures = result["figures"]
    assert set(figures) == set(gpu_figures.FIGURES) and not result["figure_errors"]
    schedulers = figures["schedulers"]["rows"]
    assert {row["dtype"] for row in schedulers} == {"float16", "float32"} and len(schedulers) == 6
    assert all(row["median_us"] > 0 for row in schedulers)
    assert {row["method"] for row in figures["guidance"]["rows"]} >= {"no hook", "APG", "HiGS"}
    assert figures["attention"]["full_ms"] > 0 and set(figures["attention"]["skipped_ms"]) == {
        "extrapolate",
        "first_order",
    }
    assert [row["batch"] for row in figures["decoding"]["processor"]] == [1, 8]
    assert {row["method"] for row in figures["decoding"]["generate_rows"]} >= {"greedy", "momentum_decode"}
    for heading in ("### Scheduler `step`", "### Guidance hook", "### Momentum attention", "### Momentum decoding"):
        assert heading in text
    assert "Not run (`--skip-tests`)." in text


def test_a_failing_test_or_figure_gives_exit_status_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tests = {"returncode": 1, "seconds": 1.0, "total": 3, "passed": 1, "failed": 1, "errors": 0, "skipped": 0}
    tests |= {"xfailed": 1, "failures": ["tests/gpu/test_x.py::test_y"], "command": []}
    monkeypatch.setattr(gpu_check, "run_tests", lambda out, extra, timeout: tests)

    def broken(device: torch.device, quick: bool) -> dict:
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(gpu_figures, "FIGURES", {"broken": broken, "fine": lambda device, quick: {}})
    assert gpu_check.main(["--out", str(tmp_path), "--device", "cpu"]) == 1
    result, text = _report(tmp_path)
    assert result["figure_errors"] == {"broken": "RuntimeError: no such kernel"} and "fine" in result["figures"]
    assert "`tests/gpu/test_x.py::test_y`" in text and "**broken failed**" in text
    monkeypatch.setattr(gpu_figures, "FIGURES", {})
    assert gpu_check.main(["--out", str(tmp_path), "--device", "cpu"]) == 1  # the failing test alone
    tests.update(failed=0, returncode=0, failures=[])
    assert gpu_check.main(["--out", str(tmp_path), "--device", "cpu"]) == 0


def test_parse_junit_counts_every_outcome(tmp_path: Path) -> None:
    xml = tmp_path / "junit.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest" tests="5">'
        '<testcase classname="m" name="ok"/>'
        '<testcase classname="m" name="bad"><failure message="x"/></testcase>'
        '<testcase classname="m" name="broken"><error message="x"/></testcase>'
        '<testcase classname="m" name="skip"><skipped type="pytest.skip" message="no CUDA"/></testcase>'
        '<testcase classname="m" name="known"><skipped type="pytest.xfail" message="known issue"/></testcase>'
        "</testsuite></testsuites>"
    )
    counts = gpu_check.parse_junit(xml)
    assert counts == {
        "total": 5,
        "passed": 1,
        "failed": 1,
        "errors": 1,
        "skipped": 1,
        "xfailed": 1,
        "failures": ["m::bad", "m::broken"],
    }
