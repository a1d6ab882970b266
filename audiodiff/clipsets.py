"""Sets of clips for evaluation: loading them (a folder of audio, or a genre's held-out tracks as
the trainer splits them), describing them window by window, and the long-clip measures of a set.

`audiodiff.evaluate` makes reports of them and `audiodiff.compare` generates sets of its own; the
features and the distance are in `audiodiff.features`.
"""

from __future__ import annotations

import collections
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .audio import AUDIO_EXTENSIONS, AudioError, read_audio
from .features import (MIN_CLIP_SECONDS, EvaluationError, FeatureExtractor, Standardizer, feature_matrix,
                       frechet_distance)
from .mel import MelConfig
from .metrics import TEMPO_WINDOW_SECONDS
from .train import CONFIG_FILE, FinetuneConfig


# ---- sets of clips -------------------------------------------------------------------------------
@dataclass
class AudioClip:
    """A piece of audio to evaluate and where it came from."""

    name: str
    audio: torch.Tensor  # (T,) float32 mono
    sample_rate: int
    meta: dict = field(default_factory=dict)  # the JSON sidecar of a generated WAV, when there is one

    @property
    def seconds(self) -> float:
        return self.audio.numel() / self.sample_rate


@dataclass
class ClipSet:
    """Clips, their feature rows, and which clip each row came from."""

    description: str
    clips: list[AudioClip]
    skipped: collections.Counter = field(default_factory=collections.Counter)
    features: np.ndarray | None = None  # (N, D), filled by `describe_clips`
    owners: np.ndarray | None = None  # (N,) index of the clip each row comes from
    genre: str = ""  # the genre label, for a genre's reference set

    @property
    def seconds(self) -> float:
        return float(sum(c.seconds for c in self.clips))


def load_folder_clips(folder: str | os.PathLike, *, recursive: bool = False, read_sidecars: bool = False) -> ClipSet:
    """Every audio file in `folder` (with its JSON sidecar NAME.json when `read_sidecars`), at its
    own rate. Unreadable files are skipped and counted; a folder without audio is an error."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise EvaluationError(f"{root} is not a folder of audio files")
    paths = sorted(root.rglob("*") if recursive else root.iterdir())
    clips, skipped = [], collections.Counter()
    for path in paths:
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        try:
            data, sample_rate = read_audio(path)
        except AudioError:
            skipped["unreadable"] += 1
            continue
        if data.size == 0:
            skipped["empty"] += 1
            continue
        audio = torch.from_numpy(data)
        meta = {}
        sidecar = path.with_suffix(".json")
        if read_sidecars and sidecar.is_file():
            try:
                meta = json.loads(sidecar.read_text())
            except (OSError, json.JSONDecodeError):
                skipped["unreadable_sidecar"] += 1
        meta = meta if isinstance(meta, dict) else {}
        clips.append(AudioClip(path.relative_to(root).as_posix(), audio, sample_rate, meta))
    if not clips:
        why = f" ({_describe_counts(skipped)})" if skipped else ""
        raise EvaluationError(f"no audio files in {root}{why}; expected WAV/FLAC/... files"
                              + (" (sub-folders are searched)" if recursive else ""))
    return ClipSet(f"folder {root}", clips, skipped)


def _describe_counts(counts: collections.Counter) -> str:
    return ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in counts.most_common())


# ---- a genre's reference audio ---------------------------------------------------------------------
SYNTHETIC_POOL = 96  # clips per genre the built-in set's held-out tracks are drawn from (8-13 per genre)


@dataclass(frozen=True)
class SplitSettings:
    """Which tracks count as held out: the trainer's split (`data.split_validation`, asked with the
    run's fraction, seed and recording column). The defaults are the trainer's (FinetuneConfig's)."""

    validation_fraction: float = FinetuneConfig.validation_fraction
    seed: int = FinetuneConfig.seed
    recording_column: str | None = None
    synthetic_pool: int = SYNTHETIC_POOL
    synthetic_seconds: float = FinetuneConfig.synthetic_seconds

    @classmethod
    def from_run(cls, model: str | os.PathLike | None) -> "SplitSettings":
        """The split of the run that made `model` (its training_config.json), else the defaults."""
        path = Path(os.fspath(model)).expanduser() / CONFIG_FILE if model is not None else None
        if path is None or not path.is_file():
            return cls()
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return cls()
        return cls(
            validation_fraction=float(saved.get("validation_fraction", cls.validation_fraction)),
            seed=int(saved.get("seed", cls.seed)),
            recording_column=saved.get("recording_column"),
            synthetic_pool=max(SYNTHETIC_POOL, int(saved.get("synthetic_clips_per_genre") or 0)),
            synthetic_seconds=float(saved.get("synthetic_seconds") or cls.synthetic_seconds),
        )


def _track_clips(tracks, mel: MelConfig) -> list[AudioClip]:
    """Decoded tracks at mel.sample_rate, through the data module's decode cache."""
    from concurrent.futures import ThreadPoolExecutor

    from .data import track_audio

    tracks = list(tracks)
    with ThreadPoolExecutor(_workers()) as pool:  # decoding and rendering release the GIL in numpy
        audio = list(pool.map(lambda track: track_audio(track, mel), tracks))  # the held-out part of each
    return [AudioClip(track.name, samples, mel.sample_rate) for track, samples in zip(tracks, audio)]


def genre_clips(
    genre: str,
    mel: MelConfig,
    *,
    dataset: str | None = None,
    data_dir: str | os.PathLike | None = None,
    held_out: bool = True,
    split: SplitSettings = SplitSettings(),
    progress: bool = False,
) -> tuple[ClipSet, list[str]]:
    """One genre's reference audio at mel.sample_rate, and every genre label of the source.

    held_out: only what the trainer holds out (`split_validation` with the trainer's fraction,
    seed and recording column: whole recordings, or the last part of each track when the genre
    has few recordings), i.e. the audio a fine-tune never trained on. For the built-in set they are
    drawn from a pool of `split.synthetic_pool` clips per genre (larger than any training set
    of it), so there are enough of them: a track's side of the split depends on its name only,
    so the pool's held-out tracks are held out of every smaller set too, and the pool's clips
    beyond a training set were never in it. A folder or dataset whose genre has no held-out
    track (a single track) uses all its tracks, and the description says so.
    """
    from .data import SYNTHETIC, load_genre, split_validation, synthetic_tracks

    if dataset is not None and str(dataset).strip().lower() == SYNTHETIC:
        from .synthetic import GENRES

        label, tracks = synthetic_tracks(genre, split.synthetic_pool, split.synthetic_seconds)  # load_genre's tracks
        labels, description = list(GENRES), f"built-in synthetic set, genre {label}"
        durations = {track.name: track.source.seconds for track in tracks}  # a pool of < 10 clips is split by time
    else:
        tabular = data_dir is None and not (dataset is not None and str(dataset).strip().lower() == SYNTHETIC)
        data = load_genre(genre, mel, dataset=dataset, data_dir=data_dir, progress=progress,
                          recording_column=split.recording_column if tabular else None)
        label, tracks, durations = data.genre, list(data.tracks), data.durations
        labels, description = [g for g in data.genre_counts if g], data.description
    if held_out:
        chosen = split_validation(tracks, split.validation_fraction, seed=split.seed, durations=durations,
                                  min_held_out_seconds=mel.slice_seconds)
        validation = chosen.validation
        if chosen.held_out_by == "time_range":
            description += f", the held-out last part of each of {len(tracks)} tracks"
            tracks = validation
        elif validation:
            description += f", {len(validation)} held-out of {len(tracks)} tracks"
            tracks = validation
        else:
            plural = "s" if len(tracks) != 1 else ""
            description += f", all {len(tracks)} track{plural} (none is held out: a fine-tune trained on them)"
    else:
        description += f", all {len(tracks)} tracks"
    return ClipSet(description, _track_clips(tracks, mel), genre=label), labels


def genre_sets(genre: str, mel: MelConfig, *, dataset, data_dir, held_out: bool, split: SplitSettings,
               progress: bool, compare_genres: bool = True) -> tuple[ClipSet, dict[str, ClipSet]]:
    """`genre`'s reference set and, with `compare_genres`, every other genre's of the same source, by label."""
    kwargs = dict(dataset=dataset, data_dir=data_dir, held_out=held_out, split=split, progress=progress)
    target, labels = genre_clips(genre, mel, **kwargs)
    if not compare_genres:
        return target, {}
    return target, {label: genre_clips(label, mel, **kwargs)[0] for label in labels if label != target.genre}


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def describe_clips(clips: ClipSet, extractor: FeatureExtractor) -> ClipSet:
    """Fill clips.features (N, D) and clips.owners (N,); clips too short to describe are counted.

    Clips are described in a few threads (the FFTs and librosa's kernels release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    def describe(clip: AudioClip):
        if clip.audio.numel() < MIN_CLIP_SECONDS * clip.sample_rate:
            return None
        return feature_matrix(extractor(clip.audio, clip.sample_rate))

    with ThreadPoolExecutor(_workers()) as pool:
        results = list(pool.map(describe, clips.clips))
    rows, owners, kept = [], [], []
    for clip, features in zip(clips.clips, results):
        if features is None:
            clips.skipped["too_short"] += 1
            continue
        rows.append(features)
        owners.append(np.full(features.shape[0], len(kept)))
        kept.append(clip)
    if not rows:
        raise EvaluationError(f"{clips.description}: no clip is long enough to describe (at least {MIN_CLIP_SECONDS} s)")
    clips.clips, clips.features, clips.owners = kept, np.concatenate(rows), np.concatenate(owners)
    return clips


def describe_references(target: ClipSet, others: dict[str, ClipSet], extractor: FeatureExtractor) -> Standardizer:
    """Describe a report's reference sets and fit the standardiser on them: every distance of the
    report is in these units."""
    for clip_set in (target, *others.values()):
        describe_clips(clip_set, extractor)
    return Standardizer.fit(target.features, *(o.features for o in others.values()))


def few_windows_warning(what: str, clips: ClipSet) -> list[str]:
    """A warning when a set has fewer feature windows than half the number of features.

    Its covariance is then badly rank-deficient and a Fréchet distance carries a large
    sampling bias. (Above that it holds up: on the built-in set, 48 windows of a genre lie at
    FD 10 from its held-out tracks and 72 windows at FD 9, against 66-230 for other genres.)"""
    windows, dims = clips.features.shape
    if 2 * windows >= dims:
        return []
    return [f"{what} has only {windows} feature windows for {dims} features: its distances carry a large sampling "
            f"bias; compare them only with the scale lines of this report (more or longer clips help)"]


def halves_distance(clips: ClipSet, scaler: Standardizer) -> tuple[float | None, str]:
    """Fréchet distance between two disjoint halves of a described set: alternate clips when there
    are at least two, else the first and second half of the windows of the one clip."""
    features = scaler(clips.features)
    if len(clips.clips) >= 2:
        first = clips.owners % 2 == 0
        how = f"alternate clips ({(len(clips.clips) + 1) // 2} and {len(clips.clips) // 2})"
    else:
        if features.shape[0] < 4:
            return None, "too few windows to halve (one short clip)"
        first = np.arange(features.shape[0]) < features.shape[0] // 2
        how = "first and second half of the one clip's windows"
    return frechet_distance(features[first], features[~first]), how


# ---- long clips ------------------------------------------------------------------------------------
def long_clip_report(clips: Sequence[AudioClip], window_seconds: float = 4.0,
                     tempo_window_seconds: float = TEMPO_WINDOW_SECONDS) -> dict:
    """Seam score (when the sidecar gives seams), loudness spread/drift (clips of at least two
    `window_seconds` loudness windows), tempo spread and key consistency (clips of at least two
    `tempo_window_seconds` windows, see audiodiff.metrics) of each clip, and their means (the
    tempo spread's median too: one clip with a misread window does not dominate it). What can't
    be measured says why."""
    from .metrics import key_consistency, loudness_drift, loudness_spread, seam_score, tempo_spread, tempo_windows, tonality

    rows = []
    for clip in clips:
        row: dict = {"name": clip.name, "seconds": round(clip.seconds, 3)}
        seams = clip.meta.get("seam_seconds") if clip.meta else None
        if not clip.meta:
            row["seam_note"] = "no JSON sidecar: seam positions unknown"
        elif seams is None:
            row["seam_note"] = "the sidecar gives no seam_seconds"
        else:
            inside = [float(s) for s in seams if 0 <= float(s) < clip.seconds]
            if inside:
                row["seam_score"] = seam_score(clip.audio, clip.sample_rate, inside)
                row["seams"] = len(inside)
            else:
                row["seam_note"] = "a single slice: no seams"
        if clip.seconds >= 2 * window_seconds:
            row["loudness_spread_lu"] = loudness_spread(clip.audio, clip.sample_rate, window_seconds)
            row["loudness_drift_lu_per_minute"] = loudness_drift(clip.audio, clip.sample_rate, window_seconds)
        else:
            row["loudness_note"] = f"shorter than two {window_seconds:g} s loudness windows"
        if clip.seconds >= 2 * tempo_window_seconds:
            row["tempo_bpm"] = [None if math.isnan(v) else round(float(v), 2)
                                for v in tempo_windows(clip.audio, clip.sample_rate, tempo_window_seconds)]
            for key, measure in (("tempo_spread_percent", tempo_spread), ("key_consistency", key_consistency)):
                try:
                    row[key] = measure(clip.audio, clip.sample_rate, tempo_window_seconds)
                except ValueError as exc:  # too few windows with onsets / pitched content: says which
                    row[key.split("_")[0] + "_note"] = str(exc)
        else:
            row["tempo_note"] = row["key_note"] = f"shorter than two {tempo_window_seconds:g} s windows"
        try:  # tonality: is it instruments or noise (metrics module docstring)
            row["flatness"], row["harmonic_share"] = tonality(clip.audio, clip.sample_rate)
        except ValueError as exc:
            row["tonality_note"] = str(exc)
        rows.append(row)

    def values(key):
        return [r[key] for r in rows if key in r and math.isfinite(r[key])]

    def mean(key):
        return float(np.mean(values(key))) if values(key) else None

    def median(key):
        return float(np.median(values(key))) if values(key) else None

    return {
        "window_seconds": window_seconds,
        "tempo_window_seconds": tempo_window_seconds,
        "files": rows,
        "seam_score_mean": mean("seam_score"),
        "seam_scored_files": sum("seam_score" in r for r in rows),
        "loudness_spread_lu_mean": mean("loudness_spread_lu"),
        "loudness_drift_lu_per_minute_mean": mean("loudness_drift_lu_per_minute"),
        # a clip that rises and one that sinks average to none: the size of each clip's drift
        "loudness_drift_abs_lu_per_minute_mean": (float(np.mean(np.abs(values("loudness_drift_lu_per_minute"))))
                                                  if values("loudness_drift_lu_per_minute") else None),
        "tempo_spread_percent_mean": mean("tempo_spread_percent"),
        "tempo_spread_percent_median": median("tempo_spread_percent"),
        "tempo_scored_files": len(values("tempo_spread_percent")),
        "key_consistency_mean": mean("key_consistency"),
        "flatness_median": median("flatness"),
        "harmonic_share_median": median("harmonic_share"),
    }


def cut_clips(clips: Sequence[AudioClip], seconds: float) -> list[AudioClip]:
    """The first `seconds` of each clip (shorter clips whole): real clips at a generated clip's length."""
    return [AudioClip(c.name, c.audio[: int(round(seconds * c.sample_rate))], c.sample_rate, dict(c.meta)) for c in clips]


def reference_long_clips(clips: Sequence[AudioClip], seconds: float, description: str) -> dict:
    """`long_clip_report` of real clips cut to `seconds`, the scale of a generated set's measures."""
    report = long_clip_report(cut_clips(clips, seconds))
    return {"description": description, "clips": len(clips), "seconds": round(seconds, 3), **report}
