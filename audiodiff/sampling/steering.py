"""Steering: what the sampler gives a continued slice that the model, seeing only its context,
lacks. Each is a *guide*, a function of the clean image the model predicts at a step, applied by
a `Steered` denoiser around the model's prediction (k-diffusion keeps guidance in wrappers around
the denoiser the same way):

- the level hold (`level_guide`): each slice's new columns are held at the level of the clip so far;
- the tempo hold (`tempo_guide`): each slice's new columns are kept on the clip's beat;
- candidates (`level_chooser`): of N finished versions of a slice, the one nearest the clip's level.

The join pull (`join_pull`, new clips) is the mask's feathered edge: the last known columns are
regenerated, pulled toward what they were (the loop's `pull`). Why each, and the measurements
behind every default: docs/sampling-defaults.md.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

from ..mel import MelConfig, images_to_db
from .loop import Guide
from .options import DEFAULT_LEVEL_HOLD, DEFAULT_TEMPO_HOLD

LEVEL_HOLD_RAMP_SECONDS = 1.0  # the hold fades in over the first second of new columns: the join stays continuous
TEMPO_HOLD_BAND_GROUPS = 8  # the rhythm is read in 8 groups of Mel bands (bass drum to hi-hat)
# The rhythm is blended toward its mean over this many beats before. 2 lowered beat regularity in 8
# paired 12 s clips of the default fine-tune (0.0725 -> 0.0677, 5 lower, 2 higher: within the noise
# of one clip) at the same flatness: kept at 1 until the 16-clip benchmark says (docs/sampling-defaults.md)
TEMPO_HOLD_ECHO_BEATS = 1
# the last 0.25 s of the known columns are pulled 0.8 of the way back after every step: it
# smooths the onset spike new columns tend to start with (seam 1.20 -> 1.05)
JOIN_BLEND_SECONDS = 0.25
JOIN_BLEND_PULL = 0.8


# ---- the level of an image -------------------------------------------------------------------
def image_level_db(images: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """Loudness-weighted level of each image of (..., 1, H, W) in dB -> (...): the mean over all
    its pixels of Mel power weighted by BS.1770's K-weighting at each band (`band_loudness_weights`),
    on the images' 0 dB grey scale. Differences between two levels are differences in loudness
    (without BS.1770's gating)."""
    db = images_to_db(images.reshape(-1, *images.shape[-3:]).float(), mel)  # (N, H, W)
    weights = band_loudness_weights(mel).to(db.device).view(1, -1, 1)
    level = 10.0 * torch.log10((torch.pow(10.0, db / 10.0) * weights).mean(dim=(-2, -1)).clamp_min(1e-12))
    return level.reshape(images.shape[:-3])


@functools.lru_cache(maxsize=8)
def band_loudness_weights(mel: MelConfig) -> torch.Tensor:
    """(n_mels,) power gain of BS.1770's K-weighting filters (the ones torchaudio's loudness uses:
    a +4 dB shelf above ~1.5 kHz, a high-pass at 38 Hz) averaged over each Mel band's filter."""
    import torchaudio.functional as AF

    from ..mel import filterbank

    impulse = torch.zeros(1, mel.n_fft)
    impulse[0, 0] = 1.0
    weighted = AF.treble_biquad(impulse, mel.sample_rate, 4.0, 1500.0, 1 / math.sqrt(2))
    weighted = AF.highpass_biquad(weighted, mel.sample_rate, 38.0, 0.5)
    gain = torch.fft.rfft(weighted[0]).abs() ** 2  # (n_fft // 2 + 1,)
    bank = filterbank(mel)  # (n_mels, n_freqs)
    bank = bank.to_dense() if bank.is_sparse else bank
    return (bank @ gain) / bank.sum(dim=1).clamp_min(1e-12)


# ---- the level hold and candidates -----------------------------------------------------------
def level_chooser(target_db: torch.Tensor, mel: MelConfig, new_columns: tuple[int, int],
                  context_db: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """How a slice's candidates are chosen (after the last step): of each item's candidates
    (B, N, 1, H, W), the clean images last predicted, the one whose new columns [start, end) have
    the level closest to `target_db` (B,) -> indices (B,).

    With `context_db` (B,), the level of the known columns [0, start) as they are, a candidate's
    level is read relative to its own prediction of those columns: context_db + (predicted new -
    predicted known). A prediction made early in the chain is blurred, and blurring lowers the
    mean power of an image by several dB; read as it is, it made the choice prefer the quietest
    candidates (30 s clips sank -3 to -9 LU/min), while the difference cancels it."""
    start, end = new_columns

    def choose(candidates: torch.Tensor) -> torch.Tensor:
        levels = image_level_db(candidates[..., start:end], mel)  # (B, N)
        if context_db is not None and start > 0:
            levels = context_db.to(levels).view(-1, 1) + levels - image_level_db(candidates[..., :start], mel)
        return (levels - target_db.to(levels).view(-1, 1)).abs().argmin(dim=1)

    return choose


def level_guide(target_db: torch.Tensor, context_db: torch.Tensor, mel: MelConfig, new_columns: tuple[int, int],
                strength: float = DEFAULT_LEVEL_HOLD) -> Guide:
    """A guide that holds a continued slice at the clip's level (DEFAULT_LEVEL_HOLD
    says why): each step's predicted clean image (B, 1, H, W) gets its new columns [start, end)
    moved by `strength` times (target_db - their level) dB, weighted from 0 at `start` to 1
    LEVEL_HOLD_RAMP_SECONDS later (or halfway to `end`, if sooner). target_db (B,): the level of the clip so far; context_db (B,):
    the level of the known columns [0, start) as they are (a prediction's level is read against its
    own prediction of them)."""
    start, end = new_columns
    # over at most half the new columns (models with short slices)
    ramp_columns = max(1, min(int(round(mel.seconds_to_columns(LEVEL_HOLD_RAMP_SECONDS))), (end - start) // 2))
    db_per_grey_unit = mel.top_db / 2.0  # images span [-1, 1] for top_db dB

    def guide(clean: torch.Tensor, step: int) -> torch.Tensor:
        c = clean.clamp(-1.0, 1.0)
        per_item = clean.shape[0] // target_db.numel()  # an item's candidates are neighbouring rows
        target, context = (v.to(c).view(-1).repeat_interleave(per_item) for v in (target_db, context_db))
        level = context + image_level_db(c[..., start:end], mel) - image_level_db(c[..., :start], mel)
        shift = strength * (target - level) / db_per_grey_unit  # (rows,) grey units
        columns = torch.arange(clean.shape[-1], device=clean.device)
        weight = ((columns - start).float() / ramp_columns).clamp(0.0, 1.0) * (columns < end)
        return clean + shift.view(-1, 1, 1, 1) * weight.view(1, 1, 1, -1)

    return guide


def chain_guides(*guides: Guide | None) -> Guide | None:
    """One guide that applies `guides` in turn (None ones skipped); None if none."""
    chain = [g for g in guides if g is not None]
    if len(chain) <= 1:
        return chain[0] if chain else None

    def guide(clean: torch.Tensor, step: int) -> torch.Tensor:
        for g in chain:
            steered = g(clean, step)
            clean = clean if steered is None else steered
        return clean

    return guide




# ---- the tempo hold --------------------------------------------------------------------------
def image_onset(images: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """Onset envelope of images (..., 1, H, W) -> (..., W): the mean over Mel bands of each
    column's rise in dB over the column before (librosa's onset strength, on the image itself);
    column 0 reads 0."""
    db = images_to_db(images.reshape(-1, *images.shape[-3:]).float(), mel)  # (N, H, W)
    rise = torch.relu(db[..., 1:] - db[..., :-1]).mean(dim=-2)
    return torch.nn.functional.pad(rise, (1, 0)).reshape(*images.shape[:-3], images.shape[-1])


def image_beat_columns(images: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """The beat period of each image (B, 1, H, W) in columns (float) -> (B,): the onset
    autocorrelation's peak with the prior around 120 bpm that the tempo measure uses
    (`metrics.tempo_and_clarity`)."""
    import numpy as np

    from ..metrics import tempo_and_clarity

    periods = []
    for onset in image_onset(images.cpu(), mel).reshape(-1, images.shape[-1]):
        log2_bpm, _ = tempo_and_clarity(onset.numpy().astype(np.float64), mel.pixels_per_second)
        periods.append(beat_columns_for(2.0**log2_bpm, mel))
    return torch.tensor(periods, dtype=torch.float32)


def beat_columns_for(bpm: float, mel: MelConfig) -> float:
    """One beat at `bpm` in image columns."""
    return 60.0 * mel.pixels_per_second / bpm


def beat_bpm(beat_columns: torch.Tensor, mel: MelConfig) -> list[float]:
    """Beat periods (B,) in columns as tempi in bpm, to 0.1."""
    return [round(60.0 * mel.pixels_per_second / float(b), 1) for b in beat_columns]


def fold_beat(beat_columns: torch.Tensor, max_columns: float) -> torch.Tensor:
    """Each beat period (B,) halved while it is longer than `max_columns` (the known columns a
    slice can echo): half a beat is still on the beat's grid."""
    folded = beat_columns.clone().float()
    for i in range(folded.numel()):
        while folded[i] > max_columns and folded[i] >= 4.0:
            folded[i] /= 2.0
    return folded


def _delayed(envelope: torch.Tensor, delay: torch.Tensor) -> torch.Tensor:
    """envelope (R, G, W) delayed by `delay` (R,) columns, fractional ones interpolated linearly:
    out[..., t] = envelope[..., t - delay] (the first column repeated before the start)."""
    rows, groups, width = envelope.shape
    position = (torch.arange(width, device=envelope.device, dtype=torch.float32).view(1, 1, width)
                - delay.to(envelope.device, torch.float32).view(-1, 1, 1)).clamp(0.0, width - 1.0)
    low = position.floor().long()
    frac = (position - low).to(envelope.dtype)
    high = (low + 1).clamp(max=width - 1)
    return (envelope.gather(-1, low.expand(rows, groups, width)) * (1.0 - frac)
            + envelope.gather(-1, high.expand(rows, groups, width)) * frac)


def _echo(rhythm: torch.Tensor, beats: torch.Tensor, start: int, echo_beats: int) -> torch.Tensor:
    """What the rhythm (R, G, W) was over the last `echo_beats` beats (R,), averaged: the mean of
    it delayed by 1..echo_beats beats, each delay counted for a row only if it reaches no further
    back than column 0 from `start` (one beat always counts)."""
    total = torch.zeros_like(rhythm)
    count = torch.zeros(rhythm.shape[0], 1, 1, device=rhythm.device, dtype=rhythm.dtype)
    for n in range(1, max(1, echo_beats) + 1):
        counts = ((n * beats <= start) | (n == 1)).to(rhythm.dtype).view(-1, 1, 1)
        total = total + counts * _delayed(rhythm, n * beats)
        count = count + counts
    return total / count


def tempo_guide(beat_columns: torch.Tensor, new_columns: tuple[int, int], strength: float = DEFAULT_TEMPO_HOLD,
                groups: int = TEMPO_HOLD_BAND_GROUPS, echo_beats: int = TEMPO_HOLD_ECHO_BEATS) -> Guide:
    """A guide that keeps a continued slice on the clip's beat (DEFAULT_TEMPO_HOLD
    says why). beat_columns (B,): each item's beat period in columns, at most the known columns
    [0, start), so the first beat of new columns echoes them. Each step's predicted clean image
    (rows, 1, H, W) is split into `groups` bands of Mel rows; each band's envelope (its mean grey
    per column) minus its moving average over one beat is the rhythm; over the new columns
    [start, end) the rhythm is blended `strength` of the way toward its mean over the `echo_beats`
    beats before (`_echo`), scaled back to the spread it had there, and the change is added to
    every row of the band."""
    start, end = new_columns

    def guide(clean: torch.Tensor, step: int) -> torch.Tensor:
        if min(end, clean.shape[-1]) - start < 2:  # no rhythm to keep in fewer than two new columns
            return clean
        c = clean.clamp(-1.0, 1.0)
        rows, _, height, width = c.shape
        beats = beat_columns.to(c.device).float().repeat_interleave(rows // beat_columns.numel())  # (rows,)
        bands = torch.tensor_split(torch.arange(height, device=c.device), min(groups, height))
        envelope = torch.stack([c[:, 0, band].mean(dim=1) for band in bands], dim=1)  # (rows, G, W)
        trend = torch.empty_like(envelope)
        for r in range(rows):  # moving average over one beat (odd window, edges repeated)
            window = int(round(float(beats[r]))) // 2 * 2 + 1
            padded = torch.nn.functional.pad(envelope[r : r + 1], (window // 2, window // 2), mode="replicate")
            trend[r] = torch.nn.functional.avg_pool1d(padded, window, stride=1)[0]
        rhythm = envelope - trend
        blended = (1.0 - strength) * rhythm + strength * _echo(rhythm, beats, start, echo_beats)
        spread = rhythm[..., start:end].std(dim=-1, keepdim=True)
        blended = blended * (spread / blended[..., start:end].std(dim=-1, keepdim=True).clamp_min(1e-6))
        columns = torch.arange(width, device=c.device)
        change = (blended - rhythm) * ((columns >= start) & (columns < end)).to(c.dtype)
        sizes = torch.tensor([len(band) for band in bands], device=c.device)
        return clean + change.repeat_interleave(sizes, dim=1).unsqueeze(1).to(clean.dtype)

    return guide



# ---- the join pull ---------------------------------------------------------------------------
def join_pull(mask: torch.Tensor, known_columns: int, blend_columns: int) -> tuple[int, torch.Tensor | None]:
    """Feather the edge of a slice's known columns [0, known_columns): their last `blend_columns`
    (at most half) are taken out of `mask` (changed in place) and pulled toward what they were, by
    JOIN_BLEND_PULL at their far end falling to nothing at the join -> (columns blended, pull (W,) or None)."""
    blended = min(blend_columns, known_columns // 2)
    if blended <= 0:
        return 0, None
    mask[known_columns - blended : known_columns] = False
    pull = torch.zeros(mask.shape[-1])
    pull[known_columns - blended : known_columns] = JOIN_BLEND_PULL * torch.linspace(1.0, 0.0, blended + 2)[1:-1]
    return blended, pull


def join_blend_columns(mel: MelConfig) -> int:
    """The known columns a new clip's slices regenerate at each join."""
    return int(round(mel.seconds_to_columns(JOIN_BLEND_SECONDS)))
