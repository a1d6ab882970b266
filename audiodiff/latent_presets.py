"""Latent and conditional architectures with seeded random weights (as presets.py's for Mel-image
UNets): the public latent layouts, to run the whole program offline, and tiny ones for tests.

`pipeline.load_pipeline` turns these names into pipelines too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .latent import LatentAudioDiffusion, autoencoder_kl, unet_2d_condition, vae_factor
from .mel import MelConfig
from .model import AudioDiffusion, PipelineError, UNet2DModel, check_unet_config
from .presets import default_scheduler

# the VAE of teticio/latent-audio-diffusion-256 (issue 27): 1 channel in and out, 1 latent
# channel, four down blocks, so a 256x256 Mel image becomes 1x32x32 latents (8x smaller)
PUBLIC_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32)
# the public 256 UNet layout (presets.py, "audio-diffusion-256"), which the reference's training
# script uses on latents too
PUBLIC_UNET = dict(block_out_channels=(128, 128, 256, 256, 512, 512), layers_per_block=2, norm_num_groups=32)
TINY_VAE = dict(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4)
TINY_UNET = dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8)
# 64x64 Mel images of 1.02 s at 16 kHz: with the 8x VAE, 8x8 latents
TINY_MEL = MelConfig(x_res=64, y_res=64, sample_rate=16000, n_fft=1024, hop_length=256)


@dataclass(frozen=True)
class LatentPreset:
    """A VAE, a UNet on its latents (conditional when `cross_attention_dim` is set) and the Mel image."""

    mel: MelConfig
    vae: dict
    unet: dict
    attention: bool  # attention in the UNet's second-to-last block (cross-attention when conditional)
    cross_attention_dim: int | None
    description: str

    def vae_kwargs(self) -> dict:
        blocks = len(self.vae["block_out_channels"])
        return dict(in_channels=1, out_channels=1, latent_channels=1, sample_size=self.mel.x_res,
                    down_block_types=("DownEncoderBlock2D",) * blocks, up_block_types=("UpDecoderBlock2D",) * blocks,
                    **self.vae)

    def unet_kwargs(self) -> dict:
        factor = 2 ** (len(self.vae["block_out_channels"]) - 1)
        blocks = len(self.unet["block_out_channels"])
        down, up = ["DownBlock2D"] * blocks, ["UpBlock2D"] * blocks
        if self.attention:  # where the public layout has it: the second-to-last block down, the second up
            prefix = "CrossAttn" if self.cross_attention_dim else "Attn"
            down[-2], up[1] = f"{prefix}DownBlock2D", f"{prefix}UpBlock2D"
        size = self.mel.x_res // factor if self.mel.x_res == self.mel.y_res else (self.mel.y_res // factor,
                                                                                    self.mel.x_res // factor)
        kwargs = dict(sample_size=size, in_channels=1, out_channels=1, down_block_types=tuple(down),
                      up_block_types=tuple(up), **self.unet)
        if self.cross_attention_dim:
            kwargs.update(cross_attention_dim=self.cross_attention_dim, attention_head_dim=8)
        return kwargs


LATENT_PRESETS: dict[str, LatentPreset] = {
    # 1 latent channel at 32x32 for 256x256 Mel images at 22050 Hz (5.94 s): the layout of
    # teticio/latent-audio-diffusion-256 (VAE 8x, UNet the public 256 layout on latents)
    "latent-256": LatentPreset(mel=MelConfig(), vae=PUBLIC_VAE, unet=PUBLIC_UNET, attention=True,
                               cross_attention_dim=None,
                               description="the public latent 256 layout: 256x256 Mel, 22050 Hz, 1x32x32 latents"),
    # shaped like teticio/conditional-latent-audio-diffusion-512: 512x512 Mel images, 1x64x64
    # latents, cross-attention on an encoding of 100 numbers (the reference encoder's size)
    "conditional-latent-512": LatentPreset(
        mel=MelConfig(x_res=512, y_res=512), vae=PUBLIC_VAE, unet=PUBLIC_UNET, attention=True, cross_attention_dim=100,
        description="shaped like the public conditional latent 512 model: 512x512 Mel, 1x64x64 latents, encodings of 100",
    ),
    # tests: a few-thousand-parameter VAE (8x) and UNet, 64x64 Mel of 1.02 s at 16 kHz -> 8x8 latents
    "tiny-latent": LatentPreset(mel=TINY_MEL, vae=TINY_VAE, unet=TINY_UNET, attention=True, cross_attention_dim=None,
                                description="tests: 64x64 Mel, 16 kHz, 1.02 s per image, 1x8x8 latents"),
    "tiny-conditional-latent": LatentPreset(
        mel=TINY_MEL, vae=TINY_VAE, unet=TINY_UNET, attention=True, cross_attention_dim=8,
        description="tests: tiny-latent with a cross-attention UNet reading encodings of 8 numbers",
    ),
}


def build_latent_preset(name: str, seed: int = 0) -> AudioDiffusion:
    """A latent preset with random weights drawn from `seed` and a DDPM scheduler; the global
    torch RNG is left as it was."""
    if name not in LATENT_PRESETS:
        raise PipelineError(f"unknown latent preset {name!r}; the latent presets are: {', '.join(LATENT_PRESETS)}")
    preset = LATENT_PRESETS[name]
    vae_kwargs, unet_kwargs = preset.vae_kwargs(), preset.unet_kwargs()
    factor = vae_factor(vae_kwargs)
    from dataclasses import replace

    check_unet_config(unet_kwargs, replace(preset.mel, x_res=preset.mel.x_res // factor,
                                           y_res=preset.mel.y_res // factor), name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vqvae = autoencoder_kl()(**vae_kwargs)
        unet = (unet_2d_condition() if preset.cross_attention_dim else UNet2DModel)(**unet_kwargs)
    return LatentAudioDiffusion(unet=unet.eval(), scheduler=default_scheduler(), mel=preset.mel, source=name,
                                vqvae=vqvae.eval())
