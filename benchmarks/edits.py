"""Each edit of audiodiff.edits measured: seams at the joins, the loop's wrap, variations' closeness.

    OMP_NUM_THREADS=1 python benchmarks/edits.py [--steps 20] [--batch 8] [--seed 0] [--genre jazz]
                                                  [--music FILE]

One small model (the bundled base model: 1.99 M parameters, 64 x 168 Mel images at 16 kHz, 4.03 s
slices, trained on the built-in genres), one seed, audio the script renders from the built-in
set (or the first seconds of --music, resampled to 16 kHz). Every figure is the mean over a batch
of --batch items made in one call with that seed, since one join's score is one noisy sample.

- **Continuation** (4 s given + 6 s new), **gap fill** (3 s + 4 s new + 3 s): the seam score
  (DESIGN section 7, `audiodiff.metrics.seam_score`; 1.0 = a join is like any other moment) at
  each join, next to the same joins made naively: the given audio butted against a clip
  generated on its own (`generate_long`), and the music itself at that moment (the given audio's
  source going on past the cut: --music exactly; a built-in clip rendered longer from the same
  seed, the same arrangement though not sample for sample), for calibration: a join scoring what
  the music scores there is as eventful as the music, not a seam.
- **Loop** (4 s): the wrap seam, end -> start as heard on repeat (the loop tiled three times,
  scored at both wraps), next to a plain 4 s clip tiled the same way.
- **Variations** (4 s): how far the result stays from the original at each strength, as the mean
  absolute difference of the spectrogram images ([-1, 1] scale; an unrelated clip of the same
  genre is printed for scale), noised (SDEdit) against --invert (DDIM inversion, eta 1), plus
  the deterministic round trip (inversion then eta 0 sampling).
Goals (issue 7): every join <= 1.1; at the same strength --invert stays closer to the original.
Ends with one summary line of `name: value` pairs.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")

from audiodiff import edits  # noqa: E402
from audiodiff.audio import load_audio  # noqa: E402
from audiodiff.metrics import seam_score  # noqa: E402
from audiodiff.pipeline import load_pipeline  # noqa: E402
from audiodiff.sample import generate_long  # noqa: E402
from audiodiff.synthetic import render  # noqa: E402

STRENGTHS = (0.2, 0.4, 0.6, 0.8, 1.0)


def mean_seam(audio: torch.Tensor, sample_rate: int, seams: list[float]) -> float:
    """Mean over batch items of the seam score at `seams` (seconds)."""
    return float(np.mean([seam_score(item, sample_rate, seams) for item in audio]))


def image_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of spectrogram images, averaged over the batch."""
    return float((a - b).abs().mean())


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="DDIM steps per slice (default: 20)")
    p.add_argument("--batch", type=int, default=8, help="items per measurement, one call each (default: 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--genre", default="jazz", help="built-in genre to render the given audio from (default: jazz)")
    p.add_argument("--music", type=Path, default=None, help="use the start of this recording instead")
    return p.parse_args(argv)


def given_audio(args, rate: int):
    """-> (take(offset_seconds, seconds) -> audio, what it is in words)."""
    if args.music is not None:
        source = load_audio(args.music, rate)
        return (lambda offset, seconds: source[int(offset * rate) : int((offset + seconds) * rate)],
                f"{args.music.name} (resampled to {rate} Hz)")
    return (lambda offset, seconds: torch.as_tensor(render(args.genre, 100 + int(offset), seconds, rate)),
            f"built-in {args.genre} clips")


def measure_continuation(pipe, take, batch: int, common: dict) -> dict:
    rate = pipe.mel.sample_rate
    given = take(0, 4.0)
    started = time.perf_counter()
    made = edits.continue_audio(pipe, given, 6.0, **common)
    seconds_taken = time.perf_counter() - started
    alone = generate_long(pipe, 6.0, fade_out_seconds=0.0, target_lufs=None, **common).audio
    naive = torch.cat([given.expand(batch, -1), alone * given.abs().max() / alone.abs().amax(-1, keepdim=True)], -1)
    cont, cont_naive = mean_seam(made.audio, rate, [4.0]), mean_seam(naive, rate, [4.0])
    own = mean_seam(take(0, 10.0)[None], rate, [4.0])  # the music itself, going on past the cut
    print(f"continuation, 4 s + 6 s:   seam {cont:.2f}   (naive concatenation {cont_naive:.2f}; "
          f"the music itself there {own:.2f})   {seconds_taken:.1f} s")
    return dict(continuation_seam=cont, continuation_naive_seam=cont_naive, continuation_music_seam=own)


def measure_gap_fill(pipe, take, batch: int, common: dict) -> dict:
    rate = pipe.mel.sample_rate
    a, b = take(10, 3.0), take(20, 3.0)
    started = time.perf_counter()
    made = edits.fill_gap(pipe, a, b, 4.0, **common)
    seconds_taken = time.perf_counter() - started
    alone = generate_long(pipe, 4.0, fade_out_seconds=0.0, target_lufs=None, **common).audio
    alone = alone * a.abs().max() / alone.abs().amax(-1, keepdim=True)
    naive = torch.cat([a.expand(batch, -1), alone, b.expand(batch, -1)], -1)
    into, out_of = mean_seam(made.audio, rate, [3.0]), mean_seam(made.audio, rate, [7.0])
    naive_into, naive_out = mean_seam(naive, rate, [3.0]), mean_seam(naive, rate, [7.0])
    own = mean_seam(take(10, 7.0)[None], rate, [3.0])  # the music A was cut from, going on past the cut
    print(f"gap fill, 3 s + 4 s + 3 s: seam out of A {into:.2f}, into B {out_of:.2f}   "
          f"(naive {naive_into:.2f}, {naive_out:.2f}; A's music itself there {own:.2f})   {seconds_taken:.1f} s")
    return dict(gap_seam_a=into, gap_seam_b=out_of, gap_naive_seam_a=naive_into, gap_naive_seam_b=naive_out,
                gap_music_seam_a=own)


def measure_loop(pipe, common: dict) -> dict:
    rate = pipe.mel.sample_rate
    started = time.perf_counter()
    loop = edits.make_loop(pipe, 4.0, **common)
    seconds_taken = time.perf_counter() - started
    plain = generate_long(pipe, 4.0, fade_out_seconds=0.0, **common)
    tile = lambda audio: torch.cat([audio] * 3, dim=-1)
    wrap, wrap_plain = mean_seam(tile(loop.audio), rate, [4.0, 8.0]), mean_seam(tile(plain.audio), rate, [4.0, 8.0])
    print(f"loop, 4 s on repeat:       wrap seam {wrap:.2f}   (a plain 4 s clip on repeat {wrap_plain:.2f})   "
          f"{seconds_taken:.1f} s")
    return dict(loop_wrap_seam=wrap, plain_wrap_seam=wrap_plain)


def measure_variations(pipe, take, steps: int, common: dict) -> dict:
    summary = {}
    original = take(30, 4.0)
    image, _ = edits.image_of(original, pipe.mel)
    other, _ = edits.image_of(take(40, 4.0), pipe.mel)
    print(f"\nvariations of 4 s: mean |image - original| (an unrelated clip: {image_distance(other, image):.3f})")
    print("strength   noised   --invert   invert/noised   (seconds: noised, invert)")
    for strength in STRENGTHS:
        started = time.perf_counter()
        noised = edits.vary(pipe, original, strength, **common)
        middle = time.perf_counter()
        inverted = edits.vary(pipe, original, strength, invert_audio=True, **common)
        done = time.perf_counter()
        d_noised, d_inverted = image_distance(noised.image, image), image_distance(inverted.image, image)
        print(f"  {strength:.1f}      {d_noised:.3f}    {d_inverted:.3f}      {d_inverted / d_noised:.2f}"
              f"            ({middle - started:.1f}, {done - middle:.1f})")
        summary[f"vary_{strength:.1f}_noised"] = d_noised
        summary[f"vary_{strength:.1f}_invert"] = d_inverted
    round_trip = edits.vary(pipe, original, 1.0, invert_audio=True, eta=0.0, num_inference_steps=steps,
                            progress=False)
    summary["inversion_round_trip"] = image_distance(round_trip.image, image)
    print(f"inversion then eta-0 sampling (the round trip): {summary['inversion_round_trip']:.3f}")
    return summary


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    pipe = load_pipeline("bundled")
    take, what = given_audio(args, pipe.mel.sample_rate)
    common = dict(num_inference_steps=args.steps, seed=args.seed, batch_size=args.batch, progress=False)
    print(f"model: {pipe.describe()}\naudio: {what}; DDIM {args.steps} steps; seed {args.seed}; batch {args.batch}\n")
    summary = {**measure_continuation(pipe, take, args.batch, common), **measure_gap_fill(pipe, take, args.batch, common),
               **measure_loop(pipe, common), **measure_variations(pipe, take, args.steps, common)}
    print("\nsummary: " + ", ".join(f"{k}: {v:.3f}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
