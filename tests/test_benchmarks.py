"""benchmarks/long_clip.py and tempo.py: their --smoke modes run the whole code path on the tiny
preset, and their flags are checked before any work. codec_realism.py's round trip and flags are checked too. (The other benchmarks are measured by hand, not tested.)"""

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from audiodiff.cli import run

LONG_CLIP = Path(__file__).resolve().parents[1] / "benchmarks" / "long_clip.py"
TEMPO = Path(__file__).resolve().parents[1] / "benchmarks" / "tempo.py"


def _load(path=LONG_CLIP):
    spec = importlib.util.spec_from_file_location(f"{path.stem}_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_long_clip_smoke_prints_one_table_and_a_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing may be written where the user runs it, beyond temporary folders
    _load().main(["--smoke"])
    out = capsys.readouterr().out
    table = out[out.index("tempo %"):].splitlines()
    rows = {}
    for line in table[1:]:
        cells = re.split(r"\s{2,}", line.strip())  # label, 11 measures, note
        if len(cells) == 13:
            rows[cells[0].split()[0]] = cells
    assert set(rows) == {"smoke", "reference", "real", "codec"}
    for name in ("smoke", "reference"):  # generated rows: every measure (key is "-" for a 2-step model's noise)
        tempo, key, drift, abs_drift, seam, flatness, harmonic, ratio, realism, clip_realism, real_time = rows[name][1:12]
        assert 0 < float(flatness) < 1 and 0 <= float(harmonic) <= 1
        assert re.fullmatch(r"[0-9.]+x", real_time) and float(real_time[:-1]) > 0
        assert float(seam) > 0 and float(ratio) > 0 and float(realism) > 0 and float(clip_realism) > 0
        assert tempo == "-" or float(tempo) >= 0
        assert re.fullmatch(r"[+-][0-9.]+", drift) and float(abs_drift) >= abs(float(drift)) - 0.005
    real = rows["real"]
    assert float(real[1]) < 5.0  # built-in jazz holds one tempo
    assert 0.5 < float(real[2]) <= 1.0  # and one key
    assert real[5] == "-" and real[8:12] == ["-"] * 4  # no seams, no model
    assert 0 < float(real[6]) < 0.05 and float(real[7]) > 0.3  # built-in jazz is tonal
    assert real[12].startswith("3 held-out tracks, first 10.5 s")  # 25 % of 10 whole recordings
    codec = rows["codec"]  # the same tracks through the codec alone: tonality only
    assert codec[1:6] == ["-"] * 5 and codec[8:12] == ["-"] * 4 and float(codec[6]) >= float(real[6]) * 0.8
    summary = dict(pair.split(": ") for pair in out.strip().splitlines()[-1].split(", "))
    for name in ("tempo_spread_percent", "loudness_drift_lu_per_min", "seam", "genre_ratio", "realism", "clip_realism",
                 "time_vs_real_time", "speedup_vs_reference", "real_tempo_spread_percent", "flatness", "real_flatness",
                 "codec_floor_flatness", "harmonic_share", "flatness_3_vs_2_steps"):
        assert name in summary
    assert summary["time_vs_real_time"].endswith("x")
    assert float(summary["real_tempo_spread_percent"]) == pytest.approx(float(real[1]), abs=0.05)
    assert float(summary["codec_floor_flatness"]) == pytest.approx(float(codec[6]), abs=5e-5)
    assert "DDIM 2 steps" in out and "DDIM 3 steps" in out and summary["flatness_3_vs_2_steps"].endswith("x")
    assert list(tmp_path.iterdir()) == []


def test_long_clip_flags_are_checked_before_any_work(tmp_path, capsys):
    module = _load()
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    for args, message in [
        ([], "at least one fine-tuned run"),
        (["--smoke", "--run", str(not_a_run)], "--smoke makes its own"),
        (["--run", str(not_a_run)], "not a pipeline folder"),
        (["--smoke", "--device", "tpu:7"], "unknown device"),
    ]:
        with pytest.raises(ValueError, match=message):
            module.main(args)
    (not_a_run / "model_index.json").write_text("{}")
    with pytest.raises(ValueError, match="training_config.json"):
        module.main(["--run", str(not_a_run)])
    with pytest.raises(SystemExit) as exited:
        run(lambda: module.main(["--run", str(tmp_path / "nowhere")]))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        module.parse_args(["--help"])
    helped = capsys.readouterr().out
    for flag in ("--run", "--reference-run", "--seconds", "--clips", "--device", "--smoke"):
        assert flag in helped


def test_codec_realism_round_trip_keeps_whole_slices_and_refuses_unknown_presets(capsys):
    import torch

    from audiodiff.evaluate import AudioClip
    from audiodiff.pipeline import PRESETS

    spec = importlib.util.spec_from_file_location("codec_realism_benchmark", LONG_CLIP.parent / "codec_realism.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mel = PRESETS["tiny"].mel
    tone = torch.sin(torch.arange(int(2.5 * mel.slice_samples)) * 2 * torch.pi * 440 / mel.sample_rate) * 0.3
    back = module.round_trip(AudioClip("tone", tone, mel.sample_rate), mel)
    assert back.audio.shape == (2 * (mel.x_res - 1) * mel.hop_length,)  # two whole slices, (W - 1) hops each
    assert back.audio.abs().max() > 0.01  # sound, not silence
    with pytest.raises(SystemExit):
        module.main(["--presets", "huge"])
    assert "unknown preset(s) huge" in capsys.readouterr().err


def test_tempo_smoke_reports_every_clip_of_the_batch_by_both_estimators_and_the_checks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _load(TEMPO).main(["--smoke"])
    out = capsys.readouterr().out
    clips = [line.split() for line in out.splitlines() if line.startswith("seed0")]
    assert [c[0] for c in clips] == ["seed0_1", "seed0_2"]  # one batch of two: every clip, not a median
    for cells in clips:
        ours, librosa = " ".join(cells[10:]).split(" / ")  # after the clip, 8 measures and how far beats moved
        assert len(ours.split()) == len(librosa.split()) == 2  # two 5 s windows of a 10.5 s clip, each estimator
        assert cells[6] == "-" or 0 <= float(cells[6]) < 1  # beat regularity
    verdicts = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 6 and any("librosa" in v for v in verdicts)
    assert list(tmp_path.iterdir()) == []


def test_tempo_checks_meet_a_limit_at_the_limit_and_fail_past_it():
    from audiodiff.metrics import first_window_offset

    module = _load(TEMPO)
    exact = first_window_offset(np.array([150.0, 156.25, 156.25, 156.25]))  # librosa's whole lags: 4 % exactly
    row = dict(tempo_spread_percent=1.0, librosa_tempo_spread_percent=1.0, first_window_percent=1.0,
               librosa_first_window_percent=exact, beat_regularity=0.03)
    assert exact > 4.0 and all(line.startswith("PASS") for line in module.checks([row]))  # float rounding, not 4.0 %
    row["librosa_first_window_percent"] = 4.01
    assert [line.startswith("PASS") for line in module.checks([row])] == [True] * 4 + [False, True]


@pytest.mark.parametrize("argv, message", [([], "give --run"), (["--smoke", "--run", "x"], "give --run"),
                                            (["--run", "x", "--seconds", "5"], "at least 10")])
def test_tempo_refuses_bad_flags_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        run(lambda: _load(TEMPO).main(argv))
    assert exc.value.code == 2 and message in capsys.readouterr().err


DECODER = Path(__file__).resolve().parents[1] / "benchmarks" / "decoder.py"


def test_decoder_benchmark_measures_both_starts_and_draws_them_without_overwriting(tmp_path):
    """benchmarks/decoder.py on a 12 s chord with upper partials: the distance is zero for the
    music itself and for a louder copy, the learned start is nearer, the picture never replaces a file."""
    from PIL import Image

    from audiodiff.inverter import bundled
    from audiodiff.mel import MelConfig

    if bundled() is None:
        pytest.skip("no shipped inverter in this checkout")
    bench = _load(DECODER)
    mel = MelConfig(x_res=168, y_res=64, sample_rate=16000, n_fft=1024, hop_length=384)
    t = np.arange(12 * 16000) / 16000
    chord = sum(0.3 / h * np.sin(2 * np.pi * f * h * t) for f in (196.0, 246.9, 293.7) for h in range(1, 13) if f * h < 7900)
    audio = torch_tensor(chord * (0.6 + 0.4 * np.cos(2 * np.pi * 1.5 * t)))
    power = bench._stft(audio[None], mel).abs().square()[0]
    assert bench.spectral_distance(power, power) == 0.0 and bench.spectral_distance(power, 4 * power) < 1e-4
    row = bench.measure_clip(audio, mel)
    summary = bench.summarise([row])
    assert summary["learned_magnitudes_db"] < summary["smooth_magnitudes_db"]
    assert "learned start" in bench.format_table("chord", summary, 1)
    picture = bench.write_picture(tmp_path / "look.png", [("chord", row)], mel.sample_rate)
    assert Image.open(picture).size == (600, 3 * 152)
    with pytest.raises(FileExistsError):
        bench.write_picture(picture, [("chord", row)], mel.sample_rate)


def torch_tensor(values):
    import torch

    return torch.from_numpy(np.asarray(values, dtype=np.float32))
