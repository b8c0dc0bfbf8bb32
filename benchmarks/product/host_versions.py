"""Prints the versions of the host libraries in this environment, beside the ones pinned in the lock.

``python -m benchmarks.product.host_versions [--compare requirements/lock.txt] [--json PATH]``: `make test-latest` runs it
first, so that every CI log says which releases the host-contract tests ran on.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from importlib import metadata
from pathlib import Path

HOST_LIBRARIES = (
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "gradio",
    "gradio_client",
    "huggingface_hub",
    "safetensors",
    "tokenizers",
    "numpy",
    "gguf",
)
"""The libraries whose APIs inertia calls (and whose releases can break it)."""


def installed_versions(names: tuple[str, ...] = HOST_LIBRARIES) -> dict[str, str | None]:
    """``{name: version}`` of the installed distributions (None where one is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def locked_versions(lock: Path) -> dict[str, str]:
    """``{normalised name: version}`` of the ``name==version`` lines of a requirements lock file."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        if match:
            pins[_normalise(match.group(1))] = match.group(2)
    return pins


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(argv: list[str] | None = None) -> int:
    """Prints a table of name, installed version and locked version."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", type=Path, default=None, help="a requirements lock file to compare with")
    parser.add_argument("--json", type=Path, default=None, help="also write the versions to this JSON file")
    args = parser.parse_args(argv)
    installed = installed_versions()
    locked = locked_versions(args.compare) if args.compare else {}
    print(f"{'library':<16} {'installed':<14} {'locked' if locked else ''}")
    for name, version in installed.items():
        pin = locked.get(_normalise(name), "(not locked)" if name != "torch" else "(Makefile)") if locked else ""
        marker = "  <- newer than the lock" if locked and version and pin[:1].isdigit() and version != pin else ""
        print(f"{name:<16} {version or '-':<14} {pin}{marker}")
    if args.json:
        args.json.write_text(json.dumps({"installed": installed, "locked": locked}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
