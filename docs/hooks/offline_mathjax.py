"""MkDocs hook: MathJax from an installed wheel, so that the site renders its equations with no network.

The ``docs`` extra installs ``django-static-mathjax`` (MathJax 3 as package data, no dependencies); this hook adds
its self-contained ``tex-svg-full.js`` (every TeX extension included, SVG output, so no font files) to the site.
``docs/javascripts/mathjax-config.js`` tells it to typeset what ``pymdownx.arithmatex`` marked.
"""

from __future__ import annotations

from pathlib import Path

import mathjax
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

SCRIPT = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg-full.js"
SITE_PATH = "javascripts/mathjax/tex-svg-full.js"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    if not SCRIPT.is_file():
        raise FileNotFoundError(f"{SCRIPT} is missing: install the docs extra (pip install -e '.[docs]')")
    files.append(File.generated(config, SITE_PATH, abs_src_path=str(SCRIPT)))
    return files
