"""The command line's checks that look at this machine: ``--out`` (can a file be written there?), ``--host`` and
``--port`` (can the demo bind there?) and the optional packages a command needs. Pure standard library, so they run
before torch, a model or Gradio loads; :mod:`inertia.cli` calls them.

Example:
    >>> install_hint("gradio.blocks")
    'pip install "inertia[ui]"'
"""

from __future__ import annotations

import errno
import importlib.util
import ipaddress
import os
import re
import socket
import tempfile
from pathlib import Path

__all__ = ["EXTRAS", "UI_INSTALL", "CliError", "check_host_port", "check_out", "install_hint", "installed"]


class CliError(ValueError):
    """A user error: printed as one line, exit status 2.

    Example:
        >>> try:
        ...     check_out("seven.jpg")
        ... except CliError as err:
        ...     print(err)
        --out must be a .png path, got 'seven.jpg'
    """


def check_out(out: str) -> Path:
    """Checks ``--out`` before anything runs: a ``.png`` path whose folder exists and takes new files, or can be made
    under an existing folder that does (never a new folder at the filesystem root); returns that existing folder.

    Probing writes and removes one empty temporary file there: permissions alone do not tell (root may "write" in
    ``/proc``, and a read-only mount answers only when written to).

    Raises:
        CliError: naming ``--out`` and saying what is wrong.
    """
    path = Path(out).expanduser()
    if path.suffix.lower() != ".png":
        raise CliError(f"--out must be a .png path, got {out!r}")
    if path.is_dir():
        raise CliError(f"--out {out!r} is a folder; give a file name in it, such as {str(path / 'image.png')!r}")
    folder = Path(os.path.abspath(path)).parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CliError(f"--out {out!r}: {str(existing)!r} is a file, not a folder")
    if existing != folder and existing == existing.parent:
        missing = folder.relative_to(existing).parts[0]
        raise CliError(
            f"--out {out!r}: the folder {str(existing / missing)!r} does not exist and would be made at the "
            "filesystem root; create it first, or write under a folder you own (e.g. a relative path)"
        )
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".inertia-probe-", suffix=".png")
    except OSError as err:
        raise CliError(f"--out {out!r}: cannot write in {str(existing)!r} ({err.strerror or err})") from None
    os.close(handle)
    os.unlink(probe)
    return existing


UI_INSTALL = 'pip install "inertia[ui]"'
"""What ``inertia demo`` needs installed (the ``ui`` extra: Gradio)."""
EXTRAS = {"gradio": "ui", "gradio_client": "ui", "gguf": "text", "scipy": "scipy", "sklearn": "train"}
"""The extra of ``pyproject.toml`` that installs each optional module."""


def install_hint(module: str) -> str:
    """The command that installs an optional ``module``: its extra's, else the module's own.

    Example:
        >>> install_hint("gradio.blocks")
        'pip install "inertia[ui]"'
    """
    top = module.split(".")[0]
    return f'pip install "inertia[{EXTRAS[top]}]"' if top in EXTRAS else f"pip install {top}"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or one without a spec
        return False


def check_host_port(host: str, port: int) -> None:
    """Checks that ``--host`` is an address of this machine and ``--port`` is free on it, by binding a socket there
    and closing it at once (as the server will bind, with ``SO_REUSEADDR``), so each failure names its own flag.

    Raises:
        CliError: naming ``--host`` (not an address, or not one of this machine) or ``--port`` (in use, privileged).
    """
    if re.fullmatch(r"[\d.]+", host):  # dotted numbers: an IPv4 address or nothing (never a name to look up)
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise CliError(f"--host must be an IP address or a host name of this machine, got {host!r}") from None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise CliError(f"--host {host!r} is not an address or a host name of this machine ({reason})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise CliError(f"--port {port} is already in use on {host}; choose another port") from None
            if err.errno == errno.EACCES:
                raise CliError(f"--port {port} needs administrator rights here (ports below 1024); use 7860") from None
            raise CliError(f"--host {host!r} is not an address of this machine ({err.strerror})") from None
