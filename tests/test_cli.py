"""The `inertia` command end to end: images (1 and 2 accelerate processes), text, bench, and bad input."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inertia.cli import main, output_paths

ROOT = Path(__file__).resolve().parents[1]
IMAGE_ARGS = ["generate", "image", "--digit", "3", "8", "--num-images", "4", "--batch-size", "2", "--steps", "4"]
IMAGE_ARGS += ["--sampler", "hb-dpm++:0.8", "--guidance", "apg", "--device", "cpu"]


def _pixels(paths):
    return [np.asarray(Image.open(p)) for p in paths]


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "inertia generate image --digit 7" in capsys.readouterr().out


def test_generate_image_in_process(tmp_path, capsys):
    assert main([*IMAGE_ARGS, "--out", str(tmp_path / "d.png")]) == 0
    paths = output_paths(str(tmp_path / "d.png"), 4)
    assert [p.name for p in paths] == ["d_000.png", "d_001.png", "d_002.png", "d_003.png"]
    images = _pixels(paths)
    assert all(image.shape == (256, 256, 3) for image in images)  # 16x16 digits enlarged 16x by default
    assert not np.array_equal(images[0], images[2])  # different seeds
    assert capsys.readouterr().out.split() == [str(p) for p in paths]
    assert main([*IMAGE_ARGS[:-2], "--num-images", "1", "--out", str(tmp_path / "one.png")]) == 0
    assert (tmp_path / "one.png").is_file()


def test_upscale_keeps_the_raw_pixels(tmp_path):
    argv = ["generate", "image", "--digit", "5", "--steps", "3", "--device", "cpu"]
    assert main([*argv, "--upscale", "1", "--out", str(tmp_path / "raw.png")]) == 0
    assert main([*argv, "--upscale", "3", "--save-raw", "--out", str(tmp_path / "big.png")]) == 0
    assert main([*argv, "--save-raw", "--out", str(tmp_path / "auto.png")]) == 0
    raw = np.asarray(Image.open(tmp_path / "raw.png"))
    big, auto = np.asarray(Image.open(tmp_path / "big.png")), np.asarray(Image.open(tmp_path / "auto.png"))
    assert raw.shape == (16, 16, 3) and big.shape == (48, 48, 3) and auto.shape == (256, 256, 3)
    assert np.array_equal(big[::3, ::3], raw) and np.array_equal(auto[::16, ::16], raw)  # blocks of one raw pixel
    assert np.array_equal(np.asarray(Image.open(tmp_path / "big.raw.png")), raw)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "auto.raw.png")), raw)
    assert not (tmp_path / "raw.raw.png").exists()  # nothing to keep when the PNG is the raw image


def test_two_accelerate_processes_equal_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    single = [sys.executable, "-m", "inertia.cli", *IMAGE_ARGS, "--out", str(tmp_path / "a" / "x.png")]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["-m", "inertia.cli", *IMAGE_ARGS, "--out", str(tmp_path / "b" / "x.png")]
    for command in (single, launch):
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    one, two = (
        _pixels(output_paths(str(tmp_path / "a" / "x.png"), 4)),
        _pixels(output_paths(str(tmp_path / "b" / "x.png"), 4)),
    )
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sampler", "dpm"], "`sampler`='dpm' is not a preset; valid:"),
        (["--guidance", "apg:2"], "take no value"),
        (["--sampler", "ghvb:fast"], "not a number"),
        (["--out", "x.jpg"], "--out must be a .png path"),
        (["--prompt", "a cat", "--out", "x.png"], "--prompt needs a text-to-image --model"),
    ],
)
def test_bad_image_input_is_one_line_exit_2(argv, message, capsys, tmp_path):
    base = ["generate", "image", "--steps", "2"] + ([] if "--prompt" in argv else ["--digit", "1"])
    argv = [*argv, "--out", str(tmp_path / "x.png")] if "--out" not in argv else argv
    assert main([*base, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inertia: error:") and message in err and "\n" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--digit", "12"],
        ["--steps", "0"],
        ["--scale", "-1"],
        ["--num-images", "x"],
        ["--upscale", "0"],
        ["--upscale", "x"],
    ],
)
def test_argument_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", "image", *argv, "--out", "x.png"])
    assert info.value.code == 2 and "error:" in capsys.readouterr().err


def test_text_method_is_checked_before_loading(capsys):
    assert main(["generate", "text", "--method", "beam", "--prompt", "Hi"]) == 2
    assert "`method` must be one of" in capsys.readouterr().err
    assert main(["generate", "text", "--method", "greedy", "--param", "alpha=0.2", "--prompt", "Hi"]) == 2


def test_generate_text_prints_the_continuation(capfd):
    assert (
        main(
            ["generate", "text", "--method", "momentum", "--prompt", "The capital of France", "--max-new-tokens", "6"]
        )
        == 0
    )
    assert len(capfd.readouterr().out.strip()) > 0


@pytest.mark.xdist_group("smollm2")
def test_generate_text_with_the_momentum_penalty_prints_its_seeded_continuation(capsys, monkeypatch):
    import inertia.pipelines.text as text_module
    from inertia.pipelines.text_generation import generate_text
    from tests.adapters.transformers.smollm2 import shared_smollm2

    loaded = shared_smollm2()
    monkeypatch.setattr(text_module, "load_text_model", lambda *args, **kwargs: loaded)  # loaded once per worker
    prompt = "My favourite food is pizza because"
    args = ["generate", "text", "--method", "momentum_penalty", "--param", "alpha=0.3", "--prompt", prompt]
    assert main([*args, "--seed", "1", "--max-new-tokens", "12"]) == 0
    expected = generate_text(*loaded, prompt, "momentum_penalty", 12, seed=1, alpha=0.3)
    assert expected.strip() and capsys.readouterr().out.strip() == expected.strip()
    assert expected != generate_text(*loaded, prompt, "momentum_penalty", 12, seed=2, alpha=0.3)


# runpy warns when another test in this worker (tests/bench_harness) already imported the suite; a real CLI process
# never has, so the warning says nothing about the command.
@pytest.mark.filterwarnings("ignore:'benchmarks.samplers.step_overhead' found in sys.modules:RuntimeWarning")
def test_bench_runs_a_suite_module(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "overhead", "--help"])
    assert info.value.code == 0 and "usage" in capsys.readouterr().out.lower()


def test_images_are_written_as_they_are_made(tmp_path, monkeypatch):
    import inertia.cli as cli

    out = tmp_path / "new" / "folder" / "s.png"  # folders that do not exist yet are made at the first image
    paths, seen, original = output_paths(str(out), 6), [], cli._run_chunk

    def run_chunk(pipe, args, chunk, device):
        seen.append([path.is_file() for path in paths])
        if len(seen) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third batch runs
        return original(pipe, args, chunk, device)

    monkeypatch.setattr(cli, "_run_chunk", run_chunk)
    argv = ["generate", "image", "--digit", "1", "--num-images", "6", "--batch-size", "2", "--steps", "2"]
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == 130
    assert seen == [[False] * 6, [True, True] + [False] * 4, [True] * 4 + [False] * 2]
    assert all(Image.open(path).size == (256, 256) for path in paths[:4])  # whole PNGs
    assert sorted(p.name for p in out.parent.iterdir()) == [p.name for p in paths[:4]]  # no partial file left
