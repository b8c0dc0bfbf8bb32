"""`benchmarks.product.response_times`: the report shows every measured figure, and bad arguments are refused before any work."""

import pytest

from benchmarks.product import response_times

RESULTS = {
    "device": "cpu",
    "repeats": 5,
    "app": {
        "app_start_s": 1.234,
        "first_image_request_s": 3.0,
        "image_request_median_s": 2.5,
        "image_requests_s": [2.5] * 5,
        "first_text_request_s": 30.0,
        "text_request_median_s": 12.25,
        "text_requests_s": [12.25] * 5,
        "text_tokens_per_side": 64,
    },
    "cli": {"num_images": 32, "steps": 20, "one_process_s": 20.0, "two_processes_s": 12.5, "speedup": 1.6},
}


@pytest.mark.parametrize("identical", [True, False])
def test_report_lists_every_figure(identical: bool) -> None:
    text = response_times.report({**RESULTS, "cli": {**RESULTS["cli"], "identical": identical}})
    for expected in ("| build and start the app | 1.23 |", "(median) | 2.50 |", "64 tokens each (median) | 12.25 |",
                     "| 1 process | 20.0 |", "| `accelerate launch --num_processes 2` | 12.5 |", "| speed-up | 1.60x"):  # fmt: skip
        assert expected in text
    assert ("PNGs identical: yes" in text) is identical and ("**no**" in text) is not identical


@pytest.mark.parametrize("argv", [["--repeats", "0"], ["--num-images", "1"], ["--device", "tpu"]])
def test_bad_arguments_exit_before_any_work(argv: list[str], monkeypatch) -> None:
    monkeypatch.setattr(response_times, "measure_app", lambda *a: pytest.fail("measured despite bad arguments"))
    with pytest.raises(SystemExit) as info:
        response_times.main(argv)
    assert info.value.code == 2


def test_cli_answers_are_timed_and_reported(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(
        response_times, "CLI_ANSWERS", {"help": ["--help"], "bad steps": ["generate", "image", "--steps", "0"]}
    )
    answers = response_times.measure_cli_answers(1, tmp_path)
    assert answers["answers"]["help"]["exit"] == 0
    bad = answers["answers"]["bad steps"]
    assert bad["exit"] == 2 and "--steps must be an integer in [1, 200]" in bad["last_line"]
    text = response_times.answers_report(answers)
    assert "| bad steps |" in text and "Worst of all:" in text


def test_answers_only_writes_the_answers_and_stops(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(response_times, "CLI_ANSWERS", {"help": ["--help"]})
    monkeypatch.setattr(
        response_times, "measure_app", lambda *a: pytest.fail("the app was measured with --answers-only")
    )
    assert response_times.main(["--answers-only", "--repeats", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "cli_answers.json").is_file()
