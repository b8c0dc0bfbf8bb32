"""The ComfyUI page's picture: whole workflows run headless by ComfyUI 0.3.75 on inertia's embedded digits model.

The embedded 32x32 digits model (``inertia/models/digits32``, an ε-model on SD1.5's noise schedule) becomes a ComfyUI
MODEL: a ``comfy.model_base.BaseModel`` (ε prediction, SD1.5's ``ModelSamplingDiscrete``) whose diffusion model is the
digits UNet, fed ComfyUI's scaled input and integer timestep as an SD1.5 UNet is; the digit labels travel as the
conditioning's ``cross_attn`` tensor (label 10 is the model's null label, the negative prompt). Its VAE is ComfyUI's
own pixel-space VAE (``comfy.sd.VAE`` on a ``pixel_space_vae`` state dict), so ``VAEDecode`` maps [-1, 1] to images.
Two nodes local to this script load them (:class:`DigitsModelNode`, :class:`DigitLabelsNode`); everything else is a
graph of ComfyUI's nodes (BasicScheduler, KSamplerSelect, SamplerCustom, VAEDecode) and ours (InertiaHBDPMPP2M,
InertiaAPG), validated and run by ComfyUI's ``execution.PromptExecutor`` (:mod:`benchmarks.peers.comfyui_headless`).

Rows: ComfyUI's ``dpmpp_2m`` against our HB-DPM++ 2M node at β = 0.8 (the paper's), each with plain CFG and with our
APG node (η 0, momentum 0, r 1.6: the digits model's tuned APG preset, ``inertia_presets.json``), at CFG 15 with 6
and 10 Karras steps; columns: digits 0-9, one seed for the whole batch. Needs ``make comfyui``.

Usage::

    python -m benchmarks.samplers.comfyui_picture [--out docs/figures/comfyui_workflow.png] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from benchmarks.common.paths import FIGURE_DIR, REPO_ROOT
from benchmarks.peers import comfyui
from benchmarks.product.embedded_report import render_grid
from inertia.models.preconditioned_unet import PreconditionedUNet
from inertia.pipelines.limits import embedded_digits_folder

FIGURE = FIGURE_DIR / "comfyui_workflow.png"
FOLDER = REPO_ROOT / "comfyui" / "inertia_nodes"
NULL_LABEL = 10
CFG = 15.0
STEPS = (6, 10)
BETA = 0.8
APG = {"eta": 0.0, "momentum": 0.0, "norm_threshold": 1.6, "start": 0.0, "stop": 1.0, "sigma_low": 0.0,
       "sigma_high": 0.0}  # fmt: skip
ROWS = (("dpmpp_2m", "cfg"), ("hb", "cfg"), ("dpmpp_2m", "apg"), ("hb", "apg"))
_UNET: list[PreconditionedUNet] = []  # the digits UNet, loaded before ComfyUI (see main)


class DigitsNetwork(torch.nn.Module):
    """The digits UNet behind ComfyUI's SD1.5-style call ``diffusion_model(x, t, context=...)``: ε from the scaled
    input ``x/sqrt(1 + σ²)``, the timestep ComfyUI maps σ to and the labels in ``context[:, 0, 0]``."""

    def __init__(self, unet: PreconditionedUNet) -> None:
        super().__init__()
        self.unet = unet
        self.dtype = torch.float32

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, **_: Any) -> torch.Tensor:
        labels = context[:, 0, 0].round().to(torch.long)
        return self.unet(x, timesteps, class_labels=labels).sample


def digits_model(unet: PreconditionedUNet) -> Any:
    """A ComfyUI ``ModelPatcher`` around a ``BaseModel`` (ε, SD1.5's discrete schedule) running ``unet``."""
    import comfy.latent_formats
    import comfy.model_base
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models_base

    class Pixels(comfy.latent_formats.LatentFormat):
        latent_channels = 3

    class DigitsConfig(comfy.supported_models_base.BASE):
        unet_config: ClassVar[dict[str, Any]] = {"disable_unet_model_creation": True}
        latent_format = Pixels
        # ComfyUI's "linear" is SD's scaled_linear (linear in sqrt β), the digits model's training schedule
        sampling_settings: ClassVar[dict[str, Any]] = {"beta_schedule": "linear", "linear_start": 0.00085,
                                                       "linear_end": 0.012}  # fmt: skip

    config = DigitsConfig({"disable_unet_model_creation": True})
    config.set_inference_dtype(torch.float32, None)
    model = comfy.model_base.BaseModel(config, model_type=comfy.model_base.ModelType.EPS)
    model.diffusion_model = DigitsNetwork(unet)
    cpu = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


class DigitsModelNode:
    """Loads the embedded digits model as (MODEL, VAE): the VAE is ComfyUI's pixel-space one."""

    RETURN_TYPES = ("MODEL", "VAE")
    FUNCTION = "load"
    CATEGORY = "inertia/benchmarks"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {}}

    def load(self) -> tuple[Any, Any]:
        import comfy.sd

        return digits_model(_UNET[0]), comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})


class DigitLabelsNode:
    """Digit labels as (positive, negative, empty LATENT): one image per character of ``digits``."""

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    FUNCTION = "encode"
    CATEGORY = "inertia/benchmarks"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"digits": ("STRING", {"default": "0123456789"})}}

    def encode(self, digits: str) -> tuple[Any, Any, dict[str, torch.Tensor]]:
        if not digits or not digits.isdigit():
            raise ValueError(f"`digits` must be a string of digits 0-9, got {digits!r}.")
        labels = torch.tensor([float(d) for d in digits]).view(-1, 1, 1)
        size = _UNET[0].config.sample_size
        latent = {"samples": torch.zeros(len(digits), 3, size, size)}
        return [[labels, {}]], [[torch.full_like(labels, NULL_LABEL), {}]], latent


def workflow(sampler: str, guidance: str, steps: int, seed: int) -> dict[str, Any]:
    """The API-format prompt of one picture row."""
    sampling = {"model": ["1", 0], "add_noise": True, "noise_seed": seed, "cfg": CFG, "positive": ["2", 0]}
    sampling |= {"negative": ["2", 1], "sampler": ["3", 0], "sigmas": ["4", 0], "latent_image": ["2", 2]}
    schedule = {"model": ["1", 0], "scheduler": "karras", "steps": steps, "denoise": 1.0}
    prompt: dict[str, Any] = {
        "1": {"class_type": "InertiaDigitsModel", "inputs": {}},
        "2": {"class_type": "InertiaDigitLabels", "inputs": {"digits": "0123456789"}},
        "3": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}},
        "4": {"class_type": "BasicScheduler", "inputs": schedule},
        "5": {"class_type": "SamplerCustom", "inputs": sampling},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 1]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": f"digits_{steps}"}},
    }
    if sampler == "hb":
        prompt["3"] = {"class_type": "InertiaHBDPMPP2M", "inputs": {"beta": BETA, "beta_schedule": ""}}
    if guidance == "apg":
        prompt["7"] = {"class_type": "InertiaAPG", "inputs": {"model": ["1", 0], **APG}}
        prompt["5"]["inputs"]["model"] = ["7", 0]
    return copy.deepcopy(prompt)


def label(sampler: str, guidance: str, steps: int) -> str:
    name = "dpmpp_2m" if sampler == "dpmpp_2m" else f"HB-DPM++ {BETA:g}"  # the default font has no β
    return f"{name}, {guidance.upper()}, {steps} steps"


def run(seed: int, step_counts: Sequence[int] = STEPS) -> list[tuple[str, torch.Tensor]]:
    """Runs every row's workflow through ComfyUI's executor; ``(label, (10, 3, 32, 32) images in [0, 1])``."""
    from benchmarks.peers.comfyui_headless import load_nodes, run_prompt, use_folders

    classes = load_nodes(FOLDER)
    use_folders(output=Path(tempfile.mkdtemp(prefix="comfyui_picture_")))  # SaveImage's PNGs, not kept
    classes["InertiaDigitsModel"], classes["InertiaDigitLabels"] = DigitsModelNode, DigitLabelsNode
    rows = []
    for steps in step_counts:
        for sampler, guidance in ROWS:
            result = run_prompt(workflow(sampler, guidance, steps, seed), prompt_id=f"{sampler}-{guidance}-{steps}")
            if not result.success:
                raise RuntimeError(result.error())
            images = result.output("6")  # (10, 32, 32, 3) in [0, 1]
            rows.append((label(sampler, guidance, steps), images.permute(0, 3, 1, 2).float()))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIGURE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, nargs="+", default=list(STEPS), help="Karras step counts, one per block")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    # diffusers (under the digits UNet) is imported before ComfyUI's stand-in torchvision is installed
    _UNET[:] = [PreconditionedUNet.from_pretrained(embedded_digits_folder("digits") / "unet").eval()]
    if comfyui.load() is None:
        print(f"ComfyUI {comfyui.VERSION} is not in the cache: run `{comfyui.FETCH}`", file=sys.stderr)
        return 2
    start = time.perf_counter()
    rows = run(args.seed, args.steps)
    path = render_grid(rows, args.out)
    print(f"{path} ({len(rows)} workflows, {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
