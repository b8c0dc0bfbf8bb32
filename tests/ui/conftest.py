"""The app under test: built once per test process, served on a free 127.0.0.1 port and driven with gradio_client.

Text tests share the process's SmolLM2 (``tests.adapters.transformers.smollm2.shared_smollm2``, loaded on first use) and carry
``xdist_group("smollm2")``, so with ``--dist loadgroup`` one worker loads it once for every test that needs it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


GRADIO_WARNINGS = (
    "ignore:'future.no_silent_downcasting' is deprecated",  # gradio 6.31's queue with pandas 3
    "ignore:The copy keyword is deprecated",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silences two pandas-3 deprecation warnings raised inside Gradio's queue (not our code) in these tests."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            for spec in GRADIO_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_on_free_port(demo: Any) -> Any:
    """Launches ``demo`` in the background on a free loopback port (retrying if another process takes it first)."""
    from inertia.ui import serve

    last: OSError | None = None
    for _ in range(5):
        try:
            return serve(demo, host="127.0.0.1", port=free_port(), quiet=True)
        except OSError as err:  # the port was taken between probing and binding
            last = err
    raise RuntimeError(f"could not start the app on a free port: {last}")


def _shared_text_model(device: Any) -> tuple[Any, Any]:
    from tests.adapters.transformers.smollm2 import shared_smollm2

    return shared_smollm2()


@pytest.fixture(scope="session")
def ui_app() -> Iterator[Any]:
    """The app on the CPU, four requests at a time, text model = the process's shared SmolLM2."""
    from inertia.ui import ModelStore, build_app

    store = ModelStore(device="cpu", text_loader=_shared_text_model)
    demo = build_app(store=store, concurrency_limit=4)
    serve_on_free_port(demo)
    yield demo
    demo.close()


@pytest.fixture(scope="session")
def client(ui_app: Any) -> Any:
    from gradio_client import Client

    return Client(ui_app.local_url, verbose=False)
