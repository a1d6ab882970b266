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

Where the pieces are: `audiodiff.clipsets` loads and describes sets of clips and takes their
long-clip measures, `audiodiff.compare` generates and compares two models, `audiodiff.report`
writes the tables and the JSON files. This module evaluates a folder (with the codec's round
trip), carries out a request of scripts/evaluate.py, and keeps every name importable from here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .audio import resample
from .data import SILENCE_DB  # a codec slice quieter than this is skipped: silence has no fidelity
from .clipsets import (SYNTHETIC_POOL, AudioClip, ClipSet, SplitSettings, cut_clips, describe_clips,  # noqa: F401
                       describe_references, few_windows_warning, genre_clips, genre_sets, halves_distance,
                       load_folder_clips, long_clip_report, reference_long_clips)
from .compare import (COMPARE_BATCH_SIZE, COMPARE_CLIPS, COMPARE_SECONDS, COMPARE_STEPS, GOAL_RATIO,  # noqa: F401
                      compare_models, generate_clips)
from .features import (MIN_CLIP_SECONDS, EvaluationError, FeatureExtractor, HandcraftedFeatures,  # noqa: F401
                       Standardizer, TorchScriptEmbedding, frechet_distance)
from .mel import MelConfig, audio_to_images, images_to_audio, images_to_db, spectral_convergence
from .report import (LONG_CLIP_MEASURES, default_comparison_path, default_report_path, extractor_info,  # noqa: F401
                     format_comparison, format_long_clips, format_report, save_report, say, set_info)

__all__ = [  # the features and the distance are in audiodiff.features
    "AudioClip", "ClipSet", "EvaluationError", "EvaluationRequest", "SplitSettings", "codec_fidelity", "compare_models",
    "default_comparison_path", "cut_clips", "default_report_path", "describe_clips", "evaluate_folder",
    "few_windows_warning", "format_comparison", "format_report", "generate_clips", "genre_clips", "halves_distance",
    "load_folder_clips", "long_clip_report", "reference_long_clips", "run_evaluation", "save_report",
]

# ---- settings ----------------------------------------------------------------------------------
CODEC_MAX_SLICES = 8  # slices of reference audio round-tripped through the codec (decoding is the slow part)


# ---- the codec on the reference audio -------------------------------------------------------------
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


# ---- a folder of generated clips -----------------------------------------------------------------
def _mel_from_clips(clips: Sequence[AudioClip]) -> MelConfig | None:
    for clip in clips:
        values = clip.meta.get("mel") if clip.meta else None
        if isinstance(values, dict):
            try:
                return MelConfig.from_dict(values)
            except (TypeError, ValueError):
                continue
    return None


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
        target, others = genre_sets(genre, mel, dataset=dataset, data_dir=data_dir, held_out=held_out, split=split,
                                    progress=progress, compare_genres=compare_genres)
        target_label = target.genre
    say(log, f"reference: {target.description}")
    describe_clips(generated, extractor)
    scaler = describe_references(target, others, extractor)
    gen, ref = scaler(generated.features), scaler(target.features)
    halves, halves_how = halves_distance(target, scaler)
    report: dict = {
        "generated": set_info(generated),
        "reference": {**set_info(target), "genre": target_label},
        "features": extractor_info(extractor),
        "fd": frechet_distance(gen, ref),
        "fd_same_genre_halves": halves,
        "halves": halves_how,
    }
    if others:
        report["other_genres"] = {label: set_info(o) for label, o in others.items()}
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
        say(log, format_report(report))
        return save_report(report, request.output or default_report_path(request.generated))
    result = compare_models(
        request.before, request.after, request.genre, dataset=request.dataset, data_dir=request.data_dir,
        clips=_given(request.clips, COMPARE_CLIPS), seconds=_given(request.seconds, COMPARE_SECONDS),
        seed=_given(request.seed, 0), steps=_given(request.steps, COMPARE_STEPS),
        batch_size=_given(request.batch_size, COMPARE_BATCH_SIZE), device=request.device, extractor=extractor,
        progress=request.progress, log=log,
    )
    say(log, format_comparison(result))
    return save_report(result, request.output or default_comparison_path(request.after, result["genre"]))
