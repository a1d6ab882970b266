"""Seam score, loudness, tempo and key measures on audio made in the test."""

import math

import numpy as np
import pytest
import torch
import torchaudio.functional as AF
from conftest import tone

from audiodiff import metrics
from audiodiff.metrics import (
    chroma_windows,
    fold_octaves,
    key_consistency,
    loudness,
    loudness_drift,
    loudness_range,
    loudness_spread,
    loudness_windows,
    normalize_loudness,
    seam_score,
    spectral_flux,
    beat_regularity,
    first_window_offset,
    librosa_tempo_windows,
    spread_of,
    tempo_readings,
    tempo_spread,
    tempo_windows,
)

SR = 22050
SEAMS = [2.0, 4.5, 7.0, 9.5, 12.0]


def noise(seconds=14.0, seed=0, amplitude=0.2):
    return (amplitude * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def test_spectral_flux_frames_and_onsets():
    audio = np.zeros(3 * SR, dtype=np.float32)
    audio[SR:] = tone(1000.0, 2.0, SR)  # a tone starting at 1.0 s
    flux = spectral_flux(audio, SR)
    assert flux.shape == (1 + audio.size // 512,)
    assert abs(int(np.argmax(flux)) - round(SR / 512)) <= 2  # the onset is found where it is


def test_seam_score_is_about_one_for_stationary_noise():
    audio = noise()
    score = seam_score(audio, SR, SEAMS)
    assert 0.8 < score < 1.2


def test_seam_score_is_high_when_seams_click():
    audio = noise(amplitude=0.05)
    for s in SEAMS:
        i = int(s * SR)
        audio[i : i + 40] = 0.9  # a click (a short DC step) at each seam
    clicked = seam_score(audio, SR, SEAMS)
    elsewhere = seam_score(audio, SR, [s + 1.0 for s in SEAMS])
    assert clicked > 1.5
    assert elsewhere < 1.1


def test_seam_score_sees_a_level_jump_at_a_plain_concatenation():
    quiet, loud = noise(3.0, 1, 0.02), noise(3.0, 2, 0.3)
    audio = np.concatenate([quiet, loud, quiet, loud, quiet])
    assert seam_score(audio, SR, [3.0, 9.0]) > 2.0  # the quiet -> loud joins


def test_seam_score_accepts_torch_and_rejects_seams_outside_the_clip():
    audio = torch.from_numpy(noise(4.0))
    assert seam_score(audio, SR, [1.0, 2.0]) == pytest.approx(seam_score(audio.numpy(), SR, [1.0, 2.0]))
    with pytest.raises(ValueError, match="outside the clip"):
        seam_score(audio, SR, [10.0])
    with pytest.raises(ValueError, match="at least one seam"):
        seam_score(audio, SR, [])


def test_loudness_matches_torchaudio_and_a_known_level():
    sine = tone(1000.0, 5.0, SR, amplitude=1.0)
    assert loudness(sine, SR) == pytest.approx(float(AF.loudness(torch.from_numpy(sine)[None], SR)))
    # a full-scale 1 kHz sine reads about -3 LUFS (K-weighting is ~+0.7 dB at 1 kHz, minus 0.691)
    assert -3.5 < loudness(sine, SR) < -2.0
    assert loudness(np.zeros(SR, dtype=np.float32), SR) == -math.inf


def test_loudness_spread_steady_tone_is_zero_and_level_jumps_are_not():
    steady = tone(440.0, 24.0, SR, amplitude=0.3)
    assert loudness_spread(steady, SR) < 0.05
    assert abs(loudness_drift(steady, SR)) < 0.05
    gains = np.repeat(np.array([1.0, 0.5, 1.0, 0.5, 1.0, 0.5], dtype=np.float32), 4 * SR)  # +-6 dB every 4 s
    jumpy = steady * gains
    assert loudness_spread(jumpy, SR) == pytest.approx(3.0, abs=0.2)  # std of +-3 LU around the mean
    assert loudness_range(jumpy, SR) == pytest.approx(6.0, abs=0.3)


def test_loudness_drift_is_the_slope_in_lu_per_minute():
    steady = tone(440.0, 24.0, SR, amplitude=0.3)
    db_per_window = np.repeat(np.arange(6, dtype=np.float32), 4 * SR)  # +1 dB every 4 s = +15 LU/min
    rising = steady * 10 ** (db_per_window / 20)
    assert loudness_drift(rising, SR) == pytest.approx(15.0, abs=0.5)
    assert loudness_drift(rising[::-1].copy(), SR) == pytest.approx(-15.0, abs=0.5)


def test_loudness_windows_leave_out_silence_and_the_partial_window():
    audio = np.concatenate([tone(440.0, 8.0, SR, 0.3), np.zeros(4 * SR, np.float32), tone(440.0, 5.0, SR, 0.3)])
    values = loudness_windows(audio, SR, window_seconds=4.0)
    assert values.shape == (4,)  # 17 s -> four whole 4 s windows
    assert torch.isnan(values[2]) and torch.isfinite(values[[0, 1, 3]]).all()
    assert loudness_spread(audio, SR) < 0.05  # the silent window does not count as a level change
    with pytest.raises(ValueError, match="shorter than one"):
        loudness_windows(audio[: SR], SR)


def test_normalize_loudness_hits_the_target_and_respects_the_peak_ceiling():
    quiet = torch.from_numpy(noise(6.0, amplitude=0.01))
    out = normalize_loudness(quiet, SR, target_lufs=-20.0, peak_ceiling=0.99)
    assert loudness(out, SR) == pytest.approx(-20.0, abs=0.1)
    # a peaky signal: the target would clip it, the ceiling wins
    peaky = torch.from_numpy(noise(6.0, amplitude=0.001))
    peaky[SR] = 0.5
    out = normalize_loudness(peaky, SR, target_lufs=-10.0, peak_ceiling=0.89)
    assert float(out.abs().max()) == pytest.approx(0.89, abs=1e-5)
    # batches get one gain per clip; silence stays silence; short clips work; never NaN
    batch = torch.stack([quiet, torch.zeros_like(quiet)])
    out = normalize_loudness(batch, SR)
    assert out.shape == batch.shape and torch.equal(out[1], torch.zeros_like(quiet))
    short = normalize_loudness(torch.from_numpy(noise(0.1, amplitude=0.01)), SR)
    assert torch.isfinite(short).all() and 0.01 < float(short.abs().max()) <= 0.89


# ---- tempo and key -----------------------------------------------------------------------------
def click_track(bpm_and_seconds, seed=0, sample_rate=SR):
    """Noise bursts (20 ms decay) on every beat; [(bpm, seconds), ...] played one after another."""
    rng = np.random.default_rng(seed)
    parts = []
    for bpm, seconds in bpm_and_seconds:
        part = np.zeros(int(seconds * sample_rate), np.float32)
        burst = (0.5 * rng.standard_normal(400) * np.exp(-np.arange(400) / 80)).astype(np.float32)
        for beat in np.arange(0.0, seconds, 60.0 / bpm):
            i = int(beat * sample_rate)
            part[i : i + 400] += burst[: part.size - i]
        parts.append(part)
    return np.concatenate(parts)


def test_a_click_track_at_one_tempo_has_no_tempo_spread():
    audio = click_track([(100, 20.0)])
    tempos = tempo_windows(audio, SR)
    assert tempos.shape == (4,)  # 20 s -> four 5 s windows
    np.testing.assert_allclose(tempos, 100.0, rtol=0.01)
    assert tempo_spread(audio, SR) < 1.0  # percent


def test_a_tempo_change_halfway_spreads_and_octave_errors_do_not():
    changing = click_track([(100, 10.0), (140, 10.0)])
    tempos = tempo_windows(changing, SR)
    np.testing.assert_allclose(tempos, [100, 100, 140, 140], rtol=0.01)
    assert tempo_spread(changing, SR) == pytest.approx(100 * np.log2(1.4) / 2, abs=1.0)  # 24 %
    # half/double-tempo readings are folded onto the median window's estimate: no spread
    assert np.allclose(fold_octaves(np.log2([80.0, 160.0, 82.0, 41.0]), np.log2(80.0)),
                       np.log2([80.0, 80.0, 82.0, 82.0]))


def test_tempo_needs_two_windows_with_onsets():
    with pytest.raises(ValueError, match="two 5 s windows"):
        tempo_spread(click_track([(100, 9.0)]), SR)  # one whole window
    steady = tone(440.0, 12.0, SR, amplitude=0.3)  # no onsets: no tempo, not 120 bpm
    assert np.isnan(tempo_windows(steady, SR)).all()
    with pytest.raises(ValueError, match="shorter than one"):
        tempo_windows(steady[:SR], SR)


def test_librosa_reads_the_same_click_tempi_and_spread_as_ours():
    changing = click_track([(100, 10.0), (140, 10.0)])
    np.testing.assert_allclose(librosa_tempo_windows(changing, SR), [100, 100, 140, 140], rtol=0.02)
    steady = click_track([(137, 20.0)])
    theirs = librosa_tempo_windows(steady, SR)
    np.testing.assert_allclose(theirs, 137.0, rtol=0.02)  # 8 ms hop: no 32 ms lag grid (133.9 / 144.2)
    assert spread_of(theirs) < 1.0
    assert np.isnan(librosa_tempo_windows(tone(440.0, 12.0, SR, amplitude=0.0), SR)).all()  # silence


def test_the_first_window_offset_says_when_a_clip_starts_at_another_tempo():
    assert first_window_offset(np.array([100.0, 100.0, 100.0])) == 0.0
    assert first_window_offset(np.array([50.0, 100.0, 100.0, 101.0])) == pytest.approx(0.0, abs=1e-9)  # an octave
    assert first_window_offset(np.array([110.0, 78.0, 78.0, 78.0])) == pytest.approx(100 * (110 / 78 - 1), rel=1e-6)  # issue 28, clip 1
    assert np.isnan(first_window_offset(np.array([np.nan, 100.0, 100.0])))
    start_fast = click_track([(110, 5.0), (78, 20.0)])
    readings = tempo_readings(start_fast, SR)
    assert readings["first_window_percent"] > 4.0 and readings["librosa_first_window_percent"] > 4.0
    assert readings["tempo_bpm"][1:] == pytest.approx([78.0] * 4, rel=0.02)


def test_beat_regularity_of_a_metronome_and_of_a_drifting_pulse():
    assert beat_regularity(click_track([(120, 20.0)]), SR) < 0.03  # its 23 ms frames: a metronome reads ~0.02
    rng = np.random.default_rng(3)  # every beat moved by up to +-60 ms: an unsteady player
    audio = np.zeros(20 * SR, np.float32)
    for beat in np.arange(0.5, 19.5, 0.5):
        i = int((beat + rng.uniform(-0.06, 0.06)) * SR)
        audio[i:i + 400] += (0.5 * np.exp(-np.arange(400) / 80)).astype(np.float32)
    assert beat_regularity(audio, SR) > 0.05
    assert np.isnan(beat_regularity(np.zeros(5 * SR, np.float32), SR))


def test_a_fade_out_drifts_down_and_a_fade_in_up():
    audio = click_track([(120, 24.0)])
    fade = np.linspace(1.0, 0.1, audio.size, dtype=np.float32)  # -20 dB over 24 s
    assert loudness_drift(audio * fade, SR) < -20.0  # LU per minute
    assert loudness_drift(audio * fade[::-1], SR) > 20.0
    assert abs(loudness_drift(audio, SR)) < 1.0


def chord_progression(key_semitones, chords=8, seconds_per_chord=1.25):
    """I IV V I vi ii V I in major, from C4 + key_semitones: decaying three-partial notes."""
    t = np.arange(math.ceil(seconds_per_chord * SR)) / SR
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-1.5 * t)
    steps = [(0, (0, 4, 7)), (5, (0, 4, 7)), (7, (0, 4, 7)), (0, (0, 4, 7)),
             (9, (0, 3, 7)), (2, (0, 3, 7)), (7, (0, 4, 7)), (0, (0, 4, 7))]
    out = []
    for i in range(chords):
        root, intervals = steps[i % len(steps)]
        freqs = [261.63 * 2 ** ((key_semitones + root + k) / 12) for k in intervals]
        out.append(sum(0.2 / h * np.sin(2 * np.pi * f * h * t) for f in freqs for h in (1, 2, 3)) * envelope)
    return np.concatenate(out).astype(np.float32)


def test_key_consistency_one_key_against_a_modulation_to_a_distant_key():
    one_key = chord_progression(0, chords=16)  # 20 s in C major
    modulating = np.concatenate([chord_progression(0), chord_progression(6)])  # C major, then F# major
    steady, moved = key_consistency(one_key, SR), key_consistency(modulating, SR)
    assert steady > 0.9
    assert moved < 0.5
    rows = chroma_windows(modulating, SR)
    assert rows.shape == (4, 12) and np.allclose(rows.sum(axis=1), 1.0)
    # C (pitch class 0) is strong in the C major half and weak in the F# major half
    assert rows[0, 0] > 3 * rows[3, 0]
    with pytest.raises(ValueError, match="pitched"):
        key_consistency(noise(12.0), SR)  # flat noise has no pitch content


def test_loudness_target_and_ceiling_are_defined_once():
    """sample.py's defaults are metrics' constants, and normalize_loudness's defaults use them."""
    from audiodiff import metrics, sample

    assert sample.DEFAULT_TARGET_LUFS is metrics.DEFAULT_TARGET_LUFS == -16.0
    assert sample.DEFAULT_PEAK_CEILING is metrics.DEFAULT_PEAK_CEILING == 0.89
    quiet = torch.from_numpy(tone(220.0, 4.0, 22050, amplitude=0.05))
    level = loudness(normalize_loudness(quiet, 22050), 22050)
    assert level == pytest.approx(metrics.DEFAULT_TARGET_LUFS, abs=0.1)
    spiky = quiet.clone()
    spiky[22050] = 1.0  # one click 20x the tone: -16 LUFS would lift it far past the ceiling
    peak = float(normalize_loudness(spiky, 22050).abs().max())
    assert peak == pytest.approx(metrics.DEFAULT_PEAK_CEILING, abs=1e-3)


def test_spectral_flatness_separates_a_tone_from_noise_and_ignores_silence():
    sr = 22050
    t = np.arange(3 * sr) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    noise = np.random.default_rng(0).standard_normal(3 * sr) * 0.1
    assert metrics.spectral_flatness(tone, sr) < 1e-4
    assert 0.3 < metrics.spectral_flatness(noise, sr) < 0.8  # a periodogram of white noise: ~e^-0.577
    half_silent = np.concatenate([tone, np.zeros(3 * sr)])
    assert metrics.spectral_flatness(half_silent, sr) == pytest.approx(metrics.spectral_flatness(tone, sr), rel=0.5)
    # the level does not matter: the clip is read at peak 1
    assert metrics.spectral_flatness(noise * 0.01, sr) == pytest.approx(metrics.spectral_flatness(noise, sr), rel=1e-6)
    with pytest.raises(ValueError):
        metrics.spectral_flatness(np.zeros(sr), sr)


def test_harmonic_share_is_high_for_held_notes_and_low_for_clicks():
    sr = 16000
    t = np.arange(2 * sr) / sr
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    clicks = np.zeros(2 * sr)
    clicks[:: sr // 8] = 1.0
    assert metrics.harmonic_share(chord, sr) > 0.9
    assert metrics.harmonic_share(clicks, sr) < 0.2
