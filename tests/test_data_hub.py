"""Hub-style datasets (shaped like lewtun/music_genres: genre labels and undecoded Audio bytes),
in memory, as local parquet through `datasets.load_dataset`, streamed; an unreachable hub fails
fast; a row cannot make us read a file outside its dataset. Folders, the built-in set, splits and
batches: tests/test_data.py, whose tiny codec and audio these tests share.
"""

import time

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.audio import load_audio
from audiodiff.data import (
    DataError, HubUnreachableError, SliceDataset, Track, TrackStream, load_genre, make_dataloader, split_tracks,
    validation_slices,
)

from test_data import CONFIG, S, encode, fresh_cache, music, nan_audio  # noqa: F401  (fresh_cache: autouse)


def hub_rows():
    """A tiny dataset shaped like lewtun/music_genres: genre names and Audio(decode=False) bytes.
    Jazz: three good tracks (mixed formats and rates) and four bad ones; the other genres' audio
    is garbage, which must never be looked at."""
    jazz = [
        {"bytes": encode(music(1.0, 44100, 1), 44100), "path": "j1.wav"},
        {"bytes": encode(music(0.9, 22050, 2), 22050, "FLAC"), "path": None},
        {"bytes": encode(music(1.1, 16000, 3), 16000, "OGG", "VORBIS"), "path": "j3.ogg"},
        {"bytes": b"not audio at all", "path": "bad.mp3"},
        {"bytes": b"", "path": "empty.wav"},
        {"bytes": encode(nan_audio(), 8000, "WAV", "FLOAT"), "path": "nan.wav"},
        {"bytes": None, "path": None},
    ]
    rows = [("Jazz", a) for a in jazz] + [("Rock", {"bytes": b"garbage", "path": f"r{k}.wav"}) for k in range(4)]
    rows += [("Hip-Hop", {"bytes": b"garbage", "path": "h.wav"})]
    order = np.random.default_rng(0).permutation(len(rows))
    rows = [rows[i] for i in order]
    table = {"genre": [g for g, _ in rows], "audio": [a for _, a in rows]}
    return datasets.Dataset.from_dict(table).cast_column("audio", datasets.Audio(decode=False))


def as_classlabel(dataset):
    return dataset.cast_column("genre", datasets.ClassLabel(names=["Hip-Hop", "Jazz", "Rock"]))


@pytest.mark.parametrize("labels", ["string", "classlabel"])
def test_hub_dataset_in_memory(labels):
    dataset = hub_rows() if labels == "string" else as_classlabel(hub_rows())
    data = load_genre("jazz", CONFIG, dataset=dataset, progress=False)
    assert data.genre == "Jazz" and data.genre_counts == {"Jazz": 7, "Rock": 4, "Hip-Hop": 1}
    assert data.skipped == {"unreadable": 1, "empty": 1, "nan": 1, "missing_audio": 1}  # Rock's garbage untouched
    assert len(data.tracks) == 3 and all(isinstance(t.source, bytes) and t.genre == "Jazz" for t in data.tracks)
    assert sorted(round(s, 2) for s in data.durations.values()) == [0.9, 1.0, 1.1]
    names = [t.name for t in data.tracks]
    assert len(set(names)) == 3 and any(n.startswith("j1.wav#") for n in names)
    # the bytes decode to what was encoded (resampled to the model's rate once)
    j1 = next(t for t in data.tracks if t.name.startswith("j1.wav#"))
    prepared = SliceDataset([j1], CONFIG).prepared(0).audio
    assert torch.equal(prepared, load_audio(j1.source, CONFIG.sample_rate))
    for spelling in ("HIP-HOP", "hip hop"):  # matched to "Hip-Hop", whose only track is garbage
        with pytest.raises(DataError, match="no usable audio in in-memory dataset .train., genre Hip-Hop: 1 file .1 unreadable"):
            load_genre(spelling, CONFIG, dataset=dataset, progress=False)
    with pytest.raises(DataError, match=r"'Blues' is not in in-memory dataset \(train\).*Jazz \(7\), Rock \(4\), Hip-Hop \(1\)"):
        load_genre("Blues", CONFIG, dataset=dataset, progress=False)
    with pytest.raises(DataError, match="no column 'style'.*--genre-column"):
        load_genre("jazz", CONFIG, dataset=dataset, genre_column="style", progress=False)


@pytest.mark.parametrize("labels", ["string", "classlabel"])
def test_local_parquet_dataset_through_load_dataset(tmp_path, labels):
    """The code path of a hub id (load_dataset streaming, column projection, pushed-down filter),
    on a parquet dataset folder: the same tracks as the in-memory dataset, then streamed."""
    dataset = hub_rows() if labels == "string" else as_classlabel(hub_rows())
    (tmp_path / "ds" / "data").mkdir(parents=True)
    dataset.to_parquet(str(tmp_path / "ds" / "data" / "train-00000-of-00001.parquet"))
    in_memory = load_genre("jazz", CONFIG, dataset=dataset, progress=False)
    data = load_genre("JAZZ", CONFIG, dataset=str(tmp_path / "ds"), progress=False)
    assert data.genre == "Jazz" and data.genre_counts == in_memory.genre_counts and data.skipped == in_memory.skipped
    assert [t.name for t in data.tracks] == [t.name for t in in_memory.tracks]
    assert [t.source for t in data.tracks] == [t.source for t in in_memory.tracks]
    assert data.description == f"local dataset {tmp_path / 'ds'} (train), genre Jazz"
    with pytest.raises(DataError, match="Bad split.*--split"):
        load_genre("jazz", CONFIG, dataset=str(tmp_path / "ds"), split="test", progress=False)

    streamed = load_genre("jazz", CONFIG, dataset=str(tmp_path / "ds"), streaming=True, progress=False)
    assert isinstance(streamed.tracks, TrackStream) and len(streamed.tracks) == 7
    assert sorted(t.name for t in streamed.tracks if t.name in data.durations) == sorted(data.durations)
    # no shuffle here: datasets sleeps 5 s after a shuffled parquet stream (an Arrow workaround)
    check_stream(streamed, {t.name for t in data.tracks}, shuffle=False)


def check_stream(streamed, usable_names, shuffle):
    """A stream gives one slice per usable track per epoch, splits like a list, and validation
    slices come from held-out tracks only."""
    train, held = split_tracks(streamed.tracks, 0.34, seed=1)
    names = [t.name for t in streamed.tracks]
    list_train, list_held = split_tracks([Track(n, "Jazz", b"") for n in names], 0.34, seed=1)
    assert [t.name for t in train] == [t.name for t in list_train if t.name in names]
    assert [t.name for t in held] == [t.name for t in list_held]
    loader = make_dataloader(streamed.tracks, CONFIG, batch_size=2, drop_last=False, seed=3, shuffle=shuffle)
    batches = [b for b in loader]
    assert sum(b.shape[0] for b in batches) == len(usable_names)
    assert all(b.shape[1:] == (1, 32, 32) and b.min() >= -1 and b.max() <= 1 for b in batches)
    assert loader.dataset.skipped == {"unreadable": 1, "empty": 1, "nan": 1}
    again = torch.cat(list(make_dataloader(streamed.tracks, CONFIG, batch_size=2, drop_last=False, seed=3, shuffle=shuffle)))
    assert torch.equal(torch.cat(batches), again)  # same seed and epoch: same stream of images
    loader.dataset.set_epoch(1)
    assert not torch.equal(torch.cat(list(loader)), again)
    slices = validation_slices(streamed.tracks, CONFIG, 4, seed=0)
    assert slices.shape == (4, S) and torch.equal(slices, validation_slices(streamed.tracks, CONFIG, 4, seed=0))


def test_streaming_an_in_memory_dataset():
    data = load_genre("jazz", CONFIG, dataset=as_classlabel(hub_rows()), streaming=True, progress=False)
    assert isinstance(data.tracks, TrackStream) and data.skipped == {} and "streamed" in data.description
    usable = load_genre("jazz", CONFIG, dataset=as_classlabel(hub_rows()), progress=False)
    check_stream(data, {t.name for t in usable.tracks}, shuffle=True)


def test_unreachable_hub_fails_fast_and_says_how_to_work_offline():
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError) as error:
        load_genre("jazz", CONFIG, dataset="nobody-here/no-such-dataset", progress=False)
    assert time.perf_counter() - start < 5
    assert "--dataset synthetic" in str(error.value) and "--data-dir DIR" in str(error.value)
    with pytest.raises(DataError, match="does not exist"):
        load_genre("jazz", CONFIG, dataset="./no/such/folder", progress=False)


def test_hub_probe_maps_errors(monkeypatch):
    """Online, the probe tells 'unreachable' (a fallback may follow) from 'no such dataset' (never)."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("audiodiff.hub._probe_endpoint", lambda endpoint, timeout_seconds: True)  # the hub answers

    def no_network(self, repo_id, timeout=None, **kwargs):
        assert timeout is not None and timeout <= 10
        raise ConnectionError("name resolution failed")

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", no_network)
    with pytest.raises(HubUnreachableError, match="cannot reach the hub.*--dataset synthetic"):
        load_genre("jazz", CONFIG, dataset="someone/music", progress=False)

    def missing(self, repo_id, timeout=None, **kwargs):
        error = RepositoryNotFoundError.__new__(RepositoryNotFoundError)  # skip its HTTP-response constructor
        Exception.__init__(error, "404 Repository Not Found")
        raise error

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", missing)
    with pytest.raises(DataError, match="no dataset 'someone/music' on the hub") as error:
        load_genre("jazz", CONFIG, dataset="someone/music", progress=False)
    assert not isinstance(error.value, HubUnreachableError)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_row_cannot_make_us_read_a_file_outside_its_dataset(tmp_path, streaming):
    """Rows without bytes name a path: read only inside the local dataset's own folder; elsewhere
    (or in a dataset object, or a hub dataset) skipped and counted (issue 25)."""
    secret = tmp_path / "secret.wav"
    sf.write(secret, music(1.2, 16000, 5), 16000)
    folder = tmp_path / "ds"
    (folder / "data").mkdir(parents=True)
    own = folder / "own.wav"
    sf.write(own, music(1.1, 16000, 6), 16000)
    rows = {"genre": ["Jazz"] * 3, "audio": [{"bytes": encode(music(1.0, 16000, 1), 16000), "path": "a.wav"},
                                             {"bytes": None, "path": str(secret)},
                                             {"bytes": None, "path": str(own)}]}
    table = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(decode=False))
    table.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    data = load_genre("jazz", CONFIG, dataset=str(folder), streaming=streaming, progress=False)
    tracks = list(data.tracks)
    sources = [t.source for t in tracks]
    assert str(secret) not in sources and len(tracks) == 2 and str(own) in sources
    if not streaming:
        assert data.skipped == {"missing_audio": 1}
    in_memory = load_genre("jazz", CONFIG, dataset=table, progress=False)  # no folder of its own: bytes only
    assert len(in_memory.tracks) == 1 and in_memory.skipped == {"missing_audio": 2}
