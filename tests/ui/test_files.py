"""Images reach Gradio as whole PNG files: identical concurrent results never hand out a half-written picture."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from inertia.ui import files
from inertia.ui.files import png_file


def test_the_png_is_lossless_and_named_by_its_content() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    path = png_file(image)
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(image))
    assert png_file(image.copy()) == path
    assert png_file(Image.new("RGB", (8, 8), "black")) != path


def test_an_existing_file_is_never_rewritten_in_place(monkeypatch) -> None:
    image = Image.new("RGB", (5, 5), "red")
    path = png_file(image)
    before = os.stat(path)
    monkeypatch.setattr(files.os, "replace", lambda *a: pytest.fail("an existing image was written again"))
    assert png_file(image) == path
    assert os.stat(path).st_ino == before.st_ino


def test_a_new_file_appears_only_by_rename(monkeypatch) -> None:
    seen: list[tuple[str, str]] = []
    real = os.replace

    def spy(source: str, target: str) -> None:
        assert os.path.basename(source).startswith(".")  # written whole under a staging name first
        assert not os.path.exists(target)
        seen.append((source, str(target)))
        real(source, target)

    monkeypatch.setattr(files.os, "replace", spy)
    path = png_file(Image.new("RGB", (3, 7), "blue"))
    assert seen and seen[0][1] == path and Image.open(path).size == (3, 7)


def test_a_failed_write_leaves_no_file_behind(monkeypatch) -> None:
    def broken(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        png_file(Image.new("RGB", (2, 9), "green"))
    assert not [name for name in os.listdir(files._directory()) if name.startswith(".")]


def test_identical_requests_at_once_all_receive_whole_images(client) -> None:
    """Eight clients ask for the same pictures together (the app serves four at a time): every image arrives whole."""
    request = {"digit": 3, "seed": 11, "steps": 2, "batch": 2, "compare": True}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: client.predict(**request, api_name="/generate_image"), range(8)))
    first = [np.asarray(Image.open(item["image"])) for item in results[0][0]]
    for gallery, slider, _, _ in results:
        assert [np.asarray(Image.open(item["image"])).shape for item in gallery] == [f.shape for f in first]
        assert all(np.array_equal(np.asarray(Image.open(item["image"])), f) for item, f in zip(gallery, first))
        assert all(Image.open(path).size[0] > 0 for path in slider)
