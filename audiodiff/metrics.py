"""Measures of a generated clip that benchmarks and evaluation share: seams and loudness.

One implementation, so that a number in a benchmark's table and the same number in an
evaluation report mean the same thing (DESIGN section 7).

- **Seam score**: long clips are built slice by slice, and a bad join is heard as a click, a
  jump in level or a change of texture: a burst of spectral flux (onset strength) at the join.
  For each seam we take the largest flux value within +-2 frames of it and average over the
  seams, then divide by the same statistic (largest value within +-2 frames) averaged over
  every frame position of the clip. 1.0 means a seam is like any other moment; a clip whose
  seams click scores well above 1. Taking the local maximum on both sides keeps the ratio
  fair: a seam is not penalised for landing a frame or two off an onset grid.
- **Loudness**: ITU-R BS.1770 (K-weighted, gated) loudness via `torchaudio.functional.loudness`,
  never a hand-rolled RMS, on consecutive windows (4 s by default). Its spread says whether the
  level stays consistent along the clip (the reference codec normalises each slice to its own
  maximum, so joined slices jump in level); its drift says whether it creeps up or down.
  Whole-clip loudness normalisation (`normalize_loudness`) lives here too, so generation and
  measurement use the same meter.

Calibration on a real recording (Fats Waller, `../shared/music/jazz/waller.flac`, 185 s, at
22050 Hz), with seams every 5.92 s (where a slice-by-slice decode is concatenated): the untouched
audio scores 0.84 (0.73 on its first 30 s), and decoding it slice by slice with the reference
codec (librosa Griffin-Lim) and concatenating scores 2.11 (2.17 on the first 30 s). DESIGN
section 7 quotes 0.7 and 1.2: the same ordering, but this onset strength (log-compressed, so
clicks in quiet passages count) separates the two more strongly than that measure did. The 4 s
loudness spread of real jazz, as a standard deviation: 1.5 LU on average over its 30 s clips
(0.6 to 2.3), 1.8 LU over its first minute, 3.6 LU over the whole piece.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torchaudio.functional as AF

from .audio import to_mono_numpy

FLUX_HOP_LENGTH = 512  # onset-strength frame hop, in samples (23 ms at 22050 Hz, librosa's default)
SEAM_NEIGHBOURHOOD_FRAMES = 2  # a seam's score is the largest flux within +-2 frames of it
SILENCE_LUFS = -70.0  # BS.1770's absolute gate: a window entirely below it has no loudness


def _mono_numpy(audio) -> np.ndarray:
    """(T,) or (1, T) tensor/array -> float32 numpy (T,); NaN or infinite samples are an error."""
    audio = to_mono_numpy(audio)
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples; cannot measure it")
    return audio


def _mono_torch(audio) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor):
        audio = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    audio = audio.detach().float()
    if audio.dim() == 2 and audio.shape[0] == 1:
        audio = audio[0]
    if audio.dim() != 1:
        raise ValueError(f"expected mono audio of shape (T,) or (1, T), got {tuple(audio.shape)}")
    return audio


# ---- seams -----------------------------------------------------------------------------------
def spectral_flux(audio, sample_rate: int, hop_length: int = FLUX_HOP_LENGTH) -> np.ndarray:
    """Onset strength (spectral flux) per frame: (T,) audio -> (1 + T // hop_length,) float array.

    librosa's `onset_strength` (log mel power, positive first difference, mean over bands),
    centred so frame f describes the moment f * hop_length / sample_rate.
    """
    import librosa

    audio = _mono_numpy(audio)
    flux = librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=hop_length, center=True)
    return flux.astype(np.float64)


def _local_max(values: np.ndarray, radius: int) -> np.ndarray:
    """Largest value within +-radius positions of each position (edges see fewer neighbours)."""
    padded = np.pad(values, radius, mode="constant", constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    return windows.max(axis=-1)


def seam_score(
    audio,
    sample_rate: int,
    seam_seconds: Sequence[float],
    hop_length: int = FLUX_HOP_LENGTH,
    radius_frames: int = SEAM_NEIGHBOURHOOD_FRAMES,
) -> float:
    """Mean over seams of the local flux maximum, over the mean local maximum of all frames.

    1.0: a seam is like any other moment; > 1: seams stand out (clicks, jumps). Seams outside
    the clip are an error (they would silently be measured as nothing).
    """
    seams = [float(s) for s in seam_seconds]
    if not seams:
        raise ValueError("seam_score needs at least one seam time")
    flux = spectral_flux(audio, sample_rate, hop_length)
    local = _local_max(flux, radius_frames)  # (F,)
    frames = np.array([round(s * sample_rate / hop_length) for s in seams])
    if frames.min() < 0 or frames.max() >= len(flux):
        duration = (len(flux) - 1) * hop_length / sample_rate
        raise ValueError(f"seam times {seams} lie outside the clip (0 to {duration:.2f} s)")
    baseline = local.mean()
    if baseline <= 0:
        return 1.0  # no flux anywhere (silence, a pure steady tone): every moment is alike
    return float(local[frames].mean() / baseline)


# ---- loudness --------------------------------------------------------------------------------
def loudness(audio, sample_rate: int) -> float:
    """Integrated BS.1770 loudness of a whole mono clip in LUFS; -inf for silence."""
    audio = _mono_torch(audio)
    if audio.numel() < round(0.4 * sample_rate):
        raise ValueError(f"BS.1770 loudness needs at least 0.4 s of audio, got {audio.numel() / sample_rate:.3f} s")
    value = float(AF.loudness(audio.reshape(1, -1).cpu(), sample_rate))
    return value if math.isfinite(value) else -math.inf


def loudness_windows(audio, sample_rate: int, window_seconds: float = 4.0) -> torch.Tensor:
    """BS.1770 loudness (LUFS) of consecutive windows: (T,) -> (floor(T / window),).

    A trailing part shorter than a window is left out (a partial window would be measured on
    less audio than the others). A window below the -70 LUFS absolute gate has no loudness and
    is NaN: the spread and drift ignore such windows.
    """
    audio = _mono_torch(audio).cpu()
    window = int(round(window_seconds * sample_rate))
    if window < round(0.4 * sample_rate):
        raise ValueError(f"window_seconds must be at least 0.4 s (one BS.1770 gating block), got {window_seconds}")
    count = audio.numel() // window
    if count == 0:
        raise ValueError(f"audio of {audio.numel() / sample_rate:.2f} s is shorter than one {window_seconds} s window")
    windows = audio[: count * window].reshape(count, 1, window)  # (N, channels=1, window)
    values = AF.loudness(windows, sample_rate)  # (N,)
    return torch.where(torch.isfinite(values) & (values > SILENCE_LUFS), values, torch.full_like(values, float("nan")))


def loudness_spread(audio, sample_rate: int, window_seconds: float = 4.0) -> float:
    """Standard deviation (LU) of the windows' loudness; 0 for a steady level.

    The standard deviation, not the range: on real jazz (waller.flac, 4 s windows) it gives
    ~1.9 LU, the figure DESIGN section 7 quotes, where the range gives several times that.
    """
    values = loudness_windows(audio, sample_rate, window_seconds)
    values = values[~torch.isnan(values)]
    if values.numel() < 2:
        return 0.0
    return float(values.std(unbiased=False))


def loudness_range(audio, sample_rate: int, window_seconds: float = 4.0) -> float:
    """Largest minus smallest window loudness (LU)."""
    values = loudness_windows(audio, sample_rate, window_seconds)
    values = values[~torch.isnan(values)]
    return float(values.max() - values.min()) if values.numel() >= 2 else 0.0


def loudness_drift(audio, sample_rate: int, window_seconds: float = 4.0) -> float:
    """Least-squares slope of window loudness against time, in LU per minute (0: no drift).

    A slope, not last-minus-first, so that one loud bar at either end does not read as drift.
    """
    values = loudness_windows(audio, sample_rate, window_seconds)
    times_minutes = (torch.arange(values.numel(), dtype=torch.float64) + 0.5) * window_seconds / 60.0
    keep = ~torch.isnan(values)
    if int(keep.sum()) < 2:
        return 0.0
    t, v = times_minutes[keep], values[keep].double()
    t = t - t.mean()
    return float((t * (v - v.mean())).sum() / t.square().sum())


def normalize_loudness(
    audio: torch.Tensor,
    sample_rate: int,
    target_lufs: float = -16.0,
    peak_ceiling: float = 0.89,
) -> torch.Tensor:
    """Scale each clip of (B, T) or (T,) audio to `target_lufs`, never past `peak_ceiling`.

    One gain per clip (the whole clip is measured once), so the level shape inside the clip is
    kept. The peak ceiling (-1 dBFS by default) wins over the target: a clip never clips. Clips
    too short for BS.1770 (< 0.4 s) are scaled by their RMS instead; silent clips are left as
    they are. NaN never comes out.
    """
    single = audio.dim() == 1
    batch = audio.reshape(1, -1) if single else audio
    if batch.dim() != 2:
        raise ValueError(f"expected audio of shape (T,) or (B, T), got {tuple(audio.shape)}")
    out = []
    for clip in batch:
        clip = torch.nan_to_num(clip.float(), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(clip.abs().max()) if clip.numel() else 0.0
        if peak <= 1e-9:
            out.append(clip)
            continue
        if clip.numel() >= round(0.4 * sample_rate):
            level = loudness(clip, sample_rate)
        else:  # too short for BS.1770's gating blocks: plain RMS as a stand-in
            level = 20 * math.log10(max(float(clip.square().mean().sqrt()), 1e-12)) - 0.691
        gain = 10 ** ((target_lufs - level) / 20) if math.isfinite(level) else peak_ceiling / peak
        gain = min(gain, peak_ceiling / peak)
        out.append(clip * gain)
    result = torch.stack(out)
    return result[0] if single else result
