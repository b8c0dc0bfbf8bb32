"""One adapter package per host: each translates its host's calling convention into :mod:`inertia.core` calls.

- :mod:`inertia.adapters.diffusers`: schedulers, the classic-pipeline guidance hook, modular guiders, attention hooks.
- :mod:`inertia.adapters.transformers`: the logits processor, ``custom_generate`` callables, the attention interface.
- :mod:`inertia.adapters.k_diffusion`: k-diffusion-style sampler functions (no diffusers, no transformers).
- :mod:`inertia.adapters.llama_cpp`: momentum decoding as a llama-cpp-python logits processor, and the decoding
  loops of the llama.cpp text backend (llama-cpp-python is an optional extra, imported only when used).

No adapter imports another.
"""
