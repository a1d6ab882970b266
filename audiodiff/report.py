"""Evaluation reports as a reader gets them: the pieces both reports share, the tables of an
`evaluate_folder` report and of a `compare_models` result, and the JSON file, written beside
what was measured and never over a file.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from .clipsets import ClipSet


# ---- what both reports are made of ----------------------------------------------------------------
def extractor_info(extractor) -> dict:
    """The report's "features" entry: what the extractor says of itself, else its name."""
    describe = getattr(extractor, "describe", None)
    return describe() if callable(describe) else {"kind": getattr(extractor, "name", type(extractor).__name__)}


def say(log, message: str) -> None:
    """Pass a line to `log` when there is one (scripts/evaluate.py prints them)."""
    if log is not None:
        log(message)


def set_info(clips: ClipSet) -> dict:
    """A set's entry of a report: what it is, its clips, seconds and feature windows, and what was skipped."""
    info = {"description": clips.description, "clips": len(clips.clips), "seconds": round(clips.seconds, 2),
            "windows": int(clips.features.shape[0]) if clips.features is not None else 0}
    if clips.skipped:
        info["skipped"] = dict(clips.skipped)
    return info


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
