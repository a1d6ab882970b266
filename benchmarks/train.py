"""Fine-tune step time / bare UNet step time, on the same model and batch, in one run.

    python benchmarks/train.py [--preset small] [--batch-size 8] [--steps 20] [--music ../shared/music]

The bare step is forward + backward + AdamW on one fixed batch of Mel images already in memory.
The fine-tune step is audiodiff.train.finetune on the real recordings (decode, resample, slice,
Mel, noise, EMA, logging, validation and checkpoints at their intervals), timed per optimiser
step by the run itself after a warm-up. Goal: ratio <= 1.10 (the model dominates). Ends with
one line of `name: value` pairs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore")

from audiodiff.pipeline import build_preset  # noqa: E402
from audiodiff.train import FinetuneConfig, diffusion_loss, finetune  # noqa: E402

DEFAULT_MUSIC = Path(__file__).resolve().parents[1].parent / "shared" / "music"


def clip_folder(music: Path, root: Path, seconds: float = 20.0) -> Path:
    """The recordings cut into 20 s clips (enough tracks for a full batch of 8 after the validation split)."""
    import soundfile as sf

    from audiodiff.audio import AUDIO_EXTENSIONS, read_audio

    files = sorted(p for p in music.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise SystemExit(f"no audio under {music}; pass --music DIR")
    for path in files:
        audio, rate = read_audio(path)
        step = int(seconds * rate)
        (root / path.parent.name).mkdir(parents=True, exist_ok=True)
        for i in range(max(1, len(audio) // step)):
            sf.write(root / path.parent.name / f"{path.stem}-{i}.flac", audio[i * step:(i + 1) * step], rate)
    return root


def bare_step_seconds(preset: str, batch_size: int, steps: int) -> float:
    pipe = build_preset(preset, seed=0)
    unet = pipe.unet.train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    images = torch.rand(batch_size, 1, pipe.mel.y_res, pipe.mel.x_res) * 2 - 1
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        loss, _, _ = diffusion_loss(unet, pipe.scheduler, images, torch.Generator().manual_seed(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="architecture preset (default: small)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default: 8)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each (default: 20)")
    parser.add_argument("--num-workers", type=int, default=1, help="data workers of the fine-tune (default: 1)")
    parser.add_argument("--music", type=Path, default=DEFAULT_MUSIC, help="folder of real recordings")
    args = parser.parse_args()
    warmup = 3
    with tempfile.TemporaryDirectory() as tmp:
        clips = clip_folder(args.music, Path(tmp) / "clips")
        config = FinetuneConfig(
            genre=None, pretrained=args.preset, data_dir=str(clips), output_dir=str(Path(tmp) / "runs"), max_steps=args.steps + warmup,
            batch_size=args.batch_size, num_workers=args.num_workers, device="cpu" if not torch.cuda.is_available() else None,
            validate_every=10, checkpoint_every=10, sample_every=10_000, warmup_steps=1,
        )
        result = finetune(config, progress=False)
    ours = statistics.median(result.step_seconds[warmup:])
    ours_mean = statistics.mean(result.step_seconds[warmup:])
    bare = bare_step_seconds(args.preset, args.batch_size, args.steps)
    print(f"preset {args.preset}, batch {args.batch_size}, {args.steps} timed steps, real recordings from {args.music}")
    print(f"{'bare UNet step (median)':36s}{bare:8.3f} s")
    print(f"{'fine-tune step (median)':36s}{ours:8.3f} s")
    print(f"{'fine-tune step (mean, with ckpts)':36s}{ours_mean:8.3f} s")
    print(f"ratio_median: {ours / bare:.2f}, ratio_mean: {ours_mean / bare:.2f}, bare_s: {bare:.3f}, finetune_s: {ours:.3f}")


if __name__ == "__main__":
    main()
