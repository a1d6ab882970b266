"""Does every clip hold one tempo, from its first seconds, by any beat tracker? (issue 28)

    python benchmarks/tempo.py --run runs/jazz-XXXX [--run DIR ...] [--seeds 0 1 2 3] [--batch-size 4]
                               [--seconds 30] [--device auto]
    python benchmarks/tempo.py --smoke      # the code path on the tiny preset, 2 steps (numbers mean nothing)

Clips are made as a user makes them (`scripts/generate.py --seconds 30 --batch-size 4 --seed S`:
audiodiff.generate.generate, the default settings), and every clip is reported, not a median:
- held: the beat the tempo hold kept (the clip's JSON, `bpm`);
- ours %: the tempo spread by the estimator the hold reads the beat with (metrics.tempo_spread:
  octave-folded std of log2 tempo over 5 s windows); first %: how far the first 5 s window lies
  from the clip's tempo (metrics.first_window_offset);
- librosa %, first %: the same by librosa's tempo estimator per window (metrics.librosa_tempo_windows);
- regularity: std/mean of the inter-beat intervals of librosa's beat tracker over the clip
  (metrics.beat_regularity; real jazz 0.03-0.05);
- |drift| (LU/min) and seam: as benchmarks/long_clip.py, to see they stay where they were;
- moved: the most any moment moved when the beats were settled on a grid (the JSON, sampling.quantize).
Ends with issue 28's checks over all clips: every clip ours <= 5 % and librosa <= 8 %, the median
by librosa <= 5 %, every first window within 4 % (by both), every regularity <= 0.05.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from audiodiff.cli import positive_float, positive_int, run  # noqa: E402
from audiodiff.generate import generate  # noqa: E402
from audiodiff.metrics import loudness_drift, seam_score, tempo_readings  # noqa: E402
from audiodiff.pipeline import load_pipeline, pick_device  # noqa: E402

CHECKS = (  # (what, key, limit, over every clip or the median)
    ("every clip's tempo spread (ours) <= 5 %", "tempo_spread_percent", 5.0, "all"),
    ("every clip's tempo spread (librosa) <= 8 %", "librosa_tempo_spread_percent", 8.0, "all"),
    ("median tempo spread (librosa) <= 5 %", "librosa_tempo_spread_percent", 5.0, "median"),
    ("every first window within 4 % (ours)", "first_window_percent", 4.0, "all"),
    ("every first window within 4 % (librosa)", "librosa_first_window_percent", 4.0, "all"),
    ("every beat regularity <= 0.05", "beat_regularity", 0.05, "all"),
)
# A limit is met by a value equal to it up to float rounding: librosa reads whole lags, so a first
# window of 150 bpm in a 156.25 bpm clip is 4 % exactly, which the octave-folded log2 sum reads as
# 4.0000000000000036.
ROUNDING = 1e-9


def measure_clip(wav: Path) -> dict:
    """Every tempo reading of one clip, plus its held bpm, drift and seam score."""
    audio, rate = sf.read(wav, dtype="float32")
    meta = json.loads(wav.with_suffix(".json").read_text())
    row = {"clip": wav.stem, "held_bpm": meta.get("bpm"), **tempo_readings(audio, rate)}
    row["abs_drift"] = abs(loudness_drift(audio, rate))
    row["moved"] = meta.get("beats_moved_seconds")  # how far the beats were settled on a grid (sampling.quantize)
    seams = [float(s) for s in meta.get("seam_seconds") or [] if 0 < float(s) < audio.size / rate]
    row["seam"] = seam_score(audio, rate, seams) if seams else None
    return row


def measure_run(path: Path, seeds, batch_size: int, seconds: float, device: str, steps, work_dir: Path) -> list[dict]:
    pipe = load_pipeline(path)
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        paths = generate(str(path), seconds, output_dir=work_dir, name=f"seed{seed}", seed=seed, steps=steps,
                         batch_size=batch_size, device=device, progress=False, log=None, pipe=pipe, model_choice="given")
        per_clip = (time.perf_counter() - start) / batch_size / seconds
        for wav in (p for p in paths if p.suffix == ".wav"):
            rows.append({**measure_clip(wav), "seed": seed, "real_time": per_clip})
    return rows


def _cell(value, template="{:.1f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return template.format(value)


def format_rows(label: str, rows: list[dict]) -> str:
    head = (f"{'clip':<14}{'held':>7}{'ours %':>8}{'first %':>8}{'librosa %':>10}{'first %':>8}"
            f"{'regularity':>11}{'|drift|':>8}{'seam':>6}{'moved':>7}  ours / librosa bpm per 5 s window")
    lines = [f"{label}", head]
    for r in rows:
        windows = " ".join(_cell(v, "{:.0f}") for v in r["tempo_bpm"]) + " / " + \
            " ".join(_cell(v, "{:.0f}") for v in r["librosa_tempo_bpm"])
        held = r["held_bpm"][0] if isinstance(r["held_bpm"], list) else r["held_bpm"]
        lines.append(f"{r['clip']:<14}{_cell(held):>7}{_cell(r.get('tempo_spread_percent')):>8}"
                     f"{_cell(r.get('first_window_percent')):>8}{_cell(r.get('librosa_tempo_spread_percent')):>10}"
                     f"{_cell(r.get('librosa_first_window_percent')):>8}{_cell(r['beat_regularity'], '{:.3f}'):>11}"
                     f"{_cell(r['abs_drift'], '{:.2f}'):>8}{_cell(r['seam'], '{:.2f}'):>6}"
                     f"{_cell(r.get('moved'), '{:.2f}'):>7}  {windows}")
    return "\n".join(lines)


def checks(rows: list[dict]) -> list[str]:
    """Issue 28's done-when over `rows`, one line each: PASS/FAIL, the worst (or median) value."""
    lines = []
    for what, key, limit, over in CHECKS:
        values = [r.get(key) for r in rows]
        readable = [v for v in values if v is not None and math.isfinite(v)]
        missing = len(values) - len(readable)
        value = statistics.median(readable) if over == "median" and readable else max(readable, default=math.nan)
        ok = readable and value <= limit + ROUNDING and (over == "median" or not missing)
        lines.append(f"{'PASS' if ok else 'FAIL'}  {what}: {'median' if over == 'median' else 'worst'} "
                     f"{_cell(value, '{:.3f}')}" + (f", {missing} clip(s) unreadable" if missing else ""))
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", default=[], metavar="DIR", help="a model folder (a fine-tuned run); repeat for more")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="one batch per seed (default: 0 1 2 3)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="clips per seed, as generate.py --batch-size (default: 4)")
    p.add_argument("--seconds", type=positive_float, default=30.0, help="clip length; at least 10 (default: 30)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--smoke", action="store_true", help="the tiny preset, one batch of 2 clips of 10.5 s at 2 steps")
    p.add_argument("--keep", metavar="DIR", default=None,
                   help="write the clips (WAV, PNG, JSON) into DIR, made if missing, to listen to them (default: a "
                        "temporary folder, removed at the end)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.smoke == bool(args.run):
        raise ValueError("give --run DIR (one or more), or --smoke alone")
    if args.seconds < 10.0:
        raise ValueError(f"--seconds {args.seconds:g}: a tempo spread needs two 5 s windows, so at least 10")
    pick_device(args.device)
    runs = [Path(r) for r in args.run] or ["tiny"]
    seeds, batch, seconds, steps = (([0], 2, 10.5, 2) if args.smoke else (args.seeds, args.batch_size, args.seconds, None))
    everything = []
    with tempfile.TemporaryDirectory(prefix="tempo-") as temporary:
        if args.keep:
            temporary = str(Path(args.keep))
            Path(temporary).mkdir(parents=True, exist_ok=True)
        for index, path in enumerate(runs):
            print(f"{path}: {len(seeds)} batch(es) of {batch} clips of {seconds:g} s ...", flush=True)
            rows = measure_run(path, seeds, batch, seconds, None if args.device == "auto" else args.device, steps,
                               Path(temporary) / str(index))
            everything += rows
            print("\n" + format_rows(str(path), rows) + "\n")
            print(f"x real time per clip (batched): {statistics.median(r['real_time'] for r in rows):.2f}\n")
    print("\n".join(checks(everything)))


if __name__ == "__main__":
    run(main)
