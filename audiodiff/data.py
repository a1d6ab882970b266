"""Genre data: pick one genre's tracks from a hub dataset, a folder or the built-in set, and
turn them into batches of Mel images.

Why it looks like this:
- The course's dataset (`lewtun/music_genres`) is ~10 GB of parquet for a few hundred tracks
  per genre. We stream it, read the genre column first (parquet column projection), and keep
  the audio bytes of the chosen genre only, in memory: nothing is cached on disk, and no row
  of another genre is decoded. (Parquet is read by row groups, so the audio of a row group
  that holds at least one track of the genre still crosses the network; that is the format's
  granularity.) `streaming=True` goes further and never holds the genre at all: every epoch
  reads it from the stream again.
- Decoding goes through `audiodiff.audio` (soundfile): `datasets`' Audio decoding and
  `torchaudio.load` need TorchCodec and FFmpeg, which a fresh machine lacks. Audio columns
  are cast with `Audio(decode=False)` so `datasets` hands us the encoded bytes.
- Every track is checked once, when the source is indexed: unreadable, empty, zero-length,
  too short, NaN-containing and silent files are skipped and counted (`GenreData.skipped`),
  reported in one line, and a source left with nothing usable is an error that says why.
  A track must fill at least half an image (`min_seconds`, default `config.slice_seconds / 2`,
  2.97 s for the public 256 models): a shorter one would teach the model mostly padding.
- The course's collate decodes, resamples and encodes every item, every epoch, one at a time
  (and rebuilds nothing it could keep). Here each track is decoded and resampled once per
  process (an LRU cache shared by the index check, the dataset and forked DataLoader workers),
  a slice is a view into it, and the Mel encoder runs on the whole batch at once.
- Several processes (`Shard`, `TrackSampler(num_processes=...)`): track k is checked, decoded
  and trained on by process k % N only, every epoch, and the processes exchange what they
  found, so decoding is shared instead of repeated N times.
- Slice offsets are a pure function of (seed, epoch, track), drawn among the offsets whose
  slice is not near-silent (found once per track from a running energy sum, so there is no
  retry loop), so a resumed run and any number of workers see exactly the same data.
- The validation split (`split_validation`, the one split function: the trainer and the
  evaluation both ask it) never puts one recording on both sides. A recording is a row group of
  the dataset's recording column (`song_id` in lewtun/music_genres, where one song has several
  rows), else one file or clip. With at least MIN_RECORDINGS_TO_HOLD_OUT recordings whole
  recordings are held out, chosen by a hash of the recording id, so a recording lands on the
  same side for a given seed whatever the order or the other tracks, streamed or not. With fewer
  (a folder of two recordings), holding whole ones out would lose most of the data, so the last
  part of every track is held out instead, as a time range (`Track.start_seconds/end_seconds`).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from .audio import AUDIO_EXTENSIONS, AudioError, read_audio, resample
from .hub import HubUnreachableError, hub_is_reachable, hub_offline
from .mel import MelConfig, audio_to_images

if TYPE_CHECKING:  # pragma: no cover
    import datasets

    from .synthetic import SyntheticClip

__all__ = [
    "DataError", "GenreData", "HubUnreachableError", "MelCollate", "Shard", "SliceDataset", "StreamSliceDataset",
    "SYNTHETIC", "Track", "TrackSampler", "TrackStream", "ValidationSplit", "decoded_track_count", "describe_skips",
    "format_counts", "load_genre", "make_dataloader", "match_genre", "split_tracks", "split_validation",
    "synthetic_tracks", "track_audio", "validation_slices",
]

logger = logging.getLogger(__name__)

SYNTHETIC = "synthetic"  # the dataset name of the built-in genre set
SILENCE_DB = -60.0  # RMS level (dBFS) below which a file or a slice counts as silent
# Decoded, resampled tracks kept per process. 4 GiB holds ~13 h of audio at 22050 Hz (float32):
# the 306 jazz tracks of lewtun/music_genres (30 s each) take ~0.8 GB.
CACHE_MAX_BYTES = int(float(os.environ.get("AUDIODIFF_CACHE_GB", "4")) * (1 << 30))
SHUFFLE_BUFFER = 64  # rows of encoded audio held by the streaming shuffle buffer (~25 MB of mp3)
DEFAULT_RECORDING_COLUMN = "song_id"  # lewtun/music_genres: several rows (clips) per song
# Below this many recordings, validation holds out the last part of each track instead of whole
# recordings: holding 1 of 2 recordings out would train on half the data and validate on one song.
MIN_RECORDINGS_TO_HOLD_OUT = 10

UNREACHABLE_HINT = (
    "to work offline, use the built-in genre set (--dataset synthetic) or a folder of audio files "
    "with one sub-folder per genre (--data-dir DIR)"
)


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


# ---- genre matching --------------------------------------------------------------------------
def _normalise(label: str) -> str:
    return "".join(ch for ch in label.casefold() if ch.isalnum())


def format_counts(counts: dict[str, int]) -> str:
    """'Electronic (1234), Rock (980), ...': most common first."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name or '(unnamed)'} ({count})" for name, count in ordered)


def match_genre(requested: str, counts: dict[str, int], where: str) -> str:
    """The label in `counts` that `requested` names: case-insensitive, then ignoring spaces and
    punctuation ("hip hop" -> "Hip-Hop"). Raises DataError listing the genres present."""
    wanted = requested.strip()
    for rule in (str.casefold, _normalise):
        hits = [label for label in counts if rule(label) == rule(wanted)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise DataError(f"genre {requested!r} matches several labels in {where}: {', '.join(hits)}; spell it exactly")
    present = format_counts(counts) if counts else "none"
    raise DataError(f"genre {requested!r} is not in {where}. Genres present (tracks): {present}. Pick one with --genre.")


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
        from .synthetic import render

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


# ---- sources -----------------------------------------------------------------------------------
def _real_id(path: str | os.PathLike) -> tuple[int, int] | None:
    """(device, inode) of what `path` points to, links followed; None for a dangling link."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _audio_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(audio files, other files) under `folder`, recursively, sorted, hidden entries left out.

    Symbolic links are followed, but each real folder is walked once and each real file listed
    once (by device and inode, at its first path in sorted order): a link back up the tree
    (`jazz/loop -> .`) adds nothing, instead of every file again on both sides of the split."""
    audio, other = [], []
    seen_folders: set = set()
    seen_files: set = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        folder_id = _real_id(root)
        if folder_id in seen_folders:
            dirs[:] = []  # reached again through a link: already walked
            continue
        seen_folders.add(folder_id)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith("."):
                continue  # .DS_Store and friends: not music, not worth a count
            file_id = _real_id(path)
            if file_id is not None:  # a dangling link is kept: decoding it fails and is counted
                if file_id in seen_files:
                    continue
                seen_files.add(file_id)
            (audio if path.suffix.lower() in AUDIO_EXTENSIONS else other).append(path)
    return audio, other


def _load_folder(data_dir, genre, config, min_seconds, progress, shard=None) -> GenreData:
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist or is not a folder")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    genre_files = {p.name: _audio_files(p) for p in subfolders}
    genre_files = {name: files for name, files in genre_files.items() if files[0]}
    skipped: collections.Counter = collections.Counter()
    skipped_files: list[tuple[str, str]] = []
    if genre_files:  # DIR/<genre>/**/*.wav
        genre_counts = {name: len(files[0]) for name, files in genre_files.items()}
        chosen = [match_genre(genre, genre_counts, f"folder {root}")] if genre is not None else list(genre_files)
        label = chosen[0] if genre is not None else ""
        tracks, others = [], []
        for name in chosen:
            files, other = genre_files[name]
            tracks += [Track(p.relative_to(root).as_posix(), name, str(p)) for p in files]
            others += other
        if genre is None:  # files at the top level belong to no genre but are part of "all"
            top_audio = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            tracks += [Track(p.name, "", str(p)) for p in top_audio]
        description = f"folder {root}" + (f", genre {label}" if label else "")
    else:  # a flat folder: one unnamed genre
        files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
        audio = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
        others = [p for p in files if p.suffix.lower() not in AUDIO_EXTENSIONS]
        label = ""
        genre_counts = {"": len(audio)}
        if genre is not None:
            logger.log(logging.WARNING if progress else logging.INFO,
                       "folder %s has no genre sub-folders: all of its files are taken as one genre (--genre %s is not checked)",
                       root, genre)
        tracks = [Track(p.name, "", str(p)) for p in audio]
        description = f"folder {root}"
    for path in others:
        skipped["not_audio"] += 1
        skipped_files.append((path.relative_to(root).as_posix(), "not_audio"))
    return _finish(tracks, config, min_seconds, progress, label, genre_counts, description, skipped, skipped_files, shard)


def synthetic_tracks(genre: str | None, clips_per_genre: int, seconds: float) -> tuple[str, list[Track]]:
    """The built-in set's tracks of `genre` (matched case-insensitively; None: every genre) and the
    matched label ("" for every genre): the tracks a fine-tune on `--dataset synthetic` sees."""
    from .synthetic import GENRES, synthetic_clips

    genre_counts = {name: clips_per_genre for name in GENRES}
    label = match_genre(genre, genre_counts, "the built-in synthetic set") if genre is not None else ""
    try:
        clips = synthetic_clips(clips_per_genre, seconds, genres=[label] if label else None)
    except ValueError as exc:  # clips_per_genre or seconds out of range
        raise DataError(f"built-in synthetic set: {exc}") from exc
    from .fluid import RendererMissing, check_renderer

    try:
        check_renderer()  # before any work, never as a skipped track
    except RendererMissing as exc:
        raise DataError(str(exc)) from None
    return label, [Track(clip.name, clip.genre, clip) for clip in clips]


def _load_synthetic(genre, config, clips_per_genre, seconds, min_seconds, progress, shard=None) -> GenreData:
    from .synthetic import GENRES

    genre_counts = {name: clips_per_genre for name in GENRES}
    label, tracks = synthetic_tracks(genre, clips_per_genre, seconds)
    description = "built-in synthetic set" + (f", genre {label}" if label else "")
    return _finish(tracks, config, min_seconds, progress, label, genre_counts, description,
                   collections.Counter(), [], shard)


# -- hub datasets and datasets.Dataset objects ----------------------------------------------
def _probe_hub(dataset_id: str, timeout_seconds: float = 5.0) -> None:
    """Fail within seconds when the hub or the dataset is out of reach (datasets itself would
    retry for half a minute before giving up): the hub's probe, then the dataset's page, which
    tells 'no such dataset' or 'gated' (never a fallback) from 'unreachable'."""
    from huggingface_hub import HfApi

    try:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError:  # huggingface_hub < 0.23
        from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

    if not hub_is_reachable(timeout_seconds, datasets=True):
        if hub_offline(datasets=True):
            raise HubUnreachableError(f"cannot stream hub dataset {dataset_id}: offline mode is on (HF_HUB_OFFLINE); {UNREACHABLE_HINT}")
        raise HubUnreachableError(f"cannot reach the hub for dataset {dataset_id} (no answer within {timeout_seconds:g} s); {UNREACHABLE_HINT}")
    try:
        HfApi().dataset_info(dataset_id, timeout=timeout_seconds)
    except GatedRepoError as exc:
        raise DataError(f"hub dataset {dataset_id} is gated: accept its terms on the hub and log in (`hf auth login`)") from exc
    except RepositoryNotFoundError as exc:
        raise DataError(f"no dataset {dataset_id!r} on the hub (or it is private: log in with `hf auth login`); "
                        f"check the name, or {UNREACHABLE_HINT}") from exc
    except Exception as exc:  # the connection dropped, timeout, proxy...
        raise HubUnreachableError(f"cannot reach the hub for dataset {dataset_id} ({type(exc).__name__}: {exc}); {UNREACHABLE_HINT}") from exc


def _label_name(feature, value) -> str:
    if value is None:
        return ""
    if feature is not None and type(feature).__name__ == "ClassLabel" and isinstance(value, (int, np.integer)):
        return feature.int2str(int(value))
    return str(value)


def _label_value(feature, name: str, seen: dict):
    """The stored value of a label name (an int for ClassLabel columns)."""
    if feature is not None and type(feature).__name__ == "ClassLabel":
        return feature.str2int(name)
    return seen[name]


def _track_name(audio: dict, used: set) -> str:
    """A stable name for a hub row: its file name and a hash of its bytes (order-independent, so
    streamed and collected runs split the same tracks the same way)."""
    data = audio.get("bytes") or b""
    digest = hashlib.blake2b(data, digest_size=8).hexdigest() if data else "nobytes"
    path = audio.get("path")
    name = f"{Path(path).name}#{digest}" if path else digest
    base, k = name, 1
    while name in used:
        k += 1
        name = f"{base}~{k}"
    used.add(name)
    return name


def _row_source(row_audio, root: str | os.PathLike | None = None) -> str | bytes | None:
    """Encoded bytes of a row's audio, or the path of a file inside the dataset's own folder `root`,
    or None (skipped and counted): a row must not make us read any file on the machine (issue 25:
    {"bytes": None, "path": "/some/secret.wav"} trained on that file)."""
    if isinstance(row_audio, (bytes, bytearray)):
        return bytes(row_audio)
    if isinstance(row_audio, dict):
        if row_audio.get("bytes") is not None:
            return bytes(row_audio["bytes"])
        path = row_audio.get("path")
    else:
        path = row_audio if isinstance(row_audio, str) else None
    if not path or root is None:
        return None
    real, folder = os.path.realpath(path), os.path.realpath(root)
    inside = os.path.commonpath([real, folder]) == folder
    return path if inside and os.path.isfile(real) else None


class _Rows:
    """Reads (label, audio) rows: from a hub id or a local dataset folder through
    `load_dataset(..., streaming=True)`, or from a `datasets.Dataset`/`IterableDataset` object."""

    def __init__(self, dataset, split: str, genre_column: str, audio_column: str):
        self.dataset, self.split = dataset, split
        self.genre_column, self.audio_column = genre_column, audio_column
        self.recording_column: str | None = None  # set by resolve_recording_column
        self.is_object = not isinstance(dataset, (str, os.PathLike))
        self.root = None  # the local dataset's folder: the only place a row's path may point into
        if self.is_object:
            self.where = f"in-memory dataset ({split})"
        elif Path(dataset).exists():
            self.where = f"local dataset {dataset} ({split})"
            self.root = dataset if Path(dataset).is_dir() else Path(dataset).parent
        else:
            self.where = f"hub dataset {dataset} ({split})"
        self._plain = None

    def _open(self, **options):
        import datasets

        try:
            return datasets.load_dataset(str(self.dataset), split=self.split, streaming=True, **options)
        except ValueError as exc:
            if "split" in str(exc).lower():
                raise DataError(f"{self.where}: {exc}; choose one with --split") from exc
            raise

    def _stream(self, columns: list[str], filters: list | None = None):
        """(streamed split with only `columns`, whether `filters` was applied). `columns` and
        `filters` are options of the parquet builder: pyarrow reads the genre column and compares
        it before any audio column is read. Other builders refuse them: then every column is
        streamed and the caller filters."""
        if self._plain is None:
            self._plain = self._open()
        self._check_columns(self._plain.features, columns)
        options = {"columns": columns, **({"filters": filters} if filters else {})}
        try:
            return self._open(**options), True
        except DataError:
            raise
        except (TypeError, ValueError) as exc:
            logger.debug("%s does not take %s (%s); streaming all columns", self.where, sorted(options), exc)
            return self._plain.select_columns(columns), False

    def _check_columns(self, features, columns: Sequence[str]) -> None:
        if features is None:
            return
        missing = [c for c in columns if c not in features]
        if missing:
            flag = {self.genre_column: "--genre-column", self.audio_column: "--audio-column",
                    self.recording_column: "--recording-column"}
            raise DataError(f"{self.where} has no column {missing[0]!r} (columns: {', '.join(features)}); "
                            f"choose one with {flag.get(missing[0], '--genre-column/--audio-column')}")

    def labels(self, progress: bool) -> tuple[Any, list]:
        """(genre feature, raw label of every row): only the genre column is read."""
        import datasets
        from tqdm.auto import tqdm

        column = self.genre_column
        if isinstance(self.dataset, datasets.Dataset):
            self._check_columns(self.dataset.features, [column])
            return self.dataset.features[column], list(self.dataset.select_columns([column])[column])
        if self.is_object:
            self._check_columns(self.dataset.features, [column])
            stream = self.dataset.select_columns([column])
        else:
            stream, _ = self._stream([column])
        feature = stream.features[column] if stream.features is not None else None
        values = []
        bar = tqdm(desc=f"reading genre labels of {self.where}", unit="row", disable=not progress)
        for batch in stream.iter(batch_size=1000):
            values += batch[column]
            bar.update(len(batch[column]))
        bar.close()
        return feature, values

    def resolve_recording_column(self, requested: str | None) -> str | None:
        """The column that groups rows into recordings: `requested` (which must exist), else
        DEFAULT_RECORDING_COLUMN when the dataset has it, else None (each row is a recording).
        Call after `labels` (which opens the dataset)."""
        features = self.dataset.features if self.is_object else (self._plain.features if self._plain is not None else None)
        if requested is None:
            present = features is not None and DEFAULT_RECORDING_COLUMN in features
            self.recording_column = DEFAULT_RECORDING_COLUMN if present else None
        else:
            self.recording_column = requested
            self._check_columns(features, [requested])
        return self.recording_column

    def rows(self, value, labels: list) -> "datasets.IterableDataset | datasets.Dataset":
        """Rows of one label value (all when None) with the audio column cast to encoded bytes."""
        import datasets

        columns = [self.genre_column, self.audio_column] + ([self.recording_column] if self.recording_column else [])
        audio = datasets.Audio(decode=False)  # datasets hands over the bytes; we decode with soundfile
        if isinstance(self.dataset, datasets.Dataset):
            self._check_columns(self.dataset.features, columns)
            selected = self.dataset
            if value is not None:  # rows chosen from the labels alone
                selected = selected.select([i for i, v in enumerate(labels) if v == value])
            return selected.select_columns(columns).cast_column(self.audio_column, audio)
        if self.is_object:
            self._check_columns(self.dataset.features, columns)
            stream, filtered = self.dataset.select_columns(columns), False
        else:
            stream, filtered = self._stream(columns, [(self.genre_column, "==", value)] if value is not None else None)
        stream = stream.cast_column(self.audio_column, audio)
        if value is not None and not filtered:  # the label is compared before the row's audio is looked at
            stream = stream.filter(lambda label: label == value, input_columns=[self.genre_column])
        return stream


def _recording_of(row: dict, column: str | None) -> str:
    value = row.get(column) if column else None
    return "" if value is None else str(value)


def _load_rows(dataset, genre, config, *, split, genre_column, audio_column, recording_column, streaming, min_seconds,
               progress, shard=None) -> GenreData:
    from tqdm.auto import tqdm

    source = _Rows(dataset, split, genre_column, audio_column)
    try:
        feature, labels = source.labels(progress)
        recording_column = source.resolve_recording_column(recording_column)
        names = [_label_name(feature, v) for v in labels]
        genre_counts = dict(collections.Counter(n for n in names if n))
        seen = {}
        for raw, name in zip(labels, names):
            seen.setdefault(name, raw)
        label = match_genre(genre, genre_counts, source.where) if genre is not None else ""
        value = _label_value(feature, label, seen) if label else None
        rows = source.rows(value, labels)
        description = source.where + (f", genre {label}" if label else "")
        expected = genre_counts.get(label, 0) if label else len(labels)
        if streaming:
            stream = TrackStream(_as_iterable(rows), audio_column, label, expected, description, min_seconds,
                                 recording_column=recording_column, root=source.root)
            return GenreData(stream, label, genre_counts, collections.Counter(),
                             description + " (streamed: files are checked as they arrive)", min_seconds=min_seconds)
        tracks, used = [], set()
        skipped: collections.Counter = collections.Counter()
        skipped_files: list[tuple[str, str]] = []
        bar = tqdm(total=expected, desc=f"collecting {label or 'all'} audio from {source.where}", unit="track", disable=not progress)
        for row in rows:
            audio = row[audio_column]
            name = _track_name(audio if isinstance(audio, dict) else {}, used)
            data = _row_source(audio, source.root)
            if data is None:
                skipped["missing_audio"] += 1
                skipped_files.append((name, "missing_audio"))
            else:
                tracks.append(Track(name, label or _label_name(feature, row[genre_column]), data,
                                    _recording_of(row, recording_column)))
            bar.update(1)
        bar.close()
    except DataError:
        raise
    except (ConnectionError, TimeoutError) as exc:
        raise HubUnreachableError(f"lost the connection while reading {source.where} ({exc}); {UNREACHABLE_HINT}") from exc
    except FileNotFoundError as exc:
        raise DataError(f"cannot read {source.where}: {exc}") from exc
    return _finish(tracks, config, min_seconds, progress, label, genre_counts, description, skipped, skipped_files, shard)


def _as_iterable(rows):
    import datasets

    if isinstance(rows, datasets.Dataset):
        return rows.to_iterable_dataset(num_shards=max(1, min(len(rows), 8)))
    return rows


def load_genre(
    genre: str | None,
    config: MelConfig,
    *,
    dataset: "str | datasets.Dataset | datasets.IterableDataset | None" = None,
    data_dir: str | os.PathLike | None = None,
    split: str = "train",
    genre_column: str = "genre",
    audio_column: str = "audio",
    recording_column: str | None = None,
    streaming: bool = False,
    synthetic_clips_per_genre: int = 32,
    synthetic_seconds: float = 30.0,
    min_seconds: float | None = None,
    progress: bool = True,
    shard: "Shard | None" = None,
) -> GenreData:
    """The usable tracks of one genre from exactly one source.

    dataset: a hub id ("lewtun/music_genres"), a local dataset folder `load_dataset` reads,
    `"synthetic"` (the built-in set), or a `datasets.Dataset`/`IterableDataset` object.
    data_dir: a folder, one sub-folder per genre (a folder without sub-folders is one genre).
    recording_column: the dataset column that groups rows into recordings (the validation split
    never divides one); None: DEFAULT_RECORDING_COLUMN (`song_id`) when present, else every row
    is a recording. In a folder every file, in the built-in set every clip, is a recording.
    genre: matched case-insensitively; None takes every track. min_seconds: shorter tracks are
    skipped (default half a slice). streaming: hub/dataset sources only; `tracks` is then a
    TrackStream read again every epoch. progress: progress bars and the one-line skip report
    at warning level (pass False on non-main processes). shard: when several processes train
    together, each decodes and checks only its share of the tracks (`Shard`) and they exchange
    the results, so every process gets the same GenreData (`owners` says who decoded what).
    Raises DataError (HubUnreachableError when the hub can't be reached) with what to do.
    """
    if (dataset is None) == (data_dir is None):
        raise DataError("give exactly one data source: a dataset (--dataset ID, or --dataset synthetic) or a folder (--data-dir DIR)")
    if min_seconds is None:
        min_seconds = config.slice_seconds / 2
    tabular = data_dir is None and not (isinstance(dataset, str) and dataset.strip().lower() == SYNTHETIC)
    if recording_column is not None and not tabular:
        raise DataError(f"--recording-column {recording_column} applies to datasets with columns; in a folder each "
                        f"file, in the built-in set each clip, is one recording")
    if data_dir is not None:
        if streaming:
            logger.info("streaming applies to hub datasets only; reading folder %s directly", data_dir)
        return _load_folder(data_dir, genre, config, min_seconds, progress, shard)
    if isinstance(dataset, str) and dataset.strip().lower() == SYNTHETIC:
        return _load_synthetic(genre, config, synthetic_clips_per_genre, synthetic_seconds, min_seconds, progress, shard)
    if isinstance(dataset, (str, os.PathLike)):
        local = Path(dataset).expanduser()
        if local.exists():
            dataset = str(local)
        elif isinstance(dataset, os.PathLike) or str(dataset).startswith((".", "/", "~")):
            raise DataError(f"dataset folder {dataset} does not exist")
        else:
            _probe_hub(str(dataset))
    return _load_rows(dataset, genre, config, split=split, genre_column=genre_column, audio_column=audio_column,
                      recording_column=recording_column, streaming=streaming, min_seconds=min_seconds, progress=progress,
                      shard=shard)


# ---- the validation split ----------------------------------------------------------------------
def _unit_hash(seed: int, name: str) -> float:
    """A number in [0, 1) fixed by (seed, name)."""
    digest = hashlib.blake2b(f"{seed}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _name_number(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


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


# ---- slices and batches ------------------------------------------------------------------------
def _rng(*words: int) -> np.random.Generator:
    return np.random.default_rng([int(w) & 0xFFFFFFFFFFFFFFFF for w in words])


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


def track_audio(track: Track, config: MelConfig) -> torch.Tensor:
    """The part of a track the Track stands for, decoded at config.sample_rate: (T,) (cached)."""
    first, stop = track.sample_range(config.sample_rate)
    return _load_prepared(track, config).audio[first:stop]


# ---- streaming -------------------------------------------------------------------------------
class TrackStream:
    """A genre's tracks read lazily from a streamed dataset (`load_genre(..., streaming=True)`).

    Iterating yields Tracks (encoded bytes) in stream order; each pass reads the stream again,
    so the genre never has to fit in memory or on disk. `len()` is the number of rows of the
    genre (an estimate for a split part). Files are checked when a StreamSliceDataset meets them.
    """

    def __init__(self, rows, audio_column: str, genre: str, count: int, description: str,
                 min_seconds: float, part: tuple[float, int, bool] | None = None, recording_column: str | None = None,
                 root: str | os.PathLike | None = None):
        self.rows = rows  # a datasets.IterableDataset of {genre_column, audio_column[, recording_column]} rows
        self.audio_column, self.genre, self.count = audio_column, genre, count
        self.description, self.min_seconds, self.part = description, min_seconds, part
        self.recording_column = recording_column
        self.root = root  # the local dataset's folder (rows' paths must lie inside it), or None

    def __repr__(self) -> str:
        side = "" if self.part is None else (", held-out part" if self.part[2] else ", training part")
        return f"TrackStream({self.description!r}, ~{len(self)} tracks{side})"

    def __len__(self) -> int:
        if self.part is None:
            return self.count
        fraction, _, held_out = self.part
        share = fraction if held_out else 1.0 - fraction
        return max(1, round(self.count * share)) if self.count else 0

    def keeps(self, name: str) -> bool:
        """Whether the track or recording of this id is on this side of the split."""
        if self.part is None:
            return True
        fraction, seed, held_out = self.part
        return (_unit_hash(seed, name) < fraction) == held_out

    def split(self, validation_fraction: float, seed: int = 0) -> tuple["TrackStream", "TrackStream"]:
        if self.part is not None:
            raise ValueError("this stream is already one side of a split")
        make = lambda held: TrackStream(self.rows, self.audio_column, self.genre, self.count, self.description,
                                        self.min_seconds, (validation_fraction, int(seed), held), self.recording_column,
                                        self.root)
        return make(False), make(True)

    def iter_tracks(self, rows=None) -> Iterator[Track]:
        used: set = set()
        for row in rows if rows is not None else self.rows:
            audio = row[self.audio_column]
            name = _track_name(audio if isinstance(audio, dict) else {}, used)
            data = _row_source(audio, self.root)
            track = Track(name, self.genre, data, _recording_of(row, self.recording_column)) if data is not None else None
            if track is not None and self.keeps(track.recording_id):
                yield track

    def __iter__(self) -> Iterator[Track]:
        return self.iter_tracks()

    def take(self, count: int, config: MelConfig) -> list[Track]:
        """The first `count` usable tracks of the stream (checked and cached)."""
        taken = []
        for track in self:
            if _inspect(track, config, self.min_seconds)[0] is None:
                taken.append(track)
                if len(taken) == count:
                    break
        return taken


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
