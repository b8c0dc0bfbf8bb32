"""The llama.cpp adapter (through llama-cpp-python): momentum decoding and the momentum penalty as
``logits_processor=`` callables, and the decoding loops the text products run on a ``llama_cpp.Llama``.

- :mod:`~inertia.adapters.llama_cpp.availability`: whether llama-cpp-python is installed, and the named error if not
  (standard library only: checked before any model loads).
- :mod:`~inertia.adapters.llama_cpp.logits_processor`: :class:`MomentumDecodingLlamaCppProcessor` (numpy in, numpy
  out; needs no llama-cpp-python to import).
- :mod:`~inertia.adapters.llama_cpp.momentum_penalty`: :class:`MomentumPenaltyLlamaCppProcessor`, the momentum
  penalty (our extension) in front of llama.cpp's sampling chain (numpy in, numpy out; no llama-cpp-python needed).
- :mod:`~inertia.adapters.llama_cpp.generate`: token generators for greedy search, momentum decoding, sampling (with
  or without the momentum penalty) and llama.cpp's own penalties and DRY.

Importing this package imports nothing from llama-cpp-python.
"""
