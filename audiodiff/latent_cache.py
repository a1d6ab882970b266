"""What a latent (or conditional) pipeline is fine-tuned on, computed once per run: the model inputs
of a fixed grid of slices per track, and the encoding of each track.

Why a grid: the frozen VAE gives the same latents for the same slice, so computing them once saves
a VAE encoder pass per slice per epoch (3.8 s per 256 slice on one CPU thread against 180 ms for
the UNet on its latents: docs/latent-models.md). The Mel-image loader (data/loader.py) draws a
slice at a random offset every epoch, which no cache can serve; here each training track is cut
into non-overlapping slices starting on whole hops (`grid_starts`), the near-silent ones left out
as the loader leaves them out, at most one slice per epoch of the run (each epoch draws one per
track, so more would never be seen), and every epoch draws among those cached positions: a track's
positions in an order fixed by (seed, track), so no position repeats before all were used. The
latents of every position are computed before the first step; after that no epoch calls the VAE.

The scaling factor: latents are the VAE's output times the VAE config's `scaling_factor` (0.18215
when it has none), as the pretrained UNet was trained and as diffusers' pipeline decodes them, so
training keeps it and sampling stays consistent. The factor the data would ask for, 1 / std of the
unscaled cached latents, is measured and recorded beside it (training_config.json, the model card),
with a one-line warning when the two differ by more than 2x.

Conditional pipelines: each track's encoding (conditioning.py reads the file) travels with its
slices; with probability `cond_dropout` (fixed by (seed, epoch, track)) it is replaced by the null
(all-zero) encoding that `--guidance-scale` contrasts with, so that classifier-free guidance works
on the fine-tuned model.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .data.loader import _cut, _rng
from .data.tracks import SILENCE_DB
from .latent_training import model_input
from .mel import MelConfig, audio_to_images

_GRID, _DROPOUT = 4, 5  # rng namespaces, apart from data/loader.py's
DEFAULT_COND_DROPOUT = 0.1  # a tenth of the steps learn the unconditional prediction guidance needs
SCALING_WARN_RATIO = 2.0


@dataclass(frozen=True)
class TrainingBatch:
    """A micro-batch of cached model inputs (B, C, h, w) and, for a conditional pipeline, encodings
    (B, D) (the null ones where dropped). `.to(device)` as a tensor's, so the loop moves it alike."""

    inputs: torch.Tensor
    encodings: torch.Tensor | None = None

    def to(self, device) -> "TrainingBatch":
        return TrainingBatch(self.inputs.to(device), None if self.encodings is None else self.encodings.to(device))


def unet_kwargs(batch) -> dict:
    """The UNet's extra arguments for a batch: the encodings as (B, 1, D) encoder_hidden_states."""
    encodings = getattr(batch, "encodings", None)
    return {} if encodings is None else {"encoder_hidden_states": encodings[:, None, :]}


def grid_starts(audio_samples: int, slice_energy_db: np.ndarray, config: MelConfig, first: int = 0,
                stop: int | None = None, limit: int | None = None, silence_db: float = SILENCE_DB) -> list[int]:
    """Starts (samples) of non-overlapping slices on whole hops within [first, stop), the loud ones
    (all when none is), at most `limit` of them spread evenly; a part shorter than a slice gives
    [first] (its slice is padded)."""
    hop, size = config.hop_length, config.slice_samples
    stop = audio_samples if stop is None else min(stop, audio_samples)
    stride = -(-size // hop) * hop  # a slice rounded up to whole hops
    starts = list(range(-(-first // hop) * hop, stop - size + 1, stride))
    if not starts:
        return [first]
    loud = [s for s in starts if s // hop < slice_energy_db.size and slice_energy_db[s // hop] >= silence_db]
    starts = loud or starts
    if limit is not None and len(starts) > limit:
        starts = [starts[int(k)] for k in np.linspace(0, len(starts) - 1, limit).round()]
    return starts


class CachedSlices(Dataset):
    """Item (track i, epoch) -> (its cached input (C, h, w) for this epoch, its encoding (D,) or None).
    Indexed as SliceDataset is, by what TrackSampler yields."""

    def __init__(self, inputs: list, encodings: list | None = None, seed: int = 0, cond_dropout: float = 0.0):
        self.inputs, self.encodings = inputs, encodings  # per track: (K, C, h, w) / (D,), None if not this process's
        self.seed, self.cond_dropout = int(seed), float(cond_dropout)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index):
        i, epoch = index if isinstance(index, tuple) else (index, self.epoch)
        slots = self.inputs[i]
        order = _rng(self.seed, _GRID, i).permutation(slots.shape[0])
        x = slots[order[epoch % slots.shape[0]]]
        if self.encodings is None:
            return x, None
        encoding = self.encodings[i]
        if _rng(self.seed, _DROPOUT, epoch, i).random() < self.cond_dropout:
            encoding = torch.zeros_like(encoding)
        return x, encoding


def collate(items) -> TrainingBatch:
    inputs = torch.stack([x for x, _ in items])
    encodings = None if items[0][1] is None else torch.stack([e for _, e in items])
    return TrainingBatch(inputs, encodings)


def encode_grid(pipe, dataset, indices, limit: int, batch_size: int, round_trip: list | None = None) -> tuple[list, int]:
    """Model inputs of every grid slice of the tracks `indices` of a SliceDataset: (per track a
    (K, C, h, w) tensor or None, the number of VAE encoder calls made). `round_trip`: a list that
    receives the VAE's round-trip error on the first batch (`round_trip_error`)."""
    config, latent = dataset.config, getattr(pipe, "vqvae", None) is not None
    where = []  # (track, start): only a batch of slices is cut at a time (a genre's audio is gigabytes)
    for i in indices:
        item = dataset.prepared(i)
        first, stop = dataset.tracks[i].sample_range(config.sample_rate)
        where += [(i, start) for start in grid_starts(item.audio.numel(), item.slice_energy_db, config, first, stop,
                                                      limit, dataset.silence_db)]
    outputs, calls = [], 0
    for lo in range(0, len(where), batch_size):
        pieces = [_cut(dataset.prepared(i), start, config, dataset.tracks[i].sample_range(config.sample_rate)[1])
                  for i, start in where[lo: lo + batch_size]]
        images = audio_to_images(torch.stack(pieces), config)  # (b, 1, H, W)
        outputs.append(model_input(pipe, images).cpu())  # (b, C, h, w)
        if round_trip is not None and lo == 0 and latent:
            round_trip.append(round_trip_error(pipe, images, outputs[-1]))
        calls += latent
    owner = [i for i, _ in where]
    inputs = [None] * len(dataset)
    if outputs:
        everything, owner = torch.cat(outputs), torch.tensor(owner)
        for i in indices:
            inputs[i] = everything[owner == i]
    return inputs, calls


def round_trip_error(pipe, images: torch.Tensor, latents: torch.Tensor) -> float:
    """Mean absolute error of the VAE's round trip on Mel images (B, 1, H, W) in [-1, 1] (their
    latents decoded): the floor under what a UNet on these latents can give back, and the measure a
    fine-tuned VAE would have to lower."""
    return round(float((pipe.decode(latents) - images.cpu()).abs().mean()), 5)


def scaling_record(pipe, inputs: list) -> dict:
    """The scaling factor used (the VAE config's) and the one the data asks for (1 / std of the
    unscaled latents)."""
    used = pipe.scaling_factor
    cached = torch.cat([x.flatten() for x in inputs if x is not None])
    std = float(cached.std()) / used if cached.numel() > 1 else float("nan")
    measured = 1.0 / std if std > 0 else float("nan")
    return {"scaling_factor": used, "scaling_factor_measured": round(measured, 6), "scaling_factor_used": "config"}


def scaling_warning(record: dict) -> str | None:
    used, measured = record["scaling_factor"], record["scaling_factor_measured"]
    if not math.isfinite(measured) or 1 / SCALING_WARN_RATIO <= measured / used <= SCALING_WARN_RATIO:
        return None
    return (f"warning: the VAE's scaling_factor {used:g} (its config, used for training) is {measured / used:.2g}x "
            f"the {measured:.4g} measured on this data (1 / std of the latents); the fine-tuned UNet keeps the "
            f"config's, as the pretrained one was trained with it")


def cache_training_inputs(pipe, config, data, track_encodings=None, say=print):
    """`data` (train.py's _TrainingData) with its loader over cached inputs, for a latent or
    conditional pipeline (`track_encodings`: conditioning.TrackEncodings), and what was cached and
    measured (`inputs_record`, for training_config.json and the model card); unchanged for a
    Mel-image pipeline, for a stream (whose latents are computed per micro-batch), and for a
    --train-vae run (which trains on Mel images)."""
    latent = getattr(pipe, "vqvae", None) is not None
    if (not latent and track_encodings is None) or config.streaming or config.train_vae:
        return data
    if track_encodings is not None:  # every track named, before the long part
        track_encodings = track_encodings.for_tracks([t.name for t in (*data.split.train, *data.split.validation)])
    loader, started = data.loader, time.perf_counter()
    dataset, sampler = loader.dataset, loader.sampler
    epochs = math.ceil(data.total_steps / data.steps_per_epoch)
    round_trip: list = []
    inputs, calls = encode_grid(pipe, dataset, sampler.mine, limit=epochs, batch_size=config.batch_size,
                                round_trip=round_trip)
    encodings = None
    if track_encodings is not None:
        encodings = [track_encodings[track.name] for track in dataset.tracks]
    dropout = 0.0 if encodings is None else config.cond_dropout if config.cond_dropout is not None else DEFAULT_COND_DROPOUT
    cached = CachedSlices(inputs, encodings, seed=config.seed, cond_dropout=dropout)
    sampler.dataset = cached  # the same order of tracks, now over the cached slices
    new_loader = DataLoader(cached, batch_size=loader.batch_size, sampler=sampler, drop_last=loader.drop_last,
                            collate_fn=collate, num_workers=0)
    slices = sum(x.shape[0] for x in inputs if x is not None)
    record = {"cached_slices": slices, "cache_vae_calls": calls, "cond_dropout": dropout if encodings else None}
    if latent:
        record.update(scaling_record(pipe, inputs), vae_round_trip_error=round_trip[0] if round_trip else None)
    say(f"cached the model inputs of {slices} slices of {len(sampler.mine)} tracks (at most {epochs} per track, "
        f"one per epoch) in {time.perf_counter() - started:.1f} s" + (f", {calls} VAE encoder calls" if latent else ""))
    if latent and scaling_warning(record):
        say(scaling_warning(record))
    return dataclasses.replace(data, loader=new_loader, encodings=track_encodings, inputs_record=record)


def validation_unet(unet, data, rows):
    """The UNet the validation loss calls: a conditional one conditioned on each held-out slice's
    track's encoding (slice k is from validation track k % count, data/loader.validation_slices)."""
    if data.encodings is None or not rows:
        return unet
    from .conditioning import ConditionedUNet

    tracks = data.split.validation
    return ConditionedUNet(unet, torch.stack([data.encodings[tracks[k % len(tracks)].name] for k in rows]))
