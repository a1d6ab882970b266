"""Long clips three ways, one model, one seed, one run: ours vs the reference notebook vs wide noise.

(How well a *model's* long clips hold together -- tempo, loudness, genre, speed -- is
benchmarks/long_clip.py; this one compares the sampling and stitching methods on one model.)

    python benchmarks/sampling_methods.py [--seconds 30] [--steps 20] [--overlap 1] [--train-steps 100]
                                         [--overlaps 0.5,2,3] [--repaint-jumps 1]

(a) ours (audiodiff.sample.generate_long): masked continuation with the known columns pasted at
    the step's output level, slices stitched in the image domain, one phase reconstruction for
    the whole clip, loudness normalised once;
(b) the reference notebook loop (teticio's audio_diffusion_pipeline.ipynb, "continuations"):
    diffusers' own AudioDiffusionPipeline with its Mel codec, 2 s overlap: each slice is decoded
    with librosa's Griffin-Lim, the last 2 s of decoded audio are re-encoded (with their own
    level reference) as the next slice's known columns, pasted at the step's *input* level, and
    the decoded slices are concatenated;
(c) the course's wide-noise image: randn(1, 1, H, W * k) through the fully convolutional UNet in
    one go, decoded by the same reference pipeline.

All three use the same UNet, the same DDIM schedule and steps, and the same seed. The model is a
tiny UNet (0.69 M parameters) on 64-band Mel images with the public models' time geometry
(22050 Hz, hop 512, 256 columns = 5.94 s per slice, so the reference's 2 s overlap leaves 3.9 s
of new audio per slice as it does on the 256 models), trained for --train-steps steps on
--music first (0: random weights). A briefly trained tiny model makes spectrogram-like images,
not music: the numbers measure what the sampling and stitching do (phase seams, level jumps,
texture breaks at the joins), not musical continuity, which needs a real model.

Printed side by side: wall time (and ratio to the reference loop), seam score (DESIGN section 7:
1.0 = a seam is like any other moment), 4 s BS.1770 loudness spread (std, LU) and drift
(LU/min), with the real recording's values on the reference row for calibration. The wide-noise
image has no seams; it is scored at the slice grid (every 5.92 s) for comparison. Ends with one
summary line of `name: value` pairs.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

warnings.filterwarnings("ignore")

from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel  # noqa: E402
from diffusers.pipelines.deprecated.audio_diffusion import AudioDiffusionPipeline, Mel  # noqa: E402

from audiodiff.audio import load_audio  # noqa: E402
from audiodiff.mel import MelConfig, audio_to_images  # noqa: E402
from audiodiff.metrics import loudness_drift, loudness_spread, seam_score  # noqa: E402
from audiodiff.sample import DEFAULT_OVERLAP_SECONDS, generate_long  # noqa: E402

DEFAULT_MUSIC = Path(__file__).resolve().parents[1].parent / "shared" / "music" / "jazz" / "waller.flac"
MEL = MelConfig(x_res=256, y_res=64, sample_rate=22050, n_fft=2048, hop_length=512, top_db=80, n_iter=32)


def tiny_unet(seed: int) -> UNet2DModel:
    """Attention only at 1/4 resolution (16 x 64 tokens), like the public layout's low-resolution attention."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(
            sample_size=(MEL.y_res, MEL.x_res), in_channels=1, out_channels=1, block_out_channels=(16, 32, 64),
            layers_per_block=1, norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        ).eval()


def train_briefly(unet: UNet2DModel, scheduler: DDPMScheduler, music: Path, steps: int, seed: int, batch_size: int = 4):
    """A few hundred noise-prediction steps on random slices of one recording (just enough structure)."""
    audio = load_audio(music, MEL.sample_rate)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    unet.train()
    for step in range(steps):
        starts = rng.integers(0, audio.numel() - MEL.slice_samples, batch_size)
        images = audio_to_images(torch.stack([audio[s : s + MEL.slice_samples] for s in starts]), MEL)
        noise = torch.randn(images.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
        loss = torch.nn.functional.mse_loss(unet(scheduler.add_noise(images, noise, t), t).sample, noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 50 == 0 or step == steps - 1:
            print(f"  train step {step + 1}/{steps}: loss {loss.item():.4f}")
    unet.eval()


def reference_pipeline(unet: UNet2DModel, ddim: DDIMScheduler) -> AudioDiffusionPipeline:
    mel = Mel(x_res=MEL.x_res, y_res=MEL.y_res, sample_rate=MEL.sample_rate, n_fft=MEL.n_fft,
              hop_length=MEL.hop_length, top_db=MEL.top_db, n_iter=MEL.n_iter)
    pipe = AudioDiffusionPipeline(vqvae=None, unet=unet, mel=mel, scheduler=ddim)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_reference_loop(pipe: AudioDiffusionPipeline, seconds: float, steps: int, seed: int, overlap_seconds: int = 2):
    """The notebook's loop, verbatim in substance: returns (audio, seam times in seconds)."""
    sr = MEL.sample_rate
    generator = torch.Generator().manual_seed(seed)
    overlap_samples = overlap_seconds * sr
    audio = pipe(steps=steps, generator=generator, return_dict=False)[1][1][0]  # slice 0, decoded
    track, seams = audio, []
    while len(track) < seconds * sr:
        output = pipe(raw_audio=audio[-overlap_samples:], mask_start_secs=overlap_seconds, steps=steps,
                      generator=generator, return_dict=False)
        audio2 = output[1][1][0]
        seams.append(len(track) / sr)
        track = np.concatenate([track, audio2[overlap_samples:]])
        audio = audio2
    return track[: int(round(seconds * sr))].astype(np.float32), [s for s in seams if s < seconds]


def run_wide_noise(pipe: AudioDiffusionPipeline, seconds: float, steps: int, seed: int):
    k = math.ceil(seconds * MEL.sample_rate / MEL.frames_to_samples(MEL.x_res))
    noise = torch.randn((1, 1, MEL.y_res, MEL.x_res * k), generator=torch.Generator().manual_seed(seed))
    audio = pipe(noise=noise, steps=steps, return_dict=False)[1][1][0]
    return audio[: int(round(seconds * MEL.sample_rate))].astype(np.float32)


def measure(audio, seams) -> dict:
    sr = MEL.sample_rate
    return {
        "seam": seam_score(audio, sr, seams),
        "spread": loudness_spread(audio, sr),
        "drift": loudness_drift(audio, sr),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30)")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps for all three (default 20; CPU-friendly)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP_SECONDS, help="ours' overlap in seconds")
    parser.add_argument("--overlaps", default="", help="comma-separated overlaps to sweep for ours, e.g. 0.5,1,2,3")
    parser.add_argument("--train-steps", type=int, default=100,
                        help="train the tiny UNet this many steps on --music first (default 100, ~10 min on a "
                             "2-core CPU; 0: random weights, which measure the stitching only)")
    parser.add_argument("--music", type=Path, default=DEFAULT_MUSIC, help="a real recording: training data and loudness reference")
    parser.add_argument("--repaint-jumps", type=int, default=0, help="also run ours with this many RePaint jumps (extra row)")
    parser.add_argument("--skip-wide", action="store_true", help="leave out (c), the slowest on a CPU")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared CPU, a thread pool fighting other "
                             "processes makes timings swing tenfold; one thread keeps the ratios honest)")
    return parser.parse_args()


def timed_ours(ours_pipe, args, overlap: float, repaint_jumps: int = 0):
    """One clip of ours -> (seconds taken, the clip)."""
    start = time.perf_counter()
    clip = generate_long(ours_pipe, args.seconds, overlap_seconds=overlap, seed=args.seed, num_inference_steps=args.steps,
                         scheduler=None, progress=False, repaint_jumps=repaint_jumps)
    return time.perf_counter() - start, clip


def method_rows(ours_pipe, ref_pipe, args) -> dict:
    """Every method's row: time, seam, loudness spread and drift, a note."""
    rows = {}
    elapsed, clip = timed_ours(ours_pipe, args, args.overlap)
    rows["ours"] = dict(time=elapsed, **measure(clip.audio[0], clip.seam_seconds),
                        note=f"{len(clip.slices)} slices, overlap {args.overlap:g} s")
    if args.repaint_jumps:
        elapsed, clip = timed_ours(ours_pipe, args, args.overlap, args.repaint_jumps)
        rows[f"ours, repaint {args.repaint_jumps}"] = dict(
            time=elapsed, **measure(clip.audio[0], clip.seam_seconds),
            note=f"{len(clip.slices)} slices, overlap {args.overlap:g} s, {args.repaint_jumps} RePaint jumps")
    start = time.perf_counter()
    ref_audio, ref_seams = run_reference_loop(ref_pipe, args.seconds, args.steps, args.seed)
    rows["reference loop"] = dict(time=time.perf_counter() - start, **measure(ref_audio, ref_seams),
                                  note=f"{len(ref_seams) + 1} slices, overlap 2 s")
    sr = MEL.sample_rate
    grid = [i * MEL.frames_to_samples(MEL.x_res) / sr for i in range(1, 64)]
    grid = [s for s in grid if s < args.seconds - 0.1]
    if not args.skip_wide:
        start = time.perf_counter()
        wide = run_wide_noise(ref_pipe, args.seconds, args.steps, args.seed)
        rows["wide noise"] = dict(time=time.perf_counter() - start, **measure(wide, grid),
                                  note="no seams: scored on the 5.92 s slice grid")
    real = load_audio(args.music, sr)[: int(args.seconds * sr)]
    rows["real audio"] = dict(time=float("nan"), **measure(real, grid), note=f"{args.music.name}, first {args.seconds:g} s, slice grid")
    return rows


def print_rows(rows: dict) -> None:
    reference_time = rows["reference loop"]["time"]
    print(f"\n{'method':<16}{'time s':>9}{'vs ref':>8}{'seam':>8}{'spread LU':>11}{'drift LU/min':>14}  note")
    for name, row in rows.items():
        ratio = reference_time / row["time"] if math.isfinite(row["time"]) else float("nan")
        time_text = f"{row['time']:9.1f}" if math.isfinite(row["time"]) else f"{'-':>9}"
        ratio_text = f"{ratio:7.2f}x" if math.isfinite(ratio) else f"{'-':>8}"
        print(f"{name:<16}{time_text}{ratio_text}{row['seam']:8.2f}{row['spread']:11.2f}{row['drift']:14.2f}  {row['note']}")


def overlap_sweep(ours_pipe, args) -> None:
    print("\nours, overlap sweep (same model and seed):")
    print(f"{'overlap s':>10}{'slices':>8}{'time s':>9}{'seam':>8}{'spread LU':>11}{'drift LU/min':>14}")
    for overlap in [float(v) for v in args.overlaps.split(",") if v.strip()]:
        elapsed, sweep = timed_ours(ours_pipe, args, overlap)
        m = measure(sweep.audio[0], sweep.seam_seconds)
        print(f"{overlap:10.2f}{len(sweep.slices):8d}{elapsed:9.1f}{m['seam']:8.2f}{m['spread']:11.2f}{m['drift']:14.2f}")


def summary_line(rows: dict) -> str:
    ours, ref = rows["ours"], rows["reference loop"]
    summary = [f"speedup_vs_reference_loop: {ref['time'] / ours['time']:.2f}x", f"seam_ours: {ours['seam']:.2f}",
               f"seam_reference: {ref['seam']:.2f}"]
    if "wide noise" in rows:
        summary += [f"seam_wide_noise: {rows['wide noise']['seam']:.2f}",
                    f"speedup_vs_wide_noise: {rows['wide noise']['time'] / ours['time']:.2f}x"]
    summary += [f"spread_ours_lu: {ours['spread']:.2f}", f"spread_reference_lu: {ref['spread']:.2f}",
                f"spread_real_lu: {rows['real audio']['spread']:.2f}", f"drift_ours_lu_per_min: {ours['drift']:.2f}",
                f"drift_reference_lu_per_min: {ref['drift']:.2f}"]
    return ", ".join(summary)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    unet = tiny_unet(args.seed)
    weights = "random weights"
    if args.train_steps:
        print(f"training the tiny UNet for {args.train_steps} steps on {args.music.name} ...")
        train_briefly(unet, scheduler, args.music, args.train_steps, args.seed)
        weights = f"trained {args.train_steps} steps on {args.music.name}"
    ours_pipe = SimpleNamespace(unet=unet, scheduler=DDIMScheduler.from_config(scheduler.config), mel=MEL)
    ref_pipe = reference_pipeline(unet, DDIMScheduler.from_config(scheduler.config))
    print(f"model: tiny UNet ({sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M parameters, {weights}), "
          f"{MEL.y_res}x{MEL.x_res} Mel at {MEL.sample_rate} Hz, DDIM {args.steps} steps, seed {args.seed}, {args.seconds:g} s, "
          f"{torch.get_num_threads()} CPU threads")
    rows = method_rows(ours_pipe, ref_pipe, args)
    print_rows(rows)
    if args.overlaps:
        overlap_sweep(ours_pipe, args)
    print("\n" + summary_line(rows))


if __name__ == "__main__":
    main()
