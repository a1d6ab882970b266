"""Encode and decode the same batch of real music with diffusers' Mel and with ours, in one run.

    python benchmarks/spectrogram.py [--music ../shared/music] [--slices 6] [--n-iter 32]

Prints speed ratios and quality side by side: pixel agreement of the encoders, and for the
decoders the spectral convergence (SC = ||M_in - M_re|| / ||M_in|| on linear mel magnitudes
after re-encoding) and the log-spectral distance (dB) of the round trip. Ends with one summary
line of `name: value` pairs.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")

from diffusers.pipelines.deprecated.audio_diffusion import Mel  # noqa: E402
from PIL import Image  # noqa: E402

from audiodiff.audio import AUDIO_EXTENSIONS, load_audio  # noqa: E402
from audiodiff.mel import MelConfig, audio_to_images, images_to_audio, images_to_power, spectral_convergence  # noqa: E402

DEFAULT_MUSIC = Path(__file__).resolve().parents[1].parent / "shared" / "music"


def real_slices(music: Path, config: MelConfig, count: int) -> torch.Tensor:
    files = sorted(p for p in music.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise SystemExit(f"no audio under {music}; pass --music DIR")
    tracks = [load_audio(p, config.sample_rate) for p in files]
    rng = np.random.default_rng(0)
    slices = []
    for i in range(count):
        track = tracks[i % len(tracks)]
        start = int(rng.integers(0, max(1, track.numel() - config.slice_samples)))
        slices.append(track[start : start + config.slice_samples])
    return torch.stack(slices)


def log_spectral_distance(images_in, images_out, config):
    """RMS difference in dB between two mel images, floored at -top_db, per item."""
    a = 10 * torch.log10(images_to_power(images_in, config).clamp_min(1e-8))
    b = 10 * torch.log10(images_to_power(images_out, config).clamp_min(1e-8))
    return (a - b).square().mean(dim=(-2, -1)).sqrt()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--music", type=Path, default=DEFAULT_MUSIC, help="folder of real recordings (default ../shared/music)")
    parser.add_argument("--slices", type=int, default=6, help="slices in the batch (default 6)")
    parser.add_argument("--n-iter", type=int, default=32, help="Griffin-Lim iterations for both decoders (default 32)")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = MelConfig(n_iter=args.n_iter)
    audio = real_slices(args.music, config, args.slices)
    reference = Mel(**config.to_dict())

    # warm up both (librosa's numba kernels compile on first use)
    reference.load_audio(raw_audio=audio[0].numpy())
    reference.image_to_audio(reference.audio_slice_to_image(0))
    images_to_audio(audio_to_images(audio[:1], config), config)

    t0 = time.perf_counter()
    ref_grey = []
    for item in audio.numpy():
        reference.load_audio(raw_audio=item)
        ref_grey.append(np.array(reference.audio_slice_to_image(0)))
    ref_encode = time.perf_counter() - t0
    ref_grey = np.stack(ref_grey)

    t0 = time.perf_counter()
    images = audio_to_images(audio, config)
    our_encode = time.perf_counter() - t0
    our_grey = np.round((images[:, 0].numpy() + 1) * 127.5).astype(np.int16)
    diff = np.abs(our_grey - ref_grey)

    t0 = time.perf_counter()
    ref_audio = [reference.image_to_audio(Image.fromarray(g.astype(np.uint8))) for g in our_grey]
    ref_decode = time.perf_counter() - t0
    ref_audio = torch.from_numpy(np.stack(ref_audio).astype(np.float32))

    t0 = time.perf_counter()
    our_audio = images_to_audio(images, config)
    our_decode = time.perf_counter() - t0

    ref_again = audio_to_images(ref_audio, config)
    our_again = audio_to_images(our_audio, config)
    sc_ref = spectral_convergence(images, ref_again, config).mean().item()
    sc_ours = spectral_convergence(images, our_again, config).mean().item()
    lsd_ref = log_spectral_distance(images, ref_again, config).mean().item()
    lsd_ours = log_spectral_distance(images, our_again, config).mean().item()

    n = len(audio)
    print(f"{n} slices of real music from {args.music}, {config.x_res}x{config.y_res} at {config.sample_rate} Hz, "
          f"Griffin-Lim {args.n_iter} iterations")
    print(f"{'':28s}{'diffusers Mel':>16s}{'audiodiff':>14s}{'ratio':>10s}")
    print(f"{'encode ms/slice':28s}{1e3 * ref_encode / n:16.1f}{1e3 * our_encode / n:14.1f}{ref_encode / our_encode:9.1f}x")
    print(f"{'decode ms/slice':28s}{1e3 * ref_decode / n:16.1f}{1e3 * our_decode / n:14.1f}{ref_decode / our_decode:9.1f}x")
    print(f"{'spectral convergence':28s}{sc_ref:16.4f}{sc_ours:14.4f}{sc_ours / sc_ref:10.2f}")
    print(f"{'log-spectral distance dB':28s}{lsd_ref:16.2f}{lsd_ours:14.2f}{lsd_ours / lsd_ref:10.2f}")
    print(f"{'pixels identical (encode)':28s}{'':16s}{100 * (diff == 0).mean():13.4f}%")
    print(f"{'max grey-level difference':28s}{'':16s}{diff.max():14d}")
    print(
        f"encode_speedup: {ref_encode / our_encode:.1f}x, decode_speedup: {ref_decode / our_decode:.1f}x, "
        f"sc_ratio: {sc_ours / sc_ref:.2f}, lsd_ratio: {lsd_ours / lsd_ref:.2f}, "
        f"pixels_identical: {100 * (diff == 0).mean():.3f}%, max_grey_diff: {diff.max()}"
    )


if __name__ == "__main__":
    main()
