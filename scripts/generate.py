#!/usr/bin/env python
"""Generate clips of any length with a (fine-tuned) audio-diffusion pipeline.

    python scripts/generate.py --seconds 30                       # latest run under runs/, else the hub model
    python scripts/generate.py --model runs/jazz-... --seconds 60 --seed 3
    python scripts/generate.py --model tiny --seconds 5 --steps 10 --batch-size 4

Edits of your own audio (any format soundfile reads; resampled to the model's rate):

    python scripts/generate.py --init-audio my.wav --seconds 20              # my.wav, then 20 s that continue it
    python scripts/generate.py --init-audio my.wav --strength 0.4            # a variation of my.wav
    python scripts/generate.py --init-audio my.wav --strength 0.4 --invert   # one that keeps more of it
    python scripts/generate.py --interpolate a.wav b.wav --alpha 0.25 0.5 0.75   # between two clips
    python scripts/generate.py --loop --seconds 8                            # 8 s that repeat seamlessly
    python scripts/generate.py --fill-gap a.wav b.wav --seconds 10           # a.wav, 10 new s, b.wav

Writes NAME.wav (16-bit PCM), NAME.png (spectrogram, time axis; turn it back into audio with
audiodiff.clipfiles.png_to_audio) and NAME.json (how it was made) into --output-dir. An existing
file is never overwritten: NAME-1, NAME-2, ... is used instead.

Limits on one run (checked before any work): 600 s of audio, 64 clips at once; raise them with the
environment variables AUDIODIFF_MAX_SECONDS and AUDIODIFF_MAX_BATCH_SIZE.
"""

import argparse

from audiodiff.cli import non_negative_int, positive_float, positive_int, run
from audiodiff.limits import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_SECONDS
from audiodiff.generate import DEFAULT_OUTPUT_DIR, EditRequest, generate
from audiodiff.metrics import MAX_BPM, MIN_BPM
from audiodiff.sampling.options import (DEFAULT_CANDIDATES, DEFAULT_DRAWS, DEFAULT_LEVEL_HOLD, DEFAULT_OVERLAP_SECONDS, DEFAULT_TEMPO_HOLD,
                                        MAX_CANDIDATES, MAX_REPAINT_JUMPS, SamplingOptions)
from audiodiff.sampling.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from audiodiff.sampling.autoguide import DEFAULT_BASE_GUIDANCE, MAX_BASE_GUIDANCE
from audiodiff.sampling.quantize import DEFAULT_QUANTIZE


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _edit_and_conditional_flags(p: argparse.ArgumentParser) -> None:
    """The flags of edits of your own audio and of conditional models."""
    edits = p.add_argument_group("edits of your own audio (choose one)")
    edits.add_argument("--init-audio", metavar="FILE", default=None,
                       help="continue FILE from its end by --seconds (the output is FILE unchanged, then the new "
                            "audio); with --strength or --invert, make a variation of FILE instead")
    edits.add_argument("--strength", type=positive_float, default=None,
                       help="with --init-audio: make a variation; how much of the denoising chain to rerun, in "
                            "(0, 1]: 0.2 keeps most of FILE, 1 keeps little (default with --invert: 0.5)")
    edits.add_argument("--invert", action="store_true",
                       help="with --init-audio: start the variation from a DDIM inversion of FILE instead of "
                            "noise; keeps more of FILE at the same --strength (ddim only)")
    edits.add_argument("--interpolate", nargs=2, metavar=("A", "B"), default=None,
                       help="invert A and B and generate between them (the shorter length, or --seconds); "
                            "one clip per --alpha (ddim only)")
    edits.add_argument("--alpha", type=float, nargs="+", default=None,
                       help="with --interpolate: where between A (0) and B (1), one clip each (default: 0.5)")
    edits.add_argument("--loop", action="store_true",
                       help="make a clip of --seconds whose end flows into its start: it repeats without a click")
    edits.add_argument("--fill-gap", nargs=2, metavar=("A", "B"), default=None,
                       help="write A, then --seconds of new audio that leads out of A into B, then B")
    conditional = p.add_argument_group("conditional models (a UNet2DConditionModel)")
    conditional.add_argument("--encoding", metavar="FILE", default=None,
                             help="a .npy or .safetensors file with the encoding to condition on: one vector of the "
                                  "model's cross_attention_dim per clip, or one for all (shape (D,), (clips, D) or "
                                  "(clips, 1, D)); needed by conditional models, refused by others")
    conditional.add_argument("--guidance-scale", type=non_negative_float, default=1.0,
                             help="classifier-free guidance: the prediction with the encoding pushed this many times "
                                  "as far from the one with a null (zero) encoding; 1 uses the encoding alone, more "
                                  "follows it harder (for models trained with conditioning dropout) (default: 1)")


def _choice_flags(p) -> None:
    """The flags that trade time or the genre for less noise-like clips."""
    p.add_argument("--candidates", type=positive_int, default=DEFAULT_CANDIDATES,
                   help="make each slice of a clip N times and keep the most tonal one whose loudness stays near "
                        "the clip so far: less noisy clips (3: flatness about 0.0023 instead of 0.0030 per slice), "
                        "a steadier level and smoother joins, at N times the time per slice (default: "
                        f"{DEFAULT_CANDIDATES}, no choice; at most {MAX_CANDIDATES})")
    p.add_argument("--draws", type=positive_int, default=DEFAULT_DRAWS,
                   help="start each slice as N draws and let the most tonal go on after a tenth of its steps: "
                        "less noise-like clips for about 1.2x the time at 3, but further from the genre "
                        "(1: no choice; not used with "
                        f"--candidates, the DPM scheduler or latent models) (default: {DEFAULT_DRAWS}; at most "
                        f"{MAX_CANDIDATES})")
    p.add_argument("--base-guidance", type=float, default=DEFAULT_BASE_GUIDANCE,
                   help="guide a fine-tuned run away from the model it was fine-tuned from (autoguidance): W times "
                        "the fine-tune's step minus the base's, so clips sound less like the generic base and more "
                        "like the genre (on the default jazz fine-tune: flatness 0.0039 -> 0.0032 per image, the "
                        "genre kept); one more UNet call per step; 1 turns it off; only for runs whose base loads "
                        f"offline (the bundled model or a local folder) (default: {DEFAULT_BASE_GUIDANCE:g}; at most "
                        f"{MAX_BASE_GUIDANCE:g})")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None,
                   help="pipeline to generate with: a pipeline folder (e.g. a run under runs/), 'bundled' (the "
                        "small model shipped in the package), a preset with random weights (tiny, small, compact, "
                        "compact-4s, compact-4s-hop512, audio-diffusion-256; latent ones: tiny-latent, "
                        "tiny-conditional-latent, latent-256, conditional-latent-512) or a hub id; latent (vqvae/) and "
                        "conditional models too (default: the most recent "
                        "fine-tuned run under runs/, else teticio/audio-diffusion-instrumental-hiphop-256, or "
                        "'bundled' when the hub can't be reached)")
    p.add_argument("--seconds", type=positive_float, default=None,
                   help="length of each clip in seconds, exact to the sample; longer than one slice of the "
                        "model is made by continuation (default: 30). With --init-audio (continuation) and "
                        "--fill-gap: the seconds of new audio; with --strength/--invert and --interpolate: how "
                        f"much of the input to use (default: all of it). At most {DEFAULT_MAX_SECONDS:g} s of audio "
                        "per run, all clips and input audio together; raise it with the environment variable "
                        "AUDIODIFF_MAX_SECONDS")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed: the same seed gives a byte-identical WAV with the same model, settings, versions, "
                        "device and torch thread count (OMP_NUM_THREADS; recorded in the JSON); another thread count "
                        "gives the same music, not the same bytes (default: 0)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="denoising steps per slice, at most the model's training noise levels (1000 on the public "
                        "models) (default: 50 for ddim, 25 for dpm, 1000 for ddpm)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=DEFAULT_SCHEDULER,
                   help="sampler, built from the pipeline's noise schedule: ddim (deterministic), "
                        "ddpm (the training chain, slow), dpm (DPM-Solver++, fewest steps) (default: ddim)")
    p.add_argument("--overlap", type=non_negative_float, default=None,
                   help="seconds of the previous slice each next slice continues from; must be shorter than "
                        f"one slice (5.94 s on the public models) (default: {DEFAULT_OVERLAP_SECONDS:g}, 1 with --loop; "
                        "at most 40%% of a slice for models with shorter slices)")
    p.add_argument("--batch-size", type=positive_int, default=1,
                   help=f"clips generated at once, written as NAME_1, NAME_2, ... (default: 1; at most "
                        f"{DEFAULT_MAX_BATCH_SIZE}, raise it with the environment variable AUDIODIFF_MAX_BATCH_SIZE)")
    p.add_argument("--repaint-jumps", type=non_negative_int, default=0,
                   help="RePaint resampling: re-noise and denoise each step this many extra times so the new "
                        "part agrees better with the part it continues; each costs one more UNet call per "
                        f"step; ddim and ddpm only (default: 0; at most {MAX_REPAINT_JUMPS})")
    _choice_flags(p)
    p.add_argument("--no-level-hold", action="store_true",
                   help="let each continued slice of a long clip come out at whatever level the model draws; by "
                        "default every slice is held at the level of the clip so far while it is sampled, so a "
                        "long clip neither sinks nor swells (it gives up crescendos longer than one slice)")
    p.add_argument("--no-tempo-hold", action="store_true",
                   help="let each continued slice of a long clip pick its own beat; by default the clip's beat is "
                        "read from its first slice and every later slice is kept on it while it is sampled, so a "
                        "long clip keeps one tempo (the tempo is written to the clip's JSON as bpm)")
    p.add_argument("--bpm", type=positive_float, default=None,
                   help=f"the tempo of a new clip or --loop in beats per minute ({MIN_BPM:g} to {MAX_BPM:g}): its first "
                        "slice is steered onto that beat too, and the tempo hold keeps it; not with --no-tempo-hold "
                        "or with edits of your own audio, which keep its tempo (default: the first slice's own beat)")
    p.add_argument("--quantize", type=float, default=DEFAULT_QUANTIZE,
                   help="settle a new clip's beats onto an even grid of the beat the tempo hold kept, as a DAW's "
                        "quantize does: 1 onto the grid, 0.5 halfway, 0 as sampled. The image's columns between beats "
                        "are repeated or left out (a beat is stretched at most 1.5x), before the one decode; beat "
                        "regularity 0.057-0.075 -> 0.027-0.045 (real jazz 0.03-0.046). New clips only: loops and "
                        f"edits of your own audio are left as sampled (default: {DEFAULT_QUANTIZE:g})")
    p.add_argument("--latent-holds", action="store_true",
                   help="on a latent model (a VAE in vqvae/), run the level and tempo holds: on the decoded "
                        "prediction of every step, which costs VAE passes several times the UNet's; off there by "
                        "default (--bpm turns them on). Mel-image models always run them")
    _edit_and_conditional_flags(p)
    p.add_argument("--output-dir", default=str(DEFAULT_OUTPUT_DIR),
                   help="folder for the outputs, made if missing; checked before any work (default: samples/)")
    p.add_argument("--name", default=None,
                   help="base name of the output files, at most 200 bytes (default: <model>-seed<seed>); never "
                        "overwrites, even with another run at the same moment: NAME-1, NAME-2, ... when taken")
    p.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--no-progress", action="store_true",
                   help="hide the progress bar (one bar for the whole job: slices x steps, with the time left)")
    return p.parse_args(argv)


def request(args) -> tuple[SamplingOptions, EditRequest]:
    """The flags as the library's request: how to sample, and which edit."""
    options = SamplingOptions(
        scheduler=args.scheduler, num_inference_steps=args.steps, overlap_seconds=args.overlap, seed=args.seed,
        batch_size=args.batch_size, repaint_jumps=args.repaint_jumps, candidates=args.candidates, draws=args.draws,
        level_hold=0.0 if args.no_level_hold else DEFAULT_LEVEL_HOLD,
        tempo_hold=0.0 if args.no_tempo_hold else DEFAULT_TEMPO_HOLD, bpm=args.bpm, base_guidance=args.base_guidance,
        latent_holds=args.latent_holds, quantize=args.quantize,
    )
    edit = EditRequest(init_audio=args.init_audio, strength=args.strength, invert=args.invert,
                       fill_gap=tuple(args.fill_gap) if args.fill_gap else None, loop=args.loop,
                       interpolate=tuple(args.interpolate) if args.interpolate else None,
                       alphas=tuple(args.alpha) if args.alpha is not None else None)
    return options, edit


def main(argv=None):
    args = parse_args(argv)
    options, edit = request(args)
    paths = generate(args.model, args.seconds, options, edit, output_dir=args.output_dir, name=args.name,
                     device=args.device, progress=not args.no_progress, encoding=args.encoding,
                     guidance_scale=args.guidance_scale)
    for path in paths:
        print(path)


if __name__ == "__main__":
    run(main)
