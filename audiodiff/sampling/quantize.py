"""Beats settled on an even grid (issue 28): a finished clip's image columns warped so that the
beats the tempo hold kept land at equal intervals, as a DAW's quantize does to a played take.

The hold keeps each slice's period, but the generated onsets sit loosely on it (librosa's beat
tracker: inter-beat intervals' std/mean 0.055-0.084, real jazz 0.03-0.046), and a first slice can
change phase partway. So, on the finished image, before its one decode:
- the beats are tracked with the held period known: a dynamic-programming tracker (Ellis 2007)
  over the image's own onset envelope, loose enough (BEAT_TIGHTNESS) to follow the strongest
  events through a phase change;
- the grid is the line through them (least squares, refitted on the beats within a quarter
  beat of it), so the clip keeps its own tempo and phase;
- every beat is moved `strength` of the way onto its grid point (1 = onto the grid): between two
  beats, the columns the segment must gain or lose are repeated or left out where the onset
  envelope is quietest, whole columns, never blended, so no attack is smeared, doubled or cut.
  A beat segment is stretched or squeezed by at most MAX_STRETCH; a beat that would need more is
  left where it is. The clip's first and last columns stay where they can;
- all of it twice (PASSES): the second pass tracks the settled image, for a first slice whose
  first pass settled one stream of events while the tracker now hears another.
librosa's beat tracker plays no part in it, so the tempo measures can judge it
(docs/sampling-defaults.md has the measurements).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..mel import MelConfig

DEFAULT_QUANTIZE = 1.0  # onto the grid; 0 leaves the clip as sampled
BEAT_TIGHTNESS = 30.0  # the tracker's penalty on log2-period deviations (librosa's default is 100)
MAX_STRETCH = 1.5  # a beat segment is at most 1.5x longer or shorter than it was
WEAK_END = 0.5  # a first or last beat on less than half the median beat's onset is no beat
GRID_INLIER = 0.25  # beats within a quarter beat of the first line fit the second one
MIN_BEATS = 3  # a clip shorter than three beats, or with fewer tracked, is left as it is
# A second pass tracks the settled image again: where a first slice held two streams of events, the
# first pass can settle the one librosa does not hear, and the tracker then follows the other (the
# music-jazz fine-tune, seed 0, clip 1: its first 5 s 4.2 % off the clip's tempo after one pass,
# 3.5 % after two). Over issue 28's 32 clips one pass left that first window 4.2 % off (ours), two
# leave every first window within 3.8 % (ours) and 4.0 % (librosa, one clip, two of its lags);
# spreads and regularity alike (worst 2.8 / 3.5 %, 0.047). A third pass changes nothing.
PASSES = 2


def track_beats(onset: np.ndarray, period: float, tightness: float = BEAT_TIGHTNESS) -> np.ndarray:
    """Beat columns (ascending ints) of an onset envelope (W,) with a known period in columns:
    the path of beats maximising normalised onset strength less `tightness` * log(interval /
    period)^2 per interval (intervals of half to twice the period), without weak beats at its ends."""
    width = onset.size
    strength = onset / (onset.std() + 1e-9)
    score = strength.astype(np.float64).copy()
    back = np.full(width, -1)
    low, high = max(1, int(round(period / 2))), max(2, int(round(2 * period)))
    for t in range(low, width):
        taus = np.arange(max(0, t - high), t - low + 1)
        candidates = score[taus] - tightness * np.log((t - taus) / period) ** 2
        best = int(np.argmax(candidates))
        if candidates[best] > 0:  # else the path starts here: a beat needs no earlier beat
            score[t] = strength[t] + candidates[best]
            back[t] = taus[best]
    tail = max(1, int(round(period)))
    beat = int(np.argmax(score[-tail:])) + width - tail
    beats = [beat]
    while back[beats[-1]] >= 0:
        beats.append(int(back[beats[-1]]))
    return _trim_weak_ends(np.array(beats[::-1]), strength)


def _trim_weak_ends(beats: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """The path without its leading and trailing beats on no onset (under WEAK_END of the median
    beat's strength, each read as the largest within a column): a path runs to both ends of the
    clip whether or not beats are there."""
    near = np.maximum.reduce([np.roll(strength, shift) for shift in (-1, 0, 1)])[beats]
    strong = np.nonzero(near >= WEAK_END * np.median(near))[0]
    return beats[strong[0]: strong[-1] + 1] if strong.size else beats


def grid_of(beats: np.ndarray) -> np.ndarray:
    """The even grid nearest the beats (B,): a least-squares line over the beat index, refitted
    on the beats within GRID_INLIER of a beat from it."""
    index = np.arange(beats.size, dtype=np.float64)
    slope, offset = np.polyfit(index, beats, 1)
    for _ in range(2):
        inliers = np.abs(beats - (offset + slope * index)) < GRID_INLIER * slope
        if inliers.sum() < 2:
            break
        slope, offset = np.polyfit(index[inliers], beats[inliers], 1)
    return offset + slope * index


def _anchors(beats: np.ndarray, targets: np.ndarray, max_stretch: float) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) pairs: the beats in order, leaving out one whose segment from the last
    kept beat would be stretched or squeezed by more than `max_stretch`."""
    sources, kept = [float(beats[0])], [float(targets[0])]
    for source, target in zip(beats[1:], targets[1:]):
        if target <= kept[-1]:
            continue
        if _within((source - sources[-1]) / (target - kept[-1]), max_stretch):
            sources.append(float(source))
            kept.append(float(target))
    return np.array(sources), np.array(kept)


def _anchor_points(width: int, beats, targets, max_stretch: float) -> tuple[np.ndarray, np.ndarray]:
    """The warp's (source, target) anchors: the beats (`_anchors`), and the clip's first and last
    columns where they can stay (within `max_stretch` of the nearest beat's segment)."""
    last = width - 1.0
    beats, targets = np.asarray(beats, float), np.asarray(targets, float)
    inside = (targets >= 0) & (targets <= last)  # a grid point off the image anchors nothing
    if not inside.any():
        return np.zeros(1), np.zeros(1)  # nothing moves
    sources, kept = _anchors(beats[inside], targets[inside], max_stretch)
    if 0 < kept[0] and 0 < sources[0] and _within(sources[0] / kept[0], max_stretch):
        sources, kept = np.r_[0.0, sources], np.r_[0.0, kept]
    if kept[-1] < last and sources[-1] < last and _within((last - sources[-1]) / (last - kept[-1]), max_stretch):
        sources, kept = np.r_[sources, last], np.r_[kept, last]
    return sources, kept


def column_map(width: int, beats: np.ndarray, targets: np.ndarray, max_stretch: float = MAX_STRETCH) -> np.ndarray:
    """For each of `width` output columns, the source column it shows (float, ascending): each
    target column shows its beat, linear in between, shifted as the nearest anchor before the
    first and after the last unless the clip's first and last columns can stay (within
    `max_stretch`); clamped to the image."""
    sources, kept = _anchor_points(width, beats, targets, max_stretch)
    out = np.arange(width, dtype=np.float64)
    source = np.interp(out, kept, sources)
    source[out < kept[0]] = out[out < kept[0]] + (sources[0] - kept[0])
    source[out > kept[-1]] = out[out > kept[-1]] + (sources[-1] - kept[-1])
    return np.clip(source, 0, width - 1.0)


def column_sources(width: int, beats: np.ndarray, targets: np.ndarray, onset: np.ndarray,
                   max_stretch: float = MAX_STRETCH) -> np.ndarray:
    """The whole source column (int) each of `width` output columns shows: the anchors of
    `column_map`, and between two of them the source columns in order with the few the segment
    must gain or lose repeated or left out where the onset envelope (W,) is quietest, so that no
    attack is doubled or cut."""
    sources, kept = (np.rint(a).astype(np.int64) for a in _anchor_points(width, beats, targets, max_stretch))
    cost = onset + np.r_[onset[1:], 0.0]  # repeating or leaving out column c changes the rises at c and c + 1
    out = np.arange(width, dtype=np.int64)
    out[: kept[0]] += sources[0] - kept[0]
    for k0, s0, k1, s1 in zip(kept[:-1], sources[:-1], kept[1:], sources[1:]):
        if k1 > k0:
            out[k0:k1] = _fill(int(s0), int(s1), int(k1 - k0), cost)
    out[kept[-1]:] += sources[-1] - kept[-1]
    return np.clip(out, 0, width - 1)


def _fill(s0: int, s1: int, n: int, cost: np.ndarray) -> np.ndarray:
    """n columns from source columns [s0, s1): in order, the quietest repeated or left out."""
    columns = np.arange(s0, s1)
    if columns.size == n or columns.size == 0:
        return columns if columns.size == n else np.full(n, s0)
    count = abs(n - columns.size)
    quiet = _quiet(columns[1:], count, cost)  # never the beat's own column
    if n > columns.size:
        return np.sort(np.r_[columns, quiet])
    return np.setdiff1d(columns, quiet)


def _quiet(candidates: np.ndarray, count: int, cost: np.ndarray) -> np.ndarray:
    """`count` columns spread evenly over the quieter half of `candidates` (by cost)."""
    pool = np.sort(candidates[np.argsort(cost[candidates], kind="stable")[: max(count, candidates.size // 2)]])
    return pool[np.unique(np.linspace(0, pool.size - 1, count).round().astype(np.int64))] if count <= pool.size \
        else np.resize(pool, count)


def _within(ratio: float, max_stretch: float) -> bool:
    return 1.0 / max_stretch <= ratio <= max_stretch


def quantize_image(image: torch.Tensor, beat_columns: torch.Tensor, mel: MelConfig,
                   strength: float = DEFAULT_QUANTIZE, passes: int = PASSES) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Each image of (B, 1, H, W) with its beats moved `strength` of the way onto an even grid of
    its held period (beat_columns (B,), columns), `passes` times, each pass tracking the beats of
    the image the last one made -> (the warped images, each item's column map (W,): the source
    column of `image` each output column shows)."""
    out, maps = _settle_once(image, beat_columns, mel, strength)
    for _ in range(passes - 1):
        out, again = _settle_once(out, beat_columns, mel, strength)
        maps = [np.interp(m2, np.arange(m1.size, dtype=np.float64), m1) for m1, m2 in zip(maps, again)]
    return out, maps


def _settle_once(image: torch.Tensor, beat_columns: torch.Tensor, mel: MelConfig,
                 strength: float) -> tuple[torch.Tensor, list[np.ndarray]]:
    """One pass of `quantize_image`: each item's beats tracked and moved onto their grid."""
    width = image.shape[-1]
    identity = np.arange(width, dtype=np.float64)
    if not strength or width < 2:
        return image, [identity.copy() for _ in range(image.shape[0])]
    from .steering import image_onset  # steering needs the options, which need this module

    onsets = image_onset(image.detach().float().cpu(), mel).numpy().astype(np.float64)
    out, maps = image.clone(), []
    for i, period in enumerate(beat_columns.tolist()):
        if not math.isfinite(period) or width < MIN_BEATS * period:  # too short to have a grid
            maps.append(identity.copy())
            continue
        beats = track_beats(onsets[i], float(period)).astype(np.float64)
        if beats.size < MIN_BEATS:
            maps.append(identity.copy())
            continue
        targets = beats + strength * (grid_of(beats) - beats)
        columns = column_sources(width, beats, targets, onsets[i])
        out[i] = image[i][..., torch.from_numpy(columns).to(image.device)]
        maps.append(column_map(width, beats, targets))
    return out, maps


def moved_column(mapping: np.ndarray, source_column: float) -> float:
    """Where a source column (a seam, a slice start) lies after the warp, in output columns."""
    return float(np.interp(source_column, mapping, np.arange(mapping.size, dtype=np.float64)))


def settle_beats(image: torch.Tensor, beat_columns: torch.Tensor | None, mel: MelConfig, strength: float,
                 seam_columns=(), seconds: float = math.inf):
    """A new clip's stitched image (B, 1, H, W) with its beats settled `strength` of the way onto
    the grid of its held beat (B,) -> (image, each item's seams in seconds after the warp (those
    before `seconds`), the most any of its columns moved in seconds); the image as it is and
    None, None without a held beat or at strength 0."""
    if beat_columns is None or not strength:
        return image, None, None
    settled, maps = quantize_image(image, beat_columns, mel, strength)
    out = np.arange(image.shape[-1], dtype=np.float64)
    seams = [[s for s in (mel.columns_to_seconds(moved_column(m, c)) for c in seam_columns) if s < seconds]
             for m in maps]
    moved = [round(mel.columns_to_seconds(float(np.abs(m - out).max())), 3) for m in maps]
    return settled, seams, moved


def check_quantize(strength) -> None:
    """A quantize strength is a number from 0 (as sampled) to 1 (onto the grid)."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise ValueError(f"quantize must be from 0 (the beats as sampled) to 1 (onto an even grid), got {strength!r}")
