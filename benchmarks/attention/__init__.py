"""Momentum attention benchmarks (docs/benchmarks: §5, §8, §13): UNets, language models and the cache peers.

* :mod:`~benchmarks.attention.unet_attention`: §5, speed on an SD1.5-sized UNet and quality on the digits model, vs
  FasterCache's rule: what it compares (:mod:`~benchmarks.attention.unet_attention_grid`), the speed
  (:mod:`~benchmarks.attention.unet_attention_speed`), the quality (:mod:`~benchmarks.attention.unet_attention_quality`)
  and the report (:mod:`~benchmarks.attention.unet_attention_report`).
* :mod:`~benchmarks.attention.lm_attention`: §8, Dai et al.'s momentum attention on SmolLM2-135M, training-free (the
  fine-tuned arm is :mod:`benchmarks.training.lm_finetune`).
* :mod:`~benchmarks.attention.vs_peers`: §13, ``extrapolate`` against diffusers' caches and fewer steps (its report:
  :mod:`~benchmarks.attention.vs_peers_report`).
"""
