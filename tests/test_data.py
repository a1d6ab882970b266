import collections
import io
import logging

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff import data as data_module
from audiodiff.audio import load_audio
from audiodiff.data import (
    TRACK_CACHE, DataError, MelCollate, SliceDataset, Track, load_genre,
    make_dataloader, split_tracks, split_validation, validation_slices,
)
from audiodiff.data import tracks as tracks_module
from audiodiff.mel import MelConfig, audio_to_images

from conftest import tone

# A tiny codec: one slice is 2047 samples (0.256 s) at 8 kHz, so "too short" is < 0.128 s.
CONFIG = MelConfig(x_res=32, y_res=32, sample_rate=8000, n_fft=256, hop_length=64)
S = CONFIG.slice_samples


def music(seconds, sample_rate, seed=0, freq=220.0):
    """A tone with a seeded wobble and noise: loud, not silent, different per seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wobble = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t)
    audio = 0.3 * wobble * np.sin(2 * np.pi * freq * (1 + 0.1 * seed) * t) + 0.02 * rng.standard_normal(t.size)
    return audio.astype(np.float32)


def encode(audio, sample_rate, fmt="WAV", subtype=None):
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def nan_audio(seconds=1.0, sample_rate=8000):
    audio = music(seconds, sample_rate)
    audio[100:110] = np.nan
    return audio


@pytest.fixture(autouse=True)
def fresh_cache():
    TRACK_CACHE.clear()
    yield
    TRACK_CACHE.clear()


@pytest.fixture
def genre_folder(tmp_path):
    """DIR/jazz with three good files (mixed formats and rates, one nested) and every kind of bad
    input; DIR/rock with two good files; hidden entries that must be ignored."""
    root = tmp_path / "music"
    jazz, rock = root / "jazz", root / "rock"
    (jazz / "sub").mkdir(parents=True)
    rock.mkdir()
    sf.write(jazz / "a.wav", np.stack([music(1.0, 44100, 1), music(1.0, 44100, 2)], axis=1), 44100)
    sf.write(jazz / "b.flac", music(0.8, 22050, 3), 22050)
    sf.write(jazz / "sub" / "c.ogg", music(1.2, 16000, 4), 16000, format="OGG", subtype="VORBIS")
    (jazz / "empty.wav").write_bytes(b"")
    (jazz / "corrupt.flac").write_bytes(np.random.default_rng(0).bytes(3000))
    sf.write(jazz / "zero.wav", np.zeros(0, dtype=np.float32), 8000)
    sf.write(jazz / "short.wav", music(0.05, 8000), 8000)
    sf.write(jazz / "nan.wav", nan_audio(), 8000, subtype="FLOAT")
    sf.write(jazz / "silent.wav", np.zeros(8000, dtype=np.float32), 8000)
    sf.write(jazz / "hiss.wav", 1e-5 * np.random.default_rng(1).standard_normal(8000).astype(np.float32), 8000, subtype="FLOAT")
    (jazz / "notes.txt").write_text("not music")
    (jazz / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    (jazz / ".DS_Store").write_bytes(b"\0")
    sf.write(rock / "x.wav", music(1.0, 8000, 5), 8000)
    sf.write(rock / "y.wav", music(1.5, 8000, 6), 8000)
    (root / ".cache").mkdir()
    sf.write(root / ".cache" / "z.wav", music(1.0, 8000, 7), 8000)
    return root


# ---- folder source --------------------------------------------------------------------------
def test_folder_source_picks_genre_and_counts_every_bad_input(genre_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="audiodiff.data"):
        data = load_genre("JAZZ", CONFIG, data_dir=genre_folder, progress=True)
    assert data.genre == "jazz"
    assert [t.name for t in data.tracks] == ["jazz/a.wav", "jazz/b.flac", "jazz/sub/c.ogg"]
    assert all(t.genre == "jazz" and t.source.startswith(str(genre_folder)) for t in data.tracks)
    assert data.genre_counts == {"jazz": 10, "rock": 2}  # audio files per genre folder, before checks
    assert data.skipped == collections.Counter(
        {"not_audio": 2, "empty": 1, "unreadable": 1, "zero_length": 1, "too_short": 1, "nan": 1, "silent": 2})
    assert dict(data.skipped_files)["jazz/hiss.wav"] == "silent" and dict(data.skipped_files)["jazz/nan.wav"] == "nan"
    assert data.durations == pytest.approx({"jazz/a.wav": 1.0, "jazz/b.flac": 0.8, "jazz/sub/c.ogg": 1.2}, abs=0.01)
    assert data.min_seconds == pytest.approx(S / 8000 / 2)
    assert data.description == f"folder {genre_folder}, genre jazz"
    reports = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(reports) == 1 and "9 files" in reports[0] and "2 silent" in reports[0] and "too short (< 0.13 s)" in reports[0]

    rock = load_genre("rock", CONFIG, data_dir=genre_folder, progress=False)
    assert [t.name for t in rock.tracks] == ["rock/x.wav", "rock/y.wav"] and not rock.skipped

    everything = load_genre(None, CONFIG, data_dir=genre_folder, progress=False)
    assert everything.genre == "" and len(everything.tracks) == 5
    assert {t.genre for t in everything.tracks} == {"jazz", "rock"}


def test_flat_folder_is_one_unnamed_genre(tmp_path):
    for k in range(3):
        sf.write(tmp_path / f"{k}.wav", music(0.5, 8000, k), 8000)
    (tmp_path / "readme.md").write_text("hi")
    for genre in (None, "anything"):
        data = load_genre(genre, CONFIG, data_dir=tmp_path, progress=False)
        assert [t.name for t in data.tracks] == ["0.wav", "1.wav", "2.wav"]
        assert data.genre == "" and data.genre_counts == {"": 3} and data.skipped == {"not_audio": 1}


def test_symlink_loops_and_linked_duplicates_count_each_real_file_once(tmp_path):
    jazz = tmp_path / "jazz"
    (jazz / "sub").mkdir(parents=True)
    for k in range(4):
        sf.write((jazz if k < 3 else jazz / "sub") / f"{k}.wav", music(0.5, 8000, k), 8000)
    (jazz / "loop").symlink_to(".")  # a link back to the folder itself: used to list every file 41 times
    (jazz / "again.wav").symlink_to(jazz / "0.wav")  # the same real file under a second name
    (jazz / "zz-sub").symlink_to(jazz / "sub")  # the same real folder under a second name
    (jazz / "gone.wav").symlink_to(jazz / "missing.wav")  # a dangling link: counted as unreadable, not dropped
    data = load_genre("jazz", CONFIG, data_dir=tmp_path, progress=False)
    assert [t.name for t in data.tracks] == ["jazz/0.wav", "jazz/1.wav", "jazz/2.wav", "jazz/sub/3.wav"]
    assert data.genre_counts == {"jazz": 5} and data.skipped == {"unreadable": 1}
    training, validation = split_tracks(data.tracks, 0.25)
    sources = [t.source for t in training + validation]
    assert len(sources) == 4 and len(set(sources)) == 4  # each real file once, on one side only


def test_unknown_genre_lists_genres_with_counts(genre_folder):
    with pytest.raises(DataError, match=r"'polka' is not in folder .*jazz \(10\), rock \(2\)"):
        load_genre("polka", CONFIG, data_dir=genre_folder, progress=False)


def test_no_usable_audio_says_why(tmp_path):
    (tmp_path / "jazz").mkdir()
    (tmp_path / "jazz" / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "jazz" / "silent.wav", np.zeros(8000, dtype=np.float32), 8000)
    with pytest.raises(DataError, match=r"no usable audio in folder .*genre jazz: 2 files \(.*1 empty.*1 silent"):
        load_genre("jazz", CONFIG, data_dir=tmp_path, progress=False)
    with pytest.raises(DataError, match="does not exist"):
        load_genre("jazz", CONFIG, data_dir=tmp_path / "missing", progress=False)


def test_exactly_one_source(tmp_path):
    with pytest.raises(DataError, match="exactly one"):
        load_genre("jazz", CONFIG, progress=False)
    with pytest.raises(DataError, match="exactly one"):
        load_genre("jazz", CONFIG, dataset="synthetic", data_dir=tmp_path, progress=False)


def test_tracks_are_decoded_once_per_process(genre_folder, monkeypatch):
    data = load_genre("jazz", CONFIG, data_dir=genre_folder, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(tracks_module, "_decode", refuse)  # the check at load time filled the cache
    dataset = SliceDataset(data.tracks, CONFIG)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        assert all(dataset[i].shape == (S,) for i in range(len(dataset)))
    validation_slices(data.tracks, CONFIG, 4)


# ---- the built-in set ---------------------------------------------------------------------------
def test_synthetic_source():
    from audiodiff.synthetic import GENRES, SyntheticClip, render

    data = load_genre("JAZZ", CONFIG, dataset="synthetic", synthetic_clips_per_genre=2, synthetic_seconds=1.0, progress=False)
    assert data.genre == "jazz" and data.description == "built-in synthetic set, genre jazz"
    assert data.genre_counts == {g: 2 for g in GENRES} and not data.skipped
    assert len(data.tracks) == 2 and all(isinstance(t.source, SyntheticClip) and t.genre == "jazz" for t in data.tracks)
    assert len({t.name for t in data.tracks}) == 2
    for i, track in enumerate(data.tracks):  # rendered straight at the model's rate, no resampling
        expected = render("jazz", track.source.seed, 1.0, CONFIG.sample_rate)
        assert torch.equal(SliceDataset(data.tracks, CONFIG).prepared(i).audio, torch.from_numpy(expected))
    everything = load_genre(None, CONFIG, dataset="synthetic", synthetic_clips_per_genre=2, synthetic_seconds=1.0, progress=False)
    assert len(everything.tracks) == 2 * len(GENRES) and {t.genre for t in everything.tracks} == set(GENRES)
    with pytest.raises(DataError, match=r"'polka' is not in the built-in synthetic set.*jazz \(2\)"):
        load_genre("polka", CONFIG, dataset="synthetic", synthetic_clips_per_genre=2, progress=False)
    with pytest.raises(DataError, match="no usable audio.*too short"):  # 0.1 s < half a 0.256 s slice
        load_genre("rock", CONFIG, dataset="synthetic", synthetic_clips_per_genre=1, synthetic_seconds=0.1, progress=False)
    loader = make_dataloader(data.tracks, CONFIG, batch_size=2)
    assert next(iter(loader)).shape == (2, 1, 32, 32)


# ---- split ----------------------------------------------------------------------------------------
def named(count, prefix="t"):
    return [Track(f"{prefix}{k:03d}", "jazz", f"/x/{prefix}{k}.wav") for k in range(count)]


def test_split_by_track_is_seeded_stable_and_disjoint():
    tracks = named(200)
    train, held = split_tracks(tracks, 0.1, seed=0)
    assert {t.name for t in train}.isdisjoint({t.name for t in held})
    assert sorted(train + held, key=lambda t: t.name) == tracks
    assert 10 <= len(held) <= 30  # about 10 % of 200
    assert split_tracks(tracks, 0.1, seed=0) == (train, held)
    assert split_tracks(tracks, 0.1, seed=1)[1] != held
    # stable: a track's side depends on (seed, name) only, not on order or the other tracks
    reordered = split_tracks(tracks[::-1] + named(50, "extra"), 0.1, seed=0)[1]
    assert {t.name for t in held} == {t.name for t in reordered if t.name.startswith("t")}
    # small sets: at least one held out and one kept, when there are two
    for count in (2, 3, 5):
        train, held = split_tracks(named(count), 0.1, seed=0)
        assert len(held) >= 1 and len(train) >= 1
    assert split_tracks(named(1), 0.5) == (named(1), [])
    assert split_tracks(named(5), 0.0) == (named(5), [])
    with pytest.raises(ValueError):
        split_tracks(named(5), 1.0)


def song_rows(songs, rows_per_song=3, seconds=0.5):
    """A dataset shaped like lewtun/music_genres with several rows (clips) per song_id."""
    audio, song_ids = [], []
    for song in range(songs):
        for part in range(rows_per_song):
            audio.append({"bytes": encode(music(seconds, 8000, seed=10 * song + part), 8000), "path": f"s{song}-{part}.wav"})
            song_ids.append(1000 + song)
    table = {"genre": ["Jazz"] * len(audio), "audio": audio, "song_id": song_ids}
    return datasets.Dataset.from_dict(table).cast_column("audio", datasets.Audio(decode=False))


def test_a_dataset_with_several_rows_per_recording_never_splits_a_recording():
    dataset = song_rows(12)
    data = load_genre("jazz", CONFIG, dataset=dataset, progress=False)
    assert {t.recording for t in data.tracks} == {str(1000 + k) for k in range(12)}  # song_id found by default
    for seed in range(5):
        split = split_validation(data.tracks, 0.25, seed=seed, durations=data.durations)
        assert split.held_out_by == "recording" and split.validation
        train_songs = {t.recording for t in split.train}
        held_songs = {t.recording for t in split.validation}
        assert train_songs.isdisjoint(held_songs) and len(train_songs | held_songs) == 12
        assert all(t.start_seconds == 0 and t.end_seconds is None for t in split.train + split.validation)
        assert sum(1 for t in split.validation if t.recording == sorted(held_songs)[0]) == 3  # all its rows
        record = split.record()
        assert record["held_out_recordings"] == sorted(held_songs)
        assert {(h["recording"], h["track"]) for h in record["held_out"]} == {(t.recording, t.name) for t in split.validation}
        assert all(h["start_seconds"] == 0 and h["end_seconds"] == pytest.approx(0.5) for h in record["held_out"])
    # a stream of the same rows splits by song too, and the same way
    streamed = load_genre("jazz", CONFIG, dataset=dataset, streaming=True, progress=False)
    stream_split = split_validation(streamed.tracks, 0.25, seed=0)
    listed = split_validation(data.tracks, 0.25, seed=0, durations=data.durations)
    assert {t.recording for t in stream_split.validation} == {t.recording for t in listed.validation}
    assert {t.recording for t in stream_split.train} == {t.recording for t in listed.train}
    # another column can be named; a missing one is an error that names the flag
    renamed = dataset.rename_column("song_id", "album")
    assert {t.recording for t in load_genre("jazz", CONFIG, dataset=renamed, progress=False).tracks} == {""}
    by_album = load_genre("jazz", CONFIG, dataset=renamed, recording_column="album", progress=False)
    assert len({t.recording for t in by_album.tracks}) == 12
    with pytest.raises(DataError, match="no column 'take'.*--recording-column"):
        load_genre("jazz", CONFIG, dataset=dataset, recording_column="take", progress=False)
    with pytest.raises(DataError, match="--recording-column.*folder"):
        load_genre("jazz", CONFIG, dataset="synthetic", recording_column="song_id", progress=False)


def test_few_recordings_hold_out_the_end_of_each_instead_of_whole_ones(tmp_path):
    root = tmp_path / "music" / "jazz"
    root.mkdir(parents=True)
    sf.write(root / "one.wav", music(3.0, 8000, 1), 8000)
    sf.write(root / "two.wav", music(2.0, 8000, 2), 8000)
    data = load_genre("jazz", CONFIG, data_dir=tmp_path / "music", progress=False)
    split = split_validation(data.tracks, 0.1, seed=0, durations=data.durations, min_held_out_seconds=CONFIG.slice_seconds)
    assert split.held_out_by == "time_range"
    assert [t.name for t in split.train] == [t.name for t in split.validation] == ["jazz/one.wav", "jazz/two.wav"]
    # 10 % of 3 s is 0.3 s (more than one 0.256 s slice); of 2 s, 0.2 s < a slice: one slice is held out
    assert [t.end_seconds for t in split.train] == [2.7, round(2.0 - CONFIG.slice_seconds, 3)]
    assert [(t.start_seconds, t.end_seconds) for t in split.validation] == [(2.7, 3.0), (round(2.0 - CONFIG.slice_seconds, 3), 2.0)]
    record = split.record()
    assert record["training_recordings"] == record["held_out_recordings"] == ["jazz/one.wav", "jazz/two.wav"]
    assert [(h["start_seconds"], h["end_seconds"]) for h in record["held_out"]] == [(2.7, 3.0), (round(2.0 - CONFIG.slice_seconds, 3), 2.0)]
    # training slices stay before the cut, validation slices after it
    dataset = SliceDataset(split.train, CONFIG, seed=0)
    for epoch in range(20):
        for i, track in enumerate(split.train):
            assert dataset.offset(i, epoch) + S <= round(track.end_seconds * CONFIG.sample_rate)
    whole = [data_module.track_audio(t, CONFIG) for t in data.tracks]
    for k, piece in enumerate(validation_slices(split.validation, CONFIG, 4, seed=0)):
        start = round(split.validation[k % 2].start_seconds * CONFIG.sample_rate)
        tail = whole[k % 2][start:]
        assert any(torch.equal(piece[: 64], tail[j : j + 64]) for j in range(0, tail.numel() - 64 + 1))
    assert split_validation(data.tracks, 0.0).held_out_by == "none"
    with pytest.raises(ValueError, match="duration"):
        split_validation(data.tracks, 0.1)


def test_two_processes_each_check_and_draw_only_their_share_of_the_tracks(tmp_path):
    from audiodiff.data import Shard, TrackSampler, decoded_track_count

    root = tmp_path / "music" / "jazz"
    root.mkdir(parents=True)
    for k in range(7):
        sf.write(root / f"t{k}.wav", music(0.5, 8000, k), 8000)
    # one process plays both; the gather hands over what the other process would have found
    whole = load_genre("jazz", CONFIG, data_dir=tmp_path / "music", progress=False)
    found = [[(None, whole.durations[t.name]) for t in whole.tracks[p::2]] for p in (0, 1)]
    for index in (0, 1):
        TRACK_CACHE.clear()
        data_module._DECODED.clear()

        def gather(mine, index=index):
            assert mine == found[index]
            return found

        data = load_genre("jazz", CONFIG, data_dir=tmp_path / "music", progress=False, shard=Shard(index, 2, gather))
        assert data.tracks == whole.tracks and data.durations == whole.durations
        assert decoded_track_count(data.tracks) == len(data.tracks[index::2])  # 4 and 3 of 7
        assert data.owners == {t.name: k % 2 for k, t in enumerate(data.tracks)}
    owners = [data.owners[t.name] for t in data.tracks]
    seen = {0: set(), 1: set()}
    for rank in (0, 1):
        sampler = TrackSampler(SliceDataset(data.tracks, CONFIG), seed=0, process_index=rank, num_processes=2, owners=owners)
        assert len(sampler) == 3  # the smaller share: both processes run the same number of steps
        for epoch in range(6):
            sampler.set_epoch(epoch)
            seen[rank] |= {i for i, _ in sampler}
    assert seen == {0: {0, 2, 4, 6}, 1: {1, 3, 5}}  # the larger share is covered over epochs


# ---- slices, batches, workers ---------------------------------------------------------------------
@pytest.fixture
def long_tracks(tmp_path):
    paths = []
    for k, (seconds, rate) in enumerate([(2.0, 8000), (1.5, 22050), (3.0, 44100), (1.0, 16000), (2.5, 8000)]):
        path = tmp_path / f"t{k}.wav"
        sf.write(path, music(seconds, rate, k), rate)
        paths.append(path)
    return load_genre(None, CONFIG, data_dir=tmp_path, progress=False).tracks


def test_slice_offsets_per_epoch(long_tracks):
    dataset = SliceDataset(long_tracks, CONFIG, seed=0)
    assert len(dataset) == 5
    offsets = {(i, e): dataset.offset(i, e) for i in range(5) for e in range(6)}
    for i in range(5):
        assert len({offsets[i, e] for e in range(6)}) >= 5  # a fresh offset almost every epoch
    fresh = SliceDataset(long_tracks, CONFIG, seed=0)
    assert all(fresh.offset(i, e) == o for (i, e), o in offsets.items())  # a pure function of (seed, epoch, i)
    assert any(SliceDataset(long_tracks, CONFIG, seed=1).offset(i, 0) != offsets[i, 0] for i in range(5))
    for (i, e), start in offsets.items():
        audio = load_audio(long_tracks[i].source, CONFIG.sample_rate)
        assert 0 <= start <= audio.numel() - S
        dataset.set_epoch(e)
        piece = dataset[i]
        assert piece.dtype == torch.float32 and piece.shape == (S,)
        assert torch.equal(piece, audio[start : start + S]) and torch.equal(dataset[(i, e)], piece)


def test_near_silent_slices_are_never_drawn(tmp_path):
    audio = np.concatenate([np.zeros(8000, np.float32), tone(440, 1.0, 8000)])  # 1 s silence, then 1 s tone
    sf.write(tmp_path / "half.wav", audio, 8000)
    tracks = load_genre(None, CONFIG, data_dir=tmp_path, progress=False).tracks
    dataset = SliceDataset(tracks, CONFIG)
    starts = [dataset.offset(0, e) for e in range(60)]
    assert min(starts) > 8000 - S and len(set(starts)) > 20  # every slice reaches into the tone
    levels = [10 * np.log10(np.mean(dataset[(0, e)].numpy().astype(np.float64) ** 2)) for e in range(60)]
    assert min(levels) > -60


def test_short_track_is_zero_padded(tmp_path):
    sf.write(tmp_path / "short.wav", music(0.2, 8000), 8000)  # 1600 samples: > half a slice, < one slice
    tracks = load_genre(None, CONFIG, data_dir=tmp_path, progress=False).tracks
    piece = SliceDataset(tracks, CONFIG)[0]
    assert piece.shape == (S,) and torch.equal(piece[:1600], load_audio(tracks[0].source, 8000)) and not piece[1600:].any()


def test_make_dataloader_batches(long_tracks):
    loader = make_dataloader(long_tracks, CONFIG, batch_size=2, seed=0)
    assert len(loader) == 2  # 5 tracks, drop_last
    for epoch in range(2):
        loader.dataset.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == 2
        order = [i for i, _ in loader.sampler][:4]
        expected = audio_to_images(torch.stack([loader.dataset[(i, epoch)] for i in order]), CONFIG)
        images = torch.cat(batches)
        assert images.shape == (4, 1, 32, 32) and images.dtype == torch.float32
        assert images.min() >= -1 and images.max() <= 1 and images.max() == 1  # per-image 0 dB reference
        assert torch.equal(images, expected)
    ordered = make_dataloader(long_tracks, CONFIG, batch_size=5, shuffle=False, drop_last=False)
    assert [i for i, _ in ordered.sampler] == list(range(5))
    ordered.sampler.set_epoch(3)  # the sampler's set_epoch is the dataset's
    assert ordered.dataset.epoch == 3 and all(e == 3 for _, e in ordered.sampler)


def test_sampler_order_is_seeded_per_epoch(long_tracks):
    loader = make_dataloader(long_tracks, CONFIG, batch_size=1, seed=0)
    orders = []
    for epoch in range(4):
        loader.dataset.set_epoch(epoch)
        orders.append([i for i, _ in loader.sampler])
    assert len({tuple(o) for o in orders}) > 1 and all(sorted(o) == list(range(5)) for o in orders)
    same = make_dataloader(long_tracks, CONFIG, batch_size=1, seed=0)
    same.sampler.set_epoch(2)
    assert [i for i, _ in same.sampler] == orders[2]


def test_workers_give_the_same_batches(long_tracks):
    results = {}
    for workers in (0, 2):
        loader = make_dataloader(long_tracks, CONFIG, batch_size=2, seed=5, num_workers=workers, drop_last=False)
        epochs = []
        for epoch in range(2):
            loader.dataset.set_epoch(epoch)
            epochs.append(torch.cat(list(loader)))
        results[workers] = epochs
    for a, b in zip(results[0], results[2]):
        assert a.shape == (5, 1, 32, 32) and torch.equal(a, b)
    assert not torch.equal(results[0][0], results[0][1])


def test_mel_collate_is_the_batched_encoder(long_tracks):
    dataset = SliceDataset(long_tracks, CONFIG)
    slices = [dataset[i] for i in range(len(dataset))]
    images = MelCollate(CONFIG)(slices)
    assert images.shape == (5, 1, 32, 32)
    for k, piece in enumerate(slices):
        torch.testing.assert_close(images[k], audio_to_images(piece, CONFIG)[0], atol=2 / 255, rtol=0)


def test_validation_slices_are_fixed(long_tracks):
    first = validation_slices(long_tracks[:2], CONFIG, 5, seed=0)
    assert first.shape == (5, S) and first.dtype == torch.float32
    assert torch.equal(first, validation_slices(long_tracks[:2], CONFIG, 5, seed=0))
    assert not torch.equal(first, validation_slices(long_tracks[:2], CONFIG, 5, seed=1))
    audio = load_audio(long_tracks[0].source, CONFIG.sample_rate)
    for k in (0, 2, 4):  # slices cycle over the tracks and come from them
        starts = audio.unfold(0, S, 1)
        assert (starts == first[k]).all(dim=1).any()
    assert validation_slices(long_tracks, CONFIG, 0).shape == (0, S)
