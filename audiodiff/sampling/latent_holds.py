"""The level and tempo holds on latent pipelines (issue 27): on the decoded clean prediction.

The holds (steering.py) read loudness and onsets off Mel images; VAE latents have neither. So on
a latent pipeline each step's predicted clean latents (R, C, h, w) are decoded by the VAE to the
Mel image they stand for (R, 1, H, w * f), the Mel-image guide is applied there, in Mel columns,
and the change is carried back to latent space, to the new latent columns [start, w) only (the
known ones stay as the model predicted them; the loop re-imposes them anyway). Three ways to carry
it back were measured (docs/latent-models.md):

- "gradient" (the default): one step down the decoder's gradient toward the guided image,
  |decode(z) - guided|^2 over the new columns, its length the best for the decoder linearised at
  z. It carried 30-50 % of a level change asked for in one step on the tiny test VAE (so the
  holds, applied on every step, hold); costs a decode with its backward pass and two more decodes
  per step, next to the UNet call;
- "delta": latents + encode(guided) - encode(decoded). The encoder's round trip error cancels,
  but the encoder does not invert the decoder's small changes: about 10 % carried;
- "direct": encode(guided). Carries the VAE's whole round-trip error into every step (-12 dB
  where +2 dB was asked for on the test VAE): not usable.

The holds can be applied on every `every`-th step only, to save their VAE passes.

`LatentCodec` is what a latent SamplingSetup carries as its `codec`: the setup's `readable`,
`hold_mel`, `hold_factor` and `steering` route every reading of the holds (the clip's level, the
beat read from the first slice, its pulse clarity) and every guide through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .loop import Guide

CARRY_MODES = ("gradient", "delta", "direct")
DEFAULT_CARRY = "gradient"  # carries the most of a change back (docs/latent-models.md)
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

    def carried(self, latents: torch.Tensor, decoded: torch.Tensor, guided: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Latents that decode near `guided`, given that `latents` decode to `decoded`."""
        if self.carry == "direct":
            return self.encode(guided).to(latents)
        if self.carry == "delta":
            return latents + (self.encode(guided) - self.encode(decoded)).to(latents)
        return self.descended(latents, guided, start)

    def _decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        """The VAE's decoder as `pipe.decode` runs it (one chunk), with gradients: (R, 1, H, W) in [-1, 1]."""
        from ..latent import _shift

        vae = self.pipe.vqvae
        z = latents.to(device=self.pipe.device, dtype=vae.dtype) / self.pipe.scaling_factor + _shift(vae)
        return vae.decode(z).sample.float().clamp(-1.0, 1.0)

    def descended(self, latents: torch.Tensor, guided: torch.Tensor, start: int) -> torch.Tensor:
        """`latents` moved along the decoder's gradient toward `guided` ("gradient"): one step
        minimising |decode(latents) - guided|^2 over latent columns [start, ...), the step's length
        the best one for the decoder linearised there (d = -J^T r; length <r, J d> / |J d|^2, J d
        by finite difference). One decode with its backward pass and one more decode."""
        new = (torch.arange(latents.shape[-1], device=latents.device) >= start).to(latents).view(1, 1, 1, -1)
        target = guided.to(self.pipe.device)
        with torch.enable_grad():
            z = latents.detach().to(self.pipe.device).requires_grad_(True)
            decoded = self._decode_raw(z)
            loss = 0.5 * (decoded - target).square().sum()
            (gradient,) = torch.autograd.grad(loss, z)
        direction = -gradient.to(latents) * new
        with torch.no_grad():
            residual = (target - decoded.detach()).flatten(1)  # (R, N)
            size = lambda v: v.abs().flatten(1).mean(1).view(-1, 1, 1, 1)  # per row: rows never mix
            scale = 1e-3 * size(latents).clamp_min(1e-3) / size(direction).clamp_min(1e-12)
            moved = ((self._decode_raw(latents + scale * direction) - decoded.detach()) / scale).flatten(1)  # J d
            length = (residual * moved).sum(1) / moved.square().sum(1).clamp_min(1e-12)  # (R,)
        return latents + length.clamp_min(0.0).view(-1, 1, 1, 1).to(latents) * direction

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
            moved = self.carried(clean, decoded, guided.clamp(-1.0, 1.0), start)
            new = (torch.arange(clean.shape[-1], device=clean.device) >= start).view(1, 1, 1, -1)
            return torch.where(new, moved, clean)

        return guide
