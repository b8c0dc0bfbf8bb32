"""A class-conditional ``UNet2DModel`` trained with VP / EDM / FDM preconditioning, seen by diffusers as an ε-model.

Host-adapter layer: the math lives in :mod:`inertia.core.diffusion.precond` and :mod:`inertia.core.diffusion.loss`. From the
outside :class:`PreconditionedUNet` looks exactly like a ``UNet2DModel`` predicting ε on a discrete VP schedule, so
any diffusers ε-scheduler (DDIM, DPM-Solver, inertia's momentum schedulers) can drive it with
``unet(x, t, class_labels=labels).sample``. Inside, it maps ``x_t, t`` to EDM's ``x̂, σ``, runs the preconditioned
denoiser ``D(x̂; σ) = c_skip·x̂ + c_out·F(c_in·x̂, c_noise)`` and returns ``ε = (x̂ − D)/σ``.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.unets.unet_2d import UNet2DOutput

from inertia.core.diffusion.loss import LossWeightWarmup, denoising_loss
from inertia.core.diffusion.precond import (
    DiscreteSigmaSchedule,
    Preconditioning,
    alphas_cumprod_for_schedule,
)

__all__ = ["TINY_CONFIG", "PreconditionedUNet"]

TINY_CONFIG: dict[str, Any] = {
    "block_out_channels": (8, 16, 16),
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "attention_head_dim": 8,
}
"""UNet settings of :meth:`PreconditionedUNet.tiny` (about 75k parameters; for tests)."""

TIME_CONDITIONINGS = ("default", "scale_shift")
"""How each ResNet block takes the time + class embedding: ``"default"`` adds it to the features, ``"scale_shift"``
scales and shifts the normalised features with it (adaptive group norm, Dhariwal & Nichol 2021, Sec. 3)."""


class PreconditionedUNet(ModelMixin, ConfigMixin):
    """ε-prediction front end for a ``UNet2DModel`` trained with ``"vp"``, ``"edm"`` or ``"fdm"`` preconditioning.

    The call convention is ``UNet2DModel``'s: ``forward(sample, timestep, class_labels=None, return_dict=True)``
    returns ``UNet2DOutput(sample=ε)``. ``timestep`` is a python number or a 0-d/1-d tensor (integer or fractional
    diffusers timesteps in [0, N−1], broadcast to the batch). ``class_labels=None`` means the null label
    ``num_class_embeds − 1`` (the unconditional branch of classifier-free guidance).

    Args:
        preconditioning: ``"vp"``, ``"edm"`` or ``"fdm"`` (see :class:`~inertia.core.diffusion.precond.Preconditioning`).
        fdm_multiplier: FDM's m > 0 (2.0 as the paper's ``train.py``).
        fdm_base: ``"edm"`` (EDM-FDM, default) or ``"vp"`` (VP-FDM); only used when ``preconditioning="fdm"``.
        sigma_data: EDM σ_data (0.5).
        num_train_timesteps: N of the diffusers schedule.
        beta_start: β_0 of the diffusers schedule.
        beta_end: β_{N−1} of the diffusers schedule.
        beta_schedule: ``"scaled_linear"`` (SD style) or ``"linear"`` (DDPM).
        sample_size: Image side length.
        in_channels: Image channels (ε has the same number).
        out_channels: Must equal ``in_channels``.
        down_block_types: ``UNet2DModel`` down blocks (self-attention at the lower resolutions).
        up_block_types: ``UNet2DModel`` up blocks, mirroring ``down_block_types``.
        block_out_channels: Channels per resolution.
        layers_per_block: ResNet layers per block.
        norm_num_groups: GroupNorm groups (must divide every entry of ``block_out_channels``).
        attention_head_dim: Attention head size.
        num_class_embeds: Number of class embeddings including the null label (11: digits 0-9 + null), or ``None``
            for an unconditional model.
        dropout: ResNet dropout.
        resnet_time_scale_shift: How the ResNets take the time + class embedding, one of
            :data:`TIME_CONDITIONINGS` (``UNet2DModel``'s argument of the same name).

    Example:
        >>> import torch
        >>> unet = PreconditionedUNet.tiny(preconditioning="fdm")
        >>> x = torch.randn(2, 3, 16, 16)
        >>> eps = unet(x, 500, class_labels=torch.tensor([7, 10])).sample
        >>> eps.shape
        torch.Size([2, 3, 16, 16])
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        preconditioning: str = "edm",
        fdm_multiplier: float = 2.0,
        fdm_base: str = "edm",
        sigma_data: float = 0.5,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        beta_schedule: str = "scaled_linear",
        sample_size: int = 16,
        in_channels: int = 3,
        out_channels: int = 3,
        down_block_types: tuple[str, ...] = ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        block_out_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 2,
        norm_num_groups: int = 16,
        attention_head_dim: int = 8,
        num_class_embeds: int | None = 11,
        dropout: float = 0.0,
        resnet_time_scale_shift: str = "default",
    ) -> None:
        super().__init__()
        # validates preconditioning / fdm_base / fdm_multiplier / sigma_data with a ValueError naming each
        self.precond = Preconditioning(preconditioning, fdm_multiplier, fdm_base, sigma_data)
        self.schedule = DiscreteSigmaSchedule(
            alphas_cumprod_for_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule)
        )
        if out_channels != in_channels:
            raise ValueError(
                f"`out_channels` must equal `in_channels` ({in_channels}) for an ε-prediction model, got {out_channels!r}."
            )
        if num_class_embeds is not None and (
            isinstance(num_class_embeds, bool) or not isinstance(num_class_embeds, int) or num_class_embeds < 2
        ):
            raise ValueError(
                f"`num_class_embeds` must be None or an integer in [2, inf) (classes + null label), got {num_class_embeds!r}."
            )
        if resnet_time_scale_shift not in TIME_CONDITIONINGS:
            raise ValueError(
                f"`resnet_time_scale_shift` must be one of {TIME_CONDITIONINGS}, got {resnet_time_scale_shift!r}."
            )
        bad = [c for c in block_out_channels if c % norm_num_groups]
        if bad:
            raise ValueError(
                f"`norm_num_groups` must divide every entry of `block_out_channels` {tuple(block_out_channels)}, "
                f"got {norm_num_groups!r}."
            )
        self.unet = UNet2DModel(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types),
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups,
            attention_head_dim=attention_head_dim,
            num_class_embeds=num_class_embeds,
            class_embed_type=None,
            dropout=dropout,
            resnet_time_scale_shift=resnet_time_scale_shift,
        )

    @classmethod
    def tiny(cls, **overrides: Any) -> PreconditionedUNet:
        """A randomly initialised ~75k-parameter model (:data:`TINY_CONFIG`) for tests; ``overrides`` win."""
        return cls(**{**TINY_CONFIG, **overrides})

    @property
    def null_class_label(self) -> int | None:
        """The label meaning "no class" (``num_class_embeds − 1``), or ``None`` for an unconditional model."""
        n = self.config.num_class_embeds
        return None if n is None else n - 1

    # ------------------------------------------------------------------------------------------------------------
    # Input handling
    # ------------------------------------------------------------------------------------------------------------

    def _check_sample(self, sample: torch.Tensor, name: str = "sample") -> None:
        c = self.config.in_channels
        if not torch.is_tensor(sample) or sample.ndim != 4 or sample.shape[1] != c:
            shape = tuple(sample.shape) if torch.is_tensor(sample) else type(sample).__name__
            raise ValueError(f"`{name}` must be a tensor of shape (batch, {c}, height, width), got {shape}.")
        if not sample.is_floating_point():
            raise ValueError(f"`{name}` must be a floating-point tensor, got dtype {sample.dtype}.")

    def _timesteps(self, timestep: torch.Tensor | float | int, batch: int, device: torch.device) -> torch.Tensor:
        """Any accepted timestep form → float64 ``(batch,)`` on ``device``."""
        n = self.config.num_train_timesteps
        if isinstance(timestep, bool) or not (torch.is_tensor(timestep) or isinstance(timestep, int | float)):
            raise ValueError(f"`timestep` must be a number or a 0-d/1-d tensor in [0, {n - 1}], got {timestep!r}.")
        t = torch.as_tensor(timestep, device=device)
        if t.dtype == torch.bool or t.is_complex() or t.ndim > 1 or t.numel() not in (1, batch):
            raise ValueError(
                f"`timestep` must be a real scalar or a 1-d tensor of {batch} values in [0, {n - 1}], "
                f"got shape {tuple(t.shape)} and dtype {t.dtype}."
            )
        t = t.to(torch.float64).reshape(-1).expand(batch)
        if not torch.compiler.is_compiling() and not bool(((t >= 0) & (t <= n - 1)).all()):
            raise ValueError(f"`timestep` must lie in [0, {n - 1}], got {timestep!r}.")
        return t

    def _class_labels(self, class_labels: torch.Tensor | int | None, batch: int, device: torch.device) -> Any:
        """``None`` → the null label; validates integer labels in [0, num_class_embeds − 1]."""
        n = self.config.num_class_embeds
        if n is None:
            if class_labels is not None:
                raise ValueError(f"`class_labels` must be None for an unconditional model, got {class_labels!r}.")
            return None
        if class_labels is None:
            return torch.full((batch,), n - 1, dtype=torch.long, device=device)
        if isinstance(class_labels, bool):
            raise ValueError(f"`class_labels` must be integers in [0, {n - 1}], got {class_labels!r}.")
        labels = torch.as_tensor(class_labels, device=device)
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
            raise ValueError(f"`class_labels` must be integers in [0, {n - 1}], got dtype {labels.dtype}.")
        if labels.ndim > 1 or labels.numel() not in (1, batch):
            raise ValueError(
                f"`class_labels` must be a scalar or a 1-d tensor of {batch} labels, got shape {tuple(labels.shape)}."
            )
        labels = labels.long().reshape(-1).expand(batch)
        if not torch.compiler.is_compiling() and not bool(((labels >= 0) & (labels < n)).all()):
            raise ValueError(
                f"`class_labels` must lie in [0, {n - 1}] ({n - 1} = null label), got {labels.tolist()!r}."
            )
        return labels

    def _network(self, x_in: torch.Tensor, c_noise: torch.Tensor, labels: Any) -> torch.Tensor:
        """F(c_in·x̂, c_noise; labels): the raw UNet output, in the UNet's dtype."""
        param = next(self.unet.parameters(), None)
        dtype = x_in.dtype if param is None else param.dtype
        return self.unet(x_in.to(dtype), c_noise.to(x_in.device), class_labels=labels).sample

    # ------------------------------------------------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------------------------------------------------

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        class_labels: torch.Tensor | int | None = None,
        return_dict: bool = True,
    ) -> UNet2DOutput | tuple[torch.Tensor]:
        """ε(x_t, t) for a diffusers VP ε-scheduler, in ``sample``'s dtype.

        Args:
            sample: Noisy sample x_t, ``(B, C, H, W)``.
            timestep: Diffusers timestep(s) in [0, N−1]; fractional values interpolate ln σ.
            class_labels: Integer labels in [0, num_class_embeds − 1]; ``None`` = null label.
            return_dict: Return ``UNet2DOutput`` (default) or a 1-tuple.
        """
        self._check_sample(sample)
        batch = sample.shape[0]
        t = self._timesteps(timestep, batch, sample.device)
        labels = self._class_labels(class_labels, batch, sample.device)
        x_hat, sigma = self.schedule.vp_to_edm(sample, t)  # x̂ = x_t/sqrt(ᾱ), σ = sqrt((1−ᾱ)/ᾱ)
        eps = self.precond.epsilon(self._network, x_hat, sigma, labels).to(sample.dtype)  # ε = (x̂ − D)/σ
        if not return_dict:
            return (eps,)
        return UNet2DOutput(sample=eps)

    def denoise_x0(
        self,
        sample_hat: torch.Tensor,
        sigma: torch.Tensor | float,
        class_labels: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """The denoiser D(x̂; σ) in EDM space (x̂ = x0 + σ·n, *not* the VP x_t), in the compute dtype.

        σ (scalar or ``(B,)``) is used as is, without clamping to the schedule's range.
        """
        self._check_sample(sample_hat, "sample_hat")
        batch = sample_hat.shape[0]
        sigma_t = torch.as_tensor(sigma, device=sample_hat.device, dtype=torch.float64).reshape(-1)
        if sigma_t.numel() not in (1, batch) or (not torch.compiler.is_compiling() and not bool((sigma_t > 0).all())):
            raise ValueError(f"`sigma` must be a positive scalar or a 1-d tensor of {batch} values, got {sigma!r}.")
        labels = self._class_labels(class_labels, batch, sample_hat.device)
        return self.precond.denoise(self._network, sample_hat, sigma_t.expand(batch), labels)

    def training_loss(
        self,
        x0: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        warmup: LossWeightWarmup | None = None,
        cond_drop_prob: float = 0.0,
        sigma: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Weighted denoising loss of one batch via :func:`inertia.core.diffusion.loss.denoising_loss`.

        Args:
            x0: Clean images in [−1, 1], ``(B, C, H, W)``.
            class_labels: Labels ``(B,)``; ``None`` trains the null label.
            generator: Random source for σ, noise and label dropout.
            warmup: Optional FDM loss-weight clamp warm-up (the caller steps it after each optimizer step).
            cond_drop_prob: Probability in [0, 1] of replacing a label by the null label (classifier-free guidance).
            sigma: Optional fixed σ ``(B,)``.
            noise: Optional fixed noise shaped like ``x0``.

        Returns:
            ``(loss, stats)`` as :func:`~inertia.core.diffusion.loss.denoising_loss`.
        """
        self._check_sample(x0, "x0")
        if (
            isinstance(cond_drop_prob, bool)
            or not isinstance(cond_drop_prob, int | float)
            or not 0 <= cond_drop_prob <= 1
        ):
            raise ValueError(f"`cond_drop_prob` must be a number in [0, 1], got {cond_drop_prob!r}.")
        batch = x0.shape[0]
        labels = self._class_labels(class_labels, batch, x0.device)
        if labels is not None and cond_drop_prob > 0:
            gen_device = generator.device if generator is not None else torch.device("cpu")
            drop = torch.rand(batch, generator=generator, device=gen_device).to(x0.device) < cond_drop_prob
            labels = torch.where(drop, torch.full_like(labels, self.null_class_label), labels)
        return denoising_loss(
            self._network,
            x0,
            labels,
            self.precond,
            generator,
            schedule=self.schedule,
            warmup=warmup,
            sigma=sigma,
            noise=noise,
        )
