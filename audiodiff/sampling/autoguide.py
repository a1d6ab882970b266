"""Base guidance (issue 23): a fine-tuned model guided away from the model it was fine-tuned from.

A fine-tune's images vary a lot in how tonal they are, and the noisy ones are those most like its
base: the bundled base model alone reads 0.028 spectral flatness, its jazz fine-tune 0.0028-0.0039.
Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself") guides
a model with a weaker version of itself: each step's prediction becomes

    base + w * (fine-tune - base)

which with w > 1 goes further from what the base would make, toward what the fine-tune learned.
Here the weaker model is the one the run was fine-tuned from, so no second model is trained: it
is the base named in the run's training_config.json (`pipeline.load_pipeline` attaches it as
`pipe.base_unet` when it loads offline). Both predict the same target (noise or velocity) on
the same noise levels, so the combination is taken on the model output directly.

Measured (single 4 s images of the default fine-tune, DDIM 20, 48 per row; docs/tonality.md,
"Session 12"): flatness median 0.0039 -> 0.0032 at w = 1.5 (the genre's feature distance 32.0 ->
33.0), 0.0028 at w = 2 (38.6): 1.5 keeps the genre, 2 starts to leave it. Guidance is applied over
GUIDANCE_WINDOW of the noise levels only, where it pays (the base is one more UNet call there).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

DEFAULT_BASE_GUIDANCE = 1.5  # 1: off
MAX_BASE_GUIDANCE = 4.0
# the noise levels (fractions of the training timesteps) guided: the others take the fine-tune alone
GUIDANCE_WINDOW = (0.5, 1.0)


def check_base_guidance(weight) -> None:
    if isinstance(weight, bool) or not (isinstance(weight, (int, float)) and math.isfinite(weight)
                                        and 1.0 <= weight <= MAX_BASE_GUIDANCE):
        raise ValueError(f"base guidance must be from 1 (off) to {MAX_BASE_GUIDANCE:g}, got {weight!r}")


def mismatch(pipe, base) -> str | None:
    """Why pipeline `base` can't guide pipeline `pipe` (None: it can): both must make the same
    images of the same Mel, in the same channels, predicting the same target on the same noise levels."""
    if base.mel != pipe.mel:
        return "its Mel configuration differs"
    for key in ("prediction_type", "num_train_timesteps"):
        if base.scheduler.config.get(key) != pipe.scheduler.config.get(key):
            return f"its {key} is {base.scheduler.config.get(key)}, the model's {pipe.scheduler.config.get(key)}"
    for key in ("sample_size", "in_channels", "out_channels"):
        if getattr(pipe.unet.config, key, None) != getattr(base.unet.config, key, None):
            return f"its {key} is {getattr(base.unet.config, key, None)}, the model's {getattr(pipe.unet.config, key, None)}"
    return None


class BaseGuided(torch.nn.Module):
    """`unet` guided away from `base` by `weight` over `window` of `num_train_timesteps`: called as a
    UNet2DModel is, (sample, timestep) -> an object with `.sample`; outside the window, or at weight 1,
    it is `unet` alone."""

    def __init__(self, unet, base, weight: float, num_train_timesteps: int, window=GUIDANCE_WINDOW):
        super().__init__()
        self.unet, self.base, self.weight = unet, base, float(weight)
        self.low, self.high = (w * num_train_timesteps for w in window)

    @property
    def config(self):
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def guided_at(self, timestep) -> bool:
        t = float(torch.as_tensor(timestep).reshape(-1)[0])
        return self.weight != 1.0 and self.low <= t <= self.high

    def forward(self, sample: torch.Tensor, timestep, *args, **kwargs):
        out = self.unet(sample, timestep, *args, **kwargs).sample
        if self.guided_at(timestep):
            base = self.base(sample, timestep, *args, **kwargs).sample
            out = base + self.weight * (out - base)
        return SimpleNamespace(sample=out)


def guided_unet(unet, base, weight: float, scheduler):
    """The UNet a job samples with: `unet` guided by `base` (None: none attached) when weight > 1."""
    if base is None or weight == 1.0:
        return unet
    return BaseGuided(unet, base, weight, scheduler.config.num_train_timesteps)
