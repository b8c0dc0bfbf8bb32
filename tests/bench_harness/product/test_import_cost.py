"""benchmarks.product.import_cost: each statement is timed in a fresh interpreter and reports the hosts it loads."""

from pathlib import Path

import pytest

from benchmarks.product import import_cost


def test_a_fresh_interpreter_reports_what_a_statement_loads() -> None:
    repo = Path(import_cost.__file__).resolve().parents[2]
    seconds, hosts = import_cost.measure("import json", repo)
    assert seconds >= 0 and hosts == []
    _, hosts = import_cost.measure("import torch", repo)
    assert hosts == ["torch"]


def test_the_core_statement_imports_every_core_module() -> None:
    repo = Path(import_cost.__file__).resolve().parents[2]
    statement = import_cost.core_statement(repo)
    assert "import inertia.core.guidance.apg" in statement.splitlines()


def test_table_rows_name_the_hosts_or_none() -> None:
    rows = [{"what": "x", "seconds": 1.5, "beyond_torch": 0.25, "hosts": ["torch"]}]
    rows.append({"what": "y", "seconds": 2.0, "beyond_torch": 0.75, "hosts": ["diffusers", "torch"]})
    lines = import_cost.table(rows).splitlines()
    assert lines[2] == "| x | 1.50 | +0.25 | none |" and lines[3] == "| y | 2.00 | +0.75 | diffusers |"


@pytest.mark.parametrize("argv", [["--runs", "0"], ["--repo", "/nonexistent"]])
def test_bad_arguments_are_named(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        import_cost.main(argv)
    assert info.value.code == 2 and argv[0] in capsys.readouterr().err
