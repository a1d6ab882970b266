"""Sources: one genre's tracks from a hub dataset, a folder or the built-in set (`load_genre`),
each checked once as it is indexed (`tracks`), or, streamed, a `TrackStream` read every epoch.

Why it looks like this:
- The course's dataset (`lewtun/music_genres`) is ~10 GB of parquet for a few hundred tracks
  per genre. We stream it, read the genre column first (parquet column projection), and keep
  the audio bytes of the chosen genre only, in memory: nothing is cached on disk, and no row
  of another genre is decoded. (Parquet is read by row groups, so the audio of a row group
  that holds at least one track of the genre still crosses the network; that is the format's
  granularity.) `streaming=True` goes further and never holds the genre at all: every epoch
  reads it from the stream again.
- Audio columns are cast with `Audio(decode=False)` so `datasets` hands us the encoded bytes,
  which `tracks` decodes with soundfile.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from ..audio import AUDIO_EXTENSIONS
from ..hub import HubUnreachableError, hub_is_reachable, hub_offline
from ..mel import MelConfig
from .tracks import DataError, GenreData, Shard, Track, _finish, _inspect, _unit_hash

if TYPE_CHECKING:  # pragma: no cover
    import datasets

logger = logging.getLogger(__name__)

SYNTHETIC = "synthetic"  # the dataset name of the built-in genre set
DEFAULT_RECORDING_COLUMN = "song_id"  # lewtun/music_genres: several rows (clips) per song

UNREACHABLE_HINT = (
    "to work offline, use the built-in genre set (--dataset synthetic) or a folder of audio files "
    "with one sub-folder per genre (--data-dir DIR)"
)


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
    from ..synthetic import GENRES, synthetic_clips

    genre_counts = {name: clips_per_genre for name in GENRES}
    label = match_genre(genre, genre_counts, "the built-in synthetic set") if genre is not None else ""
    try:
        clips = synthetic_clips(clips_per_genre, seconds, genres=[label] if label else None)
    except ValueError as exc:  # clips_per_genre or seconds out of range
        raise DataError(f"built-in synthetic set: {exc}") from exc
    from ..fluid import RendererMissing, check_renderer

    try:
        check_renderer()  # before any work, never as a skipped track
    except RendererMissing as exc:
        raise DataError(str(exc)) from None
    return label, [Track(clip.name, clip.genre, clip) for clip in clips]


def _load_synthetic(genre, config, clips_per_genre, seconds, min_seconds, progress, shard=None) -> GenreData:
    from ..synthetic import GENRES

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
