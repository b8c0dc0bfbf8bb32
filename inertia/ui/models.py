"""Model state of the Gradio app: the device, and the image and text models, each loaded once and cached.

Requests share the cached models but never their per-call state: :func:`inertia.pipelines.presets.configure` gives a
pipeline a fresh scheduler and fresh guidance / attention hooks, so each request holds its model's lock around
``configure`` + the pipeline call (and the text model's lock around ``generate``). Requests for different models run
in parallel, up to the queue's concurrency limit; loads of image models take turns (one lock for all names: a
hub pipeline's ``from_pretrained`` resolves its classes through diffusers' lazy module, which two threads must not
do at once).

Nothing here imports Gradio: errors are plain exceptions (:class:`UserInputError` for bad input), turned into
``gr.Error`` by the tabs.

Example:
    >>> store = ModelStore(device="cpu")
    >>> store.device.type
    'cpu'
    >>> normalize_model_name("  ")
    'digits'
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "EMBEDDED_IMAGE_MODEL",
    "ImageModel",
    "ModelStore",
    "TextModel",
    "UserInputError",
    "describe_device",
    "normalize_model_name",
    "resolve_device",
]

EMBEDDED_IMAGE_MODEL = "digits"
"""The name that selects the embedded class-conditional digits model."""


class UserInputError(ValueError):
    """An input the user can fix (shown as a readable error in the app).

    Example:
        >>> try:
        ...     resolve_device("tpu")
        ... except UserInputError as err:
        ...     print(err)
        device must be a torch device such as 'cpu' or 'cuda', got 'tpu'.
    """


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a `torch.device`; None picks CUDA when available, else the CPU.

    Raises:
        UserInputError: an unknown device, or CUDA asked for where there is none.
    """
    if device is None or device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserInputError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device={device!r} was requested but CUDA is not available; use 'cpu'.")
    if resolved.type not in ("cpu", "cuda"):
        raise UserInputError(f"device must be 'cpu' or 'cuda', got {device!r}.")
    return resolved


def describe_device(device: torch.device) -> str:
    """A one-line description: ``"CPU (2 torch threads, models in float32)"`` or ``"CUDA 0: NVIDIA H100 (...)"``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"CUDA {index}: {torch.cuda.get_device_name(index)} (image models in float16, text in bfloat16)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} torch thread{'' if threads == 1 else 's'}, models in float32)"


def normalize_model_name(name: str | None) -> str:
    """The cache key of an image model name: ``"digits"`` for empty / None / the embedded model's aliases."""
    text = (name or "").strip()
    if text.lower() in ("", EMBEDDED_IMAGE_MODEL, "digits (embedded)", "embedded"):
        return EMBEDDED_IMAGE_MODEL
    return text


@dataclass
class ImageModel:
    """A cached image pipeline and the lock that serialises ``configure`` + sampling on it.

    Example:
        >>> model = ImageModel(name="digits", pipe=object())
        >>> model.is_digits, model.warm   # `is_digits` looks at the pipeline's class name
        (False, False)
    """

    name: str
    pipe: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    warm: bool = False
    """Whether a first (untimed) call has run."""

    @property
    def is_digits(self) -> bool:
        """Whether the pipeline is class-conditional on digits (takes digits, not prompts)."""
        return type(self.pipe).__name__ == "DigitsPipeline"


@dataclass
class TextModel:
    """The cached causal LM, its tokenizer, and the lock that serialises ``generate`` on it.

    Example:
        >>> text = TextModel(model="lm", tokenizer="tokenizer")
        >>> with text.lock:   # one `generate` at a time on the shared model
        ...     text.model
        'lm'
    """

    model: Any
    tokenizer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class ModelStore:
    """Loads models on first use and keeps them: image pipelines by name (least recently used evicted past
    ``max_image_models``), one text model.

    Args:
        device: None for CUDA when available, else the CPU.
        max_image_models: how many image pipelines stay loaded at once (>= 1).
        text_loader: ``(device) -> (model, tokenizer)``; defaults to the embedded SmolLM2-135M.
        image_loader: ``(name, device) -> pipeline``; defaults to :func:`inertia.pipelines.image.load_image_pipeline`.

    Example:
        >>> loads = []
        >>> store = ModelStore("cpu", max_image_models=1, image_loader=lambda name, device: loads.append(name) or name)
        >>> store.image().pipe, store.image("digits").pipe, loads   # loaded on first use, then cached
        ('digits', 'digits', ['digits'])
        >>> store.image("my/model").pipe, store.image().pipe, loads   # one kept: the embedded one is loaded again
        ('my/model', 'digits', ['digits', 'my/model', 'digits'])
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        max_image_models: int = 2,
        text_loader: Callable[[torch.device], tuple[Any, Any]] | None = None,
        image_loader: Callable[[str, torch.device], Any] | None = None,
    ) -> None:
        if isinstance(max_image_models, bool) or not isinstance(max_image_models, int) or max_image_models < 1:
            raise ValueError(f"`max_image_models` must be an int >= 1, got {max_image_models!r}.")
        self.device = resolve_device(device)
        self.max_image_models = max_image_models
        self._text_loader = text_loader or _load_embedded_text
        self._image_loader = image_loader or _load_image
        self._images: OrderedDict[str, ImageModel] = OrderedDict()
        self._images_lock = threading.Lock()
        self._loading = threading.Lock()
        self._text: TextModel | None = None
        self._text_lock = threading.Lock()

    def image(self, name: str | None = None) -> ImageModel:
        """The image model ``name`` (None / "digits" for the embedded one), loaded on first use.

        Raises:
            UserInputError: the name is neither the embedded model, a saved pipeline folder nor a loadable hub id.
        """
        key = normalize_model_name(name)
        with self._images_lock:
            cached = self._images.get(key)
            if cached is not None:
                self._images.move_to_end(key)
                return cached
        with self._loading:  # one load at a time, and one per name however many requests ask at once
            with self._images_lock:
                cached = self._images.get(key)
                if cached is not None:
                    return cached
            try:
                pipe = self._image_loader(key, self.device)
            except Exception as err:  # any load failure is the user's to fix (path, hub id, network)
                raise UserInputError(f"Could not load the image model {key!r}: {_first_line(err)}") from err
            model = ImageModel(name=key, pipe=pipe)
            with self._images_lock:
                self._images[key] = model
                while len(self._images) > self.max_image_models:
                    self._images.popitem(last=False)  # a request still using it keeps its own reference
            return model

    def text(self) -> TextModel:
        """The text model, loaded on first use (the embedded SmolLM2-135M takes ~20 s on a CPU).

        Raises:
            UserInputError: the model is not installed (the message says what to install).
        """
        with self._text_lock:
            if self._text is None:
                try:
                    model, tokenizer = self._text_loader(self.device)
                except Exception as err:
                    raise UserInputError(f"Could not load the text model: {_first_line(err)}") from err
                self._text = TextModel(model=model, tokenizer=tokenizer)
            return self._text

    def set_text_model(self, model: Any, tokenizer: Any) -> None:
        """Uses an already loaded ``(model, tokenizer)`` as the text model (tests, notebooks)."""
        with self._text_lock:
            self._text = TextModel(model=model, tokenizer=tokenizer)

    @property
    def text_loaded(self) -> bool:
        """Whether the text model is in memory."""
        return self._text is not None

    def preload_text(self) -> threading.Thread:
        """Starts loading the text model in a daemon thread (errors are reported by the first text request)."""

        def run() -> None:
            try:
                self.text()
            except UserInputError:
                pass

        thread = threading.Thread(target=run, name="inertia-ui-text-preload", daemon=True)
        thread.start()
        return thread


def _load_image(name: str, device: torch.device) -> Any:
    from inertia.pipelines.image import load_image_pipeline

    # load_image_pipeline also takes a user's saved DigitsPipeline folder (diffusers does not know its class)
    pipe = load_image_pipeline(None if name == EMBEDDED_IMAGE_MODEL else name, device)
    pipe.set_progress_bar_config(desc="denoising", leave=False)
    return pipe


def _load_embedded_text(device: torch.device) -> tuple[Any, Any]:
    from inertia.pipelines.text import load_text_model

    return load_text_model(device=device)
