"""Latent and conditional audio-diffusion pipelines: the parts, the checks that they fit, loading.

A *latent* pipeline (teticio/latent-audio-diffusion-256, -512) adds `vqvae/`, an AutoencoderKL
that turns a (1, y_res, x_res) Mel image into (latent_channels, y_res / f, x_res / f) latents,
f = 2 ** (its down blocks - 1) (8 for the public ones: a latent column is 8 Mel columns); its
UNet denoises those latents. Latents are the VAE's output times `scaling_factor` (its config;
0.18215, the value the reference fixed for Stable Diffusion's VAE, when the config has none) and
are divided by it before decoding, as diffusers' AudioDiffusionPipeline does.

A *conditional* pipeline (teticio/conditional-latent-audio-diffusion-512) has a
UNet2DConditionModel whose cross-attention reads an encoding of `cross_attention_dim` numbers per
clip, passed as (B, 1, D) `encoder_hidden_states` (conditioning.py).

Everything a folder says is checked against the rest before a weight is read, each misfit
refused in one line: the VAE's downsampling against the Mel image and the UNet's sample_size,
latent_channels against the UNet's channels. Weights go through weights.py (safetensors, or a
`.bin` through the weights-only unpickler).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .mel import MelConfig
from .model import (MAX_LAYERS_PER_BLOCK, MAX_UNET_BLOCKS, MAX_UNET_CHANNELS, AudioDiffusion, PipelineError,
                    _import_without_package_inits, _move, _positive_int, check_unet_config)

DEFAULT_SCALING_FACTOR = 0.18215  # AutoencoderKL's default and the reference's training script's constant
MAX_LATENT_CHANNELS = 64
MAX_CROSS_ATTENTION_DIM = 8192
VAE_CLASS = "AutoencoderKL"
CONDITIONAL_UNET_CLASS = "UNet2DConditionModel"
# conditioning that is not an encoding per clip through cross-attention: not supported
UNSUPPORTED_CONDITIONING = ("encoder_hid_dim", "encoder_hid_dim_type", "class_embed_type", "num_class_embeds",
                            "addition_embed_type")
_PACKAGES = ("diffusers.models.unets", "diffusers.models.transformers", "diffusers.models.autoencoders")


def autoencoder_kl():
    """diffusers' AutoencoderKL, imported without diffusers' package inits (model.py says why)."""
    return _import_without_package_inits("diffusers.models.autoencoders.autoencoder_kl", _PACKAGES).AutoencoderKL


def unet_2d_condition():
    """diffusers' UNet2DConditionModel, imported the same way."""
    return _import_without_package_inits("diffusers.models.unets.unet_2d_condition", _PACKAGES).UNet2DConditionModel


def is_conditional_unet(unet) -> bool:
    return type(unet).__name__ == CONDITIONAL_UNET_CLASS


def cross_attention_dim(unet) -> int | None:
    """The size of the encoding a conditional UNet reads (None for an unconditional one)."""
    return int(unet.config.cross_attention_dim) if is_conditional_unet(unet) else None


# ---- the latent grid -------------------------------------------------------------------------
@dataclass(frozen=True)
class LatentGrid:
    """The time-frequency grid of the latents, for the sampling wing's column arithmetic: a latent
    column spans `factor` Mel columns, so it is `hop_length * factor` samples wide. It answers the
    questions long clips ask of a Mel config (`seconds_to_columns`, `slice_seconds`, ...) in latent
    columns; it decodes nothing (that is the VAE's, then the Mel config's)."""

    mel: MelConfig
    factor: int

    @property
    def x_res(self) -> int:
        return self.mel.x_res // self.factor

    @property
    def y_res(self) -> int:
        return self.mel.y_res // self.factor

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def hop_length(self) -> int:
        return self.mel.hop_length * self.factor

    @property
    def slice_seconds(self) -> float:
        return self.mel.slice_seconds

    @property
    def pixels_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def seconds_to_columns(self, seconds: float) -> float:
        return seconds * self.sample_rate / self.hop_length

    def columns_to_seconds(self, columns: float) -> float:
        return columns * (self.hop_length / self.sample_rate)


# ---- the pipeline object -------------------------------------------------------------------------
@dataclass
class LatentAudioDiffusion(AudioDiffusion):
    """A pipeline whose UNet denoises VAE latents of Mel images (`vqvae`: an AutoencoderKL)."""

    vqvae: Any = None

    def to(self, device=None, dtype=None) -> "LatentAudioDiffusion":
        for net in (self.unet, self.vqvae):
            _move(net, device, dtype)
        return self

    @property
    def factor(self) -> int:
        """Mel columns (and rows) per latent column (row)."""
        return vae_factor(self.vqvae.config)

    @property
    def grid(self) -> LatentGrid:
        return LatentGrid(self.mel, self.factor)

    @property
    def scaling_factor(self) -> float:
        return float(self.vqvae.config.get("scaling_factor") or DEFAULT_SCALING_FACTOR)

    def describe(self) -> str:
        millions = self.num_parameters / 1e6
        vae_millions = sum(p.numel() for p in self.vqvae.parameters()) / 1e6
        latent = f"{self.vqvae.config.latent_channels}x{self.grid.y_res}x{self.grid.x_res}"
        return (
            f"{self.source}: latent {type(self.unet).__name__} {millions:.{2 if millions < 10 else 1}f} M parameters "
            f"on {latent} latents of an AutoencoderKL ({vae_millions:.2f} M, {self.factor}x), "
            f"{self.mel.x_res}x{self.mel.y_res} Mel images at {self.mel.sample_rate} Hz "
            f"(hop {self.mel.hop_length}, {self.mel.slice_seconds:.2f} s per image), {type(self.scheduler).__name__}"
        )

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Mel images (B, 1, H, W) in [-1, 1] -> latents (B, C, H / f, W / f), scaled. The mean of
        the VAE's posterior, not a draw from it (the reference draws): the same image always gives
        the same latents, which inversion and continuation need."""
        vae = self.vqvae
        posterior = vae.encode(images.to(device=self.device, dtype=vae.dtype)).latent_dist
        return ((posterior.mean - _shift(vae)) * self.scaling_factor).float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, chunk_columns: int | None = None) -> torch.Tensor:
        """Latents (B, C, h, w) -> Mel images (B, 1, h * f, w * f) in [-1, 1], on the CPU.

        Wide latents (long clips) are decoded `chunk_columns` at a time (default: one slice), each
        chunk with up to 4 latent columns of context on both sides that are then dropped, so the
        VAE's mid-block attention never spans more than a slice and a bit."""
        vae, f = self.vqvae, self.factor
        width = latents.shape[-1]
        chunk = chunk_columns or self.grid.x_res
        margin = min(chunk, 4)
        pieces = []
        for start in range(0, width, chunk):
            lo, hi = max(0, start - margin), min(width, start + chunk + margin)
            z = latents[..., lo:hi].to(device=self.device, dtype=vae.dtype) / self.scaling_factor + _shift(vae)
            image = vae.decode(z).sample.float().clamp(-1.0, 1.0).cpu()  # the decoder takes any width
            pieces.append(image[..., (start - lo) * f : (start - lo + min(chunk, width - start)) * f])
        return torch.cat(pieces, dim=-1)


def _shift(vae) -> float:
    return float(vae.config.get("shift_factor") or 0.0)


def vae_factor(config) -> int:
    """How many times the VAE halves an image: 2 ** (down blocks - 1)."""
    return 2 ** (len(config["block_out_channels"]) - 1)


# ---- checks, before anything is built -------------------------------------------------------------
def _check_vae_layout(config: dict, where: str) -> None:
    """Sizes that would hang or crash while the VAE is built, refused first (as `check_unet_config`)."""
    if config.get("_class_name", VAE_CLASS) != VAE_CLASS:
        raise PipelineError(f"{where} is a {config.get('_class_name')}; audiodiff reads an {VAE_CLASS} in vqvae/")
    for key in ("in_channels", "out_channels"):
        if config.get(key, 3) != 1:
            raise PipelineError(f"{where} has {key} {config.get(key, 3)!r}; a Mel image has one channel, so it must be 1")
    channels = config.get("block_out_channels", (64,))
    if (not isinstance(channels, (list, tuple)) or not 1 <= len(channels) <= MAX_UNET_BLOCKS
            or not all(_positive_int(c) and c <= MAX_UNET_CHANNELS for c in channels)):
        raise PipelineError(f"{where} has block_out_channels {channels!r}; expected 1 to {MAX_UNET_BLOCKS} whole "
                            f"numbers from 1 to {MAX_UNET_CHANNELS}")
    for key in ("down_block_types", "up_block_types"):
        types = config.get(key)
        if not isinstance(types, (list, tuple)) or len(types) != len(channels):
            raise PipelineError(f"{where} has {key} {types!r}; expected one per block_out_channels entry ({len(channels)})")
    layers = config.get("layers_per_block", 1)
    if not (_positive_int(layers) and layers <= MAX_LAYERS_PER_BLOCK):
        raise PipelineError(f"{where} has layers_per_block {layers!r}; expected a whole number from 1 to {MAX_LAYERS_PER_BLOCK}")
    groups = config.get("norm_num_groups", 32)
    if not (_positive_int(groups) and all(c % groups == 0 for c in channels)):
        raise PipelineError(f"{where} has norm_num_groups {groups!r}; it must divide every block_out_channels entry")
    latent = config.get("latent_channels", 4)
    if not (_positive_int(latent) and latent <= MAX_LATENT_CHANNELS):
        raise PipelineError(f"{where} has latent_channels {latent!r}; expected a whole number from 1 to {MAX_LATENT_CHANNELS}")
    scaling = config.get("scaling_factor", DEFAULT_SCALING_FACTOR)
    if scaling is not None and (isinstance(scaling, bool) or not isinstance(scaling, (int, float))
                                or not math.isfinite(scaling) or not scaling > 0):
        raise PipelineError(f"{where} has scaling_factor {scaling!r}; expected a positive number (0.18215 in the public models)")


def check_latent_fit(vae_config: dict, unet_config: dict, mel: MelConfig, source: str) -> MelConfig:
    """Refuse a VAE, UNet and Mel image that don't fit each other, in one line each; returns the
    latent image's size as a MelConfig (for `check_unet_config`)."""
    where = f"{source}: vqvae/config.json"
    _check_vae_layout(vae_config, where)
    factor = vae_factor(vae_config)
    if mel.x_res % factor or mel.y_res % factor:
        raise PipelineError(f"{where} downsamples {factor}x, but the Mel image (mel/mel_config.json) is "
                            f"{mel.y_res}x{mel.x_res}: x_res and y_res must be multiples of {factor}")
    latent_mel = dataclasses.replace(mel, x_res=mel.x_res // factor, y_res=mel.y_res // factor)
    size = unet_config.get("sample_size")
    shape = (size, size) if _positive_int(size) else tuple(size) if isinstance(size, (list, tuple)) else None
    if shape != (latent_mel.y_res, latent_mel.x_res):
        raise PipelineError(f"{source}: unet/config.json has sample_size {size!r}, but the VAE turns the "
                            f"{mel.y_res}x{mel.x_res} Mel image into {latent_mel.y_res}x{latent_mel.x_res} latents "
                            f"({factor}x smaller); the UNet was not trained on these latents")
    latent = vae_config.get("latent_channels", 4)
    for key in ("in_channels", "out_channels"):
        channels = unet_config.get(key, 4)
        if channels != latent:
            raise PipelineError(f"{source}: unet/config.json has {key} {channels!r}, but the VAE makes latents of "
                                f"latent_channels {latent}; the UNet and the VAE don't belong together")
    return latent_mel


def check_conditional_unet(config: dict, source: str) -> None:
    """A conditional UNet we can drive: cross-attention on one encoding per clip, nothing else."""
    where = f"{source}: unet/config.json"
    other = [key for key in UNSUPPORTED_CONDITIONING if config.get(key) is not None]
    if other:
        raise PipelineError(f"{where} is conditioned through {', '.join(other)}; audiodiff supports conditioning on "
                            f"an encoding through cross-attention (cross_attention_dim) only")
    dim = config.get("cross_attention_dim", 1280)
    if not (_positive_int(dim) and dim <= MAX_CROSS_ATTENTION_DIM):
        raise PipelineError(f"{where} has cross_attention_dim {dim!r}; expected one whole number from 1 to "
                            f"{MAX_CROSS_ATTENTION_DIM} (the size of the encoding)")


# ---- loading ---------------------------------------------------------------------------------------
def load_unet(unet_dir: Path, source: str, image_mel: MelConfig, conditional: bool):
    """The UNet of a latent or conditional pipeline, its config checked for `image_mel`'s size."""
    from .weights import WEIGHTS_NAME, build_from_weights, find_weights, read_json

    config_path = unet_dir / "config.json"
    if not config_path.is_file():
        raise PipelineError(f"{source} has no unet/config.json")
    config = read_json(config_path, "UNet configuration")
    weights = find_weights(unet_dir)
    if weights is None:
        raise PipelineError(f"{source} has no UNet weights ({WEIGHTS_NAME}.safetensors or .bin in {unet_dir})")
    if conditional:
        check_conditional_unet(config, source)
    check_unet_config(config, image_mel, source)
    if conditional:
        return build_from_weights(unet_2d_condition(), config, weights, config_path, source, "UNet")
    from .model import UNet2DModel

    return build_from_weights(UNet2DModel, config, weights, config_path, source, "UNet")


def load_vae(vae_dir: Path, unet_dir: Path, mel: MelConfig, source: str):
    """-> (the AutoencoderKL of vqvae/, the latent image's size). The VAE's and the UNet's
    configurations are checked against each other and the Mel image before either is built."""
    from .weights import WEIGHTS_NAME, build_from_weights, find_weights, read_json

    config_path = vae_dir / "config.json"
    if not config_path.is_file():
        raise PipelineError(f"{source} names a VAE in model_index.json but has no vqvae/config.json")
    config = read_json(config_path, "VAE configuration")
    unet_config_path = unet_dir / "config.json"
    if not unet_config_path.is_file():
        raise PipelineError(f"{source} has no unet/config.json")
    latent_mel = check_latent_fit(config, read_json(unet_config_path, "UNet configuration"), mel, source)
    weights = find_weights(vae_dir)
    if weights is None:
        raise PipelineError(f"{source} has no VAE weights ({WEIGHTS_NAME}.safetensors or .bin in {vae_dir})")
    return build_from_weights(autoencoder_kl(), config, weights, config_path, source, "VAE"), latent_mel


def load_parts(folder: Path, mel: MelConfig, scheduler, source: str, *, latent: bool, conditional: bool) -> AudioDiffusion:
    """A latent and/or conditional pipeline from `folder` (its index already read and its Mel
    config loaded by pipeline.py)."""
    if not latent:
        unet = load_unet(folder / "unet", source, mel, conditional)
        return AudioDiffusion(unet=unet, scheduler=scheduler, mel=mel, source=source)
    vqvae, latent_mel = load_vae(folder / "vqvae", folder / "unet", mel, source)
    unet = load_unet(folder / "unet", source, latent_mel, conditional)
    return LatentAudioDiffusion(unet=unet, scheduler=scheduler, mel=mel, source=source, vqvae=vqvae)
