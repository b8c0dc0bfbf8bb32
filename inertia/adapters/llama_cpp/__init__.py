"""The llama.cpp adapter (through llama-cpp-python): momentum decoding as a ``logits_processor=`` callable, and the
decoding loops the text products run on a ``llama_cpp.Llama``.

- :mod:`~inertia.adapters.llama_cpp.availability`: whether llama-cpp-python is installed, and the named error if not
  (standard library only: checked before any model loads).
- :mod:`~inertia.adapters.llama_cpp.logits_processor`: :class:`MomentumDecodingLlamaCppProcessor` (numpy in, numpy
  out; needs no llama-cpp-python to import).
- :mod:`~inertia.adapters.llama_cpp.generate`: token generators for greedy search, momentum decoding, sampling and
  llama.cpp's own penalties and DRY.

Importing this package imports nothing from llama-cpp-python.
"""
