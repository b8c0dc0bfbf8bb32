"""Whole ComfyUI workflows run headless by ComfyUI's own executor, without its web server.

ComfyUI 0.3.75 runs a queued prompt (an API-format workflow: ``{node id: {"class_type", "inputs"}}``) with
``execution.validate_prompt`` and then ``execution.PromptExecutor.execute``; the server it normally hands the
executor only receives progress messages, so :class:`Messages` stands in for it and keeps them. :func:`load_nodes`
registers ComfyUI's built-in nodes and a custom-node folder as ComfyUI's start-up does (``init_extra_nodes``,
``load_custom_node``), :func:`run_prompt` validates and executes one prompt and returns what ComfyUI's history would
hold. Model files are found through ``folder_paths``: :func:`use_folders` points ``checkpoints`` and the output
folder at temporary folders. Needs ``make comfyui``; used by ``tests/adapters/comfyui/test_workflows.py`` and
:mod:`benchmarks.samplers.comfyui_picture`.

Example:
    >>> from benchmarks.peers.comfyui_headless import Messages
    >>> server = Messages()
    >>> server.send_sync("executing", {"node": "1"}); [event for event, _ in server.messages]
    ['executing']
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.peers import comfyui

__all__ = ["Messages", "Run", "load_nodes", "run_prompt", "use_folders"]


class Messages:
    """Stands where ComfyUI's ``PromptServer`` stands for the executor: keeps the messages it would send."""

    client_id: str | None = None
    last_node_id: str | None = None

    def __init__(self) -> None:
        self.messages: list[tuple[str, Any]] = []

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        self.messages.append((event, data))

    def queue_updated(self) -> None:
        return None


@dataclass
class Run:
    """One executed prompt: whether it succeeded, ComfyUI's history entry and the executor (for its caches)."""

    success: bool
    history: dict[str, Any]
    executor: Any
    messages: list[tuple[str, Any]] = field(default_factory=list)

    def output(self, node_id: str, index: int = 0) -> Any:
        """The value a node returned (its output ``index``) in this run, from the executor's output cache."""
        entry = self.executor.caches.outputs.get(node_id)
        if entry is None:
            raise KeyError(f"node {node_id!r} has no cached output")
        return entry.outputs[index][0]

    def error(self) -> str | None:
        """The executor's error message and the last lines of its traceback, or None."""
        for event, data in self.messages:
            if event == "execution_error":
                return f"{data['node_type']}: {data['exception_message']}\n{''.join(data['traceback'][-3:])}"
        return None


def load_nodes(*custom_node_folders: Path) -> dict[str, type]:
    """ComfyUI's built-in nodes plus the given custom-node folders; returns ``nodes.NODE_CLASS_MAPPINGS``.

    Raises:
        RuntimeError: when ComfyUI is not in the cache or a folder does not load.
    """
    if comfyui.load() is None:
        raise RuntimeError(f"ComfyUI {comfyui.VERSION} is not in the cache: run `{comfyui.FETCH}`")
    import nodes

    if "SamplerCustom" not in nodes.NODE_CLASS_MAPPINGS:
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    for folder in custom_node_folders:
        if not asyncio.run(nodes.load_custom_node(str(folder))):
            raise RuntimeError(f"ComfyUI could not load the custom-node folder {folder}")
    return nodes.NODE_CLASS_MAPPINGS


def use_folders(checkpoints: Path | None = None, output: Path | None = None) -> None:
    """Registers ``checkpoints`` as ComfyUI's first checkpoint folder and ``output`` as its output folder."""
    import folder_paths

    if checkpoints is not None:
        folder_paths.add_model_folder_path("checkpoints", str(checkpoints), is_default=True)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        folder_paths.set_output_directory(str(output))


def run_prompt(prompt: dict[str, Any], prompt_id: str = "inertia") -> Run:
    """Validates ``prompt`` as ComfyUI's ``/prompt`` endpoint does and runs it with ``execution.PromptExecutor``.

    Raises:
        ValueError: when ComfyUI's validation rejects the prompt (its message and the per-node errors).
    """
    import execution

    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    if not valid:
        raise ValueError(f"ComfyUI rejected the prompt: {error}; {node_errors}")
    server = Messages()
    executor = execution.PromptExecutor(server, cache_type=execution.CacheType.CLASSIC, cache_args={"ram": 16.0})
    executor.execute(prompt, prompt_id, {}, outputs)
    messages = executor.status_messages
    success = executor.success and not any(event == "execution_error" for event, _ in messages)
    return Run(success, executor.history_result, executor, messages)
