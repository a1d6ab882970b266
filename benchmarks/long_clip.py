"""Do a fine-tuned model's long clips hold together? One table: fine-tuned runs, the previous
bundled model fine-tuned the same way, and real clips of the genre, measured the same way.

    python benchmarks/long_clip.py --run runs/jazz-XXXX [--run runs/jazz-YYYY ...]
                                   [--reference-run DIR] [--seconds 30] [--clips 4] [--device auto]
    python benchmarks/long_clip.py --smoke        # the whole code path on the tiny preset, < 1 min

Each `--run` (a folder written by scripts/finetune.py) makes `--clips` clips of `--seconds`
(seeds 0, 1, ...) at its default generation settings, through the same library function as
`python scripts/generate.py --seconds 30` (audiodiff.generate.generate: DDIM 50 steps, the level and tempo
holds, blended joins, the default overlap, loudness normalised, fade-out). The reference row is the previous bundled
model (benchmarks/reference/bundled-1s, 1.02 s per image) fine-tuned the same way as the first
run (its training_config.json, with that model as the base; the run is written beside the
first run, in the hidden folder .benchmark-references/ so that `generate.py` never takes it for the
newest run, and named on screen so that `--reference-run` can reuse it next time), or the run
given with `--reference-run`. Columns (audiodiff.metrics; DESIGN section 7):

- tempo %: tempo spread, the std of log2(tempo) over 5 s windows in %, octave errors folded;
  the median over the clips (one clip with a misread window does not decide it);
- key: key consistency, 1.0 = every 5 s window has the clip's pitch-class profile (mean);
- drift: BS.1770 loudness drift over 4 s windows, LU per minute (mean); |drift|: the mean of each
  clip's drift without its sign (a clip that rises and one that sinks do not cancel);
- seam: seam score, 1.0 = a seam is like any other moment (mean);
- flatness, harmonic: tonality (docs/tonality.md), the median over the clips of the spectral
  flatness (lower is more tonal; real jazz 0.0002-0.0004) and of the harmonic share;
- genre ratio: Frechet distance to the genre's held-out tracks of the fine-tuned model over
  that of its base model (audiodiff.evaluate.compare_models, its defaults: 16 clips of 4 s,
  DDIM 20 steps, both models with the same seeds); <= 0.7 is the project's goal;
- realism: the fine-tuned model's distance to the held-out tracks over the distance between
  two halves of those tracks (the same compare_models run); 1.0 = as close as the genre is to
  itself;
- clip realism: the same ratio for the clips this benchmark made (every 4 s window of the
  `--seconds` clips at the default settings, DDIM 50 and the holds) against the same held-out
  tracks (audiodiff.evaluate.evaluate_folder): what the README's commands give, where realism
  measures single 4 s images at 20 steps;
- x real time: wall time to make one clip (median over the clips) over its length, one clip at
  a time as scripts/generate.py makes it; below 1.0 is faster than real time.

The "real" row measures the genre's held-out tracks (the split of the first run), cut to
`--seconds`, the same way: the music the model learned from, for scale; the "codec floor" row,
those tracks through the codec alone (tonality only: no model's clips can beat it). Then a steps
sweep: the first run's single images (one slice, seeds 0..clips-1) at 20, 50 and 200 DDIM steps,
with each flatness over the one before (DESIGN section 7: at most 1.2x). Ends with one summary
line of `name: value` pairs for the first run, the reference and the real clips.

Measured (session 6; 8 clips of 30 s, seeds 0-7, one thread of the 2-core CPU): the default model
fine-tuned by the README's default offline command (`scripts/finetune.py --genre jazz`: 300 steps
on built-in jazz), generating with the level and tempo holds and blended joins, and the reference
row made the same way:

                      tempo %   key  drift  |drift|  seam  genre ratio  realism  clip realism  x real time
    jazz (4.03 s)         1.0  0.90  +0.35     0.50  1.04         0.53     2.45          1.81        1.02x
    reference (1.02 s)    1.0  0.85  +0.79     0.95  1.07         0.45     2.32          3.72        1.71x
    real jazz             0.2  0.78  -0.63     1.00     -            -        -             -            -

With the level hold alone (session 5) the jazz row read tempo 19.5 % and seam 1.13; without any
hold (session 4, 4 clips) |drift| 3.2 and seam 1.21.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from audiodiff.cli import positive_float, positive_int, run  # noqa: E402
from audiodiff.audio import resample  # noqa: E402
from audiodiff.evaluate import (  # noqa: E402
    AudioClip,
    ClipSet,
    SplitSettings,
    compare_models,
    cut_clips,
    evaluate_folder,
    genre_clips,
    load_folder_clips,
    long_clip_report,
    reference_long_clips,
)
from audiodiff.generate import generate  # noqa: E402
from audiodiff.mel import MelConfig, audio_to_spectrogram, images_to_audio  # noqa: E402
from audiodiff.pipeline import MODEL_INDEX, load_pipeline, pick_device  # noqa: E402
from audiodiff.train import CONFIG_FILE, FinetuneConfig, finetune  # noqa: E402

REFERENCE_MODEL = Path(__file__).resolve().parent / "reference" / "bundled-1s"
DEFAULT_SECONDS = 30.0  # the README's `scripts/generate.py --seconds 30`
DEFAULT_CLIPS = 4  # the "median of 4 clips"
SWEEP_STEPS = (20, 50, 200)  # DESIGN section 7: quality must not fall as the steps rise


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much to generate and measure; --smoke shrinks every part of it."""

    seconds: float = DEFAULT_SECONDS
    clips: int = DEFAULT_CLIPS
    device: str = "auto"
    steps: int | None = None  # None: each run's default (what scripts/generate.py uses)
    compare: dict = dataclasses.field(default_factory=dict)  # compare_models overrides (clips, seconds, steps)
    split: SplitSettings | None = None  # None: each run's own split (its training_config.json)
    sweep_steps: tuple[int, ...] = SWEEP_STEPS  # single-image steps sweep of the first run


@dataclasses.dataclass(frozen=True)
class Run:
    """A fine-tuned pipeline folder and how it was trained."""

    label: str
    path: Path
    config: FinetuneConfig
    base_sha256: str | None = None  # the base's weights when the run started (runs since session 4 record it)

    @classmethod
    def read(cls, path, label: str) -> "Run":
        folder = Path(path).expanduser()
        if not (folder / MODEL_INDEX).is_file():
            raise ValueError(f"{folder} is not a pipeline folder (no {MODEL_INDEX}); give a run written by "
                             "scripts/finetune.py")
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise ValueError(f"{folder} has no {CONFIG_FILE}: the benchmark needs the run's base model and genre")
        try:
            saved = json.loads(config_path.read_text())
            config = FinetuneConfig.from_dict(saved)
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{config_path} can't be read ({exc})") from None
        if not config.genre or not config.pretrained or (config.dataset is None and config.data_dir is None):
            raise ValueError(f"{config_path} does not name the run's genre, base model and data source")
        return cls(label, folder, config, saved.get("pretrained_weights_sha256"))

    @property
    def source(self) -> dict:
        return {"dataset": self.config.dataset, "data_dir": self.config.data_dir}


REFERENCE_RUNS_FOLDER = ".benchmark-references"


def finetune_like(template: Run, base: str, output_dir: Path, progress: bool) -> Path:
    """Fine-tune `base` exactly as `template` was trained (its configuration, another base model)."""
    config = dataclasses.replace(template.config, pretrained=base, output_dir=str(output_dir),
                                 run_name=f"reference-{Path(base).name}-{template.config.genre}",
                                 push_to_hub=False, hub_model_id=None)
    return finetune(config, progress=progress).run_dir


def measure_run(model: Run, settings: Settings, work_dir: Path) -> dict:
    """Generate the clips one at a time (timed), measure them, and compare the run with its base."""
    pipe = load_pipeline(model.path)
    folder = work_dir / model.path.name
    seconds_each = []
    for seed in range(settings.clips):
        start = time.perf_counter()
        generate(str(model.path), settings.seconds, output_dir=folder, name=f"clip{seed}", seed=seed,
                 steps=settings.steps, device=settings.device, progress=False, log=None, pipe=pipe,
                 model_choice="given")
        seconds_each.append(time.perf_counter() - start)
    report = long_clip_report(load_folder_clips(folder, read_sidecars=True).clips)
    # the clips themselves (every 4 s window of them) against the same held-out tracks, with the
    # other genres in the features' scaling as compare_models has them (without them the scale is
    # jazz's own spread, and the ratio reads about twice as far: 3.67 against 1.81 for the same clips)
    clips_eval = evaluate_folder(folder, genre=model.config.genre, **model.source, mel=pipe.mel, compare_genres=True,
                                 split=settings.split or SplitSettings.from_run(model.path), codec_slices=1)
    clip_halves = clips_eval["fd_same_genre_halves"]
    comparison = compare_models(model.config.pretrained, model.path, model.config.genre, **model.source,
                                device=None if settings.device == "auto" else settings.device,
                                split=settings.split, **settings.compare)
    halves = comparison["fd_same_genre_halves"]
    base_note = ("" if model.base_sha256 == comparison["before"]["weights_sha256"] else
                 ", base changed since the run (ratio against today's)" if model.base_sha256 else
                 ", base unrecorded (ratio against today's)")
    return {
        **_measures(report),
        "genre_ratio": comparison["ratio"],
        "closest_genre": comparison["after_closest_genre"],
        "realism": comparison["after"]["fd"] / halves if halves else None,
        "clip_realism": clips_eval["fd"] / clip_halves if clip_halves else None,
        "real_time": statistics.median(seconds_each) / settings.seconds,
        "note": f"{pipe.mel.slice_seconds:.2f} s per image, base {Path(model.config.pretrained).name}, "
                f"{'closest to' if comparison['after_closest_genre'] else 'NOT closest to'} {model.config.genre}{base_note}",
    }


def held_out(model: Run, settings: Settings) -> tuple[ClipSet, MelConfig]:
    """The run's genre's held-out tracks (its split) and its Mel config, loaded once for the
    real row and the codec floor."""
    mel = load_pipeline(model.path).mel
    target, _ = genre_clips(model.config.genre, mel, **model.source, split=settings.split or SplitSettings.from_run(model.path))
    return target, mel


def measure_real(target: ClipSet, settings: Settings) -> tuple[str, dict]:
    """The held-out tracks, cut to the clips' length, measured the same way."""
    report = reference_long_clips(target.clips, settings.seconds, target.description)
    lengths = sorted(row["seconds"] for row in report["files"])
    note = f"{len(lengths)} held-out tracks, first {statistics.median(lengths):g} s"
    return f"real {target.genre}", {**_measures(report), "note": note}


def measure_codec_floor(target: ClipSet, mel: MelConfig, settings: Settings) -> tuple[str, dict]:
    """The same held-out tracks through the codec alone (encoded as one image, decoded once, as a
    generated clip is): the tonality no model making these images can beat (DESIGN section 7)."""
    decoded = []
    for clip in cut_clips(target.clips, settings.seconds):
        audio = resample(clip.audio.float(), clip.sample_rate, mel.sample_rate)
        decoded.append(AudioClip(clip.name, images_to_audio(audio_to_spectrogram(audio, mel), mel)[0].float(),
                                 mel.sample_rate))
    report = long_clip_report(decoded)
    return f"codec floor ({target.genre})", {"flatness": report["flatness_median"],
                                             "harmonic": report["harmonic_share_median"],
                                             "note": "the held-out tracks through the codec alone"}


def steps_sweep(model: Run, settings: Settings, work_dir: Path) -> dict[int, dict]:
    """Tonality of single images (one slice each, seeds 0..clips-1) at 20, 50 and 200 DDIM steps."""
    pipe = load_pipeline(model.path)
    rows = {}
    for steps in settings.sweep_steps:
        folder = work_dir / f"steps-{steps}"
        for seed in range(settings.clips):
            generate(str(model.path), pipe.mel.slice_seconds, output_dir=folder, name=f"image{seed}", seed=seed,
                     steps=steps, scheduler="ddim", device=settings.device, progress=False, log=None, pipe=pipe,
                     model_choice="given")
        report = long_clip_report(load_folder_clips(folder).clips)
        rows[steps] = {"flatness": report["flatness_median"], "harmonic": report["harmonic_share_median"]}
    return rows


def format_sweep(rows: dict[int, dict]) -> str:
    lines = [f"{'single images':<16}{'flatness':>10}{'harmonic':>10}{'flatness vs fewer steps':>26}"]
    previous = None
    for steps, row in rows.items():
        ratio = row["flatness"] / previous if previous else None
        lines.append(f"{f'DDIM {steps} steps':<16}{_cell(row['flatness'], '{:.4f}'):>10}"
                     f"{_cell(row['harmonic'], '{:.2f}'):>10}{_cell(ratio, '{:.2f}x'):>26}")
        previous = row["flatness"]
    return "\n".join(lines)


def _measures(report: dict) -> dict:
    return {
        "tempo": report["tempo_spread_percent_median"],
        "key": report["key_consistency_mean"],
        "drift": report["loudness_drift_lu_per_minute_mean"],
        "abs_drift": report["loudness_drift_abs_lu_per_minute_mean"],
        "seam": report["seam_score_mean"],
        "flatness": report["flatness_median"],
        "harmonic": report["harmonic_share_median"],
    }


COLUMNS = (  # (key, header, format)
    ("tempo", "tempo %", "{:.1f}"),
    ("key", "key", "{:.2f}"),
    ("drift", "drift LU/min", "{:+.2f}"),
    ("abs_drift", "|drift|", "{:.2f}"),
    ("seam", "seam", "{:.2f}"),
    ("flatness", "flatness", "{:.4f}"),
    ("harmonic", "harmonic", "{:.2f}"),
    ("genre_ratio", "genre ratio", "{:.2f}"),
    ("realism", "realism", "{:.2f}"),
    ("clip_realism", "clip realism", "{:.2f}"),
    ("real_time", "x real time", "{:.2f}x"),
)


def _cell(value, template: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return template.format(value)


def format_table(rows: dict[str, dict]) -> str:
    width = max(14, *(len(label) + 2 for label in rows))
    lines = [f"{'':<{width}}" + "".join(f"{header:>14}" for _, header, _ in COLUMNS) + "  note"]
    for label, row in rows.items():
        lines.append(f"{label:<{width}}" + "".join(f"{_cell(row.get(key), fmt):>14}" for key, _, fmt in COLUMNS)
                     + f"  {row.get('note', '')}")
    return "\n".join(lines)


def summary_line(rows: dict[str, dict], sweep: dict[int, dict] | None = None) -> str:
    labels = list(rows)
    first, reference = rows[labels[0]], rows.get("reference")
    real = rows[next(label for label in labels if label.startswith("real "))]
    floor = next((rows[label] for label in labels if label.startswith("codec floor")), {})
    pairs = [("tempo_spread_percent", first["tempo"], "{:.1f}"), ("key_consistency", first["key"], "{:.2f}"),
             ("loudness_drift_lu_per_min", first["drift"], "{:.2f}"),
             ("abs_loudness_drift_lu_per_min", first["abs_drift"], "{:.2f}"), ("seam", first["seam"], "{:.2f}"),
             ("genre_ratio", first["genre_ratio"], "{:.2f}"), ("realism", first["realism"], "{:.2f}"),
             ("clip_realism", first.get("clip_realism"), "{:.2f}"),
             ("time_vs_real_time", first["real_time"], "{:.2f}x")]
    if reference is not None:
        pairs += [("reference_tempo_spread_percent", reference["tempo"], "{:.1f}"),
                  ("reference_loudness_drift_lu_per_min", reference["drift"], "{:.2f}"),
                  ("reference_realism", reference["realism"], "{:.2f}"),
                  ("speedup_vs_reference", reference["real_time"] / first["real_time"]
                   if first["real_time"] and reference["real_time"] else None, "{:.2f}x")]
    pairs += [("real_tempo_spread_percent", real["tempo"], "{:.1f}"), ("real_key_consistency", real["key"], "{:.2f}"),
              ("real_loudness_drift_lu_per_min", real["drift"], "{:.2f}")]
    pairs += [("flatness", first.get("flatness"), "{:.4f}"), ("real_flatness", real.get("flatness"), "{:.4f}"),
              ("codec_floor_flatness", floor.get("flatness"), "{:.4f}"), ("harmonic_share", first.get("harmonic"), "{:.2f}")]
    steps = sorted(sweep or {})
    for fewer, more in zip(steps, steps[1:]):
        low, high = sweep[fewer]["flatness"], sweep[more]["flatness"]
        pairs.append((f"flatness_{more}_vs_{fewer}_steps", high / low if low and high is not None else None, "{:.2f}x"))
    return ", ".join(f"{name}: {_cell(value, fmt)}" for name, value, fmt in pairs)


def smoke_runs(work_dir: Path) -> tuple[Run, str]:
    """A two-step fine-tune of the tiny preset on a small built-in set (10 clips: enough to hold out whole recordings, as the real pool does); the reference base is tiny too."""
    config = FinetuneConfig(genre="jazz", pretrained="tiny", dataset="synthetic", synthetic_clips_per_genre=10,
                            synthetic_seconds=12.0, output_dir=str(work_dir / "runs"), run_name="smoke", max_steps=2,
                            batch_size=2, warmup_steps=0, checkpoint_every=1000, validate_every=1000,
                            sample_every=1000, num_workers=0, device="cpu")
    return Run.read(finetune(config, progress=False).run_dir, "smoke run"), "tiny"


SMOKE = Settings(seconds=10.5, clips=1, device="cpu", steps=2, sweep_steps=(2, 3), compare={"clips": 2, "seconds": 1.0, "steps": 2},
                 split=SplitSettings(validation_fraction=0.25, synthetic_pool=10, synthetic_seconds=12.0))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", default=[], metavar="DIR",
                   help="a fine-tuned run folder (scripts/finetune.py's output); repeat for more rows, labelled "
                        "by their folder names; the first one is the summary line's")
    p.add_argument("--reference-run", metavar="DIR", default=None,
                   help="the reference row: a run fine-tuned from benchmarks/reference/bundled-1s (default: "
                        "fine-tune that model now, the same way as the first --run, beside it in .benchmark-references/)")
    p.add_argument("--seconds", type=positive_float, default=None,
                   help=f"length of each clip in seconds; at least 10 for a tempo spread (two 5 s windows) "
                        f"(default: {DEFAULT_SECONDS:g}, as the README's generate command)")
    p.add_argument("--clips", type=positive_int, default=None,
                   help=f"clips per row, seeds 0, 1, ...; the tempo spread is their median (default: {DEFAULT_CLIPS})")
    p.add_argument("--device", default="auto",
                   help="where to generate: auto (CUDA if available, else CPU), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--smoke", action="store_true",
                   help="check the whole code path in well under a minute: fine-tune the tiny preset two steps, "
                        "one 10.5 s clip per row at 2 steps; the numbers mean nothing")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.smoke and (args.run or args.reference_run or args.seconds or args.clips):
        raise ValueError("--smoke makes its own tiny run: leave out --run, --reference-run, --seconds and --clips")
    if not args.smoke and not args.run:
        raise ValueError("give at least one fine-tuned run with --run DIR (or --smoke to check the benchmark itself)")
    runs = [Run.read(path, f"{Path(path).name}") for path in args.run]  # every folder checked before any work
    reference = Run.read(args.reference_run, "reference") if args.reference_run else None
    pick_device(args.device)  # an unknown or missing device fails now, not after a fine-tune
    if args.seconds is not None and args.seconds < 10.0:
        print(f"note: {args.seconds:g} s clips are shorter than two 5 s windows: no tempo spread or key consistency")
    settings = SMOKE if args.smoke else Settings(seconds=args.seconds or DEFAULT_SECONDS,
                                                 clips=args.clips or DEFAULT_CLIPS, device=args.device)

    with tempfile.TemporaryDirectory(prefix="long-clip-") as temporary:
        work_dir = Path(temporary)
        base = str(REFERENCE_MODEL)
        if args.smoke:
            run_, base = smoke_runs(work_dir)
            runs = [run_]
        if reference is None:
            # in a hidden folder beside the run: `generate.py`'s default model, the newest run in
            # runs/, stays the user's own (hidden folders are never picked)
            output_dir = work_dir / "runs" if args.smoke else runs[0].path.parent / REFERENCE_RUNS_FOLDER
            print(f"fine-tuning the reference ({Path(base).name}) as {runs[0].label} was trained ...")
            path = finetune_like(runs[0], base, output_dir, progress=not args.smoke)
            reference = Run.read(path, "reference")
            if not args.smoke:
                print(f"reference run: {path} (reuse it with --reference-run {path})")
        rows: dict[str, dict] = {}
        measured: dict[Path, dict] = {}  # a folder given twice (e.g. also as --reference-run) is measured once
        for index, model in enumerate((*runs, reference)):
            label = model.label if model.label not in rows else f"{model.label} ({index + 1})"
            key = model.path.resolve()
            if key not in measured:
                print(f"measuring {label}: {settings.clips} clips of {settings.seconds:g} s ...")
                sys.stdout.flush()
                measured[key] = measure_run(model, settings, work_dir / "clips" / str(index))
            rows[label] = measured[key]
        target, mel = held_out(runs[0], settings)
        for label, row in (measure_real(target, settings), measure_codec_floor(target, mel, settings)):
            rows[label] = row
        print(f"steps sweep of {runs[0].label}: {settings.clips} single images at {settings.sweep_steps} DDIM steps ...")
        sweep = steps_sweep(runs[0], settings, work_dir / "sweep")

    print(f"\n{settings.clips} clip{'s' if settings.clips != 1 else ''} of {settings.seconds:g} s per row, "
          f"seed{'s 0-' if settings.clips != 1 else ' '}{settings.clips - 1}, "
          f"default generation settings{' (smoke: 2 steps)' if args.smoke else ''}")
    print(format_table(rows))
    print("\n" + format_sweep(sweep))
    print("\n" + summary_line(rows, sweep))


if __name__ == "__main__":
    run(main)
