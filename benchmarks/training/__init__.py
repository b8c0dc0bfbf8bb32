"""Training benchmarks (docs/benchmarks: §3, §8, §9): the digits models, FDM vs VP, the digit classifier, LM fine-tuning.

* :mod:`~benchmarks.training.eval_digits_model`: §3, scores trained digits pipelines and compares training runs.
* :mod:`~benchmarks.training.fdm_study`: §9, FDM vs VP with several seeds per arm (trains and reports).
* :mod:`~benchmarks.training.digit_classifier`: trains the classifier behind ``inertia.metrics.digits``.
* :mod:`~benchmarks.training.lm_finetune`: §8, momentum attention fine-tuned into SmolLM2-135M vs a control.
"""
