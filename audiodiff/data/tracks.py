"""Tracks: the data wing's records (`Track`, `GenreData`, `Shard`, `DataError`), and decoding,
checking and caching one track, which every source and the loader share.

Why it looks like this:
- Decoding goes through `audiodiff.audio` (soundfile): `datasets`' Audio decoding and
  `torchaudio.load` need TorchCodec and FFmpeg, which a fresh machine lacks.
- Every track is checked once, when the source is indexed: unreadable, empty, zero-length,
  too short, NaN-containing and silent files are skipped and counted (`GenreData.skipped`),
  reported in one line, and a source left with nothing usable is an error that says why.
  A track must fill at least half an image (`min_seconds`, default `config.slice_seconds / 2`,
  2.97 s for the public 256 models): a shorter one would teach the model mostly padding.
- Each track is decoded and resampled once per process (`TRACK_CACHE`, an LRU cache shared by
  the index check, the dataset and forked DataLoader workers).
- Several processes (`Shard`, `TrackSampler(num_processes=...)`): track k is checked, decoded
  and trained on by process k % N only, every epoch, and the processes exchange what they
  found, so decoding is shared instead of repeated N times.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np
import torch

from ..audio import AudioError, read_audio, resample
from ..mel import MelConfig

if TYPE_CHECKING:  # pragma: no cover
    from ..synthetic import SyntheticClip
    from .sources import TrackStream

logger = logging.getLogger(__name__)

SILENCE_DB = -60.0  # RMS level (dBFS) below which a file or a slice counts as silent
# Decoded, resampled tracks kept per process. 4 GiB holds ~13 h of audio at 22050 Hz (float32):
# the 306 jazz tracks of lewtun/music_genres (30 s each) take ~0.8 GB.
CACHE_MAX_BYTES = int(float(os.environ.get("AUDIODIFF_CACHE_GB", "4")) * (1 << 30))


# ---- the public records ----------------------------------------------------------------------
@dataclass(frozen=True)
class Track:
    """One piece of music of the chosen genre."""

    name: str  # unique id: relative path, hub file name + content hash, or synthetic clip name
    genre: str  # the label as the source spells it ("Jazz"); "" for an unnamed genre
    source: Union[str, bytes, "SyntheticClip"]  # a file path, encoded audio bytes, or a clip spec
    recording: str = ""  # the recording (song) the track is part of; "" = the track is a recording of its own
    start_seconds: float = 0.0  # the part of the track used (a validation split by time sets these)
    end_seconds: float | None = None  # None = to the end of the track

    @property
    def recording_id(self) -> str:
        return self.recording or self.name

    def sample_range(self, sample_rate: int) -> tuple[int, int | None]:
        """(first sample, stop sample or None for the end) of the part used, at `sample_rate`."""
        stop = None if self.end_seconds is None else int(round(self.end_seconds * sample_rate))
        return int(round(self.start_seconds * sample_rate)), stop

    def __repr__(self) -> str:  # the bytes of a hub track would flood any log
        kind = f"<{len(self.source)} bytes>" if isinstance(self.source, (bytes, bytearray)) else repr(self.source)
        return f"Track(name={self.name!r}, genre={self.genre!r}, source={kind})"


@dataclass
class GenreData:
    """What `load_genre` found: the usable tracks of one genre and what was left out, and why."""

    tracks: Union[list[Track], "TrackStream"]  # a TrackStream when streaming
    genre: str  # the matched label ("" for all genres or an unnamed one)
    genre_counts: dict[str, int]  # every genre present, with its number of tracks (before checks)
    skipped: collections.Counter  # reason -> count
    description: str  # one line for logs and model cards
    durations: dict[str, float] = field(default_factory=dict)  # track name -> seconds (not when streaming)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # (name, reason), in source order
    min_seconds: float = 0.0  # the too-short threshold used
    owners: dict[str, int] = field(default_factory=dict)  # track name -> the process that decoded it (with a Shard)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.durations.values()))


@dataclass(frozen=True)
class Shard:
    """This process's share of the work when `count` processes train together: track k of a
    source is decoded and checked by process k % count only. `gather(obj)` must return every
    process's obj, in process order (e.g. `lambda obj: accelerate.utils.gather_object([obj])`)."""

    index: int
    count: int
    gather: Callable[[Any], list]


class DataError(ValueError):
    """A data problem the user can act on: unknown genre, no usable audio, unreachable dataset."""


# ---- the validation split's hash -------------------------------------------------------------
# Here, below both of its users: split_tracks (a list of tracks) and TrackStream.keeps (a stream).
def _unit_hash(seed: int, name: str) -> float:
    """A number in [0, 1) fixed by (seed, name)."""
    digest = hashlib.blake2b(f"{seed}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


# ---- decoding, checking and caching one track -----------------------------------------------
def _source_key(source: Any) -> tuple:
    """A hashable identity for a track's content (cache key)."""
    if isinstance(source, (str, os.PathLike)):
        path = os.path.abspath(source)
        try:
            stat = os.stat(path)
            return ("file", path, stat.st_mtime_ns, stat.st_size)
        except OSError:
            return ("file", path)
    if isinstance(source, (bytes, bytearray)):
        return ("bytes", len(source), hashlib.blake2b(source, digest_size=16).digest())
    return ("synthetic", source.genre, source.seed, source.seconds)


_DECODED: set = set()  # source keys this process has decoded or rendered (see decoded_track_count)
_DECODED_LOCK = threading.Lock()


def _decode(source: Any, sample_rate: int) -> tuple[np.ndarray, int]:
    """Native-rate mono float32 audio of a track (a synthetic clip is rendered at `sample_rate`).

    Raises AudioError for anything that cannot be decoded."""
    if isinstance(source, (str, os.PathLike, bytes, bytearray)):
        decoded = read_audio(source)
    else:
        from ..synthetic import render

        audio = render(source.genre, source.seed, source.seconds, sample_rate)
        decoded = np.asarray(audio, dtype=np.float32).reshape(-1), int(sample_rate)
    with _DECODED_LOCK:
        _DECODED.add(_source_key(source))
    return decoded


def decoded_track_count(tracks) -> int:
    """How many of `tracks` this process has decoded (or rendered) so far: with a Shard, about
    1/count of them."""
    with _DECODED_LOCK:
        return sum(1 for key in {_source_key(t.source) for t in tracks} if key in _DECODED)


def _rms_db(audio: np.ndarray | torch.Tensor) -> float:
    if isinstance(audio, torch.Tensor):
        energy = float(audio.double().square().mean()) if audio.numel() else 0.0
    else:
        energy = float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
    return 10.0 * math.log10(max(energy, 1e-20))


def _check(audio: np.ndarray, sample_rate: int, min_seconds: float) -> str | None:
    """The skip reason of decoded audio, or None when it is usable."""
    if audio.size == 0:
        return "zero_length"
    if not np.all(np.isfinite(audio)):
        return "nan"
    if audio.size / sample_rate < min_seconds:
        return "too_short"
    if _rms_db(audio) < SILENCE_DB:
        return "silent"
    return None


@dataclass
class _Prepared:
    """A decoded track at the model's rate, with the energy of the slice at each hop."""

    audio: torch.Tensor  # (T,) float32 at config.sample_rate
    slice_energy_db: np.ndarray  # (K,) RMS level of the slice starting at k * hop_length

    @property
    def nbytes(self) -> int:
        return self.audio.numel() * self.audio.element_size() + self.slice_energy_db.nbytes


def _slice_energy_db(audio: torch.Tensor, config: MelConfig) -> np.ndarray:
    """RMS level (dB) of the slice starting at each multiple of hop_length: (K,)."""
    samples = audio.numpy().astype(np.float64)
    length, size = samples.size, config.slice_samples
    if length <= size:
        return np.array([_rms_db(samples)])
    cumulative = np.concatenate([[0.0], np.cumsum(samples * samples)])
    starts = np.arange(0, length - size + 1, config.hop_length)
    energy = (cumulative[starts + size] - cumulative[starts]) / size
    return 10.0 * np.log10(np.maximum(energy, 1e-20))


def _prepare(audio: np.ndarray, sample_rate: int, config: MelConfig) -> _Prepared:
    tensor = resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), sample_rate, config.sample_rate)
    tensor = tensor.contiguous()
    return _Prepared(tensor, _slice_energy_db(tensor, config))


class _TrackCache:
    """Least-recently-used decoded tracks, bounded in bytes, shared by threads of one process.

    Populated while `load_genre` checks the tracks, so DataLoader workers forked afterwards
    inherit it (copy-on-write) and decode nothing."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: collections.OrderedDict[tuple, _Prepared] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> _Prepared | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple, item: _Prepared) -> None:
        if item.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = item
            self._bytes += item.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)


TRACK_CACHE = _TrackCache(CACHE_MAX_BYTES)


def _cache_key(source: Any, config: MelConfig) -> tuple:
    return (_source_key(source), config.sample_rate, config.slice_samples, config.hop_length)


def _load_prepared(track: Track, config: MelConfig, key: tuple | None = None) -> _Prepared:
    """The decoded, resampled track from the cache, decoding it on a miss."""
    key = key or _cache_key(track.source, config)
    item = TRACK_CACHE.get(key)
    if item is None:
        try:
            audio, sample_rate = _decode(track.source, config.sample_rate)
        except AudioError as exc:
            raise DataError(f"track {track.name} can no longer be decoded ({exc}); was it changed after loading?") from exc
        item = _prepare(audio, sample_rate, config)
        TRACK_CACHE.put(key, item)
    return item


def track_audio(track: Track, config: MelConfig) -> torch.Tensor:
    """The part of a track the Track stands for, decoded at config.sample_rate: (T,) (cached)."""
    first, stop = track.sample_range(config.sample_rate)
    return _load_prepared(track, config).audio[first:stop]


def _inspect(track: Track, config: MelConfig, min_seconds: float) -> tuple[str | None, float, _Prepared | None]:
    """Check one track, decoding it once: (skip reason or None, seconds, the prepared track when
    usable, also put in the cache)."""
    source = track.source
    if isinstance(source, (bytes, bytearray)) and len(source) == 0:
        return "empty", 0.0, None
    if isinstance(source, (str, os.PathLike)):
        try:
            if os.path.getsize(source) == 0:
                return "empty", 0.0, None
        except OSError:
            return "unreadable", 0.0, None
    try:
        audio, sample_rate = _decode(source, config.sample_rate)
    except AudioError:
        return "unreadable", 0.0, None
    seconds = audio.size / sample_rate
    reason = _check(audio, sample_rate, min_seconds)
    if reason is not None:
        return reason, seconds, None
    item = _prepare(audio, sample_rate, config)
    TRACK_CACHE.put(_cache_key(source, config), item)
    return None, seconds, item


def _inspect_all(tracks: list[Track], config: MelConfig, min_seconds: float, progress: bool, what: str):
    """Check tracks in a few threads (soundfile and torch release the GIL). Keeps the order."""
    from tqdm.auto import tqdm

    workers = max(1, min(4, os.cpu_count() or 1))
    results: list[tuple[str | None, float]] = []
    with ThreadPoolExecutor(workers) as pool:
        jobs = pool.map(lambda track: _inspect(track, config, min_seconds)[:2], tracks)
        for result in tqdm(jobs, total=len(tracks), desc=f"checking {what}", unit="track", disable=not progress):
            results.append(result)
    return results


def _finish(tracks, config, min_seconds, progress, genre, genre_counts, description, skipped, skipped_files,
            shard: "Shard | None" = None) -> GenreData:
    """Check every track (this process's share of them, with a shard), count skips, report them
    once, refuse an empty result."""
    usable, durations, owners = [], {}, {}
    if shard is None or shard.count == 1:
        results = _inspect_all(tracks, config, min_seconds, progress, genre or "tracks")
    else:  # track k is checked, and so decoded and cached, by process k % count only
        mine = _inspect_all(tracks[shard.index :: shard.count], config, min_seconds, progress, genre or "tracks")
        results = [None] * len(tracks)
        for index, share in enumerate(shard.gather(mine)):
            results[index :: shard.count] = share
            owners.update((track.name, index) for track in tracks[index :: shard.count])
    for track, (reason, seconds) in zip(tracks, results):
        if reason is None:
            usable.append(track)
            durations[track.name] = seconds
        else:
            skipped[reason] += 1
            skipped_files.append((track.name, reason))
            logger.debug("skipping %s: %s", track.name, reason)
    data = GenreData(usable, genre, genre_counts, skipped, description, durations, skipped_files, min_seconds, owners)
    if skipped:
        level = logging.WARNING if progress else logging.INFO
        logger.log(level, "%s: skipped %s", description, describe_skips(skipped, min_seconds))
    if not usable:
        why = describe_skips(skipped, min_seconds) if skipped else "no audio files were found"
        raise DataError(f"no usable audio in {description}: {why}")
    return data


def describe_skips(skipped: collections.Counter, min_seconds: float = 0.0) -> str:
    """'3 files (2 unreadable, 1 too short (< 2.97 s))'."""
    labels = {"too_short": f"too short (< {min_seconds:.2f} s)", "nan": "containing NaN", "not_audio": "not audio"}
    parts = [f"{count} {labels.get(reason, reason.replace('_', ' '))}" for reason, count in skipped.most_common()]
    total = sum(skipped.values())
    return f"{total} file{'s' if total != 1 else ''} ({', '.join(parts)})"
