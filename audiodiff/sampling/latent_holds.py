"""The level and tempo holds on latent pipelines (issue 27): on the decoded clean prediction.

The holds (steering.py) read loudness and onsets off Mel images; VAE latents have neither. So on
a latent pipeline each step's predicted clean latents (R, C, h, w) are decoded by the VAE to the
Mel image they stand for (R, 1, H, w * f), the Mel-image guide is applied there, in Mel columns,
and the change is carried back to latent space and added to the new latent columns [start, w)
only (the known ones stay as the model predicted them; the loop re-imposes them anyway):

    latents + encode(guided) - encode(decoded)        ("delta", the default)

rather than `encode(guided)` ("direct"): the VAE's round trip is far from exact on a lightly
trained VAE, and `encode(decoded)` carries the same round-trip error as `encode(guided)`, so the
difference keeps only what the guide changed (docs/latent-models.md has the measurements). It
costs one VAE decode and two encodes of the slice per step ("direct": one of each), next to the
UNet call; the holds can be applied on every `every`-th step only, to save them.

`LatentCodec` is what a latent SamplingSetup carries as its `codec`: the setup's `readable`,
`hold_mel`, `hold_factor` and `steering` route every reading of the holds (the clip's level, the
beat read from the first slice, its pulse clarity) and every guide through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .loop import Guide

CARRY_MODES = ("delta", "direct")
DEFAULT_CARRY = "delta"  # keeps the decoded image nearer the guided one (docs/latent-models.md)
DEFAULT_EVERY = 1  # the holds on every step, as on Mel images


@dataclass(frozen=True)
class LatentCodec:
    """A latent pipeline's VAE as the holds use it: `decode` latents to the Mel images they read,
    and `guide` to wrap a Mel-image guide for the latents the loop samples."""

    pipe: Any  # a LatentAudioDiffusion
    carry: str = DEFAULT_CARRY
    every: int = DEFAULT_EVERY

    def __post_init__(self):
        if self.carry not in CARRY_MODES:
            raise ValueError(f"carry must be one of {', '.join(CARRY_MODES)}, got {self.carry!r}")
        if not (isinstance(self.every, int) and self.every >= 1):
            raise ValueError(f"every must be a whole number of steps, at least 1, got {self.every!r}")

    @property
    def mel(self):
        return self.pipe.mel

    @property
    def factor(self) -> int:
        return self.pipe.factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, h, w) -> Mel images (B, 1, h * f, w * f) in [-1, 1], on the CPU."""
        return self.pipe.decode(latents)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.pipe.encode(images)

    def carried(self, latents: torch.Tensor, decoded: torch.Tensor, guided: torch.Tensor) -> torch.Tensor:
        """Latents that decode near `guided`, given that `latents` decode to `decoded`."""
        if self.carry == "direct":
            return self.encode(guided).to(latents)
        return latents + (self.encode(guided) - self.encode(decoded)).to(latents)

    def guide(self, mel_guide: Guide, start: int) -> Guide:
        """`mel_guide` (on Mel images, in Mel columns) as a guide on latents: applied to the decoded
        clean prediction, its change carried back (`carried`) to latent columns [start, ...)."""

        def guide(clean: torch.Tensor, step: int) -> torch.Tensor | None:
            if step % self.every:
                return None
            decoded = self.decode(clean)  # (R, 1, H, w * f)
            guided = mel_guide(decoded, step)
            if guided is None:
                return None
            moved = self.carried(clean, decoded, guided.clamp(-1.0, 1.0))
            new = (torch.arange(clean.shape[-1], device=clean.device) >= start).view(1, 1, 1, -1)
            return torch.where(new, moved, clean)

        return guide
