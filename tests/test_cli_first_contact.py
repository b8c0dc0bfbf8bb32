"""What a new user meets first: every argument error is one line, answered before torch or a model is loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inertia.cli import main

ROOT = Path(__file__).resolve().parents[1]

IMAGE_ERRORS = [
    (["--digit", "7", "--steps", "100000"], "--steps must be an integer in [1, 200], got '100000'"),
    (["--digit", "7", "--height", "32"], "--height is for text-to-image models; a digits model has a fixed size"),
    (["--digit", "7", "--width", "32"], "--width is for text-to-image models"),
    (["--digit", "7", "--seed", "-1"], "--seed must be an integer in [0, 2147483647], got '-1'"),
    (["--digit", "7", "--device", "gpu"], "--device must be cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["--model", "owner/name", "--prompt", ""], "--prompt must not be empty"),
    (["--model", "owner/name", "--prompt", "a cat", "--height", "30"], "--height must be a multiple of 8, got 30"),
    (["--model", "owner/name", "--prompt", "a cat", "--width", "8192"], "--width must be in [8, 4096], got 8192"),
    (["--model", "owner/name", "--digit", "3"], "--digit is for digits models; 'owner/name' is a text-to-image model"),
    (["--model", "owner/name"], "'owner/name' is a text-to-image model: give --prompt"),
    (["--model", "not a hub id", "--prompt", "x"], "is neither an existing directory nor a hub id"),
    (["--digit", "7", "--sampler", "warp"], "`sampler`='warp' is not a preset"),
]
TEXT_ERRORS = [
    (["--prompt", ""], "--prompt must not be empty"),
    (["--prompt", "   "], "--prompt must not be empty"),
    (["--prompt", "Hi", "--param", "alpha=-1"], "`alpha` must be a finite number >= 0"),
    (["--prompt", "Hi", "--param", "top_k=0"], "`top_k` must be an integer >= 1"),
    (["--prompt", "Hi", "--method", "contrastive", "--param", "penalty_alpha=2"], "`penalty_alpha` must be a number"),
    (["--prompt", "Hi", "--method", "nucleus", "--param", "top_p=0"], "`top_p` must be a number in (0, 1]"),
    (["--prompt", "Hi", "--method", "repetition_penalty", "--param", "penalty=0"], "`penalty` must be a finite"),
    (["--prompt", "Hi", "--method", "no_repeat_ngram", "--param", "n=0"], "`n` must be an integer >= 1"),
    (["--prompt", "Hi", "--param", "beta=1"], "takes the parameters ['alpha', 'top_k'], got ['beta']"),
    (["--prompt", "Hi", "--model", "./no/such/model"], "`name_or_path`='./no/such/model' does not exist"),
    (["--prompt", "Hi", "--attention", "warp"], "`attention`='warp' is not a text-attention preset"),
    (["--prompt", "Hi", "--attention", "momentum:2"], "`eta` must be a number in [0, 1), got 2.0"),
]


def _run_without_heavy_imports(argv: list[str]) -> tuple[int, str]:
    """Runs ``main(argv)`` in a fresh interpreter and fails if torch, diffusers, transformers or gradio got imported."""
    code = (
        "import sys, json\n"
        "from inertia.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'gradio', 'accelerate') if m in sys.modules)\n"
        "print(json.dumps({'code': code, 'heavy': heavy}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"{argv}: imported {result['heavy']} before answering"
    return result["code"], done.stderr


@pytest.mark.parametrize(("argv", "message"), IMAGE_ERRORS)
def test_image_argument_errors_are_one_line_and_light(argv, message, tmp_path) -> None:
    code, err = _run_without_heavy_imports(["generate", "image", *argv, "--out", str(tmp_path / "x.png")])
    assert code == 2
    lines = err.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in err


@pytest.mark.parametrize(("argv", "message"), TEXT_ERRORS)
def test_text_argument_errors_are_one_line_and_light(argv, message) -> None:
    code, err = _run_without_heavy_imports(["generate", "text", *argv])
    assert code == 2
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err


@pytest.mark.parametrize("argv", [["--help"], ["generate", "image", "--help"], ["generate", "text", "--help"]])
def test_help_imports_nothing_heavy(argv) -> None:
    code, _ = _run_without_heavy_imports(argv)
    assert code == 0


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_demo_port_is_checked(port) -> None:
    code, err = _run_without_heavy_imports(["demo", "--port", port])
    assert code == 2 and "--port must be an integer in [1, 65535]" in err and "Traceback" not in err


def test_offline_hub_id_is_one_line(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["generate", "image", "--model", "nobody/no-such-model", "--prompt", "a cat", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()  # diffusers logs that it will try the cache first; then our one line
    assert err.splitlines()[-1].startswith("inertia: error: could not load the pipeline 'nobody/no-such-model'")
    assert "Traceback" not in err
    assert main(["generate", "text", "--model", "nobody/no-such-model", "--prompt", "Hi", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].startswith("inertia: error: could not load the text model 'nobody/no-such-model'")
    assert "Traceback" not in err


def test_a_saved_digits_model_takes_digit(tmp_path, capsys) -> None:
    from inertia.pipelines.image import load_image_pipeline

    load_image_pipeline(device="cpu").save_pretrained(tmp_path / "my-digits")
    out = tmp_path / "mine.png"
    argv = ["generate", "image", "--model", str(tmp_path / "my-digits"), "--digit", "4", "--steps", "2"]
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == 0
    assert out.is_file()
    assert main([*argv[:-4], "--prompt", "a four", "--out", str(out)]) == 2
    assert "(a digits model) takes --digit" in capsys.readouterr().err


def test_an_internal_error_is_one_line_unless_debugging(capsys, monkeypatch, tmp_path) -> None:
    import inertia.cli as cli

    def broken(args):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(cli, "generate_images", broken)
    argv = ["generate", "image", "--digit", "1", "--out", str(tmp_path / "x.png")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "inertia: internal error: RuntimeError: something inside broke (rerun with INERTIA_DEBUG=1 for the traceback)"
    )
    monkeypatch.setenv("INERTIA_DEBUG", "1")
    with pytest.raises(RuntimeError, match="something inside broke"):
        main(argv)
