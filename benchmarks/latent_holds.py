"""The level and tempo holds on a latent model, measured (issue 27): with and without them, how the
change of the holds is carried back to latents ("delta" or "direct"), and on every step or every
4th, on a tiny-latent model trained here for a few hundred steps on synthetic jazz.

    OMP_NUM_THREADS=1 python benchmarks/latent_holds.py --clips 3 --seconds 15

Per row: |drift| (BS.1770 loudness drift over 4 s windows, LU/min, mean of the clips' absolute
values), level error (mean over continued slices of |level of the slice's new columns - level of
the clip before it| in dB, on the decoded Mel image: what the level hold aims at), tempo spread (%,
median over clips), carry error (how far the decoded latents land from the guided Mel image, as a
share of the change the guide asked for: 0 is exact, 1 as far as not moving), UNet calls and VAE passes (decoder and encoder forward passes) per clip and
seconds per clip; level carried: the median share of the level change a step asked for that its
carried latents show when decoded (1 is all of it). A tiny model's numbers mean little musically: they measure the code path.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

from audiodiff import metrics
from audiodiff.pipeline import load_pipeline
from audiodiff.sampling import latent as latent_sampling
from audiodiff.sampling.latent_holds import LatentCodec
from audiodiff.sampling.steering import image_level_db

ROWS = {  # name: (generate_long keywords, codec keywords)
    "holds off": (dict(level_hold=0.0, tempo_hold=0.0), {}),
    "holds, delta, every step": ({}, dict(carry="delta")),
    "holds, direct, every step": ({}, dict(carry="direct")),
    "holds, gradient, every step": ({}, dict(carry="gradient")),
    "holds, gradient, every 4th step": ({}, dict(carry="gradient", every=4)),
    "level hold only, gradient": (dict(tempo_hold=0.0), dict(carry="gradient")),
}


def trained_tiny_latent(seconds: float = 8.0, tracks: int = 6, vae_steps: int = 800, unet_steps: int = 400):
    """tiny-latent trained on random 64-column crops of synthetic jazz: the VAE as an autoencoder,
    then the UNet on its latents."""
    from audiodiff.synthetic import render
    from audiodiff.sampling.inversion import image_of

    torch.manual_seed(0)
    pipe = load_pipeline("tiny-latent")
    rate = pipe.mel.sample_rate
    images = [image_of(torch.as_tensor(render("jazz", s, seconds, rate)).float(), pipe.mel)[0] for s in range(tracks)]
    width = pipe.mel.x_res

    def batch(n=8):
        picks = [images[int(torch.randint(len(images), ()))] for _ in range(n)]
        return torch.cat([im[..., (o := int(torch.randint(im.shape[-1] - width, ()))) : o + width] for im in picks])

    vae = pipe.vqvae.train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=5e-3)
    for _ in range(vae_steps):
        x = batch()
        posterior = vae.encode(x).latent_dist
        loss = torch.nn.functional.mse_loss(vae.decode(posterior.sample()).sample, x) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    vae.eval()
    unet, scheduler = pipe.unet.train(), pipe.scheduler
    optimizer = torch.optim.Adam(unet.parameters(), lr=2e-3)
    for _ in range(unet_steps):
        latents = pipe.encode(batch())
        timesteps = torch.randint(0, 1000, (latents.shape[0],))
        noise = torch.randn_like(latents)
        loss = torch.nn.functional.mse_loss(unet(scheduler.add_noise(latents, noise, timesteps), timesteps).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    unet.eval()
    return pipe


class Counted:
    """Counts calls of a pipeline's UNet and of its VAE's decoder and encoder (forward passes; the
    gradient carry's backward pass through the decoder is not counted)."""

    def __init__(self, pipe):
        self.unet = self.decode = self.encode = 0
        for name, module in (("unet", pipe.unet), ("decode", pipe.vqvae.decoder), ("encode", pipe.vqvae.encoder)):
            module.register_forward_pre_hook(functools.partial(self._count, name))

    def _count(self, name, *_):
        setattr(self, name, getattr(self, name) + 1)


def slice_level_error(clip, mel, overlap_mel_columns: int) -> float:
    """Mean over continued slices of |level of the new columns - level of the clip before them| (dB)."""
    errors = []
    for start, end in clip.slice_columns[1:]:
        new = start + overlap_mel_columns
        if end - new < 1:
            continue
        errors.append(abs(float(image_level_db(clip.image[..., new:end], mel) - image_level_db(clip.image[..., :new], mel))))
    return statistics.mean(errors)


def carry_errors(pipe, counter: Counted, sink: list, delivered: list):
    """A LatentCodec that records, at each carry, |decode(carried) - guided| / |guided - decoded| in
    `sink`, and the share of the level change asked for that the decoded latents show in `delivered`."""

    class Measured(LatentCodec):
        def carried(self, latents, decoded, guided, start=0):
            moved = super().carried(latents, decoded, guided, start)
            asked = (guided - decoded).abs().mean()
            if float(asked) > 1e-6:
                landed = pipe.decode(moved)
                counter.decode -= 1  # the measurement's, not the sampler's
                sink.append(float((landed - guided).abs().mean() / asked))
                levels = [image_level_db(x, pipe.mel) for x in (decoded, guided, landed)]
                wanted = levels[1] - levels[0]
                if float(wanted.abs().min()) > 0.05:  # dB
                    delivered.extend(((levels[2] - levels[0]) / wanted).tolist())
            return moved

    return Measured


def measure(pipe, counter: Counted, name: str, clips: int, seconds: float, steps: int) -> dict:
    sampling, codec = ROWS[name]
    errors: list[float] = []
    delivered: list[float] = []
    original = latent_sampling.LatentCodec
    latent_sampling.LatentCodec = functools.partial(carry_errors(pipe, counter, errors, delivered), **codec)
    rows = []
    try:
        for seed in range(clips):
            before = (counter.unet, counter.decode, counter.encode)
            started = time.perf_counter()
            clip = latent_sampling.generate_long_latent(pipe, seconds, num_inference_steps=steps, seed=seed,
                                                        progress=False, latent_holds=True, **sampling)
            wall = time.perf_counter() - started
            audio, rate = clip.audio[0], pipe.mel.sample_rate
            k = (clip.slice_columns[1][0] - clip.slice_columns[0][0]) if len(clip.slice_columns) > 1 else 0
            rows.append(dict(drift=abs(metrics.loudness_drift(audio, rate)), tempo=metrics.tempo_spread(audio, rate),
                             level=slice_level_error(clip, pipe.mel, clip.slice_columns[0][1] - k),
                             unet=counter.unet - before[0], vae=(counter.decode - before[1]) + (counter.encode - before[2]),
                             wall=wall))
    finally:
        latent_sampling.LatentCodec = original
    row = {key: statistics.mean(r[key] for r in rows) for key in ("drift", "level", "unet", "vae", "wall")}
    row["tempo"] = statistics.median(r["tempo"] for r in rows)
    row["carry"] = statistics.mean(errors) if errors else float("nan")
    row["delivered"] = statistics.median(delivered) if delivered else float("nan")
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--smoke", action="store_true",
                        help="the whole code path in seconds: 5 training steps each, one 10 s clip of 2 steps per row")
    args = parser.parse_args(argv)
    if args.smoke:
        args.clips, args.seconds, args.steps = 1, 10.0, 2
    pipe = trained_tiny_latent(vae_steps=5, unet_steps=5) if args.smoke else trained_tiny_latent()
    counter = Counted(pipe)
    print(f"{args.clips} clips of {args.seconds:g} s, DDIM {args.steps} steps, tiny-latent trained on synthetic jazz")
    print(f"{'':30} |drift| LU/min  level err dB  tempo %  carry err  level carried  UNet calls  VAE passes  s/clip")
    for name in args.rows:
        with torch.no_grad():
            r = measure(pipe, counter, name, args.clips, args.seconds, args.steps)
        print(f"{name:30} {r['drift']:13.2f} {r['level']:13.2f} {r['tempo']:8.1f} {r['carry']:10.2f} {r['delivered']:14.2f} "
              f"{r['unet']:11.0f} {r['vae']:11.0f} {r['wall']:7.1f}", flush=True)

if __name__ == "__main__":
    main()
