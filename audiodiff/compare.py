"""Before/after: generate clips from two pipelines with the same seeds and measure both against
a genre's held-out tracks and against the other genres (`compare_models`; the method is told in
`audiodiff.evaluate`'s docstring).
"""

from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np

from .clipsets import (AudioClip, ClipSet, SplitSettings, describe_clips, describe_references, few_windows_warning,
                       genre_sets, halves_distance, long_clip_report)
from .device import place
from .features import (MIN_CLIP_SECONDS, EvaluationError, FeatureExtractor, HandcraftedFeatures, Standardizer,
                       frechet_distance)
from .report import extractor_info, say, set_info


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
                                   {"seam_seconds": made.seams_of(i)}))
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
    target, others = genre_sets(genre, pipes["after"].mel, dataset=dataset, data_dir=data_dir, held_out=True,
                                split=split, progress=progress)
    if not others:
        raise EvaluationError(f"the source holds only the genre {target.genre!r}; comparing needs other genres as well")
    say(log, f"reference: {target.description}; other genres: {', '.join(others)}")
    scaler = describe_references(target, others, extractor)
    references = {target.genre: scaler(target.features), **{label: scaler(o.features) for label, o in others.items()}}

    warnings = few_windows_warning("the reference", target)
    models = {}
    for role, pipe in pipes.items():
        say(log, f"generating {clips} clips of {seconds:g} s from {role}: {pipe.describe()}")
        place(pipe, target_device)  # the base UNet that guides it goes too
        made = ClipSet(f"{role}: {pipe.source}", generate_clips(pipe, clips, seconds, seed=seed, num_inference_steps=steps,
                                                                batch_size=batch_size, progress=progress))
        pipe.to("cpu")  # frees the accelerator for the next model
        describe_clips(made, extractor)
        warnings += few_windows_warning(f"the {role} set", made)
        models[role] = _model_row(pipe, made, scaler, references, target.genre)
    halves, halves_how = halves_distance(target, scaler)
    ratio = models["after"]["fd"] / models["before"]["fd"] if models["before"]["fd"] > 0 else math.inf
    after_closest = models["after"]["closest_genre"] == target.genre
    return {
        "genre": target.genre,
        "reference": {**set_info(target), "split": {"validation_fraction": split.validation_fraction, "seed": split.seed}},
        "other_genres": {label: set_info(o) for label, o in others.items()},
        "features": extractor_info(extractor),
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
