"""The pipeline object: a UNet that denoises Mel images, the scheduler it was trained with, and the
Mel configuration that turns audio into those images (DESIGN section 1); and the checks a UNet
configuration must pass for a Mel image before it is built.

Loading and saving pipeline folders is pipeline.py's, building random-weight ones presets.py's;
both build their UNets from the `UNet2DModel` imported here (without diffusers' package inits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .mel import MelConfig


def _import_without_package_inits(module: str, packages: tuple[str, ...]):
    """Import `module` without running the `__init__.py` of `packages` (its parents).

    Why: `from diffusers import UNet2DModel` runs `diffusers/models/unets/__init__.py` and
    `diffusers/models/transformers/__init__.py`, which import every UNet and transformer diffusers
    has (and, through them, peft and transformers): ~2 s of a ~4 s start on a small CPU, for one
    class that needs two of those files. Each package not yet imported is stood in for, during
    this import only, by an empty module with the package's search path, so its submodules load
    and its `__init__` does not; afterwards the stand-ins are dropped, so a later import of the
    package (diffusers' own pipelines, the tests) runs its real `__init__`, which reuses the
    submodules already loaded (the same classes)."""
    import importlib
    import importlib.util
    import sys

    stand_ins = []
    for name in packages:
        if name not in sys.modules:
            spec = importlib.util.find_spec(name)
            sys.modules[name] = importlib.util.module_from_spec(spec)  # search path set, __init__ not run
            stand_ins.append(name)
    try:
        return importlib.import_module(module)
    finally:
        for name in stand_ins:
            del sys.modules[name]


UNet2DModel = _import_without_package_inits(
    "diffusers.models.unets.unet_2d", ("diffusers.models.unets", "diffusers.models.transformers")
).UNet2DModel
# ModelMixin.to() and .device import diffusers.hooks.group_offloading, and diffusers/hooks/__init__.py
# imports peft (~1 s); loaded here the same way, the package init never runs on the way to sampling.
_import_without_package_inits("diffusers.hooks.group_offloading", ("diffusers.hooks",))


class PipelineError(ValueError):
    """A pipeline folder or name that can't be used; the message says what to do instead."""


def _move(module, device=None, dtype=None) -> None:
    """module.to(device, dtype), naming only what changes: diffusers warns about float32 modules
    whenever a dtype is passed, even None or the one it has, and the warning would reach every
    user's terminal."""
    if dtype is not None and dtype == getattr(module, "dtype", None):
        dtype = None
    module.to(**{k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None})


# ---- the pipeline object -------------------------------------------------------------------------
@dataclass
class AudioDiffusion:
    """An unconditional Mel-image diffusion pipeline: what training and sampling work on."""

    unet: UNet2DModel
    scheduler: SchedulerMixin  # the class named in scheduler_config.json (DDPM, DDIM, DPMSolverMultistep, ...)
    mel: MelConfig
    source: str  # what it was loaded from: preset name, folder, or hub id (for model cards / JSON sidecars)
    # the UNet a fine-tuned run was fine-tuned from, when it loads offline (pipeline.attach_base): it
    # guides sampling away from itself (sampling.autoguide); base_source names it
    base_unet: UNet2DModel | None = None
    base_source: str | None = None

    def to(self, device=None, dtype=None) -> "AudioDiffusion":
        """Move the UNets (the only components with tensors) in place; returns self."""
        for net in (self.unet, self.base_unet):
            if net is not None:
                _move(net, device, dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    def describe(self) -> str:
        """One line for logs and model cards: size, image, sample rate, slice length, scheduler."""
        millions = self.num_parameters / 1e6
        return (
            f"{self.source}: UNet2DModel {millions:.{2 if millions < 10 else 1}f} M parameters, "
            f"{self.mel.x_res}x{self.mel.y_res} Mel images at {self.mel.sample_rate} Hz "
            f"(hop {self.mel.hop_length}, {self.mel.slice_seconds:.2f} s per image), "
            f"{type(self.scheduler).__name__}"
        )


def unet_sample_size(mel: MelConfig) -> int | tuple[int, int]:
    """UNet2DModel's sample_size for a Mel image: (height, width) = (y_res, x_res); an int when
    square, as in the public checkpoints."""
    return mel.x_res if mel.x_res == mel.y_res else (mel.y_res, mel.x_res)


# Bounds on a UNet configuration read from a folder, far beyond any real model (the public 256
# layout: 6 blocks, 2 layers each, at most 512 channels) but small enough that building the model
# can't hang or exhaust memory before the weights are even read.
MAX_UNET_BLOCKS = 8
MAX_LAYERS_PER_BLOCK = 16
MAX_UNET_CHANNELS = 4096


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_unet_config(config: Mapping, mel: MelConfig, source: str) -> None:
    """Refuse, before the UNet is built, a configuration that can't work with this Mel image: one
    that would hang or crash while being built (absurd sizes, attention_head_dim 0) or whose images
    are not the Mel config's (sample_size must be (y_res, x_res), an int when square)."""
    where = f"{source}: unet/config.json"
    layers = config.get("layers_per_block", 2)
    if not (_positive_int(layers) and layers <= MAX_LAYERS_PER_BLOCK):
        raise PipelineError(f"{where} has layers_per_block {layers!r}; expected a whole number from 1 to {MAX_LAYERS_PER_BLOCK}")
    channels = config.get("block_out_channels", (64, 128, 256, 512))
    if (not isinstance(channels, (list, tuple)) or not 1 <= len(channels) <= MAX_UNET_BLOCKS
            or not all(_positive_int(c) and c <= MAX_UNET_CHANNELS for c in channels)):
        raise PipelineError(f"{where} has block_out_channels {channels!r}; expected 1 to {MAX_UNET_BLOCKS} whole "
                            f"numbers from 1 to {MAX_UNET_CHANNELS}")
    for key in ("down_block_types", "up_block_types"):
        types = config.get(key)
        if types is not None and (not isinstance(types, (list, tuple)) or len(types) != len(channels)):
            raise PipelineError(f"{where} has {len(types) if isinstance(types, (list, tuple)) else types!r} {key} "
                                f"for {len(channels)} block_out_channels; expected one per block")
    groups = config.get("norm_num_groups", 32)
    if groups is not None and not (_positive_int(groups) and all(c % groups == 0 for c in channels)):
        raise PipelineError(f"{where} has norm_num_groups {groups!r}; it must be a whole number that divides every "
                            f"block_out_channels entry {list(channels)}")
    head_dim = config.get("attention_head_dim", 8)
    head_dims = head_dim if isinstance(head_dim, (list, tuple)) else [head_dim]
    if not all(d is None or (_positive_int(d) and d <= min(channels)) for d in head_dims):
        raise PipelineError(f"{where} has attention_head_dim {head_dim!r}; expected a whole number from 1 to "
                            f"{min(channels)} (the smallest block width)")
    size = config.get("sample_size")
    shape = (size, size) if _positive_int(size) else tuple(size) if isinstance(size, (list, tuple)) else None
    if shape != (mel.y_res, mel.x_res):
        expected = mel.x_res if mel.x_res == mel.y_res else [mel.y_res, mel.x_res]
        raise PipelineError(f"{where} has sample_size {size!r}, but its Mel config (mel/mel_config.json) makes "
                            f"{mel.y_res}x{mel.x_res} images (y_res x x_res): the UNet was not trained on these images; "
                            f"expected sample_size {expected}")
    factor = 2 ** (len(channels) - 1)
    if mel.x_res % factor or mel.y_res % factor:
        raise PipelineError(f"{where} downsamples {len(channels) - 1} times, so the Mel image's x_res and y_res must "
                            f"be multiples of {factor}; got {mel.x_res}x{mel.y_res}")


def weights_sha256(unet) -> str:
    """A fingerprint of a UNet's weights (every tensor's name, dtype, shape and bytes, by name): a
    run records its base's, so that a later comparison can tell when "bundled" or a folder has
    changed since the run started from it."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(unet.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        # flattened first: a 1x1 kernel laid out channels-last counts as contiguous, stride(-1) != 1
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
