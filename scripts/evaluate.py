#!/usr/bin/env python
"""Measure generated audio against a genre, or a fine-tuned pipeline against its base model.

Evaluate a folder of generated WAVs (Frechet distance to the reference, with its scale: two
halves of the reference, and the other genres; how long clips hold together: tempo spread, key
consistency, loudness spread and drift, seam scores (seams read from each WAV's JSON sidecar),
next to the same measures on the reference's real clips cut to the same length; the Mel
codec's round trip on the reference audio):

    python scripts/evaluate.py --generated samples --dataset synthetic --genre jazz
    python scripts/evaluate.py --generated samples --data-dir ../shared/music --genre jazz
    python scripts/evaluate.py --generated samples --reference my_jazz_recordings/

Before/after: generate clips from both pipelines with the same seeds and compare their distance
to the genre's held-out tracks (the tracks the fine-tune never trained on) and to other genres:

    python scripts/evaluate.py --before bundled --after runs/jazz-XXXX --genre jazz --dataset synthetic

Prints a table and writes the report as JSON: beside the generated folder (samples-evaluation.json),
in the --after run's folder (before-after-GENRE.json), or at --output. Never overwrites a file.
"""

import argparse
import sys
from pathlib import Path

from audiodiff.cli import non_negative_int, positive_float, positive_int, run
from audiodiff.limits import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_SECONDS
from audiodiff.evaluate import (
    DEFAULT_CLIPS,
    DEFAULT_SECONDS,
    DEFAULT_STEPS,
    EvaluationError,
    SplitSettings,
    compare_models,
    default_comparison_path,
    default_report_path,
    evaluate_folder,
    format_comparison,
    format_report,
    save_report,
)
from audiodiff.features import TorchScriptEmbedding
from audiodiff.generate import check_output_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_argument_group("what to evaluate (one of the two modes)")
    mode.add_argument("--generated", metavar="DIR",
                      help="folder of generated audio files (WAV, with NAME.json sidecars from scripts/generate.py)")
    mode.add_argument("--before", metavar="MODEL",
                      help="base pipeline: a folder, a preset (bundled, tiny, ...) or a hub id; needs --after")
    mode.add_argument("--after", metavar="MODEL", help="fine-tuned pipeline (e.g. runs/jazz-...); needs --before")
    ref = p.add_argument_group("reference audio")
    ref.add_argument("--reference", metavar="DIR",
                     help="folder of reference audio, searched recursively (--generated mode only; no other genres)")
    ref.add_argument("--dataset", metavar="ID",
                     help="dataset holding the genre: 'synthetic' (the built-in set) or a hub id such as lewtun/music_genres")
    ref.add_argument("--data-dir", metavar="DIR", help="folder with one sub-folder of audio files per genre")
    ref.add_argument("--genre", metavar="G", help="the genre to measure against, matched case-insensitively (e.g. jazz)")
    ref.add_argument("--all-tracks", action="store_true",
                     help="use all of the genre's tracks as the reference, not only those the trainer holds out "
                          "(10%% by default; --generated mode only)")
    gen = p.add_argument_group("generation (--before/--after mode)")
    gen.add_argument("--clips", type=positive_int, default=None, metavar="N",
                     help=f"clips generated per model; clips x seconds at most {DEFAULT_MAX_SECONDS:g} s of audio, "
                          f"raise it with the environment variable AUDIODIFF_MAX_SECONDS (default: {DEFAULT_CLIPS})")
    gen.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                     help=f"length of each generated clip in seconds, at least 0.5 (default: {DEFAULT_SECONDS:g})")
    gen.add_argument("--seed", type=non_negative_int, default=None, metavar="N",
                     help="random seed; both models get the same seeds (default: 0)")
    gen.add_argument("--steps", type=positive_int, default=None, metavar="N",
                     help=f"DDIM denoising steps per slice (default: {DEFAULT_STEPS})")
    gen.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                     help=f"clips generated at once, at most {DEFAULT_MAX_BATCH_SIZE} (raise it with the environment "
                          "variable AUDIODIFF_MAX_BATCH_SIZE) (default: 8)")
    gen.add_argument("--device", default=None, metavar="DEVICE",
                     help="where to generate: auto (CUDA if available, else CPU), cpu, cuda or cuda:N (default: auto)")
    out = p.add_argument_group("features and output")
    out.add_argument("--embedding", metavar="PATH",
                     help="a local TorchScript audio embedding ((B, T) audio -> (B, D)) to use instead of the "
                          "built-in hand-made features")
    out.add_argument("--embedding-sample-rate", type=positive_int, default=None, metavar="HZ",
                     help="sample rate the --embedding expects, when the module has no sample_rate attribute "
                          "(default: 16000)")
    out.add_argument("--output", metavar="PATH",
                     help="where to write the JSON report (default: beside the generated folder, or in the --after "
                          "run's folder); its folder is checked before any work; an existing file is never "
                          "overwritten (NAME-1.json, ...)")
    out.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p.parse_args(argv)


def check_args(args) -> str:
    """Which mode the flags ask for; a flag that does not belong to it is an error."""
    comparing = args.before is not None or args.after is not None
    if comparing == (args.generated is not None):
        raise EvaluationError("choose one mode: --generated DIR, or --before MODEL --after MODEL")
    if args.dataset is not None and args.data_dir is not None:
        raise EvaluationError("give either --dataset or --data-dir, not both")
    if comparing:
        if args.before is None or args.after is None:
            raise EvaluationError("--before and --after go together: give both pipelines")
        if not args.genre or (args.dataset is None and args.data_dir is None):
            raise EvaluationError("--before/--after needs --genre G and its source: --dataset ID or --data-dir DIR")
        for flag, value in (("--reference", args.reference), ("--all-tracks", args.all_tracks or None)):
            if value is not None:
                raise EvaluationError(f"{flag} applies to --generated only; --before/--after measure held-out tracks")
        if args.seconds is not None and args.seconds < 0.5:
            raise EvaluationError(f"--seconds must be at least 0.5, got {args.seconds:g}")
        return "compare"
    for flag, value in (("--clips", args.clips), ("--seconds", args.seconds), ("--seed", args.seed),
                        ("--steps", args.steps), ("--batch-size", args.batch_size), ("--device", args.device)):
        if value is not None:
            raise EvaluationError(f"{flag} applies to --before/--after only (nothing is generated with --generated)")
    if args.reference is not None and (args.dataset is not None or args.data_dir is not None or args.genre):
        raise EvaluationError("give the reference either as --reference DIR or as --dataset/--data-dir with --genre")
    if args.reference is None and (args.dataset is None and args.data_dir is None):
        raise EvaluationError("--generated needs a reference: --reference DIR, or --dataset ID / --data-dir DIR with --genre")
    if args.reference is None and not args.genre:
        raise EvaluationError("--dataset/--data-dir needs --genre G")
    return "folder"


def check_report_folder(args, mode: str) -> None:
    """The report is written at the end: its folder must take it before any work starts."""
    if args.output:
        check_output_dir(Path(args.output).expanduser().parent, "--output's folder")
    elif mode == "folder":
        check_output_dir(default_report_path(args.generated).parent, "the report's folder (beside --generated)")
    else:
        check_output_dir(default_comparison_path(args.after, args.genre).parent, "the report's folder")


def main(argv=None):
    args = parse_args(argv)
    mode = check_args(args)
    check_report_folder(args, mode)
    extractor = TorchScriptEmbedding(args.embedding, args.embedding_sample_rate) if args.embedding else None
    progress = not args.no_progress
    if mode == "folder":
        report = evaluate_folder(
            args.generated, args.reference, genre=args.genre, dataset=args.dataset, data_dir=args.data_dir,
            held_out=not args.all_tracks, extractor=extractor, progress=progress, log=print,
        )
        print(format_report(report))
        path = save_report(report, args.output or default_report_path(args.generated))
    else:
        result = compare_models(
            args.before, args.after, args.genre, dataset=args.dataset, data_dir=args.data_dir,
            clips=args.clips or DEFAULT_CLIPS, seconds=args.seconds or DEFAULT_SECONDS,
            seed=args.seed if args.seed is not None else 0, steps=args.steps or DEFAULT_STEPS,
            batch_size=args.batch_size or 8, device=args.device, extractor=extractor,
            split=SplitSettings.from_run(args.after), progress=progress, log=print,
        )
        print(format_comparison(result))
        path = save_report(result, args.output or default_comparison_path(args.after, result["genre"]))
    print(f"report: {path}")
    sys.stdout.flush()


if __name__ == "__main__":
    run(main)
