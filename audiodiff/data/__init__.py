"""Genre data: pick one genre's tracks from a hub dataset, a folder or the built-in set, and
turn them into batches of Mel images.

The wing, in the order the data flows through it:
- `sources`: `load_genre` (a hub dataset, a local dataset, a folder, the built-in set) and
  `TrackStream` (a streamed genre, read again every epoch); genre matching.
- `tracks`: the records (`Track`, `GenreData`, `Shard`, `DataError`); decoding, checking and
  the per-process cache of decoded tracks, which the sources and the loader share.
- `split`: `split_validation`, the one validation split (the trainer and the evaluation ask it).
- `loader`: slices, the sampler, the Mel collate and `make_dataloader`.

Every name is importable from here (`from audiodiff.data import load_genre`). A test that
patches a private name patches it in the module that uses it (`audiodiff.data.tracks._decode`).
"""

# The names of __all__, and the constants and caches that callers and tests reach for
# (`TRACK_CACHE.clear()`, `_DECODED.clear()`), importable from here as before the split.
from ..hub import HubUnreachableError
from .loader import (SHUFFLE_BUFFER, MelCollate, SliceDataset, StreamSliceDataset, TrackSampler, make_dataloader,
                     validation_slices)
from .sources import (DEFAULT_RECORDING_COLUMN, SYNTHETIC, UNREACHABLE_HINT, TrackStream, format_counts, load_genre,
                      match_genre, synthetic_tracks)
from .split import MIN_RECORDINGS_TO_HOLD_OUT, ValidationSplit, split_tracks, split_validation
from .tracks import (_DECODED, CACHE_MAX_BYTES, SILENCE_DB, TRACK_CACHE, DataError, GenreData, Shard, Track,
                     decoded_track_count, describe_skips, track_audio)

__all__ = [
    "DataError", "GenreData", "HubUnreachableError", "MelCollate", "Shard", "SliceDataset", "StreamSliceDataset",
    "SYNTHETIC", "Track", "TrackSampler", "TrackStream", "ValidationSplit", "decoded_track_count", "describe_skips",
    "format_counts", "load_genre", "make_dataloader", "match_genre", "split_tracks", "split_validation",
    "synthetic_tracks", "track_audio", "validation_slices",
]
