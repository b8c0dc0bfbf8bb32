"""The inertia Gradio app (``inertia demo``): momentum samplers, guidance and attention on images, momentum decoding
on text, each side by side with its baseline.

Needs the ``ui`` extra (``pip install "inertia[ui]"``, i.e. ``gradio>=6``).
"""

from inertia.ui.app import build_app, launch, serve
from inertia.ui.models import ModelStore

__all__ = ["ModelStore", "build_app", "launch", "serve"]
