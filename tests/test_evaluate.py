"""Evaluation: the Fréchet distance and its features, reports on folders, before/after, the script.

Audio is made in the test: tones, noise and short clips of the built-in genre set at 16 kHz.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiodiff.audio import write_wav
from audiodiff.evaluate import (
    EvaluationError,
    EvaluationRequest,
    SplitSettings,
    compare_models,
    evaluate_folder,
    format_comparison,
    format_report,
    save_report,
)
from audiodiff.features import (
    FEATURE_NAMES,
    HandcraftedFeatures,
    Standardizer,
    TorchScriptEmbedding,
    audio_features,
    frechet_distance,
)
from audiodiff.mel import MelConfig

SR = 16000
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"
SHORT = HandcraftedFeatures(window_seconds=1.0, hop_seconds=0.5)  # short windows for short test clips


def tones(count, seed, octave=0.0, seconds=3.0, noise=0.0):
    """`count` clips of a random note in one octave (shifted by `octave`), with a slow tremolo
    and optional white noise, so the clips of a set differ from each other."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    clips = []
    for _ in range(count):
        freq = 220.0 * 2 ** (octave + rng.uniform(0, 1))
        tremolo = 0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(1, 4) * t + rng.uniform(0, 6))
        clip = 0.3 * tremolo * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)
        clips.append(clip.astype(np.float32))
    return clips


def features_of(clips, extractor=SHORT):
    return np.concatenate([extractor(torch.from_numpy(c), SR).numpy() for c in clips])


# ---- the distance ----------------------------------------------------------------------------------
def test_frechet_distance_of_one_dimensional_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 2.0, (400, 1)), rng.normal(-0.5, 0.5, (300, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(a, b, ridge=0.0) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_zero_for_identical_sets_symmetric_and_growing_with_a_shift():
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(6, 6))
    a = rng.normal(size=(200, 6)) @ mixing  # correlated features
    b = rng.normal(size=(150, 6)) @ mixing * 1.3 + 0.2
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    shifted = [frechet_distance(a, a + shift) for shift in (0.5, 1.0, 2.0)]
    assert shifted == pytest.approx([6 * 0.25, 6 * 1.0, 6 * 4.0], rel=1e-6)  # only the means move: |shift|^2 * D


def test_frechet_distance_is_finite_when_covariances_are_rank_deficient():
    rng = np.random.default_rng(2)
    few = rng.normal(size=(3, 40))  # fewer rows than features
    constant = np.ones((10, 40))  # zero covariance
    assert math.isfinite(frechet_distance(few, constant)) and frechet_distance(few, constant) > 0
    assert frechet_distance(constant, constant) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="different widths"):
        frechet_distance(few, np.ones((4, 3)))


def test_standardizer_uses_the_reference_statistics_and_keeps_constant_features():
    reference = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaler = Standardizer.fit(reference)
    np.testing.assert_allclose(scaler(reference), [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(scaler(np.array([[2.0, 7.0]])), [[0.0, 2.0]])  # std 0 -> unit kept


# ---- the features ----------------------------------------------------------------------------------
def test_features_have_one_row_per_window_and_are_finite_on_silence():
    clip = tones(1, 0, seconds=10.0)[0]
    assert audio_features(clip, SR, window_seconds=4.0, hop_seconds=2.0).shape == (4, len(FEATURE_NAMES))
    features = audio_features(torch.from_numpy(clip), SR)  # 2 s windows every 1 s (62 frames of 16 ms)
    assert features.shape == (9, len(FEATURE_NAMES))
    short = audio_features(np.zeros(SR, dtype=np.float32), SR)  # shorter than a window: one window
    assert short.shape == (1, len(FEATURE_NAMES)) and torch.isfinite(short).all()
    with pytest.raises(ValueError, match="too short"):
        audio_features(np.zeros(SR // 4, dtype=np.float32), SR)
    # the clip's level is left to the loudness report: features ignore it
    quiet = audio_features(torch.from_numpy(clip * 0.05), SR)
    np.testing.assert_allclose(quiet.numpy(), features.numpy(), rtol=0.02, atol=1e-3)  # float noise in empty bands
    # the same clip at another sample rate describes (nearly) the same
    from audiodiff.audio import resample

    at_22k = audio_features(resample(torch.from_numpy(clip), SR, 22050), 22050)
    two_octaves_up = audio_features(torch.from_numpy(tones(1, 9, 2.0, 10.0)[0]), SR)
    assert frechet_distance(at_22k, features) < 0.05 * frechet_distance(features, two_octaves_up)


def test_distance_on_audio_grows_with_the_shift_and_is_finite_on_silence():
    base = features_of(tones(10, 0))
    scaler = Standardizer.fit(base)
    same = frechet_distance(scaler(base), scaler(features_of(tones(10, 1))))
    octave = frechet_distance(scaler(base), scaler(features_of(tones(10, 1, octave=1.0))))
    two_octaves = frechet_distance(scaler(base), scaler(features_of(tones(10, 1, octave=2.0))))
    noisy = frechet_distance(scaler(base), scaler(features_of(tones(10, 1, noise=0.3))))
    assert same < 0.5 * octave and octave < two_octaves
    assert noisy > 2 * same
    silence = features_of([np.zeros(3 * SR, dtype=np.float32)] * 3)
    assert math.isfinite(frechet_distance(scaler(base), scaler(silence)))
    assert frechet_distance(scaler(silence), scaler(silence)) == pytest.approx(0.0, abs=1e-6)


def test_halves_of_a_synthetic_genre_are_far_closer_than_other_genres():
    from audiodiff.synthetic import GENRES, synthetic_clips

    extractor = HandcraftedFeatures(window_seconds=2.0, hop_seconds=1.0)
    per_genre = {g: [features_of([c.render(SR)], extractor) for c in synthetic_clips(12, 6.0, genres=[g])] for g in GENRES}
    scaler = Standardizer.fit(np.concatenate([np.concatenate(v) for v in per_genre.values()]))
    for genre, clips in per_genre.items():
        halves = frechet_distance(scaler(np.concatenate(clips[0::2])), scaler(np.concatenate(clips[1::2])))
        whole = scaler(np.concatenate(clips))
        others = [frechet_distance(whole, scaler(np.concatenate(per_genre[g]))) for g in GENRES if g != genre]
        assert halves < 0.5 * min(others), (genre, halves, others)


# ---- a learned embedding --------------------------------------------------------------------------
class _TinyEmbedding(torch.nn.Module):
    """(B, T) audio at 8 kHz -> (B, 3): mean level, RMS, zero-crossing rate (a pitch proxy)."""

    def __init__(self):
        super().__init__()
        self.sample_rate = 8000

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        crossings = (audio[:, 1:] * audio[:, :-1] < 0).float().mean(dim=1)
        return torch.stack([audio.abs().mean(dim=1), audio.square().mean(dim=1).sqrt(), crossings * 100.0], dim=1)


def test_torchscript_embedding_replaces_the_features(tmp_path):
    path = tmp_path / "embedding.pt"
    torch.jit.save(torch.jit.script(_TinyEmbedding()), str(path))
    embedding = TorchScriptEmbedding(path, sample_rate=44100, window_seconds=1.0, hop_seconds=0.5)
    assert embedding.sample_rate == 8000  # the module's own rate wins over the argument
    rows = embedding(torch.from_numpy(tones(1, 0)[0]), SR)
    assert rows.shape == (5, 3)
    low, high = tones(1, 0)[0], tones(1, 0, octave=2.0)[0]
    assert embedding(torch.from_numpy(high), SR)[:, 2].mean() > 3 * embedding(torch.from_numpy(low), SR)[:, 2].mean()
    base = np.concatenate([embedding(torch.from_numpy(c), SR).numpy() for c in tones(6, 0)])
    same = np.concatenate([embedding(torch.from_numpy(c), SR).numpy() for c in tones(6, 1)])
    shifted = np.concatenate([embedding(torch.from_numpy(c), SR).numpy() for c in tones(6, 1, octave=2.0)])
    assert frechet_distance(base, shifted) > 10 * frechet_distance(base, same)

    with pytest.raises(EvaluationError, match="does not exist"):
        TorchScriptEmbedding(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a module")
    with pytest.raises(EvaluationError, match="not a TorchScript module"):
        TorchScriptEmbedding(tmp_path / "junk.pt")
    flat = tmp_path / "flat.pt"
    torch.jit.save(torch.jit.script(torch.nn.Flatten(0)), str(flat))  # returns (B*T,), not (B, D)
    with pytest.raises(EvaluationError, match=r"must map \(B, T\) audio to \(B, D\)"):
        TorchScriptEmbedding(flat)(torch.from_numpy(low), SR)


# ---- reports on folders ------------------------------------------------------------------------------
TINY_MEL = MelConfig(x_res=32, y_res=32, sample_rate=SR, n_fft=2048, hop_length=512)


def write_clips(folder, clips, prefix="clip"):
    folder.mkdir(parents=True, exist_ok=True)
    return [write_wav(folder / f"{prefix}{i}.wav", clip, SR) for i, clip in enumerate(clips)]


@pytest.fixture
def genre_dir(tmp_path):
    """DIR/tones, DIR/noisy, DIR/high: four 3 s tracks each."""
    root = tmp_path / "genres"
    write_clips(root / "tones", tones(4, 10))
    write_clips(root / "noisy", tones(4, 11, noise=0.3))
    write_clips(root / "high", tones(4, 12, octave=2.0))
    return root


@pytest.fixture
def generated_dir(tmp_path):
    """Generated-looking clips: two 9 s tone clips with sidecars (seams, Mel config), one without."""
    folder = tmp_path / "samples"
    paths = write_clips(folder, tones(3, 20, seconds=9.0))
    for path, seams in zip(paths[:2], ([2.5, 5.0, 7.5], [])):
        path.with_suffix(".json").write_text(json.dumps({"seam_seconds": seams, "mel": TINY_MEL.to_dict()}))
    return folder


def test_evaluate_folder_reports_every_measure(generated_dir, genre_dir, tmp_path):
    report = evaluate_folder(generated_dir, data_dir=genre_dir, genre="TONES", held_out=False, extractor=SHORT)
    assert report["reference"]["genre"] == "tones" and report["reference"]["clips"] == 4
    assert report["generated"]["clips"] == 3 and report["generated"]["windows"] == 3 * 17
    assert set(report["fd_generated_to_genre"]) == {"tones", "noisy", "high"}
    assert report["fd"] == report["fd_generated_to_genre"]["tones"]
    assert report["closest_genre"] == "tones"
    assert report["fd_same_genre_halves"] < min(report["fd_reference_to_genre"].values())
    assert "alternate clips" in report["halves"]
    files = {row["name"]: row for row in report["long_clips"]["files"]}
    assert files["clip0.wav"]["seams"] == 3 and 0.3 < files["clip0.wav"]["seam_score"] < 3
    assert files["clip1.wav"]["seam_note"] == "a single slice: no seams"
    assert "no JSON sidecar" in files["clip2.wav"]["seam_note"]
    assert report["long_clips"]["seam_scored_files"] == 1
    assert report["long_clips"]["loudness_spread_lu_mean"] is not None  # 9 s = two 4 s windows
    codec = report["codec"]
    assert codec["mel"] == TINY_MEL.to_dict()  # the generator's codec, from the sidecars
    assert codec["slices"] == 8 and 0 < codec["spectral_convergence_mean"] < 0.5
    assert 0 < codec["log_spectral_distance_db_mean"] < 10

    text = format_report(report)
    assert "Frechet distance, generated vs reference" in text and "<- closest" in text and "clip2" not in text
    path = save_report(report, tmp_path / "report.json")
    again = save_report(report, tmp_path / "report.json")
    assert again.name == "report-1.json"  # never overwrites
    saved = json.loads(path.read_text())
    assert saved["fd"] == pytest.approx(report["fd"]) and saved["codec"]["slices"] == 8


def test_evaluate_folder_with_a_reference_folder_and_an_embedding(generated_dir, tmp_path):
    reference = tmp_path / "reference"
    write_clips(reference / "nested", tones(3, 30))  # searched recursively
    report = evaluate_folder(generated_dir, reference, extractor=SHORT)
    assert report["reference"]["clips"] == 3 and "fd_generated_to_genre" not in report
    assert report["fd"] >= 0 and report["fd_same_genre_halves"] >= 0

    path = tmp_path / "embedding.pt"
    torch.jit.save(torch.jit.script(_TinyEmbedding()), str(path))
    embedded = evaluate_folder(generated_dir, reference, extractor=TorchScriptEmbedding(path))
    assert embedded["features"]["kind"] == "torchscript" and embedded["fd"] != report["fd"]

    with pytest.raises(EvaluationError, match="not both"):
        evaluate_folder(generated_dir, reference, dataset="synthetic", genre="jazz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationError, match="no audio files"):
        evaluate_folder(tmp_path / "empty", reference)


def click_track(bpm_and_seconds, sample_rate=SR):
    """A 220 Hz note on every beat: [(bpm, seconds), ...] played one after another."""
    t = np.arange(int(0.3 * sample_rate)) / sample_rate
    note = (0.4 * np.sin(2 * np.pi * 220.0 * t) * np.exp(-12 * t)).astype(np.float32)
    parts = []
    for bpm, seconds in bpm_and_seconds:
        part = np.zeros(int(seconds * sample_rate), np.float32)
        for beat in np.arange(0.0, seconds, 60.0 / bpm):
            i = int(beat * sample_rate)
            part[i : i + note.size] += note[: part.size - i]
        parts.append(part)
    return np.concatenate(parts)


def test_long_clip_measures_next_to_real_clips_cut_to_the_same_length(tmp_path):
    generated = tmp_path / "samples"
    paths = write_clips(generated, [click_track([(100, 6.0), (140, 6.0)]), click_track([(90, 6.0), (135, 6.0)])])
    for path in paths:
        path.with_suffix(".json").write_text(json.dumps({"seam_seconds": [4.0, 8.0]}))
    reference = tmp_path / "reference"
    write_clips(reference, [click_track([(100, 30.0)]), click_track([(120, 30.0)]), click_track([(100, 8.0)])])
    report = evaluate_folder(generated, reference, extractor=SHORT, codec_slices=1)
    clips = report["long_clips"]
    drifting = clips["files"][0]
    assert drifting["tempo_bpm"] == [pytest.approx(100, rel=0.02), pytest.approx(140, rel=0.02)]  # 12 s: 2 windows
    assert clips["tempo_spread_percent_median"] > 15 and clips["tempo_scored_files"] == 2
    assert clips["key_consistency_mean"] > 0.9  # one note throughout
    real = clips["reference"]
    assert real["clips"] == 3 and real["seconds"] == pytest.approx(12.0)
    assert [row["seconds"] for row in real["files"]] == [12.0, 12.0, 8.0]  # cut to the generated length
    assert real["tempo_spread_percent_median"] < 2 and real["tempo_scored_files"] == 2
    assert real["files"][2]["tempo_note"] == "shorter than two 5 s windows"
    assert real["seam_score_mean"] is None and clips["seam_scored_files"] == 2
    assert clips["reference_loudness_spread_lu_mean"] == real["loudness_spread_lu_mean"]
    text = format_report(report)
    line = next(line for line in text.splitlines() if "tempo spread" in line)
    generated_value, real_value = (float(v) for v in line.split()[4:6])
    assert generated_value == pytest.approx(clips["tempo_spread_percent_median"], abs=0.05)
    assert real_value == pytest.approx(real["tempo_spread_percent_median"], abs=0.05)
    assert "key consistency" in text and "vs 3 real clips of the reference cut to 12 s" in text
    # tonality: a click track is percussive (short decaying notes), measured on both sides
    assert 0 < clips["flatness_median"] < 1 and clips["harmonic_share_median"] < real["harmonic_share_median"] + 0.2
    assert all("flatness" in row and "harmonic_share" in row for row in clips["files"] + real["files"])
    flat_line = next(line for line in text.splitlines() if "spectral flatness" in line)
    assert float(flat_line.split()[2]) == pytest.approx(clips["flatness_median"], abs=5e-5)


def test_held_out_reference_follows_the_trainer_split(generated_dir, genre_dir):
    from audiodiff.data import load_genre, split_validation
    from audiodiff.evaluate import genre_clips

    report = evaluate_folder(generated_dir, data_dir=genre_dir, genre="tones", extractor=SHORT, compare_genres=False)
    # 4 recordings (< 10): the trainer holds out the last part of each, so the reference is those parts
    data = load_genre("tones", TINY_MEL, data_dir=genre_dir, progress=False)
    trainer = split_validation(data.tracks, 0.1, seed=0, durations=data.durations, min_held_out_seconds=TINY_MEL.slice_seconds)
    assert trainer.held_out_by == "time_range"
    assert report["reference"]["clips"] == len(trainer.validation) == 4
    assert "held-out last part of each of 4 tracks" in report["reference"]["description"]
    clips, _ = genre_clips("tones", TINY_MEL, data_dir=genre_dir)
    for clip, track in zip(clips.clips, trainer.validation):
        assert clip.name == track.name
        assert clip.audio.numel() == round(track.end_seconds * TINY_MEL.sample_rate) - round(track.start_seconds * TINY_MEL.sample_rate)


def test_built_in_reference_is_the_trainers_held_out_tracks_of_the_pool():
    from audiodiff.data import load_genre, split_validation, track_audio
    from audiodiff.evaluate import genre_clips
    from audiodiff.synthetic import GENRES
    from audiodiff.train import FinetuneConfig

    split = SplitSettings(synthetic_pool=20, synthetic_seconds=3.0)
    assert (split.validation_fraction, split.seed) == (FinetuneConfig().validation_fraction, FinetuneConfig().seed)
    clips, labels = genre_clips("ROCK", TINY_MEL, dataset="synthetic", split=split)
    data = load_genre("rock", TINY_MEL, dataset="synthetic", synthetic_clips_per_genre=20, synthetic_seconds=3.0,
                      progress=False)  # the tracks a fine-tune on a set of 20 clips per genre sees
    held_out = split_validation(data.tracks, split.validation_fraction, seed=split.seed, durations=data.durations,
                                min_held_out_seconds=TINY_MEL.slice_seconds).validation
    assert held_out and [clip.name for clip in clips.clips] == [track.name for track in held_out]
    assert torch.equal(clips.clips[0].audio, track_audio(held_out[0], TINY_MEL))
    assert clips.genre == "rock" and labels == list(GENRES)
    assert clips.description == f"built-in synthetic set, genre rock, {len(held_out)} held-out of 20 tracks"


# ---- before / after -----------------------------------------------------------------------------------
@pytest.fixture
def after_model(tmp_path):
    """A 'fine-tuned' tiny pipeline: the tiny preset's weights, perturbed, with a run config."""
    from audiodiff.pipeline import build_preset, save_pipeline

    pipe = build_preset("tiny")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in pipe.unet.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    folder = save_pipeline(pipe, tmp_path / "runs" / "tones-run")
    (folder / "training_config.json").write_text(json.dumps({"validation_fraction": 0.5, "seed": 3}))
    return folder


def test_compare_models_on_tiny_pipelines(after_model, genre_dir):
    kwargs = dict(data_dir=genre_dir, clips=2, seconds=1.5, steps=1, seed=4, extractor=SHORT)
    result = compare_models("tiny", after_model, "tones", **kwargs)
    assert result["genre"] == "tones" and set(result["other_genres"]) == {"noisy", "high"}
    assert result["reference"]["split"] == {"validation_fraction": 0.5, "seed": 3}  # read from the run
    for role in ("before", "after"):
        model = result[role]
        assert set(model["fd_by_genre"]) == {"tones", "noisy", "high"}
        assert model["fd"] == model["fd_by_genre"]["tones"] > 0
        assert model["closest_genre"] == min(model["fd_by_genre"], key=model["fd_by_genre"].get)
        assert model["windows"] == 2 * 2  # 1.5 s clips, 1 s windows every 0.5 s
    assert result["ratio"] == pytest.approx(result["after"]["fd"] / result["before"]["fd"])
    assert result["ratio"] != pytest.approx(1.0)  # the weights differ, so the clips differ
    assert result["after_closest_genre"] == (result["after"]["closest_genre"] == "tones")
    assert result["goal_met"] == (result["ratio"] <= 0.7 and result["after_closest_genre"])
    assert any("sampling bias" in w for w in result["warnings"])  # one 3 s held-out track, 4 windows per model
    text = format_comparison(result)
    assert "ratio after/before" in text and "<- target" in text

    same = compare_models("tiny", "tiny", "tones", split=SplitSettings(0.5, 3), **kwargs)  # same model and seeds: same clips
    assert same["ratio"] == pytest.approx(1.0, abs=1e-9)
    # each row names the exact weights compared: the same preset twice, and the run's differ from it
    assert same["before"]["weights_sha256"] == same["after"]["weights_sha256"] == result["before"]["weights_sha256"]
    assert result["after"]["weights_sha256"] != result["before"]["weights_sha256"]
    assert same["before"]["fd"] == pytest.approx(result["before"]["fd"], rel=1e-9)  # deterministic
    with pytest.raises(EvaluationError, match="--dataset ID"):
        compare_models("tiny", "tiny", "tones", clips=1)


# ---- the script ---------------------------------------------------------------------------------------
def _script(args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(SCRIPT.parents[1])}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_flags_are_checked_before_any_work(generated_dir, tmp_path, capsys):
    script = _load_script()
    reference = str(tmp_path / "reference")
    for args, message in [
        (["--generated", str(generated_dir), "--before", "tiny", "--reference", reference], "choose one mode"),
        (["--before", "tiny", "--genre", "jazz", "--dataset", "synthetic"], "give both pipelines"),
        (["--before", "tiny", "--after", "tiny", "--genre", "jazz"], "--dataset ID or --data-dir DIR"),
        (["--generated", str(generated_dir), "--reference", reference, "--steps", "3"], "applies to --before/--after"),
        (["--generated", str(generated_dir), "--dataset", "synthetic"], "needs --genre"),
        (["--generated", str(generated_dir)], "needs a reference"),
    ]:
        with pytest.raises(EvaluationError, match=message):
            EvaluationRequest(**vars(script.parse_args(args))).check()
    compare = script.parse_args(["--before", "a", "--after", "b", "--genre", "g", "--data-dir", "d"])
    assert EvaluationRequest(**vars(compare)).check() == "compare"
    with pytest.raises(SystemExit):
        script.parse_args(["--generated", "x", "--seconds", "-1"])
    assert "must be a positive number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.parse_args(["--help"])
    helped = capsys.readouterr().out
    for flag in ("--generated", "--reference", "--dataset", "--data-dir", "--genre", "--before", "--after", "--clips",
                 "--seconds", "--seed", "--steps", "--output", "--embedding", "--device", "--all-tracks"):
        assert flag in helped


def test_script_as_a_user_runs_it(generated_dir, tmp_path):
    reference = tmp_path / "reference"
    write_clips(reference, tones(3, 30, seconds=9.0))
    done = _script(["--generated", str(generated_dir), "--reference", str(reference), "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Frechet distance, generated vs reference" in done.stdout
    written = tmp_path / "samples-evaluation.json"  # beside the generated folder
    assert f"report: {written}" in done.stdout
    report = json.loads(written.read_text())
    assert report["generated"]["clips"] == 3 and report["fd"] >= 0 and report["codec"]["slices"] > 0



def test_compare_models_refuses_work_beyond_the_limits_before_loading_anything(tmp_path):
    from audiodiff.generate import GenerationError
    from audiodiff.limits import LimitError

    missing = str(tmp_path / "no-such-model")  # loading it would fail: a refusal proves nothing was loaded
    kwargs = dict(dataset="synthetic", extractor=SHORT)
    with pytest.raises(LimitError, match=r"1000 clips of 10 s = 10000 s of audio, more than the limit of 600 s"):
        compare_models(missing, missing, "jazz", clips=1000, seconds=10.0, **kwargs)
    with pytest.raises(LimitError, match="batch size 100 is more than the limit of 64"):
        compare_models(missing, missing, "jazz", clips=200, seconds=1.0, batch_size=100, **kwargs)
    with pytest.raises(GenerationError, match="can't generate on device 'meta'"):
        compare_models(missing, missing, "jazz", clips=2, seconds=1.0, device="meta", **kwargs)


def test_script_checks_the_report_folder_before_any_work(generated_dir, tmp_path, monkeypatch):
    from audiodiff.generate import GenerationError

    from conftest import not_writable

    script = _load_script()

    def no_work(*args, **kwargs):
        raise AssertionError("evaluated before finding out the report can't be written")

    monkeypatch.setattr("audiodiff.evaluate.evaluate_folder", no_work)
    monkeypatch.setattr("audiodiff.evaluate.compare_models", no_work)
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    folder_mode = ["--generated", str(generated_dir), "--reference", str(tmp_path)]
    with pytest.raises(GenerationError, match="--output's folder .*a-file is a file, not a folder"):
        script.main([*folder_mode, "--output", str(a_file / "report.json")])
    with pytest.raises(GenerationError, match="is under .*a-file, which is a file"):
        script.main([*folder_mode, "--output", str(a_file / "sub" / "report.json")])
    for elsewhere in (a_file, tmp_path, tmp_path / "passwd"):  # /etc/passwd wrote /etc/passwd-1 (issue 25)
        with pytest.raises(ValueError, match="name a .json file"):
            script.main([*folder_mode, "--output", str(elsewhere)])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("a-file")) == ["a-file"]
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    with not_writable(run_folder):  # before/after: the report goes into the --after run's folder
        with pytest.raises(GenerationError, match="the report's folder .*run is not writable"):
            script.main(["--before", "tiny", "--after", str(run_folder), "--genre", "jazz", "--dataset", "synthetic"])
    assert a_file.read_text() == "mine" and not any(run_folder.iterdir())


def test_script_turns_a_user_error_into_one_line_and_exit_2(tmp_path, capsys):
    from audiodiff.cli import run

    script = _load_script()
    with pytest.raises(SystemExit) as exited:
        run(lambda: script.main(["--generated", str(tmp_path / "nowhere"), "--reference", str(tmp_path)]))
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {tmp_path / 'nowhere'} is not a folder of audio files"]


def test_long_clip_report_gives_the_size_of_drift_that_opposite_clips_would_cancel():
    from audiodiff.evaluate import AudioClip, long_clip_report

    rate, seconds = 16000, 16.0
    noise = torch.randn(int(rate * seconds), generator=torch.Generator().manual_seed(0)) * 0.1
    rising = noise * torch.logspace(-1, 0, noise.numel())  # +20 dB over the clip
    report = long_clip_report([AudioClip("up", rising, rate), AudioClip("down", rising.flip(0), rate)])
    up, down = (row["loudness_drift_lu_per_minute"] for row in report["files"])
    assert up > 30 and down < -30  # ~ +-20 dB over ~12 s between the first and last window centres
    assert abs(report["loudness_drift_lu_per_minute_mean"]) < 0.1 * abs(up)  # the signs cancel
    assert report["loudness_drift_abs_lu_per_minute_mean"] == pytest.approx((abs(up) + abs(down)) / 2)
