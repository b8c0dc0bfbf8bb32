"""Natural English text that ships offline, inside gensim's wheel on PyPI (no hub, no data-set download).

gensim's test data has ``lee_background.cor`` (300 Australian news articles, one per line; Lee, Pincombe and Welsh
2005) and ``pang_lee_polarity.cor`` (200 movie-review sentences labelled positive or negative, from Pang and Lee
2005). The wheel is fetched once with ``pip download --no-deps gensim`` (PyPI is a package registry, reachable from
every machine of ours) into :data:`CACHE`, and the files are read from the archive; gensim itself is
never installed or imported.

Example::

    >>> articles = lee_background()  # doctest: +SKIP
    >>> len(articles)  # doctest: +SKIP
    300
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

__all__ = ["CACHE", "lee_background", "pang_lee_polarity", "read_member"]

CACHE = Path(os.environ.get("INERTIA_CACHE", Path.home() / ".cache" / "inertia")) / "corpora"
"""Where the gensim wheel is kept after the first download (``$INERTIA_CACHE/corpora``, default
``~/.cache/inertia/corpora``)."""
GENSIM = "gensim==4.4.0"
"""The wheel version whose test data we read (pinned so the texts never change under a benchmark)."""


def _wheel(cache: Path = CACHE) -> Path:
    wheels = sorted(cache.glob("gensim-*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache), GENSIM], check=True
        )
        wheels = sorted(cache.glob("gensim-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download {GENSIM} left no wheel in {cache}")
    return wheels[-1]


def read_member(name: str, cache: Path = CACHE) -> str:
    """The text of ``gensim/test/test_data/<name>`` inside the wheel."""
    with zipfile.ZipFile(_wheel(cache)) as archive:
        return archive.read(f"gensim/test/test_data/{name}").decode("utf-8", errors="replace")  # a few cp1252 bytes


def lee_background(cache: Path = CACHE) -> list[str]:
    """The 300 news articles of the Lee corpus, one string each."""
    return [line.strip() for line in read_member("lee_background.cor", cache).splitlines() if line.strip()]


def pang_lee_polarity(cache: Path = CACHE) -> list[tuple[str, str]]:
    """``(sentence, "positive" | "negative")`` for the 200 labelled movie-review sentences."""
    out = []
    for line in read_member("pang_lee_polarity.cor", cache).splitlines():
        label, _, text = line.strip().partition(" ")
        if label in ("__label__pos", "__label__neg") and text:
            out.append((text.strip(), "positive" if label == "__label__pos" else "negative"))
    return out
