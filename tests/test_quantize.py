"""Beats settled on an even grid (audiodiff.sampling.quantize), on click tracks the tests make with
loose timing, as generated clips have it."""

import numpy as np
import pytest
import torch

from audiodiff.mel import MelConfig, audio_to_spectrogram, images_to_audio
from audiodiff.metrics import beat_regularity
from audiodiff.sampling.quantize import (MAX_STRETCH, check_quantize, column_map, grid_of, moved_column,
                                         quantize_image, settle_beats, track_beats)
from audiodiff.sampling.steering import beat_columns_for, image_onset

MEL = MelConfig(x_res=168, y_res=64, sample_rate=16000, n_fft=1024, hop_length=384)  # the bundled model's
BPM = 120.0


def loose_clicks(seconds: float = 12.0, bpm: float = BPM, jitter: float = 0.06, seed: int = 0,
                 rate: int = MEL.sample_rate) -> tuple[np.ndarray, np.ndarray]:
    """Noise bursts near every beat, each off by up to `jitter` s -> (audio, the burst times in s)."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * rate), dtype=np.float32)
    size = int(0.03 * rate)
    burst = rng.standard_normal(size).astype(np.float32) * np.hanning(size).astype(np.float32)
    times = np.arange(0.3, seconds - 0.3, 60.0 / bpm) + rng.uniform(-jitter, jitter, int((seconds - 0.6) * bpm / 60) + 1)[
        : len(np.arange(0.3, seconds - 0.3, 60.0 / bpm))]
    for t in times:
        audio[int(t * rate): int(t * rate) + size] += burst
    return audio, times


def image_of(audio: np.ndarray) -> torch.Tensor:
    return audio_to_spectrogram(torch.from_numpy(audio), MEL)  # (B, 1, 64, W)


def burst_centres(image: torch.Tensor) -> np.ndarray:
    """Where each burst's onset lies: the onset-weighted centre of each run of columns whose onset
    is over a fifth of the largest (a burst can straddle two columns)."""
    onset = image_onset(image, MEL)[0].numpy()
    loud = onset > 0.2 * onset.max()
    starts = np.nonzero(loud & ~np.r_[False, loud[:-1]])[0]
    ends = np.nonzero(loud & ~np.r_[loud[1:], False])[0]
    return np.array([np.average(np.arange(a, b + 1), weights=onset[a: b + 1]) for a, b in zip(starts, ends)])


def test_the_tracker_finds_loose_beats_with_the_period_known():
    audio, times = loose_clicks()
    image = image_of(audio)
    beats = track_beats(image_onset(image, MEL)[0].numpy().astype(np.float64), beat_columns_for(BPM, MEL))
    expected = times * MEL.pixels_per_second
    assert beats.size == times.size
    assert np.abs(beats - expected).max() <= 1.5  # within a column and a half of every burst


def test_the_grid_is_the_line_through_the_beats_an_outlier_left_out():
    beats = 10.0 + 20.0 * np.arange(12)
    beats[5] += 8.0  # a beat far off the line
    grid = grid_of(beats)
    assert np.allclose(np.diff(grid), 20.0) and grid[0] == pytest.approx(10.0)


def test_the_column_map_sends_each_grid_point_to_its_beat_and_keeps_the_ends():
    beats = np.array([10.0, 31.0, 49.0, 72.0, 90.0])
    targets = np.array([10.0, 30.0, 50.0, 70.0, 90.0])
    mapping = column_map(101, beats, targets)
    assert mapping.shape == (101,) and np.all(np.diff(mapping) >= 0)
    assert np.allclose(mapping[targets.astype(int)], beats)
    assert mapping[0] == 0.0 and mapping[-1] == 100.0  # the clip's first and last columns stay
    assert np.allclose(column_map(101, targets, targets), np.arange(101))  # beats on the grid: nothing moves


def test_a_beat_that_would_need_more_than_the_stretch_limit_stays_where_it_is():
    beats = np.array([10.0, 30.0, 62.0, 70.0, 90.0])  # 62: two thirds of a beat late
    targets = np.array([10.0, 30.0, 50.0, 70.0, 90.0])
    mapping = column_map(101, beats, targets)
    segments = np.diff(mapping[[10, 30, 70, 90]]) / np.diff([10, 30, 70, 90])
    assert np.all((segments >= 1 / MAX_STRETCH) & (segments <= MAX_STRETCH))
    assert mapping[50] == pytest.approx(50.0)  # the far beat was not pulled onto the grid


def test_quantized_beats_are_even_and_a_tracker_hears_it():
    audio, _ = loose_clicks()
    image = image_of(audio)
    period = torch.tensor([beat_columns_for(BPM, MEL)])
    settled, maps = quantize_image(image, period, MEL, 1.0)
    assert settled.shape == image.shape and len(maps) == 1
    before, after = np.diff(burst_centres(image)), np.diff(burst_centres(settled))
    assert before.std() > 1.5 and after.std() < 0.35 * before.std()  # the loose bursts, then on the grid (whole columns)
    regular = [beat_regularity(images_to_audio(x, MEL)[0].numpy(), MEL.sample_rate) for x in (image, settled)]
    assert regular[1] < 0.6 * regular[0]  # librosa's beat tracker, not ours, hears the beats evener
    half, _ = quantize_image(image, period, MEL, 0.5)
    assert after.std() < np.diff(burst_centres(half)).std() < before.std()


def test_a_second_pass_settles_the_settled_image_and_its_map_leads_back_to_the_sampled_one():
    audio, _ = loose_clicks()
    image = image_of(audio)
    period = torch.tensor([beat_columns_for(BPM, MEL)])
    once, first = quantize_image(image, period, MEL, 1.0, passes=1)
    twice, maps = quantize_image(image, period, MEL, 1.0, passes=2)
    again, second = quantize_image(once, period, MEL, 1.0, passes=1)
    assert torch.equal(twice, again)  # the second pass is the first pass on the settled image
    width = image.shape[-1]
    assert np.allclose(maps[0], np.interp(second[0], np.arange(width), first[0]))  # output -> sampled column
    assert np.all(np.diff(maps[0]) >= 0) and maps[0].min() >= 0 and maps[0].max() <= width - 1
    assert np.diff(burst_centres(twice)).std() <= np.diff(burst_centres(once)).std() + 0.5  # no worse on the grid


def test_strength_zero_or_no_held_beat_leaves_the_clip_as_sampled():
    audio, _ = loose_clicks(seconds=6.0)
    image = image_of(audio)
    period = torch.tensor([beat_columns_for(BPM, MEL)])
    same, maps = quantize_image(image, period, MEL, 0.0)
    assert same is image and np.array_equal(maps[0], np.arange(image.shape[-1]))
    assert settle_beats(image, None, MEL, 1.0, [40]) == (image, None, None)
    assert settle_beats(image, period, MEL, 0.0, [40]) == (image, None, None)


def test_settled_seams_move_with_their_columns():
    audio, _ = loose_clicks()
    image = image_of(torch.from_numpy(np.stack([audio, loose_clicks(seed=1)[0]])).numpy())
    period = torch.full((2,), beat_columns_for(BPM, MEL))
    settled, seams, moved = settle_beats(image, period, MEL, 1.0, [100, 300, 10_000], seconds=11.0)
    _, maps = quantize_image(image, period, MEL, 1.0)
    assert settled.shape == image.shape and len(seams) == 2 and len(moved) == 2
    for item in range(2):
        assert len(seams[item]) == 2  # the seam past the clip's end is left out
        assert seams[item][0] == pytest.approx(MEL.columns_to_seconds(moved_column(maps[item], 100)))
        assert 0 < moved[item] < 0.2  # the bursts were at most 60 ms off, and the grid keeps the clip's tempo


@pytest.mark.parametrize("bad", [-0.1, 1.5, "1", True, float("nan")])
def test_a_quantize_strength_outside_0_to_1_is_refused(bad):
    with pytest.raises(ValueError, match="quantize must be from 0"):
        check_quantize(bad)


def test_a_new_clip_records_how_far_its_beats_were_settled_and_bad_strengths_stop_the_script(tmp_path):
    import json

    from test_generate import _script, run_generate
    from audiodiff.pipeline import build_preset, save_pipeline

    model = save_pipeline(build_preset("tiny", seed=0), tmp_path / "model")
    settled = json.loads(run_generate(model, tmp_path, seconds=2.5, name="on")[0][2].read_text())
    left = json.loads(run_generate(model, tmp_path, seconds=2.5, name="off", quantize=0.0)[0][2].read_text())
    assert settled["quantize"] == 1.0 and 0.0 <= settled["beats_moved_seconds"] <= 2.5
    assert left["quantize"] == 0.0 and left["beats_moved_seconds"] == 0.0
    keys = list(settled)
    assert keys.index("bpm") < keys.index("quantize") < keys.index("beats_moved_seconds") < keys.index("seam_seconds")
    done = _script(["--model", str(model), "--quantize", "1.5", "--output-dir", str(tmp_path / "none")], tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: quantize must be from 0 (the beats as sampled) to 1 (onto an even grid), got 1.5")
    assert not (tmp_path / "none").exists()
