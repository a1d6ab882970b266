"""The beat a new clip is held to (audiodiff.sampling.beat): read at a tracker's metrical level, by
two methods that must agree, from click tracks the tests make."""


import numpy as np
import pytest
import torch

from audiodiff.mel import MelConfig, audio_to_images
from audiodiff.sampling.beat import TRACKER_LOW_BPM, agree, read_beat, read_beats, tracker_level
from audiodiff.sampling.steering import beat_columns_for, image_onset

MEL = MelConfig(x_res=168, y_res=64, sample_rate=16000, n_fft=1024, hop_length=384)  # the bundled model's 4.03 s


def clicks(bpm: float, seconds: float = MEL.slice_seconds, accent_every: int = 1, rate: int = MEL.sample_rate) -> np.ndarray:
    """Short noise bursts on every beat; every `accent_every`-th one 4x louder."""
    rng = np.random.default_rng(0)
    audio = np.zeros(int(seconds * rate), dtype=np.float32)
    burst = rng.standard_normal(int(0.02 * rate)).astype(np.float32) * np.hanning(int(0.02 * rate)).astype(np.float32)
    for i, start in enumerate(np.arange(0.05, seconds - 0.03, 60.0 / bpm)):
        at = int(start * rate)
        audio[at : at + burst.size] += burst * (0.8 if i % accent_every == 0 else 0.2)
    return audio


def test_tracker_level_folds_by_octaves_into_one_range():
    assert tracker_level(62.0) == 124.0 and tracker_level(124.0) == 124.0 and tracker_level(248.0) == 124.0
    assert tracker_level(TRACKER_LOW_BPM) == TRACKER_LOW_BPM and tracker_level(2 * TRACKER_LOW_BPM) == TRACKER_LOW_BPM
    assert all(TRACKER_LOW_BPM <= tracker_level(b) < 2 * TRACKER_LOW_BPM for b in (41.0, 85.0, 169.9, 171.0, 300.0))
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="a tempo must be positive"):
            tracker_level(bad)
    assert agree(100.0, 103.9) and not agree(100.0, 104.5)


@pytest.mark.parametrize("bpm", [96.0, 120.0, 150.0])
def test_a_steady_pulse_reads_as_its_own_tempo(bpm):
    audio = clicks(bpm)
    image = audio_to_images(torch.from_numpy(audio), MEL)[..., : MEL.x_res]
    onset = image_onset(image, MEL)[0].numpy().astype(np.float64)
    assert read_beat(onset, audio[: MEL.frames_to_samples(MEL.x_res)], MEL) == pytest.approx(bpm, rel=0.03)


def test_a_slow_pulse_is_held_at_the_level_a_tracker_hears():
    """A 64 bpm pulse of accented beats with soft ones between is held at 128, not 64."""
    audio = clicks(128.0, accent_every=2)  # strong beats at 64 bpm, the pulse at 128
    images = audio_to_images(torch.from_numpy(np.stack([audio, clicks(64.0)])), MEL)[..., : MEL.x_res]
    beats = read_beats(images, MEL)
    assert beats.shape == (2,)
    bpm = [60.0 * MEL.pixels_per_second / float(b) for b in beats]
    assert bpm[0] == pytest.approx(128.0, rel=0.03) and bpm[1] == pytest.approx(128.0, rel=0.03)
    assert float(beats[0]) == pytest.approx(beat_columns_for(bpm[0], MEL))
