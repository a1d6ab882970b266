"""The torch side of the data wing: one slice per track per epoch (`SliceDataset`, or
`StreamSliceDataset` over a `TrackStream`), the order (`TrackSampler`), Mel batches
(`MelCollate`) and the DataLoader that joins them (`make_dataloader`).

Why it looks like this:
- The course's collate decodes, resamples and encodes every item, every epoch, one at a time
  (and rebuilds nothing it could keep). Here each track is decoded and resampled once per
  process (an LRU cache shared by the index check, the dataset and forked DataLoader workers),
  a slice is a view into it, and the Mel encoder runs on the whole batch at once.
- Slice offsets are a pure function of (seed, epoch, track), drawn among the offsets whose
  slice is not near-silent (found once per track from a running energy sum, so there is no
  retry loop), so a resumed run and any number of workers see exactly the same data.
"""

from __future__ import annotations

import collections
import hashlib
import logging
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from ..mel import MelConfig, audio_to_images
from .sources import TrackStream
from .tracks import SILENCE_DB, Track, _cache_key, _inspect, _load_prepared, _Prepared, describe_skips

logger = logging.getLogger(__name__)

SHUFFLE_BUFFER = 64  # rows of encoded audio held by the streaming shuffle buffer (~25 MB of mp3)


# ---- slices and batches ------------------------------------------------------------------------
def _rng(*words: int) -> np.random.Generator:
    return np.random.default_rng([int(w) & 0xFFFFFFFFFFFFFFFF for w in words])


def _name_number(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


_TRAIN, _VALIDATION, _ORDER, _STREAM = 0, 1, 2, 3  # rng namespaces


def _draw_offset(item: _Prepared, config: MelConfig, silence_db: float, rng: np.random.Generator,
                 first: int = 0, stop: int | None = None) -> int:
    """A random start (samples) for a slice of a prepared track within samples [first, stop),
    never a near-silent slice: a hop-grid position drawn among the loud ones, plus a random part
    of a hop. A range shorter than a slice starts at `first` (the slice is padded)."""
    stop = item.audio.numel() if stop is None else min(stop, item.audio.numel())
    spare = stop - first - config.slice_samples
    if spare <= 0:
        return first
    hop = config.hop_length
    grid = np.arange(-(-first // hop), min((stop - config.slice_samples) // hop, item.slice_energy_db.size - 1) + 1)
    if grid.size == 0:  # the range holds no hop-grid start: any start within it
        return first + int(rng.integers(spare + 1))
    loud = grid[item.slice_energy_db[grid] >= silence_db]
    if loud.size == 0:  # every slice is quiet (the file passed the whole-file check): any will do
        loud = grid
    start = int(loud[rng.integers(loud.size)]) * hop + int(rng.integers(hop))
    return min(start, stop - config.slice_samples)


def _cut(item: _Prepared, start: int, config: MelConfig, stop: int | None = None) -> torch.Tensor:
    """(slice_samples,) from `start`, zero-padded past the end of a short track or of the part
    ending at `stop` (a copy)."""
    end = start + config.slice_samples if stop is None else min(start + config.slice_samples, stop)
    piece = item.audio[start:end]
    return torch.nn.functional.pad(piece, (0, config.slice_samples - piece.numel()))


class SliceDataset(Dataset):
    """One random slice per track per epoch: item i is a (slice_samples,) float32 tensor at
    config.sample_rate. The offset is a pure function of (seed, epoch, i); near-silent slices are
    never drawn. Index with i (uses `set_epoch`'s epoch) or (i, epoch) (what TrackSampler yields,
    so persistent workers agree with the main process)."""

    def __init__(self, tracks: Sequence[Track], config: MelConfig, seed: int = 0, silence_db: float = SILENCE_DB):
        self.tracks = list(tracks)
        self.config, self.seed, self.silence_db = config, int(seed), float(silence_db)
        self.epoch = 0
        self._keys: list[tuple | None] = [None] * len(self.tracks)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.tracks)

    def prepared(self, i: int) -> _Prepared:
        if self._keys[i] is None:
            self._keys[i] = _cache_key(self.tracks[i].source, self.config)
        return _load_prepared(self.tracks[i], self.config, self._keys[i])

    def offset(self, i: int, epoch: int) -> int:
        """Where the slice of (track i, epoch) starts, in samples at config.sample_rate."""
        first, stop = self.tracks[i].sample_range(self.config.sample_rate)
        return _draw_offset(self.prepared(i), self.config, self.silence_db, _rng(self.seed, _TRAIN, epoch, i), first, stop)

    def __getitem__(self, index) -> torch.Tensor:
        i, epoch = index if isinstance(index, tuple) else (index, self.epoch)
        item = self.prepared(int(i))
        first, stop = self.tracks[int(i)].sample_range(self.config.sample_rate)
        start = _draw_offset(item, self.config, self.silence_db, _rng(self.seed, _TRAIN, int(epoch), int(i)), first, stop)
        return _cut(item, start, self.config, stop)  # (slice_samples,)


class TrackSampler(Sampler):
    """Yields (track index, epoch) in an order fixed by (seed, epoch). The epoch is read from the
    dataset in the main process, so `loader.dataset.set_epoch` and `loader.sampler.set_epoch` are
    the same call and workers (persistent or not) see the right epoch.

    Several processes (`num_processes` > 1): process p draws only from the tracks `owners` gives
    it (default: track i belongs to process i % num_processes), the same ones every epoch, so it
    decodes only those; each epoch it takes as many as the smallest share holds (every process
    must run the same number of steps), in an order fixed by (seed, epoch, p)."""

    def __init__(self, dataset: SliceDataset, shuffle: bool = True, seed: int = 0, process_index: int = 0,
                 num_processes: int = 1, owners: Sequence[int] | None = None):
        self.dataset, self.shuffle, self.seed = dataset, shuffle, int(seed)
        self.process_index, self.num_processes = int(process_index), int(num_processes)
        owners = list(owners) if owners is not None else [i % self.num_processes for i in range(len(dataset))]
        if len(owners) != len(dataset) or not all(0 <= o < self.num_processes for o in owners):
            raise ValueError("owners must give a process in [0, num_processes) for every track")
        self.mine = [i for i, owner in enumerate(owners) if owner == self.process_index]
        self.per_epoch = min(owners.count(p) for p in range(self.num_processes))

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return self.per_epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.dataset.epoch
        if self.num_processes == 1:
            order = _rng(self.seed, _ORDER, epoch).permutation(len(self.dataset)) if self.shuffle else range(len(self.dataset))
        else:
            mine = np.asarray(self.mine, dtype=np.int64)
            order = _rng(self.seed, _ORDER, epoch, self.process_index).permutation(mine) if self.shuffle else mine
        for i in list(order)[: self.per_epoch]:
            yield int(i), epoch


class MelCollate:
    """list of (slice_samples,) slices -> (B, 1, y_res, x_res) Mel images in [-1, 1], encoded as
    one batch on `device` (use a CUDA device only with num_workers=0)."""

    def __init__(self, config: MelConfig, device: str | torch.device = "cpu"):
        self.config, self.device = config, torch.device(device)

    def __call__(self, slices: list[torch.Tensor]) -> torch.Tensor:
        audio = torch.stack(slices).to(self.device)  # (B, slice_samples)
        return audio_to_images(audio, self.config)  # (B, 1, y_res, x_res)


def make_dataloader(tracks, config: MelConfig, *, batch_size: int, seed: int = 0, num_workers: int = 0,
                    shuffle: bool = True, drop_last: bool = True, silence_db: float = SILENCE_DB,
                    process_index: int = 0, num_processes: int = 1, owners: Sequence[int] | None = None) -> DataLoader:
    """A DataLoader of Mel image batches (B, 1, y_res, x_res), one slice per track per epoch.

    Call `loader.dataset.set_epoch(epoch)` (or `loader.sampler.set_epoch`) before each epoch:
    the order and the offsets are fixed by (seed, epoch), the same for any num_workers.
    num_processes > 1: this process's loader draws only from its share of the tracks
    (`TrackSampler`; `owners[i]` is the process of track i), so each process decodes only its
    share; every process's loader has the same length.
    A TrackStream gives a loader over a StreamSliceDataset (shuffled by a buffer instead; not sharded).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    collate = MelCollate(config)
    if isinstance(tracks, TrackStream):
        # Workers are started afresh each epoch, so each gets the dataset with the current epoch.
        dataset = StreamSliceDataset(tracks, config, seed=seed, shuffle=shuffle, silence_db=silence_db)
        return DataLoader(dataset, batch_size=batch_size, drop_last=drop_last, collate_fn=collate, num_workers=num_workers)
    # Persistent workers keep their decoded tracks between epochs; the sampler hands them the epoch.
    dataset = SliceDataset(tracks, config, seed=seed, silence_db=silence_db)
    sampler = TrackSampler(dataset, shuffle=shuffle, seed=seed, process_index=process_index,
                           num_processes=num_processes, owners=owners)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, collate_fn=collate,
                      num_workers=num_workers, persistent_workers=num_workers > 0)


def validation_slices(tracks, config: MelConfig, count: int, seed: int = 0, silence_db: float = SILENCE_DB,
                      indices: Sequence[int] | None = None) -> torch.Tensor:
    """(count, slice_samples) fixed slices for a validation loss: slice k comes from track
    k % len(tracks) at an offset fixed by (seed, k). The same inputs give the same slices.
    indices: make only these k (a process's share), (len(indices), slice_samples)."""
    if count <= 0:
        return torch.zeros(0, config.slice_samples)
    if isinstance(tracks, TrackStream):
        tracks = tracks.take(count, config)
    tracks = list(tracks)
    if not tracks:
        raise ValueError("validation_slices needs at least one track")
    dataset = SliceDataset(tracks, config, seed=seed, silence_db=silence_db)
    slices = []
    for k in range(count) if indices is None else indices:
        item = dataset.prepared(k % len(tracks))
        first, stop = tracks[k % len(tracks)].sample_range(config.sample_rate)
        slices.append(_cut(item, _draw_offset(item, config, silence_db, _rng(seed, _VALIDATION, k), first, stop), config, stop))
    if not slices:
        return torch.zeros(0, config.slice_samples)
    return torch.stack(slices)  # (count, slice_samples)


# ---- streaming -------------------------------------------------------------------------------
class StreamSliceDataset(IterableDataset):
    """One slice per usable track of a TrackStream per epoch, shuffled by the stream's buffer
    (seeded by (seed, epoch)). In DataLoader workers, `datasets` gives each worker its own
    shards. Tracks that fail the checks are skipped and counted (`skipped`, logged once per
    process after its first epoch)."""

    def __init__(self, stream: TrackStream, config: MelConfig, seed: int = 0, shuffle: bool = True,
                 silence_db: float = SILENCE_DB, shuffle_buffer: int = SHUFFLE_BUFFER):
        self.stream, self.config, self.seed, self.shuffle = stream, config, int(seed), shuffle
        self.silence_db, self.shuffle_buffer = float(silence_db), shuffle_buffer
        self.epoch = 0
        self.skipped: collections.Counter = collections.Counter()
        self._reported = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.stream)

    def __iter__(self) -> Iterator[torch.Tensor]:
        rows = self.stream.rows
        if self.shuffle:
            rows = rows.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
            rows.set_epoch(self.epoch)
        for track in self.stream.iter_tracks(rows):
            reason, _, item = _inspect(track, self.config, self.stream.min_seconds)
            if reason is not None:
                self.skipped[reason] += 1
                continue
            rng = _rng(self.seed, _STREAM, self.epoch, _name_number(track.name))
            yield _cut(item, _draw_offset(item, self.config, self.silence_db, rng), self.config)  # (slice_samples,)
        if self.skipped and not self._reported:
            self._reported = True
            logger.warning("%s: skipped %s", self.stream.description, describe_skips(self.skipped, self.stream.min_seconds))
