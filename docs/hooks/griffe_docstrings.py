"""Griffe extension for the API reference: reads inertia's docstrings as they are written.

- ``Example:`` (the Google style guide's singular) starts an examples section; griffe only knows ``Examples:`` and
  would otherwise render the doctests as Markdown.
- Sphinx roles (``:class:`CFG```, ``:func:`~inertia.guidance.apply_guidance```) become inline code, as Markdown
  would not render them.
- An ``Args:`` entry that documents several parameters at once may wrap its list of names over several lines
  (``a, b, c,`` / ``    d, e: the description``); the names are joined onto one line, as Google style needs.
- reStructuredText's literal-block marker (``Command line::`` before an indented block) becomes a plain colon, so
  Markdown shows the block as code and no stray ``::``; ``Examples::`` becomes bold text rather than a section.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc|const):`(~?)([^`]+)`")
_NAMES_OPEN = re.compile(r"^(\s+)\w+(?:, \w+)*,$")  # "    a, b, c," : a list of names still waiting for its colon
_NAMES_MORE = re.compile(r"^\s+\w+(?:, \w+)*(?:,$|:)")  # "        d, e," or "        f, g: description"
_LITERAL = re.compile(r"^(\s*)(.*\S)::[ \t]*$", re.MULTILINE)  # "Command line::" (reST literal block)


def _role(match: re.Match[str]) -> str:
    name = match.group(2)
    return f"`{name.rsplit('.', 1)[-1] if match.group(1) else name}`"


def _join_wrapped_names(text: str) -> str:
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if _NAMES_OPEN.match(line):
            while line.endswith(",") and i + 1 < len(lines) and _NAMES_MORE.match(lines[i + 1]):
                i += 1
                line = f"{line} {lines[i].strip()}"
        out.append(line)
        i += 1
    return "\n".join(out)


def _literal(match: re.Match[str]) -> str:
    indent, title = match.groups()
    return f"{indent}**{title}:**" if title.isidentifier() else f"{indent}{title}:"


def normalise(text: str) -> str:
    """The docstring ``text`` as griffe's Google parser and Markdown expect it."""
    text = _LITERAL.sub(_literal, text)
    return _ROLE.sub(_role, _join_wrapped_names(_EXAMPLE.sub(r"\1Examples:", text)))


class InertiaDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = normalise(obj.docstring.value)
