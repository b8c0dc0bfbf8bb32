"""Math core of the embedded image model's diffusion formulation (pure torch, no host library).

:mod:`inertia.core.diffusion.precond` holds the diffusers-VP-schedule ↔ EDM-σ conversions and the VP / EDM / FDM
preconditionings; :mod:`inertia.core.diffusion.loss` the weighted denoising loss and FDM's loss-weight warm-up. Both the
model wrapper (:mod:`inertia.models`) and the training recipe (:mod:`inertia.training`) import them, so imports run
one way: training → models → diffusion.

Example:
    >>> import torch
    >>> from inertia.core.diffusion.precond import Preconditioning
    >>> Preconditioning("vp").coefficients(torch.tensor([2.0])).c_out.item()
    -2.0
"""
