"""An audio encoder of our own: one Mel image slice -> one vector of `encoding_size` numbers, the
encoding a conditional pipeline (a UNet2DConditionModel, `cross_attention_dim` = that size) reads.

`AudioEncoder` is a small convolutional net written for this project (not derived from the
reference's GPL-3.0 `audio_encoder`): strided 3x3 convolutions, each halving the image, with
group norm and SiLU, then the mean over every position (so any slice width works) and one linear
layer to the encoding:

    (B, 1, y_res, x_res) -> conv blocks -> (B, C, y_res / 2^k, x_res / 2^k) -> mean -> (B, C) -> (B, D)

It is a diffusers model (`ModelMixin`, `ConfigMixin`): saved and loaded as a folder holding
`config.json` and `diffusion_pytorch_model.safetensors`, never a pickle. Its config carries the
Mel settings it reads (`mel_config`), so the folder alone says how to turn audio into its input.

`build_encoder(size)` makes one with random weights: its encodings are distinct for distinct
audio and stable for the same audio, but mean nothing musically (a test fixture and a way to try
the plumbing). For conditioning that means something, bring an encoder folder trained for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .errors import GenerationError
from .mel import MelConfig

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
DEFAULT_BLOCK_OUT_CHANNELS = (32, 64, 128, 256)  # 256^2 -> 16^2 positions before the mean
MAX_ENCODING_SIZE = 8192


class AudioEncoder(ModelMixin, ConfigMixin):
    """Mel images (B, 1, H, W) in [-1, 1] -> encodings (B, encoding_size)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, encoding_size: int = 100, block_out_channels: tuple = DEFAULT_BLOCK_OUT_CHANNELS,
                 norm_num_groups: int = 8, mel_config: dict | None = None):
        super().__init__()
        layers, channels = [], 1
        for out_channels in block_out_channels:
            layers += [torch.nn.Conv2d(channels, out_channels, 3, stride=2, padding=1),
                       torch.nn.GroupNorm(min(norm_num_groups, out_channels), out_channels),
                       torch.nn.SiLU()]
            channels = out_channels
        self.blocks = torch.nn.Sequential(*layers)
        self.proj = torch.nn.Linear(channels, encoding_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.blocks(images)  # (B, C, H / 2^k, W / 2^k)
        return self.proj(features.mean(dim=(-2, -1)))  # (B, C) -> (B, D)

    @property
    def encoding_size(self) -> int:
        return int(self.config.encoding_size)

    @property
    def mel(self) -> MelConfig | None:
        """The Mel settings the encoder reads, or None when its folder doesn't say."""
        return MelConfig.from_dict(self.config.mel_config) if self.config.mel_config else None


def build_encoder(size: int = 100, mel: MelConfig | None = None,
                  block_out_channels: tuple = DEFAULT_BLOCK_OUT_CHANNELS, seed: int = 0) -> AudioEncoder:
    """An encoder with random (seeded) weights producing `size` numbers per slice: distinct but
    meaningless encodings (see the module's docstring)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_ENCODING_SIZE:
        raise ValueError(f"an encoding size is a whole number from 1 to {MAX_ENCODING_SIZE}, got {size!r}")
    mel = mel or MelConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = AudioEncoder(encoding_size=size, block_out_channels=tuple(block_out_channels),
                               norm_num_groups=min(8, min(block_out_channels)), mel_config=mel.to_dict())
    return encoder.eval()


def load_encoder(folder: str | os.PathLike) -> AudioEncoder:
    """An encoder folder (`config.json` + `diffusion_pytorch_model.safetensors`) -> AudioEncoder in
    eval mode, on the CPU. Only safetensors weights are read: a folder with only a pickled `.bin`
    is refused in one line, as is anything that isn't an AudioEncoder folder."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise GenerationError(f"encoder folder {folder} does not exist or is not a folder")
    if not (folder / "config.json").is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise GenerationError(f"{folder} is not an encoder folder: it needs config.json and {WEIGHTS_NAME} "
                              "(weights are read from safetensors only, never a pickle)")
    try:
        config = AudioEncoder.load_config(folder)
        if config.get("_class_name") not in (None, AudioEncoder.__name__):
            raise ValueError(f"its config.json describes a {config.get('_class_name')}, not an AudioEncoder")
        encoder = AudioEncoder.from_pretrained(folder, use_safetensors=True, low_cpu_mem_usage=False)
        encoder.mel  # a Mel config out of range: refused here, not after the first file
    except Exception as exc:  # noqa: BLE001 - a broken folder: one line, never a traceback
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GenerationError(f"can't load the encoder in {folder}: {message}") from None
    size = encoder.encoding_size
    if not 1 <= size <= MAX_ENCODING_SIZE:
        raise GenerationError(f"the encoder in {folder} has encoding_size {size}; expected 1 to {MAX_ENCODING_SIZE}")
    return encoder.eval()
