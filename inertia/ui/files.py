"""Images handed to Gradio as PNG files written whole, never as PIL images.

Gradio 6 caches a returned PIL image by writing its bytes in place to ``<cache>/<hash of the bytes>/image.png``.
Two requests that produce the same picture (the same digit and seed, say) write the same file at the same time, and a
browser or client fetching it mid-write receives a truncated body. A file path is copied into the cache under a
temporary name and renamed into place, so the app writes each image itself, the same way, and returns the path.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["png_file"]

_LOCK = threading.Lock()
_DIRECTORY: Path | None = None


def _directory() -> Path:
    """This process's folder for the app's images (made on first use, removed at exit)."""
    global _DIRECTORY
    with _LOCK:
        if _DIRECTORY is None or not _DIRECTORY.is_dir():
            _DIRECTORY = Path(tempfile.mkdtemp(prefix="inertia-ui-"))
            atexit.register(shutil.rmtree, _DIRECTORY, ignore_errors=True)
        return _DIRECTORY


def png_file(image: Any) -> str:
    """Writes a PIL image as a PNG named by its content (temporary name, then an atomic rename); returns its path.

    Example:
        >>> from PIL import Image
        >>> path = png_file(Image.new("RGB", (4, 4), "white"))
        >>> path.endswith(".png") and Image.open(path).size == (4, 4)
        True
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    directory = _directory()
    path = directory / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
    if not path.exists():
        descriptor, staging = tempfile.mkstemp(dir=directory, prefix=".", suffix=".png")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            os.replace(staging, path)  # readers see the whole file or none
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
    return str(path)
