"""Per-model preset settings: what the named presets mean for one trained model, tuned and shipped with it.

A pipeline folder may hold ``inertia_presets.json``: for each named preset of :mod:`inertia.core.presets.pipeline`, the
parameters tuned for that model (APG's norm threshold r, momentum β and η; HiGS's weight; the attention presets'
β; a fixed momentum number for a sampler). :func:`inertia.pipelines.configure` uses them as the preset's defaults:
parameters you pass still win, and a model without the file gets the generic rules. The embedded digits models ship
one, written by ``python -m benchmarks.product.embedded_model tune`` on tuning seeds disjoint from the evaluation seeds.

The file::

    {
      "guidance": {"apg": {"norm_threshold": 0.2, "momentum": -0.5}, "higs": {"weight": 1.0}},
      "attention": {"ema": {"beta": 0.2}},
      "sampler": {"ghvb": 3.8},
      "tuning": {"seeds": [1000, 1001], "note": "free text: how the values were chosen"}
    }

Example:
    >>> presets = check_model_presets({"guidance": {"apg": {"norm_threshold": 0.2}}})
    >>> guidance_defaults(presets, "apg")
    {'norm_threshold': 0.2}
    >>> check_model_presets({"guidance": {"magic": {}}})
    Traceback (most recent call last):
    ...
    ValueError: inertia presets: `guidance`['magic'] is not a preset that takes settings; valid: apg, apg+higs, higs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = [
    "PRESETS_FILE",
    "attention_defaults",
    "check_model_presets",
    "guidance_defaults",
    "model_presets",
    "read_model_presets",
    "sampler_default",
    "write_model_presets",
]

PRESETS_FILE = "inertia_presets.json"
"""The file name inside a pipeline folder."""

_TUNABLE = {
    "guidance": ("apg", "apg+higs", "higs"),
    "attention": ("ema", "extrapolate", "first_order"),
    "sampler": ("ghvb", "hb", "hb-dpm++", "nt"),
}
"""Presets that take per-model settings, by section."""


def _fail(source: str, message: str) -> ValueError:
    return ValueError(f"{source}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_model_presets(presets: Any, source: str = "inertia presets") -> dict[str, Any]:
    """Validates a presets mapping (the file's contents); returns it as plain dicts. ``source`` names it in errors.

    Raises:
        ValueError: an unknown section or preset, or a value of the wrong kind (the message names the entry).
    """
    if not isinstance(presets, dict):
        raise _fail(source, f"must be a JSON object, got {type(presets).__name__}.")
    unknown = sorted(set(presets) - {*_TUNABLE, "tuning"})
    if unknown:
        raise _fail(source, f"unknown sections {unknown}; valid: attention, guidance, sampler, tuning.")
    checked: dict[str, Any] = {}
    for section, names in _TUNABLE.items():
        entries = presets.get(section, {})
        if not isinstance(entries, dict):
            raise _fail(source, f"`{section}` must be an object, got {type(entries).__name__}.")
        for name, value in entries.items():
            if name not in names:
                raise _fail(
                    source, f"`{section}`[{name!r}] is not a preset that takes settings; valid: {', '.join(names)}."
                )
            if section == "sampler":
                if not _is_number(value) or value <= 0:
                    raise _fail(source, f"`sampler`[{name!r}] must be a positive momentum number, got {value!r}.")
            elif not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
                raise _fail(source, f"`{section}`[{name!r}] must be an object of parameters, got {value!r}.")
        checked[section] = {
            name: (dict(value) if isinstance(value, dict) else value) for name, value in entries.items()
        }
    if "tuning" in presets:
        checked["tuning"] = presets["tuning"]
    return checked


def read_model_presets(folder: str | Path) -> dict[str, Any]:
    """The checked presets of the pipeline folder ``folder``; empty sections when it has no presets file.

    Raises:
        ValueError: the file is not valid JSON or not a valid presets mapping (the message names the file).
    """
    path = Path(folder) / PRESETS_FILE
    if not path.is_file():
        return check_model_presets({})
    try:
        contents = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise _fail(str(path), f"not valid JSON ({err}).") from None
    return check_model_presets(contents, source=str(path))


def write_model_presets(folder: str | Path, presets: dict[str, Any]) -> Path:
    """Checks ``presets`` and writes them as ``folder/inertia_presets.json``; returns the path."""
    checked = check_model_presets(presets)
    path = Path(folder) / PRESETS_FILE
    path.write_text(json.dumps(checked, indent=2, sort_keys=True) + "\n")
    return path


def model_presets(pipe: Any) -> dict[str, Any]:
    """The presets attached to ``pipe`` (``pipe.inertia_presets``, set by the loaders), checked; empty if none."""
    attached = getattr(pipe, "inertia_presets", None)
    return check_model_presets(attached if attached is not None else {}, source="`pipe.inertia_presets`")


def guidance_defaults(presets: dict[str, Any], guidance: str) -> dict[str, Any]:
    """The model's parameters for the guidance preset ``guidance`` (a copy; empty if none)."""
    return dict(presets.get("guidance", {}).get(guidance, {}))


def attention_defaults(presets: dict[str, Any], attention: str) -> dict[str, Any]:
    """The model's parameters for the attention preset ``attention`` (a copy; empty if none)."""
    return dict(presets.get("attention", {}).get(attention, {}))


def sampler_default(presets: dict[str, Any], sampler: str) -> float | None:
    """The model's fixed momentum number for a plain sampler preset (``"ghvb"`` -> 3.8), or None (auto β)."""
    value = presets.get("sampler", {}).get(sampler)
    return None if value is None else float(value)
