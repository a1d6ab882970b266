"""Evaluation: how close generated audio is to a genre, how its long clips hold together, and
how faithful the Mel codec is on the genre's own audio (DESIGN section 7).

Genre distance. Each clip is described window by window (`audiodiff.features`: hand-made
offline features by default, or a local TorchScript embedding, `--embedding PATH`) and a
Fréchet distance compares the two sets' means and covariances, as FAD does with a learned
embedding. Every feature is standardised with the statistics of the reference audio of the
report (the target genre, plus the other genres when they are compared), so all distances of
one report are in the same units.

A number alone means little, so every report carries its scale: the distance between two
disjoint halves of the target genre's own audio (what "the same genre" looks like with this
many windows; the halves hold half the windows each, which inflates a Fréchet distance, so it
is a generous yardstick), and the distance to every other genre when the genre comes from a
dataset or a folder of genres.

Long clips. Seam scores, loudness spread/drift, tempo spread and key consistency come from
`audiodiff.metrics`, the same code the long-clip benchmark uses, with seams read from each WAV's
JSON sidecar (`seam_seconds`, written by `scripts/generate.py`). A WAV without one gets no seam
score, and the report says so. The same measures are taken on the reference's real clips, cut
to the generated clips' length, and reported next to them: a model's clips should be as steady
as the music it learned from, not steadier than a metronome.

Before/after. `compare_models` generates clips from two pipelines with the same seeds and
measures both against the genre's held-out audio (the split the trainer makes, asked of
`data.split_validation` with the run's fraction and seed: whole recordings, or the last part of
each track when the genre has few, so the fine-tune never saw it) and against the other genres.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .audio import AUDIO_EXTENSIONS, AudioError, read_audio, resample
from .data import SILENCE_DB  # a codec slice quieter than this is skipped: silence has no fidelity
from .features import (MIN_CLIP_SECONDS, EvaluationError, FeatureExtractor, HandcraftedFeatures, Standardizer,
                       TorchScriptEmbedding, feature_matrix, frechet_distance)
from .mel import MelConfig, audio_to_images, images_to_audio, images_to_db, spectral_convergence
from .metrics import TEMPO_WINDOW_SECONDS
from .train import CONFIG_FILE, FinetuneConfig

__all__ = [  # the features and the distance are in audiodiff.features
    "AudioClip", "ClipSet", "EvaluationError", "EvaluationRequest", "SplitSettings", "codec_fidelity", "compare_models",
    "default_comparison_path", "cut_clips", "default_report_path", "describe_clips", "evaluate_folder",
    "few_windows_warning", "format_comparison", "format_report", "generate_clips", "genre_clips", "halves_distance",
    "load_folder_clips", "long_clip_report", "reference_long_clips", "run_evaluation", "save_report",
]

# ---- settings ----------------------------------------------------------------------------------
CODEC_MAX_SLICES = 8  # slices of reference audio round-tripped through the codec (decoding is the slow part)


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


def _genre_sets(genre: str, mel: MelConfig, *, dataset, data_dir, held_out: bool, split: SplitSettings,
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


def _describe_references(target: ClipSet, others: dict[str, ClipSet], extractor: FeatureExtractor) -> Standardizer:
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


# ---- long clips and the codec --------------------------------------------------------------------
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


def codec_fidelity(clips: Sequence[AudioClip], mel: MelConfig, max_slices: int = CODEC_MAX_SLICES) -> dict:
    """Round trip of the Mel codec on real audio: encode slices, decode (images_to_audio),
    re-encode; spectral convergence and log-spectral distance (dB) between the two images.

    Consecutive slices are taken from each clip in turn (the first slice of every clip, then
    the second, ...) up to `max_slices`; near-silent slices are skipped and counted.
    """
    per_clip = []
    for clip in clips:
        audio = resample(clip.audio.float(), clip.sample_rate, mel.sample_rate)
        count = audio.numel() // mel.slice_samples
        per_clip.append([audio[i * mel.slice_samples : (i + 1) * mel.slice_samples] for i in range(count)])
    chosen, silent = [], 0
    for k in range(max((len(p) for p in per_clip), default=0)):
        for pieces in per_clip:
            if k < len(pieces) and len(chosen) < max_slices:
                rms = float(pieces[k].double().square().mean().sqrt())
                if 20 * math.log10(max(rms, 1e-12)) < SILENCE_DB:
                    silent += 1
                else:
                    chosen.append(pieces[k])
    result: dict = {"mel": mel.to_dict(), "slices": len(chosen), "silent_slices_skipped": silent}
    if not chosen:
        result["note"] = f"no reference audio as long as one slice ({mel.slice_seconds:.2f} s) with sound in it"
        return result
    images = audio_to_images(torch.stack(chosen), mel)  # (S, 1, H, W)
    decoded = images_to_audio(images, mel)  # (S, (W - 1) * hop)
    again = audio_to_images(decoded, mel)  # zero-padded by hop - 1 samples: the last column sees a cut
    images, again = images[..., :-1], again[..., :-1]  # so it is left out of the comparison
    convergence = spectral_convergence(images, again, mel)  # (S,)
    level_in = images_to_db(images, mel)  # (S, H, W - 1) dB relative to the slice maximum
    level_out = images_to_db(again, mel)
    lsd = (level_in - level_out).square().mean(dim=1).sqrt().mean(dim=1)  # (S,) RMS over bands, mean over frames
    result.update({
        "spectral_convergence_mean": float(convergence.mean()),
        "log_spectral_distance_db_mean": float(lsd.mean()),
        "spectral_convergence": [round(float(v), 4) for v in convergence],
    })
    return result


# ---- reports ---------------------------------------------------------------------------------------
def _extractor_info(extractor) -> dict:
    describe = getattr(extractor, "describe", None)
    return describe() if callable(describe) else {"kind": getattr(extractor, "name", type(extractor).__name__)}


def _mel_from_clips(clips: Sequence[AudioClip]) -> MelConfig | None:
    for clip in clips:
        values = clip.meta.get("mel") if clip.meta else None
        if isinstance(values, dict):
            try:
                return MelConfig.from_dict(values)
            except (TypeError, ValueError):
                continue
    return None


def _say(log, message: str) -> None:
    if log is not None:
        log(message)


def evaluate_folder(
    generated_dir: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    *,
    genre: str | None = None,
    dataset: str | None = None,
    data_dir: str | os.PathLike | None = None,
    held_out: bool = True,
    split: SplitSettings = SplitSettings(),
    extractor: FeatureExtractor | None = None,
    mel: MelConfig | None = None,
    compare_genres: bool = True,
    codec_slices: int = CODEC_MAX_SLICES,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Evaluate the WAVs in `generated_dir` against reference audio -> a JSON-ready report.

    The reference is a folder of audio (`reference`, searched recursively), or a genre of a
    dataset (`dataset`, e.g. "synthetic" or a hub id) or of a folder with one sub-folder per
    genre (`data_dir`); then it is the genre's held-out tracks (`held_out`) and the other
    genres are measured too (`compare_genres`). `mel` is the codec whose fidelity is measured
    and whose rate the reference is loaded at: by default the one in the generated clips' JSON
    sidecars, else the public models' (MelConfig()).
    """
    if (reference is None) == (dataset is None and data_dir is None):
        raise EvaluationError("give the reference as a folder of audio (--reference DIR) or as a genre of a dataset "
                              "(--dataset ID --genre G) or of a folder of genres (--data-dir DIR --genre G), not both")
    if reference is None and not genre:
        raise EvaluationError("a reference from a dataset or a folder of genres needs --genre")
    extractor = extractor or HandcraftedFeatures()
    generated = load_folder_clips(generated_dir, read_sidecars=True)
    generated.description = f"generated clips in {Path(generated_dir)}"
    mel = mel or _mel_from_clips(generated.clips) or MelConfig()

    others: dict[str, ClipSet] = {}
    if reference is not None:
        target = load_folder_clips(reference, recursive=True)
        target_label = Path(reference).name
    else:
        target, others = _genre_sets(genre, mel, dataset=dataset, data_dir=data_dir, held_out=held_out, split=split,
                                     progress=progress, compare_genres=compare_genres)
        target_label = target.genre
    _say(log, f"reference: {target.description}")
    describe_clips(generated, extractor)
    scaler = _describe_references(target, others, extractor)
    gen, ref = scaler(generated.features), scaler(target.features)
    halves, halves_how = halves_distance(target, scaler)
    report: dict = {
        "generated": _set_info(generated),
        "reference": {**_set_info(target), "genre": target_label},
        "features": _extractor_info(extractor),
        "fd": frechet_distance(gen, ref),
        "fd_same_genre_halves": halves,
        "halves": halves_how,
    }
    if others:
        report["other_genres"] = {label: _set_info(o) for label, o in others.items()}
        report["fd_reference_to_genre"] = {label: frechet_distance(ref, scaler(o.features)) for label, o in others.items()}
        by_genre = {target_label: report["fd"]}
        by_genre.update({label: frechet_distance(gen, scaler(o.features)) for label, o in others.items()})
        report["fd_generated_to_genre"] = by_genre
        report["closest_genre"] = min(by_genre, key=by_genre.get)
    report["long_clips"] = long_clip_report(generated.clips)
    # the same measures on the reference, cut to the generated clips' (median) length: "as steady
    # as the music it learned from" is a comparison at equal length
    length = float(np.median([c.seconds for c in generated.clips]))
    real = reference_long_clips(target.clips, length, target.description)
    report["long_clips"]["reference"] = real
    report["long_clips"]["reference_loudness_spread_lu_mean"] = real["loudness_spread_lu_mean"]
    report["codec"] = codec_fidelity(target.clips, mel, codec_slices)
    report["warnings"] = few_windows_warning("the reference", target) + few_windows_warning("the generated set", generated)
    return report


def _set_info(clips: ClipSet) -> dict:
    info = {"description": clips.description, "clips": len(clips.clips), "seconds": round(clips.seconds, 2),
            "windows": int(clips.features.shape[0]) if clips.features is not None else 0}
    if clips.skipped:
        info["skipped"] = dict(clips.skipped)
    return info


# ---- before / after ----------------------------------------------------------------------------------
COMPARE_CLIPS = 16  # clips generated per model
COMPARE_SECONDS = 4.0  # per clip: three 2 s feature windows; 6 slices (with overlaps) of the bundled model
COMPARE_STEPS = 20  # DDIM steps: enough for a fair picture of a model, fast on a CPU for small ones
COMPARE_BATCH_SIZE = 8  # clips generated at once
GOAL_RATIO = 0.7  # the project's goal: FD(after) <= 0.7 FD(before), and `after` closest to its genre


def generate_clips(pipe, count: int, seconds: float, *, seed: int = 0, num_inference_steps: int = COMPARE_STEPS,
                   batch_size: int = COMPARE_BATCH_SIZE, progress: bool = False) -> list[AudioClip]:
    """`count` clips of `seconds` from a pipeline (DDIM, no fade-out), `batch_size` at a time; the
    batch starting at clip k is seeded with seed + k, so the same arguments give the same clips."""
    from .sample import generate_long

    clips = []
    for start in range(0, count, batch_size):
        size = min(batch_size, count - start)
        made = generate_long(pipe, seconds, seed=seed + start, num_inference_steps=num_inference_steps, scheduler="ddim",
                             batch_size=size, progress=progress, fade_out_seconds=0.0)
        for i in range(size):
            clips.append(AudioClip(f"clip-{start + i:03d}", made.audio[i].cpu(), made.sample_rate,
                                   {"seam_seconds": list(made.seam_seconds)}))
    return clips


def _check_comparison(dataset, data_dir, *, clips: int, seconds: float, steps: int, batch_size: int) -> None:
    """compare_models' arguments, and the request limits, before anything is loaded."""
    if (dataset is None) == (data_dir is None):
        raise EvaluationError("give the genre's source: --dataset ID (e.g. synthetic) or --data-dir DIR, one of them")
    for name, value in (("clips", clips), ("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EvaluationError(f"{name} must be a whole number of at least 1, got {value!r}")
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= MIN_CLIP_SECONDS):
        raise EvaluationError(f"seconds must be a number of at least {MIN_CLIP_SECONDS}, got {seconds!r}")
    from .limits import RequestLimits

    RequestLimits.from_env().check(seconds=seconds, clips=clips, batch_size=min(batch_size, clips))  # per model


def _model_row(pipe, made: ClipSet, scaler: Standardizer, references: dict[str, np.ndarray], genre: str) -> dict:
    """One model's line of the comparison: its clips' distance to every genre, and how they hold together."""
    features = scaler(made.features)
    by_genre = {label: frechet_distance(features, reference) for label, reference in references.items()}
    long_clips = long_clip_report(made.clips)
    from .pipeline import weights_sha256

    return {
        "model": str(pipe.source), "weights_sha256": weights_sha256(pipe.unet), "fd": by_genre[genre],
        "fd_by_genre": by_genre,
        "closest_genre": min(by_genre, key=by_genre.get), "windows": int(made.features.shape[0]),
        "seam_score_mean": long_clips["seam_score_mean"],
        "loudness_spread_lu_mean": long_clips["loudness_spread_lu_mean"],
    }


def compare_models(
    before: str | os.PathLike,
    after: str | os.PathLike,
    genre: str,
    *,
    dataset: str | None = None,
    data_dir: str | os.PathLike | None = None,
    clips: int = COMPARE_CLIPS,
    seconds: float = COMPARE_SECONDS,
    seed: int = 0,
    steps: int = COMPARE_STEPS,
    device=None,
    extractor: FeatureExtractor | None = None,
    batch_size: int = COMPARE_BATCH_SIZE,
    split: SplitSettings | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Generate `clips` clips from each pipeline (the same seeds for both) and measure how close
    each is to `genre`'s held-out tracks and to every other genre -> a JSON-ready dict.

    The held-out tracks follow the split of the run that made `after` (its
    training_config.json), else the trainer's defaults (fraction 0.1, seed 0); the reference
    audio is loaded at `after`'s sample rate, as the trainer loads it. `ratio` is
    FD(after) / FD(before) against the genre; `after_closest_genre` whether `after` is closer
    to the genre than to any other.
    """
    from .pipeline import load_pipeline, pick_device

    _check_comparison(dataset, data_dir, clips=clips, seconds=seconds, steps=steps, batch_size=batch_size)
    extractor = extractor or HandcraftedFeatures()
    target_device = pick_device(device)
    split = split or SplitSettings.from_run(after)
    pipes = {"before": load_pipeline(before), "after": load_pipeline(after)}
    target, others = _genre_sets(genre, pipes["after"].mel, dataset=dataset, data_dir=data_dir, held_out=True,
                                 split=split, progress=progress)
    if not others:
        raise EvaluationError(f"the source holds only the genre {target.genre!r}; comparing needs other genres as well")
    _say(log, f"reference: {target.description}; other genres: {', '.join(others)}")
    scaler = _describe_references(target, others, extractor)
    references = {target.genre: scaler(target.features), **{label: scaler(o.features) for label, o in others.items()}}

    warnings = few_windows_warning("the reference", target)
    models = {}
    for role, pipe in pipes.items():
        _say(log, f"generating {clips} clips of {seconds:g} s from {role}: {pipe.describe()}")
        pipe.unet.to(target_device)
        made = ClipSet(f"{role}: {pipe.source}", generate_clips(pipe, clips, seconds, seed=seed, num_inference_steps=steps,
                                                                batch_size=batch_size, progress=progress))
        pipe.unet.to("cpu")  # frees the accelerator for the next model
        describe_clips(made, extractor)
        warnings += few_windows_warning(f"the {role} set", made)
        models[role] = _model_row(pipe, made, scaler, references, target.genre)
    halves, halves_how = halves_distance(target, scaler)
    ratio = models["after"]["fd"] / models["before"]["fd"] if models["before"]["fd"] > 0 else math.inf
    after_closest = models["after"]["closest_genre"] == target.genre
    return {
        "genre": target.genre,
        "reference": {**_set_info(target), "split": {"validation_fraction": split.validation_fraction, "seed": split.seed}},
        "other_genres": {label: _set_info(o) for label, o in others.items()},
        "features": _extractor_info(extractor),
        "settings": {"clips": clips, "seconds": seconds, "seed": seed, "steps": steps, "scheduler": "ddim",
                     "batch_size": batch_size, "device": str(target_device)},
        "before": models["before"],
        "after": models["after"],
        "ratio": ratio,
        "after_closest_genre": after_closest,
        "fd_same_genre_halves": halves,
        "halves": halves_how,
        "fd_reference_to_genre": {label: frechet_distance(references[target.genre], references[label]) for label in others},
        "goal": f"ratio <= {GOAL_RATIO} and after closer to {target.genre} than to any other genre",
        "goal_met": bool(ratio <= GOAL_RATIO and after_closest),
        "warnings": warnings,
    }


# ---- output ----------------------------------------------------------------------------------------
def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return str(value)


def _scale_lines(report: dict) -> list[str]:
    lines = [f"  same genre, two halves ({report['halves']}): {_fmt(report['fd_same_genre_halves'])}"]
    for label, value in report.get("fd_reference_to_genre", {}).items():
        lines.append(f"  {report.get('genre') or report['reference'].get('genre')} vs {label}: {_fmt(value)}")
    return lines


def format_report(report: dict) -> str:
    """A readable table of an `evaluate_folder` report."""
    gen, ref = report["generated"], report["reference"]
    lines = [
        f"generated: {gen['description']} ({gen['clips']} clips, {gen['seconds']:g} s, {gen['windows']} windows)",
        f"reference: {ref['description']} ({ref['clips']} clips, {ref['seconds']:g} s, {ref['windows']} windows)",
        f"features:  {report['features'].get('kind')} ({report['features'].get('dims', '?')} dims)",
        "",
        f"Frechet distance, generated vs reference: {_fmt(report['fd'])}",
        "scale (same units):",
        *_scale_lines(report),
    ]
    if "fd_generated_to_genre" in report:
        lines += ["generated vs each genre:"]
        for label, value in sorted(report["fd_generated_to_genre"].items(), key=lambda item: item[1]):
            lines.append(f"  {label:<16} {_fmt(value)}" + ("   <- closest" if label == report["closest_genre"] else ""))
    lines += ["", *format_long_clips(report["long_clips"])]
    codec = report["codec"]
    if codec.get("slices"):
        lines.append(f"codec round trip on the reference ({codec['slices']} slices): spectral convergence "
                     f"{_fmt(codec['spectral_convergence_mean'], 3)}, log-spectral distance "
                     f"{_fmt(codec['log_spectral_distance_db_mean'])} dB")
    else:
        lines.append(f"codec round trip: {codec.get('note', 'not measured')}")
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    return "\n".join(lines)


LONG_CLIP_MEASURES = (  # (key of the mean, label, digits, what the value means)
    ("tempo_spread_percent_median", "tempo spread, % (median)", 1, "0 = one tempo in every 5 s window"),
    ("key_consistency_mean", "key consistency", 2, "1.0 = every 5 s window in the clip's key"),
    ("loudness_spread_lu_mean", "loudness spread, LU", 2, "std of 4 s loudness"),
    ("loudness_drift_lu_per_minute_mean", "loudness drift, LU/min", 2, "0 = no drift"),
    ("loudness_drift_abs_lu_per_minute_mean", "|loudness drift|, LU/min", 2, "each clip's drift, sign dropped"),
    ("seam_score_mean", "seam score", 2, "1.0 = seams like any moment"),
    ("flatness_median", "spectral flatness", 4, "lower = more tonal; white noise ~0.56"),
    ("harmonic_share_median", "harmonic share", 2, "harmonic energy over all (HPSS)"),
)


def format_long_clips(long_clips: dict) -> list[str]:
    """The long-clip measures of generated clips next to the same measures on real clips."""
    real = long_clips.get("reference") or {}
    generated_count = len(long_clips["files"])
    lines = [f"long clips: {generated_count} generated"
             + (f" vs {real['clips']} real clips of the reference cut to {real['seconds']:g} s" if real else "")]
    lines.append(f"  {'':<26}{'generated':>10}{'real' if real else '':>10}")
    for key, label, digits, meaning in LONG_CLIP_MEASURES:
        lines.append(f"  {label:<26}{_fmt(long_clips.get(key), digits):>10}"
                     f"{_fmt(real.get(key), digits) if real else '':>10}   {meaning}")
    notes = collections.Counter()
    for row in long_clips["files"]:
        for field_name in ("seam_note", "loudness_note", "tempo_note", "key_note", "tonality_note"):
            if row.get(field_name):
                notes[(field_name.split("_")[0], row[field_name])] += 1
    for (what, note), count in notes.items():
        lines.append(f"  no {what} measure for {count} generated file{'s' if count != 1 else ''}: {note}")
    return lines


def format_comparison(result: dict) -> str:
    """A readable table of a `compare_models` result."""
    genre = result["genre"]
    labels = list(result["before"]["fd_by_genre"])
    width = max(12, *(len(label) + 2 for label in labels))
    lines = [
        f"reference: {result['reference']['description']} ({result['reference']['windows']} windows)",
        f"generated: {result['settings']['clips']} clips x {result['settings']['seconds']:g} s per model, "
        f"seed {result['settings']['seed']}, {result['settings']['steps']} DDIM steps",
        "",
        f"{'Frechet distance to':<{width}}{'before':>10}{'after':>10}",
    ]
    for label in labels:
        mark = "  <- target" if label == genre else ""
        lines.append(f"{label:<{width}}{_fmt(result['before']['fd_by_genre'][label]):>10}"
                     f"{_fmt(result['after']['fd_by_genre'][label]):>10}{mark}")
    lines += [
        "",
        f"FD(before) = {_fmt(result['before']['fd'])}   ({result['before']['model']})",
        f"FD(after)  = {_fmt(result['after']['fd'])}   ({result['after']['model']})",
        f"ratio after/before = {_fmt(result['ratio'], 3)}",
        f"after is closest to {result['after']['closest_genre']}"
        + (" (the target)" if result["after_closest_genre"] else f", not to the target {genre}"),
        "scale (same units):",
        *_scale_lines(result),
        f"goal ({result['goal']}): {'met' if result['goal_met'] else 'not met'}",
    ]
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines)


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_report(report: dict, path: str | os.PathLike) -> Path:
    """Write the report as JSON at `path`, never over an existing file: NAME-1.json, ... are taken
    instead, atomically (the never-overwrite rule of a clip's files, `clipfiles.reserve_name`).
    Returns the path."""
    from .clipfiles import reserve_name

    path = Path(path)
    text = json.dumps(_json_ready(report), indent=2, allow_nan=False) + "\n"  # a report that can't be written takes no name
    path.parent.mkdir(parents=True, exist_ok=True)
    _, (target,) = reserve_name(path.parent, path.stem, suffixes=(path.suffix,))
    target.write_text(text)
    return target


def default_report_path(generated_dir: str | os.PathLike) -> Path:
    """Beside the generated folder: samples/ -> samples-evaluation.json."""
    folder = Path(generated_dir).expanduser().resolve()
    return folder.parent / f"{folder.name}-evaluation.json"


def default_comparison_path(after: str | os.PathLike, genre: str) -> Path:
    """In the `after` run's folder when it is one (runs/jazz-.../before-after-jazz.json), else here."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", genre).strip("-.") or "genre"
    folder = Path(os.fspath(after)).expanduser()
    if folder.is_dir():
        return folder / f"before-after-{slug}.json"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", os.fspath(after)).strip("-.") or "model"
    return Path(f"before-after-{name}-{slug}.json")


# ---- a request of scripts/evaluate.py ----------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationRequest:
    """What scripts/evaluate.py is asked, one field per flag (its dest); None: the flag was not given."""

    generated: str | None = None  # --generated mode: a folder of generated audio
    before: str | None = None  # --before/--after mode: two pipelines
    after: str | None = None
    reference: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    genre: str | None = None
    all_tracks: bool = False
    clips: int | None = None  # None: COMPARE_CLIPS (likewise seconds, seed, steps, batch_size)
    seconds: float | None = None
    seed: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    device: str | None = None
    embedding: str | None = None
    embedding_sample_rate: int | None = None
    output: str | None = None
    progress: bool = True

    def check(self) -> str:
        """Which mode the flags ask for ("folder" or "compare"); a flag that does not belong to it is an error."""
        comparing = self.before is not None or self.after is not None
        if comparing == (self.generated is not None):
            raise EvaluationError("choose one mode: --generated DIR, or --before MODEL --after MODEL")
        if self.dataset is not None and self.data_dir is not None:
            raise EvaluationError("give either --dataset or --data-dir, not both")
        if comparing:
            if self.before is None or self.after is None:
                raise EvaluationError("--before and --after go together: give both pipelines")
            if not self.genre or (self.dataset is None and self.data_dir is None):
                raise EvaluationError("--before/--after needs --genre G and its source: --dataset ID or --data-dir DIR")
            for flag, value in (("--reference", self.reference), ("--all-tracks", self.all_tracks or None)):
                if value is not None:
                    raise EvaluationError(f"{flag} applies to --generated only; --before/--after measure held-out tracks")
            if self.seconds is not None and self.seconds < MIN_CLIP_SECONDS:
                raise EvaluationError(f"--seconds must be at least {MIN_CLIP_SECONDS:g}, got {self.seconds:g}")
            return "compare"
        for flag, value in (("--clips", self.clips), ("--seconds", self.seconds), ("--seed", self.seed),
                            ("--steps", self.steps), ("--batch-size", self.batch_size), ("--device", self.device)):
            if value is not None:
                raise EvaluationError(f"{flag} applies to --before/--after only (nothing is generated with --generated)")
        if self.reference is not None and (self.dataset is not None or self.data_dir is not None or self.genre):
            raise EvaluationError("give the reference either as --reference DIR or as --dataset/--data-dir with --genre")
        if self.reference is None and (self.dataset is None and self.data_dir is None):
            raise EvaluationError("--generated needs a reference: --reference DIR, or --dataset ID / --data-dir DIR "
                                  "with --genre")
        if self.reference is None and not self.genre:
            raise EvaluationError("--dataset/--data-dir needs --genre G")
        return "folder"

    def check_report_folder(self, mode: str) -> None:
        """The report is written at the end: its folder must take it before any work starts."""
        from .generate import check_output_dir

        if self.output:
            # a report is a .json file: --output /etc/passwd would write /etc/passwd-1 (issue 25)
            if Path(self.output).suffix.lower() != ".json" or Path(self.output).is_dir():
                raise EvaluationError(f"--output {self.output}: name a .json file (in a folder of yours), e.g. "
                                      f"reports/jazz.json")
            check_output_dir(Path(self.output).expanduser().parent, "--output's folder")
        elif mode == "folder":
            check_output_dir(default_report_path(self.generated).parent, "the report's folder (beside --generated)")
        else:
            check_output_dir(default_comparison_path(self.after, self.genre).parent, "the report's folder")


def _given(value, default):
    return default if value is None else value


def run_evaluation(request: EvaluationRequest, log: Callable[[str], None] | None = None) -> Path:
    """Carry out a request of scripts/evaluate.py: check its flags and the report's folder before any
    work, evaluate, log the table, and save the JSON report (never over a file). Returns its path."""
    mode = request.check()
    request.check_report_folder(mode)
    extractor = TorchScriptEmbedding(request.embedding, request.embedding_sample_rate) if request.embedding else None
    if mode == "folder":
        report = evaluate_folder(
            request.generated, request.reference, genre=request.genre, dataset=request.dataset,
            data_dir=request.data_dir, held_out=not request.all_tracks, extractor=extractor, progress=request.progress,
            log=log,
        )
        _say(log, format_report(report))
        return save_report(report, request.output or default_report_path(request.generated))
    result = compare_models(
        request.before, request.after, request.genre, dataset=request.dataset, data_dir=request.data_dir,
        clips=_given(request.clips, COMPARE_CLIPS), seconds=_given(request.seconds, COMPARE_SECONDS),
        seed=_given(request.seed, 0), steps=_given(request.steps, COMPARE_STEPS),
        batch_size=_given(request.batch_size, COMPARE_BATCH_SIZE), device=request.device, extractor=extractor,
        progress=request.progress, log=log,
    )
    _say(log, format_comparison(result))
    return save_report(result, request.output or default_comparison_path(request.after, result["genre"]))
