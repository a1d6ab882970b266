"""Architecture presets (`tiny`, `small`, `compact`, `compact-4s`, `audio-diffusion-256`): seeded
random weights with a DDPM scheduler, so everything downstream works without the network; and
`with_mel`, the same weights on another Mel image (a warm start for training).

`pipeline.load_pipeline` turns a preset's name into one; the bundled base model is a preset
pre-trained (pipeline.BUNDLED, bundle.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

from .mel import MelConfig
from .model import AudioDiffusion, PipelineError, UNet2DModel, check_unet_config, unet_sample_size


@dataclass(frozen=True)
class Preset:
    """An architecture to start from random weights: the Mel image and the UNet's layout."""

    mel: MelConfig
    block_out_channels: tuple[int, ...]
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    layers_per_block: int
    norm_num_groups: int
    description: str

    def unet_kwargs(self, mel: MelConfig) -> dict:
        return dict(
            sample_size=unet_sample_size(mel), in_channels=1, out_channels=1,
            layers_per_block=self.layers_per_block, block_out_channels=self.block_out_channels,
            down_block_types=self.down_block_types, up_block_types=self.up_block_types,
            norm_num_groups=self.norm_num_groups,
        )


# 1.99 M parameters: the architecture of the first bundled base model (session 1). 64x64
# images of 1.02 s at 16 kHz (64 mel bands up to 8 kHz, n_fft 1024, the public 4x overlap):
# what a 2-core CPU can pre-train in under an hour (batch 16 in ~1-2 s) and generate from in
# real time (one forward ~60 ms), and 8 MB of weights, small enough to ship in the package.
_COMPACT = Preset(
    mel=MelConfig(x_res=64, y_res=64, sample_rate=16000, n_fft=1024, hop_length=256),
    block_out_channels=(32, 48, 64, 96),
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    layers_per_block=1, norm_num_groups=8,
    description="the first bundled model's layout: 64x64 Mel, 16 kHz, 1.02 s per image, 1.99 M parameters",
)


PRESETS: dict[str, Preset] = {
    # 0.28 M parameters, 0.13 GFLOP per image. 32x32 images of ~1 s of 16 kHz audio (n_fft
    # 2048 and 4x overlap, as in the public models): the real code paths at test speed; a
    # forward of 4 images takes ~30 ms on a 2-core CPU, mostly per-layer overhead.
    "tiny": Preset(
        mel=MelConfig(x_res=32, y_res=32, sample_rate=16000, n_fft=2048, hop_length=512),
        block_out_channels=(16, 32, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1, norm_num_groups=8,
        description="tests and CPU demos: 32x32 Mel, 16 kHz, 1.02 s per image, 0.28 M parameters",
    ),
    # 4.48 M parameters, 7.8 GFLOP per image. The public layout scaled down: 128x128 images
    # of 2.97 s at 22050 Hz (the public n_fft and hop, half the mel bands, half the width);
    # channels in the public ratios 1:1:2:2:4 at a quarter of the width, 4 channels per norm
    # group at the top as there, attention at 16x16 and the mid block at 8x8 as there. 25x
    # fewer parameters and 63x less compute than the 256 model: fine-tunes on a small GPU, or
    # slowly on a CPU.
    "small": Preset(
        mel=MelConfig(x_res=128, y_res=128, sample_rate=22050, n_fft=2048, hop_length=512),
        block_out_channels=(32, 32, 64, 64, 128),
        down_block_types=("DownBlock2D",) * 3 + ("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 3,
        layers_per_block=2, norm_num_groups=8,
        description="in between: 128x128 Mel, 22050 Hz, 2.97 s per image, 4.48 M parameters",
    ),
    "compact": _COMPACT,
    # 1.99 M parameters: the architecture of the bundled base model (pipeline.BUNDLED). The compact
    # UNet on 64x168 images of 4.03 s at 16 kHz (n_fft 1024, hop 384: 24 ms frames, 2.67x
    # overlap), so one image holds two bars at 120 bpm and a continued slice can see whole beats
    # of the past. Chosen by measurement (OMP_NUM_THREADS=1, one run each; codec = spectral
    # convergence of a Griffin-Lim round trip on 6 slices of real jazz; codec realism = the
    # held-out built-in jazz sent through the codec, its FD to the originals over the FD
    # between two halves of the genre: the floor of the realism a model of that image can reach):
    #   image   rate    hop  n_fft (seconds)     fwd     train step  codec  codec realism
    #   64x64   16 kHz  256  1024 (1.02 s)       29 ms   1.0 s       0.032  0.47
    #   64x256  16 kHz  256  1024 (4.10 s)       94 ms   7.7 s       0.026  0.42 (64x192)
    #   64x176  11 kHz  256  1024 (4.10 s)       60 ms   3.1 s       0.038  0.28 (12 kHz)
    #   64x128  16 kHz  512  2048 (4.10 s)       41 ms   1.9 s       0.016  2.41
    #   64x128  16 kHz  512  1024 (4.10 s)       41 ms   2.0 s       0.013  1.63   <- stage 1
    #   64x168  16 kHz  384  1024 (4.03 s)       ~55 ms  ~2.8 s      -      0.29   <- this
    # Session 3 chose hop 512 by the spectral convergence column; its clips then measured 5.6
    # on the realism scale, and the last column shows why: with 64 bands and 2x overlap the
    # codec alone costs 1.63. Hop 384 keeps 4 s per image for 1.3x the columns, and its codec
    # is as good as any. The recipe (bundle.py) trains 64x128 first and moves the weights to
    # this image (`with_mel`): cheaper steps for most of the way.
    "compact-4s": dataclasses.replace(
        _COMPACT, mel=MelConfig(x_res=168, y_res=64, sample_rate=16000, n_fft=1024, hop_length=384),
        description="the bundled model's layout: 64x168 Mel, 16 kHz, 4.03 s per image, 1.99 M parameters",
    ),
    # The bundled recipe's first stage (and session 3's bundled model): 64x128 Mel, hop 512.
    "compact-4s-hop512": dataclasses.replace(
        _COMPACT, mel=MelConfig(x_res=128, y_res=64, sample_rate=16000, n_fft=1024, hop_length=512),
        description="the bundled recipe's first stage: 64x128 Mel, 16 kHz, hop 512, 4.10 s per image, 1.99 M parameters",
    ),
    # 113.7 M parameters, 496 GFLOP per image: the layout of teticio/audio-diffusion-*-256
    # (DESIGN section 1).
    "audio-diffusion-256": Preset(
        mel=MelConfig(),
        block_out_channels=(128, 128, 256, 256, 512, 512),
        down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
        layers_per_block=2, norm_num_groups=32,
        description="the public 256 layout: 256x256 Mel, 22050 Hz, 5.94 s per image, 113.7 M parameters",
    ),
}


def default_scheduler() -> DDPMScheduler:
    """The scheduler the public models were trained with: DDPM, 1000 steps, linear betas 1e-4..0.02."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)


def build_preset(name: str, seed: int = 0, mel: MelConfig | None = None) -> AudioDiffusion:
    """A preset architecture with random weights drawn from `seed` and a DDPM scheduler.

    `mel` replaces the preset's Mel configuration (the UNet's sample size follows it). The
    global torch RNG is left as it was. Works under `with torch.device("meta")` (to count
    parameters without allocating them).
    """
    if name not in PRESETS:
        raise PipelineError(f"unknown preset {name!r}; the presets are: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    mel = mel or preset.mel
    factor = 2 ** (len(preset.block_out_channels) - 1)  # each down block but the last halves H and W
    if mel.x_res % factor or mel.y_res % factor:
        raise PipelineError(
            f"preset {name!r} downsamples {len(preset.block_out_channels) - 1} times, so the Mel image's "
            f"x_res and y_res must be multiples of {factor}; got {mel.x_res}x{mel.y_res}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DModel(**preset.unet_kwargs(mel))
    return AudioDiffusion(unet=unet.eval(), scheduler=default_scheduler(), mel=mel, source=name)


def with_mel(pipe: AudioDiffusion, mel: MelConfig) -> AudioDiffusion:
    """The same UNet weights and scheduler on another Mel image: a warm start for training.

    Convolutions and attention don't depend on the image's size, so the weights load into a UNet
    whose sample size is the new image's; what they have learnt transfers as far as the new
    image resembles the old (same bands and rate, another hop: the same sounds, played at
    another speed along the time axis). The UNet must still be able to halve the new size at
    every down block (`check_unet_config`, as for any pipeline loaded)."""
    config = {**pipe.unet.config, "sample_size": unet_sample_size(mel)}
    check_unet_config(config, mel, f"{pipe.source} on a {mel.y_res}x{mel.x_res} image")
    unet = UNet2DModel.from_config(config)
    unet.load_state_dict(pipe.unet.state_dict())
    return AudioDiffusion(unet=unet.to(pipe.device, pipe.dtype).eval(), scheduler=pipe.scheduler, mel=mel,
                          source=pipe.source)
