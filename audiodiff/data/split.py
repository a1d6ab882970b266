"""The validation split (`split_validation`, the one split function: the trainer and the
evaluation both ask it).

Why it looks like this:
- It never puts one recording on both sides. A recording is a row group of the dataset's
  recording column (`song_id` in lewtun/music_genres, where one song has several rows), else
  one file or clip. With at least MIN_RECORDINGS_TO_HOLD_OUT recordings whole recordings are
  held out, chosen by a hash of the recording id, so a recording lands on the same side for a
  given seed whatever the order or the other tracks, streamed or not. With fewer (a folder of
  two recordings), holding whole ones out would lose most of the data, so the last part of
  every track is held out instead, as a time range (`Track.start_seconds/end_seconds`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .sources import TrackStream
from .tracks import _unit_hash

# Below this many recordings, validation holds out the last part of each track instead of whole
# recordings: holding 1 of 2 recordings out would train on half the data and validate on one song.
MIN_RECORDINGS_TO_HOLD_OUT = 10


def split_tracks(tracks, validation_fraction: float = 0.1, seed: int = 0):
    """(training, validation) tracks, whole recordings held out (`split_validation`'s rule for
    sets of at least MIN_RECORDINGS_TO_HOLD_OUT recordings).

    A recording (`Track.recording_id`: the track itself unless the dataset groups tracks into
    recordings) is held out when a hash of (seed, recording id) falls below
    `validation_fraction`, so it lands on the same side for a given seed whatever the order or
    the other tracks, and all its tracks land together. With at least 2 recordings and a
    positive fraction, at least one is held out (the lowest hash) and at least one is kept for
    training. A TrackStream splits into two TrackStreams the same way (without the at-least-one
    guarantee: a stream's length is unknown in advance).
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    if isinstance(tracks, TrackStream):
        return tracks.split(validation_fraction, seed)
    tracks = list(tracks)
    scores = {r: _unit_hash(seed, r) for r in {t.recording_id for t in tracks}}
    held = {r: score < validation_fraction for r, score in scores.items()}
    if validation_fraction > 0 and len(scores) >= 2:
        if not any(held.values()):
            held[min(scores, key=scores.get)] = True
        if all(held.values()):
            held[max(scores, key=scores.get)] = False
    train = [t for t in tracks if not held[t.recording_id]]
    validation = [t for t in tracks if held[t.recording_id]]
    return train, validation


@dataclass(frozen=True)
class ValidationSplit:
    """What `split_validation` decided: the training and validation tracks (lists of Tracks,
    or TrackStreams when streaming), and how."""

    train: Any
    validation: Any
    held_out_by: str  # "recording" (whole recordings), "time_range" (the end of every track) or "none"
    validation_fraction: float
    seed: int
    durations: dict = field(default_factory=dict, repr=False)  # track name -> seconds, when known

    def describe(self) -> str:
        """One line for logs and model cards."""
        if self.held_out_by == "none":
            return "nothing held out for validation"
        if isinstance(self.validation, TrackStream):
            return f"whole recordings held out as the stream is read (~{self.validation_fraction:.0%})"
        recordings = {t.recording_id for t in self.train} | {t.recording_id for t in self.validation}
        if self.held_out_by == "recording":
            held = {t.recording_id for t in self.validation}
            return f"{len(held)} of {len(recordings)} recordings held out whole for validation"
        return (f"the last part of each of {len(recordings)} recordings held out for validation, as there are "
                f"fewer than {MIN_RECORDINGS_TO_HOLD_OUT} to hold out whole ones")

    def record(self) -> dict:
        """Exactly what was held out, JSON-able (the run folder's validation_split.json):
        recording ids, and for each held-out track the time range (seconds) of it."""
        info = {"held_out_by": self.held_out_by, "validation_fraction": self.validation_fraction, "seed": self.seed,
                "min_recordings_to_hold_out_whole": MIN_RECORDINGS_TO_HOLD_OUT}
        if isinstance(self.validation, TrackStream):
            info["held_out"] = ("decided per row as the stream is read: a recording is held out when a hash of "
                                "(seed, recording id) is below validation_fraction")
            return info
        info["held_out_recordings"] = sorted({t.recording_id for t in self.validation})
        info["training_recordings"] = sorted({t.recording_id for t in self.train})
        info["held_out"] = [
            {"recording": t.recording_id, "track": t.name, "start_seconds": t.start_seconds,
             "end_seconds": t.end_seconds if t.end_seconds is not None else self.durations.get(t.name)}
            for t in self.validation
        ]
        return info


def split_validation(tracks, validation_fraction: float = 0.1, seed: int = 0, *, durations: dict | None = None,
                     min_held_out_seconds: float = 0.0) -> ValidationSplit:
    """The validation split: the trainer's, and the one the evaluation re-asks for.

    No recording is ever on both sides as a whole: with at least MIN_RECORDINGS_TO_HOLD_OUT
    recordings, whole recordings are held out (`split_tracks`). With fewer, every track keeps
    its start for training and holds out its last `validation_fraction` (at least
    `min_held_out_seconds`, e.g. one Mel slice, so validation is not mostly padding; at most
    half the track), so no recording is lost to training. That needs `durations` (track name ->
    seconds, `GenreData.durations`). A TrackStream is split by recording as it is read.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    durations = dict(durations or {})
    if isinstance(tracks, TrackStream):
        train, validation = tracks.split(validation_fraction, seed)
        return ValidationSplit(train, validation, "recording" if validation_fraction > 0 else "none",
                               validation_fraction, seed)
    tracks = list(tracks)
    if validation_fraction == 0 or not tracks:
        return ValidationSplit(tracks, [], "none", validation_fraction, seed, durations)
    if len({t.recording_id for t in tracks}) >= MIN_RECORDINGS_TO_HOLD_OUT:
        train, validation = split_tracks(tracks, validation_fraction, seed)
        return ValidationSplit(train, validation, "recording", validation_fraction, seed, durations)
    missing = [t.name for t in tracks if t.name not in durations]
    if missing:
        raise ValueError(f"a split by time needs the duration of every track; missing: {', '.join(missing[:3])}")
    train, validation = [], []
    for track in tracks:
        seconds = durations[track.name]
        held = min(max(validation_fraction * seconds, min_held_out_seconds), seconds / 2)
        cut = round(seconds - held, 3)
        train.append(dataclasses.replace(track, end_seconds=cut))
        validation.append(dataclasses.replace(track, start_seconds=cut, end_seconds=round(seconds, 3)))
    return ValidationSplit(train, validation, "time_range", validation_fraction, seed, durations)
