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
    (["--digit", "7", "--sampler", "hb-dpm++:0"], "`sampler`='hb-dpm++:0': β must be in (0, 1], got 0."),
    (["--digit", "7", "--sampler", "hb-dpm++:1.5"], "`sampler`='hb-dpm++:1.5': β must be in (0, 1], got 1.5."),
    (["--digit", "7", "--sampler", "ghvb:9.9"], "`sampler`='ghvb:9.9': the momentum number r = order − 1 + β must"),
    (["--digit", "7", "--sampler", "ghvb:"], "`sampler`='ghvb:' has nothing after the colon"),
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
    (["--prompt", "Hi", "--method", "momentum_penalty", "--param", "alpha=2"], "`alpha` must be in [0.0, 1.0], got 2"),
    (["--prompt", "Hi", "--method", "momentum_penalty", "--param", "alpha=x"], "`alpha` must be a finite number in"),
    (["--prompt", "Hi", "--method", "momentum_penalty", "--param", "top_p=2"], "`top_p` must be a number in (0, 1]"),
    (["--prompt", "Hi", "--param", "beta=1"], "takes the parameters ['alpha', 'top_k'], got ['beta']"),
    (["--prompt", "Hi", "--model", "./no/such/model"], "--model='./no/such/model' does not exist"),
    (["--prompt", "Hi", "--param", "alpha=5"], "`alpha` must be in [0.0, 1.0], got 5"),  # the UI's slider range
    (["--prompt", "Hi", "--param", "top_k=50"], "`top_k` must be an integer in [1, 20], got 50"),
    (["--prompt", "The old lighthouse keeper " * 4000], "--prompt is too long for the model: 104000 characters are"),
    (["--prompt", "Hi", "--attention", "warp"], "`attention`='warp' is not a text-attention preset"),
    (["--prompt", "Hi", "--attention", "momentum:2"], "`eta` must be a number in [0, 1), got 2.0"),
]


def _run_without_heavy_imports(argv: list[str], prelude: str = "", cwd: Path = ROOT) -> tuple[int, str]:
    """Runs ``main(argv)`` in a fresh interpreter and fails if torch, diffusers, transformers or gradio got imported.

    ``prelude``: Python run first (e.g. to hide an installed package)."""
    code = (
        "import sys, json\n"
        f"{prelude}\n"
        "from inertia.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'gradio', 'accelerate') if sys.modules.get(m))\n"
        "print(json.dumps({'code': code, 'heavy': heavy}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-"], input=code, cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"{argv}: imported {result['heavy']} before answering"
    return result["code"], done.stderr


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("argv", "message"), IMAGE_ERRORS)
def test_image_argument_errors_are_one_line_and_light(argv, message, tmp_path) -> None:
    code, err = _run_without_heavy_imports(["generate", "image", *argv, "--out", str(tmp_path / "x.png")])
    assert code == 2 and message in _one_line(err)  # argparse's errors too: no usage block


@pytest.mark.parametrize(("argv", "message"), TEXT_ERRORS)
def test_text_argument_errors_are_one_line_and_light(argv, message) -> None:
    code, err = _run_without_heavy_imports(["generate", "text", *argv])
    assert code == 2 and message in _one_line(err)


@pytest.mark.parametrize("argv", [["--help"], ["generate", "image", "--help"], ["generate", "text", "--help"]])
def test_help_imports_nothing_heavy(argv) -> None:
    code, _ = _run_without_heavy_imports(argv)
    assert code == 0


def test_out_is_checked_before_anything_runs(tmp_path) -> None:
    a_file = tmp_path / "taken.png"
    a_file.write_bytes(b"not a folder")
    (tmp_path / "shots.png").mkdir()
    cases = [
        ("/proc/nope.png", "--out '/proc/nope.png': cannot write in '/proc'"),
        (str(a_file / "x.png"), f"--out {str(a_file / 'x.png')!r}: {str(a_file)!r} is a file, not a folder"),
        (
            "/inertia-no-such-folder/x.png",
            "'/inertia-no-such-folder' does not exist and would be made at the filesystem",
        ),
        (str(tmp_path / "shots.png"), "is a folder; give a file name in it"),
    ]
    for out, message in cases:
        code, err = _run_without_heavy_imports(["generate", "image", "--digit", "7", "--out", out], cwd=tmp_path)
        assert code == 2 and message in _one_line(err), (out, err)
    assert not Path("/inertia-no-such-folder").exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "shots.png",
        "taken.png",
    ]


def test_a_folder_that_is_not_a_model_is_named(tmp_path) -> None:
    code, err = _run_without_heavy_imports(["generate", "text", "--prompt", "Hi", "--model", str(tmp_path)])
    assert code == 2
    assert _one_line(err) == (
        f"inertia: error: --model={str(tmp_path)!r} is a folder without a config.json: give a folder saved with "
        "`save_pretrained` (config.json, weights, tokenizer files), a .gguf file or a hub id."
    )
    (tmp_path / "config.json").write_text("{}")
    code, err = _run_without_heavy_imports(["generate", "text", "--prompt", "Hi", "--model", str(tmp_path)])
    assert code == 2 and "has no tokenizer (none of tokenizer.json" in _one_line(err)


def test_demo_host_and_port_are_blamed_on_the_right_flag() -> None:
    import socket

    code, err = _run_without_heavy_imports(["demo", "--host", "999.1.1.1"])
    assert code == 2 and _one_line(err).endswith(
        "--host must be an IP address or a host name of this machine, got '999.1.1.1'"
    )
    code, err = _run_without_heavy_imports(["demo", "--host", "192.0.2.1"])  # TEST-NET-1: never this machine's
    assert code == 2 and "--host '192.0.2.1' is not an address of this machine" in _one_line(err)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = _run_without_heavy_imports(["demo", "--port", str(port)])
    assert code == 2 and f"--port {port} is already in use on 127.0.0.1" in _one_line(err)


def test_demo_without_the_ui_extra_says_what_to_install() -> None:
    code, err = _run_without_heavy_imports(["demo"], prelude="sys.modules['gradio'] = None  # as if not installed")
    assert code == 2
    assert _one_line(err) == (
        'inertia: error: inertia demo needs the UI extra, which is not installed: pip install "inertia[ui]"'
    )


def test_a_missing_optional_module_is_one_line_with_its_extra(capsys, monkeypatch, tmp_path) -> None:
    import inertia.cli as cli

    def missing(args):
        raise ModuleNotFoundError("No module named 'gradio'", name="gradio")

    monkeypatch.setattr(cli, "generate_images", missing)
    assert main(["generate", "image", "--digit", "1", "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.strip() == 'inertia: error: gradio is not installed: pip install "inertia[ui]"'


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_demo_port_is_checked(port) -> None:
    code, err = _run_without_heavy_imports(["demo", "--port", port])
    assert _one_line(err).startswith("inertia: error: --port must be an integer in [1, 65535]") and code == 2


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
