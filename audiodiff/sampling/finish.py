"""From a finished image to the audio written: the one decode epilogue (decode once, drop what
the decode could not make, scale to a level reference, limit the peaks) and the long clip's
finish (trim to the exact length, fade, normalise the loudness once, BS.1770)."""

from __future__ import annotations

import math

import torch

from ..mel import MelConfig, images_to_audio
from ..metrics import DEFAULT_PEAK_CEILING, DEFAULT_TARGET_LUFS, normalize_loudness

DEFAULT_FADE_OUT_SECONDS = 0.5
FADE_IN_SECONDS = 0.005  # removes a click if the first sample is far from zero


def decode_audio(image: torch.Tensor, mel: MelConfig, samples: int | None = None, gain=None) -> torch.Tensor:
    """Decode images (B, 1, H, W) once (one phase reconstruction for all of it) -> float (B, T) on
    the CPU: the first `samples` (when given), NaNs made 0, times `gain` (one per item or one for all:
    the level reference the image's 0 dB stands for)."""
    audio = images_to_audio(image, mel)  # (B, (W - 1) * hop)
    if samples is not None:
        audio = audio[..., :samples]
    audio = torch.nan_to_num(audio.float().cpu())
    if gain is not None:
        audio = audio * torch.as_tensor(gain, dtype=torch.float32).reshape(-1, 1)
    return audio


def peak_protect(audio: torch.Tensor, ceiling: float = DEFAULT_PEAK_CEILING) -> torch.Tensor:
    """Scale each item of (B, T) down (never up) so that its peak is at most `ceiling`."""
    peak = audio.abs().amax(dim=-1, keepdim=True).clamp_min(1e-9)
    return audio * torch.clamp(ceiling / peak, max=1.0)


def set_level(audio: torch.Tensor, sample_rate: int, target_lufs: float | None,
              peak_ceiling: float = DEFAULT_PEAK_CEILING) -> torch.Tensor:
    """Made audio's level: normalised to `target_lufs` (peaks under the ceiling), or with None
    only kept under the ceiling."""
    if target_lufs is not None:
        return normalize_loudness(audio, sample_rate, target_lufs, peak_ceiling)
    return peak_protect(audio, peak_ceiling)


def _fade(audio: torch.Tensor, sample_rate: int, fade_out_seconds: float) -> torch.Tensor:
    """Raised-cosine fade-out (at most a quarter of the clip) and a 5 ms fade-in: (B, T)."""
    length = audio.shape[-1]
    out = audio.clone()
    fade_out = min(int(round(fade_out_seconds * sample_rate)), length // 4)
    if fade_out > 1:
        ramp = 0.5 * (1 + torch.cos(torch.linspace(0, math.pi, fade_out, device=audio.device)))
        out[..., length - fade_out :] *= ramp
    fade_in = min(int(round(FADE_IN_SECONDS * sample_rate)), length // 4)
    if fade_in > 1:
        out[..., :fade_in] *= torch.linspace(0, 1, fade_in, device=audio.device)
    return out


def finish_audio(
    image: torch.Tensor,
    mel: MelConfig,
    samples: int,
    *,
    fade_out_seconds: float = DEFAULT_FADE_OUT_SECONDS,
    target_lufs: float | None = DEFAULT_TARGET_LUFS,
    peak_ceiling: float = DEFAULT_PEAK_CEILING,
) -> torch.Tensor:
    """Decode a whole stitched image (B, 1, H, W) once, trim to `samples`, fade, normalise -> (B, T)."""
    if mel.frames_to_samples(image.shape[-1]) < samples:
        raise ValueError(f"image of {image.shape[-1]} columns decodes to {mel.frames_to_samples(image.shape[-1])} "
                         f"samples, fewer than {samples}")
    audio = _fade(decode_audio(image, mel, samples), mel.sample_rate, fade_out_seconds)
    return set_level(audio, mel.sample_rate, target_lufs, peak_ceiling)
