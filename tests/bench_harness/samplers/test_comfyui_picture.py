"""benchmarks.samplers.comfyui_picture: the rows' workflows, and one block run headless by ComfyUI in a subprocess
(the digits UNet needs diffusers, which must be imported before ComfyUI's stand-in torchvision: never in this
process, whose later tests import diffusers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common.paths import REPO_ROOT
from benchmarks.peers import comfyui
from benchmarks.samplers import comfyui_picture


def test_rows_change_only_the_sampler_and_the_guidance() -> None:
    plain = comfyui_picture.workflow("dpmpp_2m", "cfg", 6, 0)
    hb = comfyui_picture.workflow("hb", "cfg", 6, 0)
    apg = comfyui_picture.workflow("dpmpp_2m", "apg", 6, 0)
    assert plain["3"] == {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}}
    assert hb["3"]["class_type"] == "InertiaHBDPMPP2M" and hb["3"]["inputs"]["beta"] == comfyui_picture.BETA
    assert {k: v for k, v in hb.items() if k != "3"} == {k: v for k, v in plain.items() if k != "3"}
    assert apg["7"]["class_type"] == "InertiaAPG" and apg["5"]["inputs"]["model"] == ["7", 0]
    assert plain["5"]["inputs"]["cfg"] == apg["5"]["inputs"]["cfg"] == comfyui_picture.CFG
    assert comfyui_picture.label("hb", "apg", 6) == "HB-DPM++ 0.8, APG, 6 steps"


def test_digit_labels_reject_other_text() -> None:
    with pytest.raises(ValueError, match="`digits` must be a string of digits 0-9, got '12a'"):
        comfyui_picture.DigitLabelsNode().encode("12a")


@pytest.mark.skipif(not comfyui.is_fetched(), reason=f"ComfyUI is not in the cache: run `{comfyui.FETCH}`")
def test_one_block_runs_headless(tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "picture.png"
    command = [sys.executable, "-m", "benchmarks.samplers.comfyui_picture", "--steps", "2", "--out", str(out)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(4 workflows," in done.stdout
    with Image.open(out) as image:  # 4 labelled rows of 10 enlarged 32x32 digits
        width, height = image.size
    assert width > 10 * 32 and height > 4 * 32
