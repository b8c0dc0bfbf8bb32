"""Shared test setup.

`make test` runs pytest with two workers on two cores; one torch thread per worker avoids OpenMP oversubscription,
which turns 0.1 s tiny-pipeline calls into 5-20 s ones on a busy machine.
"""

import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
torch.set_num_threads(1)
