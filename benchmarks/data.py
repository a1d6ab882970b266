"""Slices per second of our data pipeline vs the course's collate, on the same real recordings, in one run.

    python benchmarks/data.py [--music ../shared/music] [--clip-seconds 30] [--batch-size 4] [--epochs 4]

The recordings are cut into clips of --clip-seconds (the row length of lewtun/music_genres) and
written as 44.1 kHz stereo FLAC to a temporary folder; both pipelines read the same files and
make one 256x256 Mel image per clip per epoch, in batches.

- course (the diffusion course's unit 4 collate): per item, every epoch, decode the whole file
  (what `datasets`' Audio decoding does for every row it hands out), mono,
  `torchaudio.transforms.Resample(44100, 22050)` on the whole clip (the transform is built once,
  as in the course; a second row builds it per item), `Mel.load_audio(raw_audio=...)`, a random
  slice index, `Mel.audio_slice_to_image`, to tensor * 2 - 1; stack.
- ours: `load_genre(data_dir=...)` decodes, checks and resamples every file once (cached), then
  `make_dataloader`: a random non-silent slice per clip, `audio_to_images` on the whole batch.

First epoch: ours from a cold start, including indexing (the one decode + check + resample of
every file, in up to 4 threads). Steady state: ours after the first epoch; the course pays the
same every epoch. Each round runs one course epoch, one cold start of ours and two more of our
epochs, so a busy machine slows both alike; the table gives medians over --rounds. torch runs
one thread (--threads), as in a DataLoader worker. Ends with one summary line.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

warnings.filterwarnings("ignore")

import torchaudio.transforms as AT  # noqa: E402
from diffusers.pipelines.deprecated.audio_diffusion import Mel  # noqa: E402

from audiodiff.audio import AUDIO_EXTENSIONS  # noqa: E402
from audiodiff.data import TRACK_CACHE, load_genre, make_dataloader  # noqa: E402
from audiodiff.mel import MelConfig  # noqa: E402

DEFAULT_MUSIC = Path(__file__).resolve().parents[1].parent / "shared" / "music"


def make_clips(music: Path, folder: Path, clip_seconds: float, min_seconds: float = 10.0) -> list[Path]:
    """Cut every recording under `music` into clips (the last one kept when >= min_seconds),
    written at the recording's own rate and channels as FLAC: folder/<genre>/<name>-<k>.flac."""
    files = sorted(p for p in music.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise SystemExit(f"no audio under {music}; pass --music DIR")
    clips = []
    for path in files:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)  # (T, C)
        step = int(clip_seconds * rate)
        for k, start in enumerate(range(0, len(audio), step)):
            piece = audio[start : start + step]
            if len(piece) < min_seconds * rate:
                continue
            target = folder / path.parent.name / f"{path.stem}-{k:02d}.flac"
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, piece, rate, subtype="PCM_16")
            clips.append(target)
    return clips


class CourseCollate:
    """The course's collate, item by item (units/en/unit4/diffusion_for_audio.ipynb)."""

    def __init__(self, mel: Mel, source_rate: int, resampler_per_item: bool = False):
        self.mel, self.source_rate, self.per_item = mel, source_rate, resampler_per_item
        self.resampler = AT.Resample(source_rate, mel.get_sample_rate(), dtype=torch.float32)

    def to_image(self, audio_array: np.ndarray):
        resampler = AT.Resample(self.source_rate, self.mel.get_sample_rate(), dtype=torch.float32) if self.per_item else self.resampler
        audio_tensor = resampler(torch.tensor(audio_array).to(torch.float32))
        self.mel.load_audio(raw_audio=np.array(audio_tensor))
        slice_idx = random.randint(0, self.mel.get_number_of_slices() - 1)
        return self.mel.audio_slice_to_image(slice_idx)

    def __call__(self, paths: list[Path]) -> torch.Tensor:
        images = []
        for path in paths:
            audio, _ = sf.read(path, dtype="float32", always_2d=True)  # datasets decodes each row it serves
            image = self.to_image(audio.mean(axis=1))
            images.append(torch.from_numpy(np.array(image)).float().div(255).unsqueeze(0) * 2 - 1)  # ToTensor()*2-1
        return torch.stack(images)  # (B, 1, 256, 256)


def course_epoch(clips, collate, batch_size, epoch) -> float:
    """Seconds for one epoch of the course's loop (shuffled, batched, like its DataLoader)."""
    order = list(clips)
    random.Random(epoch).shuffle(order)
    start = time.perf_counter()
    for k in range(0, len(order), batch_size):
        batch = collate(order[k : k + batch_size])
        assert batch.shape[1:] == (1, 256, 256)
    return time.perf_counter() - start


def our_loader(folder, config, batch_size):
    """(index seconds, loader): load_genre from a cold cache, then make_dataloader."""
    TRACK_CACHE.clear()
    start = time.perf_counter()
    data = load_genre(None, config, data_dir=folder, progress=False)
    index_seconds = time.perf_counter() - start
    return index_seconds, make_dataloader(data.tracks, config, batch_size=batch_size, drop_last=False)


def our_epoch(loader, epoch) -> float:
    loader.dataset.set_epoch(epoch)
    start = time.perf_counter()
    count = 0
    for images in loader:
        assert images.shape[1:] == (1, 256, 256)
        count += images.shape[0]
    assert count == len(loader.dataset)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--music", type=Path, default=DEFAULT_MUSIC, help="folder of real recordings (default ../shared/music)")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="length of the clips cut from them (default 30)")
    parser.add_argument("--batch-size", type=int, default=4, help="batch size of both loaders (default 4, the course's)")
    parser.add_argument("--rounds", type=int, default=3, help="measurement rounds, medians reported (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both (default 1, as in a DataLoader worker)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(0)
    torch.manual_seed(0)
    config = MelConfig()
    mel = Mel(**config.to_dict())

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = make_clips(args.music, folder, args.clip_seconds)
        rates = {sf.info(p).samplerate for p in clips}
        if len(rates) != 1:
            raise SystemExit(f"the course's collate assumes one source rate; the clips have {sorted(rates)}")
        source_rate = rates.pop()
        seconds = sum(sf.info(p).duration for p in clips)
        print(f"{len(clips)} clips ({seconds:.0f} s of {source_rate} Hz stereo FLAC), batch {args.batch_size}, "
              f"{args.rounds} rounds, {torch.get_num_threads()} torch thread(s)")

        # warm-up: librosa's numba kernels compile on first use, torch builds its kernels
        CourseCollate(mel, source_rate)(clips[:1])
        our_epoch(our_loader(folder, config, args.batch_size)[1], 0)

        course_collate = CourseCollate(mel, source_rate)
        per_item_collate = CourseCollate(mel, source_rate, resampler_per_item=True)
        course, course_per_item, index_times, ours_first, ours_steady = [], [], [], [], []
        for round_ in range(args.rounds):  # interleaved, so load from other processes hits both alike
            course.append(course_epoch(clips, course_collate, args.batch_size, round_))
            course_per_item.append(course_epoch(clips, per_item_collate, args.batch_size, round_))
            index_seconds, loader = our_loader(folder, config, args.batch_size)  # cold cache
            index_times.append(index_seconds)
            ours_first.append(index_seconds + our_epoch(loader, 0))
            ours_steady += [our_epoch(loader, 1), our_epoch(loader, 2)]

    n = len(clips)
    median = lambda times: float(np.median(times))  # noqa: E731
    rate = lambda times: n / median(times)  # noqa: E731 - slices per second
    rows = [
        ("course collate (Resample built once)", rate(course), rate(course)),
        ("course collate (Resample built per item)", rate(course_per_item), rate(course_per_item)),
        ("ours (index + cached slices + batched Mel)", rate(ours_first), rate(ours_steady)),
    ]
    print(f"\n{'pipeline':<44} {'first epoch':>14} {'steady state':>14}   (slices/s, median of {args.rounds} rounds)")
    for name, first, steady in rows:
        print(f"{name:<44} {first:>14.1f} {steady:>14.1f}")
    print(f"per clip: course {median(course) / n * 1000:.0f} ms every epoch; ours {median(index_times) / n * 1000:.0f} ms "
          f"once (decode + check + resample), then {median(ours_steady) / n * 1000:.1f} ms per slice")
    print(f"\nclips: {n}, batch: {args.batch_size}, course_slices_per_s: {rate(course):.1f}, "
          f"ours_first_epoch_slices_per_s: {rate(ours_first):.1f}, ours_steady_slices_per_s: {rate(ours_steady):.1f}, "
          f"first_epoch_speedup: {rate(ours_first) / rate(course):.1f}x, speedup: {rate(ours_steady) / rate(course):.1f}x")


if __name__ == "__main__":
    main()
