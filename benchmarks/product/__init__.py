"""What a user of the product meets (docs/benchmarks: §7, §9): the demos, response times, the embedded models.

* :mod:`~benchmarks.product.response_times`: §7, how long the demo and the CLI take on the embedded models.
* :mod:`~benchmarks.product.embedded_model`: §9, scores an embedded digits model (``report``,
  :mod:`~benchmarks.product.embedded_report`) and tunes its presets (``tune``, :mod:`~benchmarks.product.embedded_tune`),
  both through :mod:`~benchmarks.product.embedded_scoring`; :mod:`~benchmarks.product.embedded_apg_search`: the second
  APG search behind the 32x32 model's ``apg`` preset.
* :mod:`~benchmarks.product.demo`: a terminal side-by-side of the samplers at high guidance.
* :mod:`~benchmarks.product.host_versions`: the host libraries' versions beside the lock (``make test-latest``).
"""
