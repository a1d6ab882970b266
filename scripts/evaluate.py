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

from audiodiff.cli import non_negative_int, positive_float, positive_int, run
from audiodiff.limits import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_SECONDS
from audiodiff.evaluate import (
    COMPARE_BATCH_SIZE,
    COMPARE_CLIPS,
    COMPARE_SECONDS,
    COMPARE_STEPS,
    EvaluationRequest,
    run_evaluation,
)


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
                          f"raise it with the environment variable AUDIODIFF_MAX_SECONDS (default: {COMPARE_CLIPS})")
    gen.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                     help=f"length of each generated clip in seconds, at least 0.5 (default: {COMPARE_SECONDS:g})")
    gen.add_argument("--seed", type=non_negative_int, default=None, metavar="N",
                     help="random seed; both models get the same seeds (default: 0)")
    gen.add_argument("--steps", type=positive_int, default=None, metavar="N",
                     help=f"DDIM denoising steps per slice (default: {COMPARE_STEPS})")
    gen.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                     help=f"clips generated at once, at most {DEFAULT_MAX_BATCH_SIZE} (raise it with the environment "
                          f"variable AUDIODIFF_MAX_BATCH_SIZE) (default: {COMPARE_BATCH_SIZE})")
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
                     help="the .json file to write the report to (default: beside the generated folder, or in the "
                          "--after run's folder); its folder is checked before any work; an existing file is never "
                          "overwritten (NAME-1.json, ...)")
    out.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    return p.parse_args(argv)


def main(argv=None):
    path = run_evaluation(EvaluationRequest(**vars(parse_args(argv))), log=print)
    print(f"report: {path}")
    sys.stdout.flush()


if __name__ == "__main__":
    run(main)
