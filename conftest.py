"""Repository-level pytest settings: modules that are only old import paths (``alias_module``) are not collected for
doctests (they *are* another module, whose doctests run at its own path)."""

from pathlib import Path

collect_ignore = [
    str(path)
    for path in Path(__file__).parent.joinpath("inertia").rglob("*.py")
    if "alias_module(__name__" in path.read_text(encoding="utf-8")
]
