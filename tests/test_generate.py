"""generate(): files, names, metadata, the PNG round trip, model defaults, and the script as a user runs it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from audiodiff.sampling.beat import MAX_FIRST_SLICE_REDRAWS
from audiodiff.generate import (
    AXIS_HEIGHT,
    GenerationError,
    generate,
    png_to_audio,
    png_to_image,
    resolve_model,
    spectrogram_png,
)
from audiodiff.mel import MelConfig, mel_power
from audiodiff.pipeline import build_preset, save_pipeline
from audiodiff.sample import generate_long
from audiodiff.sampling.options import DEFAULT_DRAWS, FIRST_SLICE_RESTEER
from audiodiff.sampling.tonal import draw_step

from conftest import not_writable

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "generate.py"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_pipeline(build_preset("tiny", seed=0), tmp_path_factory.mktemp("models") / "model")


def run_generate(model_dir, output_dir, **kwargs):
    kwargs.setdefault("seconds", 1.5)
    kwargs.setdefault("steps", 2)
    kwargs.setdefault("name", "clip")
    messages = []
    paths = generate(str(model_dir), output_dir=output_dir, progress=False, log=messages.append, **kwargs)
    return paths, messages


def test_writes_wav_png_json(model_dir, tmp_path):
    paths, _ = run_generate(model_dir, tmp_path / "out", seed=4, scheduler="dpm")
    assert [p.name for p in paths] == ["clip.wav", "clip.png", "clip.json"]
    info = sf.info(paths[0])
    assert info.subtype == "PCM_16" and info.samplerate == 16000 and info.frames == 24000
    audio, _ = sf.read(paths[0], dtype="float32")
    assert np.isfinite(audio).all() and 0.01 < np.abs(audio).max() <= 0.9
    record = json.loads(paths[2].read_text())
    assert record["model"] == str(model_dir)
    assert (record["seed"], record["steps"], record["scheduler"], record["seconds"]) == (4, 2, "dpm", 1.5)
    assert record["overlap_seconds"] == pytest.approx(0.41)  # 40 % of the tiny model's 1.02 s slice
    assert record["samples"] == 24000 and record["sample_rate"] == 16000
    assert record["mel"] == build_preset("tiny").mel.to_dict()
    assert set(record["versions"]) == {"audiodiff", "torch", "diffusers"}
    assert record["versions"]["torch"] == torch.__version__
    assert record["files"] == {"wav": "clip.wav", "png": "clip.png"}
    assert record["torch_threads"] == torch.get_num_threads() and record["device"] == "cpu"  # what same-bytes needs


def test_never_overwrites_and_same_seed_same_bytes(model_dir, tmp_path):
    first, _ = run_generate(model_dir, tmp_path, seed=1)
    before = {p: p.read_bytes() for p in first}
    second, messages = run_generate(model_dir, tmp_path, seed=1)
    third, _ = run_generate(model_dir, tmp_path, seed=2)
    assert [p.name for p in second] == ["clip-1.wav", "clip-1.png", "clip-1.json"]
    assert [p.name for p in third] == ["clip-2.wav", "clip-2.png", "clip-2.json"]
    assert any("clip-1" in m for m in messages)
    assert all(p.read_bytes() == data for p, data in before.items())  # untouched
    assert first[0].read_bytes() == second[0].read_bytes()  # same seed: byte-identical WAV
    assert first[0].read_bytes() != third[0].read_bytes()


def test_batch_names_and_taken_names(model_dir, tmp_path):
    (tmp_path / "clip_2.png").write_bytes(b"someone else's")
    paths, _ = run_generate(model_dir, tmp_path, batch_size=2, seconds=0.5)
    assert [p.name for p in paths] == [f"clip-1_{i}.{ext}" for i in (1, 2) for ext in ("wav", "png", "json")]
    assert (tmp_path / "clip_2.png").read_bytes() == b"someone else's"
    a, _ = sf.read(paths[0])
    b, _ = sf.read(paths[3])
    assert len(a) == len(b) == 8000 and not np.array_equal(a, b)


def test_png_round_trip(model_dir, tmp_path):
    pipe = build_preset("tiny")
    seconds = 2.0
    clip = generate_long(pipe, seconds, seed=0, num_inference_steps=2, progress=False)
    samples = clip.audio.shape[-1]
    png = spectrogram_png(clip.image[0], pipe.mel, samples, tmp_path / "x.png")
    image, mel, read_samples = png_to_image(png)
    assert mel == pipe.mel and read_samples == samples
    assert image.shape == clip.image[:1].shape
    assert (image - clip.image[:1]).abs().max() <= 1 / 127.5 + 1e-6  # uint8 quantisation only
    audio, sample_rate = png_to_audio(png)
    assert sample_rate == 16000 and audio.shape == (samples,) and torch.isfinite(audio).all()
    # the PNG's audio sounds like the generated audio: same Mel spectrogram, up to a dB or two
    def db(x):
        return 10 * torch.log10(mel_power(x, pipe.mel).clamp_min(1e-8))

    a, b = db(audio), db(clip.audio[0])
    a, b = a - a.amax(), b - b.amax()
    assert (a - b).abs().clamp(max=80).mean() < 3.0


def test_png_layout_low_frequencies_at_the_bottom_with_a_time_axis(tmp_path):
    mel = MelConfig(x_res=64, y_res=16, sample_rate=8000, n_fft=256, hop_length=64)
    image = -torch.ones(1, 16, 300)
    image[:, 0] = 1.0  # the lowest mel band is loud
    path = spectrogram_png(image, mel, mel.frames_to_samples(300), tmp_path / "s.png")
    picture = np.asarray(Image.open(path))
    assert picture.shape == (16 + AXIS_HEIGHT, 300)
    assert (picture[15] == 255).all() and (picture[:15] == 0).all()  # bottom row of the spectrogram
    axis = picture[16:]
    assert (axis < 128).any() and (axis > 128).any()  # ticks and labels drawn on white
    with pytest.raises(GenerationError, match="no audiodiff spectrogram metadata"):
        Image.new("L", (4, 4)).save(tmp_path / "plain.png")
        png_to_image(tmp_path / "plain.png")


def test_default_model_is_the_latest_run_else_the_bundled_model_offline(model_dir, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    pipe, chosen = resolve_model(None, runs_dir=runs)  # offline (conftest) and no run: the bundled model, said so
    assert pipe.source == "bundled" and "can't be reached" in chosen and "scripts/finetune.py" in chosen
    from audiodiff import pipeline

    monkeypatch.setattr(pipeline, "BUNDLED_DIR", tmp_path / "no-bundled-model")
    with pytest.raises(GenerationError, match="scripts/finetune.py"):
        resolve_model(None, runs_dir=runs)  # and without it, an error that says what to run
    monkeypatch.undo()
    save_pipeline(build_preset("tiny", seed=1), runs / "jazz-1")
    pipe, chosen = resolve_model(None, runs_dir=runs)
    assert Path(pipe.source) == runs / "jazz-1" and "latest fine-tuned run" in chosen


def test_bad_values_are_clear_errors(model_dir, tmp_path):
    with pytest.raises(GenerationError, match="positive"):
        run_generate(model_dir, tmp_path, seconds=0)
    with pytest.raises(GenerationError, match="shorter than one slice"):
        run_generate(model_dir, tmp_path, overlap_seconds=2.0)
    with pytest.raises(GenerationError, match="at least 1"):
        run_generate(model_dir, tmp_path, steps=0)
    with pytest.raises(GenerationError, match="plain file name"):
        run_generate(model_dir, tmp_path, name="../escape")
    assert not any(tmp_path.iterdir())  # nothing written on a refused request


class _NoModel(Exception):
    """Raised instead of loading a model: a check that comes first never gets here."""


@pytest.fixture
def no_model_load(monkeypatch):
    from audiodiff import generate as generate_module

    def refuse(*args, **kwargs):
        raise _NoModel

    monkeypatch.setattr(generate_module, "resolve_model", refuse)


def test_requests_beyond_the_limits_are_refused_before_the_model_loads(tmp_path, monkeypatch, no_model_load):
    from audiodiff.limits import LimitError, RequestLimits

    monkeypatch.delenv("AUDIODIFF_MAX_SECONDS", raising=False)
    monkeypatch.delenv("AUDIODIFF_MAX_BATCH_SIZE", raising=False)
    out = tmp_path / "out"
    with pytest.raises(LimitError, match=r"limit of 600 s per request .*AUDIODIFF_MAX_SECONDS"):
        generate("tiny", 1e9, output_dir=out, log=None)
    with pytest.raises(LimitError, match=r"8 clips of 90 s = 720 s"):
        generate("tiny", 90, batch_size=8, output_dir=out, log=None)
    with pytest.raises(LimitError, match=r"batch size 10000 .* limit of 64 .*AUDIODIFF_MAX_BATCH_SIZE=10000"):
        generate("tiny", 1, batch_size=10000, output_dir=out, log=None)
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros(16000 * 590, dtype=np.int16), 16000)  # 590 s: continued by 30 s is 620 s of output
    with pytest.raises(LimitError, match="620 s"):
        generate("tiny", None, init_audio=song, output_dir=out, log=None)
    with pytest.raises(_NoModel):  # within the defaults: the request goes on to load its model
        generate("tiny", 600, output_dir=out, log=None)
    with pytest.raises(_NoModel):
        generate("tiny", 9, batch_size=64, output_dir=out, log=None)
    monkeypatch.setenv("AUDIODIFF_MAX_SECONDS", "1200")  # "for users who really want 20 minutes"
    with pytest.raises(_NoModel):
        generate("tiny", 1200, output_dir=out, log=None)
    assert RequestLimits.from_env() == RequestLimits(max_seconds=1200.0, max_batch_size=64)
    monkeypatch.setenv("AUDIODIFF_MAX_BATCH_SIZE", "lots")
    with pytest.raises(LimitError, match="AUDIODIFF_MAX_BATCH_SIZE must be a positive number, got 'lots'"):
        RequestLimits.from_env()
    assert not out.exists()


def test_output_location_name_and_device_are_checked_before_any_work(tmp_path, no_model_load):
    a_file = tmp_path / "taken.txt"
    a_file.write_text("mine")
    for output_dir, message in [(a_file, "is a file, not a folder"), (a_file / "sub", "is under .*taken.txt, which is a file")]:
        with pytest.raises(GenerationError, match=message):
            generate("tiny", 1, output_dir=output_dir, log=None)
    with pytest.raises(GenerationError, match="300 bytes long"):
        generate("tiny", 1, output_dir=tmp_path, name="n" * 300, log=None)
    with pytest.raises(GenerationError, match="can't generate on device 'meta'"):
        generate("tiny", 1, output_dir=tmp_path, device="meta", log=None)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    with not_writable(read_only):
        for output_dir in (read_only, read_only / "new"):
            with pytest.raises(GenerationError, match="is not writable"):
                generate("tiny", 1, output_dir=output_dir, log=None)
    with pytest.raises(_NoModel):  # a folder that does not exist yet is fine: it is made after the work
        generate("tiny", 1, output_dir=tmp_path / "new" / "deeper", log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["read-only", "taken.txt"] and a_file.read_text() == "mine"


def test_too_short_or_too_many_steps_are_refused_before_sampling(model_dir, tmp_path, monkeypatch):
    from audiodiff.sampling import loop as sample_module  # where every job's slices are sampled

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled a request that should have been refused")

    monkeypatch.setattr(sample_module, "sample", no_sampling)
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros(16000, dtype=np.int16), 16000)
    out = tmp_path / "out"
    for kwargs in (dict(seconds=1e-9), dict(seconds=1e-9, init_audio=song), dict(seconds=0.02)):
        with pytest.raises(GenerationError, match=r"at least one spectrogram column of this model, 0.032 s"):
            run_generate(model_dir, out, **kwargs)
    for scheduler in ("ddim", "ddpm", "dpm"):
        with pytest.raises(GenerationError, match="2000 steps are more than the 1000 noise levels"):
            run_generate(model_dir, out, scheduler=scheduler, steps=2000)
    assert not out.exists()


def test_two_generations_racing_for_one_name_never_overwrite(tmp_path, monkeypatch):
    """Both choose a name before either writes (a barrier in write_wav holds the first one back until
    the second has chosen too): each must end up with its own three files, from its own seed."""
    import threading

    from audiodiff import clipfiles

    barrier = threading.Barrier(2, timeout=60)
    real_write_wav = clipfiles.write_wav

    def write_wav_after_both_chose(*args, **kwargs):
        barrier.wait()
        return real_write_wav(*args, **kwargs)

    monkeypatch.setattr(clipfiles, "write_wav", write_wav_after_both_chose)
    results, errors = {}, []

    def one(seed):
        try:
            results[seed] = generate("tiny", 0.5, output_dir=tmp_path, name="c", seed=seed, steps=1, progress=False,
                                     log=None, pipe=build_preset("tiny"))
        except BaseException as exc:  # reported below, with the other thread's outcome
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    names = {seed: [p.name for p in paths] for seed, paths in results.items()}
    assert sorted(names.values()) == [["c-1.wav", "c-1.png", "c-1.json"], ["c.wav", "c.png", "c.json"]]
    for seed, paths in results.items():
        wav, png, meta = paths
        assert json.loads(meta.read_text())["seed"] == seed
        assert png_to_image(png)[2] == sf.info(wav).frames == 8000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for v in names.values() for n in v)
    first, second = (sf.read(results[seed][0])[0] for seed in (1, 2))
    assert not np.array_equal(first, second)  # two seeds, two clips: neither was written over the other


def test_reservation_is_exclusive_and_all_or_nothing(tmp_path):
    from audiodiff.generate import reserve_name

    (tmp_path / "c_2.png").write_bytes(b"someone else's")
    name, paths = reserve_name(tmp_path, "c", batch_size=2)  # c_2.png is taken, so all of c is
    assert name == "c-1" and sorted(p.name for p in paths) == sorted(f"c-1_{i}.{e}" for i in (1, 2) for e in ("wav", "png", "json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c_2.png", *(p.name for p in paths)])  # none of c left
    assert reserve_name(tmp_path, "c", batch_size=2)[0] == "c-2"


def _script(args, cwd):
    # one thread: on a small shared CI machine, torch's thread pool fighting other processes is
    # what makes a subprocess slow, not the work
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_script_as_a_user_runs_it(model_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "demo.json").write_text("{}")  # taken: the script must pick demo-1
    args = ["--model", str(model_dir), "--seconds", "2.5", "--steps", "2", "--seed", "3", "--scheduler", "ddim",
            "--output-dir", str(tmp_path / "out"), "--name", "demo", "--no-progress"]
    done = _script(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "writing demo-1 instead" in done.stdout
    printed = [Path(line) for line in done.stdout.splitlines() if line.endswith((".wav", ".png", ".json"))]
    assert [p.name for p in printed] == ["demo-1.wav", "demo-1.png", "demo-1.json"]
    assert all(p.is_file() for p in printed)
    assert sf.info(printed[0]).frames == 40000 and sf.info(printed[0]).samplerate == 16000
    assert json.loads(printed[2].read_text())["seed"] == 3
    assert (tmp_path / "out" / "demo.json").read_text() == "{}"


def test_script_shows_one_progress_bar_whose_total_is_slices_times_steps(model_dir, tmp_path):
    done = _script(["--model", str(model_dir), "--seconds", "2.5", "--steps", "3", "--output-dir", str(tmp_path),
                    "--name", "bar"], tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "bar.json").read_text())
    slices = len(record["seam_seconds"]) + 1
    assert slices == 4  # 2.5 s of the tiny model's 1.02 s slices, each next one continuing 0.41 s
    counts = [(int(n), int(total)) for n, total in re.findall(r"(\d+)/(\d+) \[", done.stderr)]
    # one total from the start: slices x steps, each slice's other draws until they are chosen
    # (sampling.tonal), and the first slice's last half run again on its beat; raised only by a
    # first slice drawn again for want of a clear pulse (its calls, when that is decided)
    drawn = (DEFAULT_DRAWS - 1) * (draw_step(3) + 1)
    total = slices * (3 + drawn) + (3 - round(3 * (1 - FIRST_SLICE_RESTEER)))
    redraws = record.get("first_slice_redraws", 0)
    assert {t for _, t in counts} == {total + r * (3 + drawn) for r in range(redraws + 1)}
    steps_done = [n for n, _ in counts]
    assert steps_done == sorted(steps_done) and len(set(steps_done)) > 2  # one bar that only moves on, never restarts
    final = total + redraws * (3 + drawn)
    assert counts[-1] == (final, final)
    assert "of 4" in done.stderr  # it says which slice it is on


def test_script_user_mistakes_are_one_line_errors(tmp_path):
    nothing = _script(["--model", str(tmp_path / "no-such-model"), "--seconds", "1", "--output-dir", str(tmp_path / "none")],
                      tmp_path)
    assert nothing.returncode == 2 and "Traceback" not in nothing.stderr
    assert nothing.stderr.strip().startswith("error:") and "no-such-model" in nothing.stderr
    assert len(nothing.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "none").exists()
    huge = _script(["--model", "tiny", "--seconds", "1e9", "--output-dir", str(tmp_path / "none")], tmp_path)
    assert huge.returncode == 2 and huge.stdout == ""  # refused at once: it used to sample for minutes
    assert huge.stderr.startswith("error: ") and "limit of 600 s per request" in huge.stderr
    assert len(huge.stderr.strip().splitlines()) == 1 and not (tmp_path / "none").exists()
    many = _script(["--model", "tiny", "--candidates", "17", "--output-dir", str(tmp_path / "none")], tmp_path)
    assert many.returncode == 2 and many.stderr.strip() == "error: candidates must be a whole number from 1 to 16, got 17"
    assert not (tmp_path / "none").exists()
    jumps = _script(["--model", "tiny", "--repaint-jumps", "100000000", "--output-dir", str(tmp_path / "none")], tmp_path)
    assert jumps.returncode == 2 and jumps.stderr.strip() == "error: repaint jumps must be from 0 to 20, got 100000000"
    assert jumps.stdout == "" and not (tmp_path / "none").exists()


def test_candidates_are_recorded_and_change_the_slices(model_dir, tmp_path):
    # the beats as sampled: settling them on a grid moves each clip's seams its own way
    one = json.loads(run_generate(model_dir, tmp_path, seconds=2.5, name="one", quantize=0.0)[0][2].read_text())
    paths, _ = run_generate(model_dir, tmp_path, seconds=2.5, name="three", candidates=3, quantize=0.0)
    three = json.loads(paths[2].read_text())
    assert one["candidates"] == 1 and three["candidates"] == 3
    assert one["level_hold"] == three["level_hold"] == 2.0
    assert three["seam_seconds"] == one["seam_seconds"]  # the same slices, each chosen among three
    a, _ = sf.read(tmp_path / "one.wav")
    b, _ = sf.read(paths[0])
    assert a.shape == b.shape and not np.allclose(a, b)


def test_model_and_device_choice_have_one_home_each():
    """GenerationError, pick_device and resolve_model each live in one module; generate.py (and pipeline.py,
    for the first two) re-export the same objects."""
    from audiodiff import device, errors, model_choice, generate as generate_module, pipeline

    homes = {"GenerationError": errors, "pick_device": device, "resolve_model": model_choice}
    for name, home in homes.items():
        assert getattr(generate_module, name) is getattr(home, name)
    assert pipeline.GenerationError is errors.GenerationError and pipeline.pick_device is device.pick_device
    assert pipeline.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(generate_module.GenerationError, match="unknown device 'no-such'"):
        pipeline.pick_device("no-such")


def test_the_tempo_hold_is_recorded_with_the_beat_it_kept_and_the_script_turns_it_off(model_dir, tmp_path):
    held = json.loads(run_generate(model_dir, tmp_path, seconds=2.5, name="held")[0][2].read_text())
    assert held["tempo_hold"] == 0.25 and isinstance(held["bpm"], float) and 40 <= held["bpm"] <= 480
    keys = list(held)
    assert keys.index("level_hold") < keys.index("tempo_hold") < keys.index("bpm") < keys.index("seam_seconds")
    # first slices without a clear pulse drawn again (sampling.longclip.redraw_unclear), how many times
    assert held["first_slice_redraws"] in range(MAX_FIRST_SLICE_REDRAWS + 1)
    assert keys.index("bpm") < keys.index("first_slice_redraws") < keys.index("seam_seconds")
    done = _script(["--model", str(model_dir), "--seconds", "2.5", "--steps", "2", "--output-dir", str(tmp_path),
                    "--name", "free", "--no-tempo-hold", "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr
    free = json.loads((tmp_path / "free.json").read_text())
    assert free["tempo_hold"] == 0.0 and "bpm" not in free and "first_slice_redraws" not in free and free["level_hold"] == 2.0
    a, _ = sf.read(tmp_path / "free.wav")
    b, _ = sf.read(tmp_path / "held.wav")
    assert a.shape == b.shape and not np.allclose(a, b)  # the same seed, steps and noise: only the hold differs


def test_a_bpm_is_recorded_and_bad_ones_are_refused_before_any_work(model_dir, tmp_path):
    told = json.loads(run_generate(model_dir, tmp_path, seconds=2.5, name="told", bpm=120)[0][2].read_text())
    assert told["bpm"] == 120.0 and told["tempo_hold"] == 0.25 and "first_slice_redraws" not in told  # steered, not redrawn
    fast = _script(["--model", str(model_dir), "--bpm", "300", "--output-dir", str(tmp_path / "none")], tmp_path)
    assert fast.returncode == 2 and fast.stderr.strip() == "error: bpm must be from 40 to 240, got 300.0"
    assert not (tmp_path / "none").exists()
    with pytest.raises(GenerationError, match="not with the tempo hold off"):
        run_generate(model_dir, tmp_path / "none", bpm=120, tempo_hold=0.0)
    (tmp_path / "a.wav").write_bytes((tmp_path / "told.wav").read_bytes())
    with pytest.raises(GenerationError, match="keeps that audio's tempo"):
        run_generate(model_dir, tmp_path / "none", bpm=120, init_audio=tmp_path / "a.wav")
    assert not (tmp_path / "none").exists()


def test_a_loop_at_a_bpm_that_is_not_whole_beats_says_which_lengths_are(model_dir, tmp_path):
    _, said = run_generate(model_dir, tmp_path, seconds=2.5, name="slips", loop=True, bpm=100)
    notes = [m for m in said if m.startswith("note: a 2.5 s loop is 4.17 beats at 100 bpm")]
    assert len(notes) == 1 and "--seconds 2.400 (4 beats) or --seconds 3.000 (5 beats)" in notes[0], said
    paths, said = run_generate(model_dir, tmp_path, seconds=2.4, name="whole", loop=True, bpm=100)
    assert not [m for m in said if "beats at" in m]
    record = json.loads(paths[2].read_text())
    assert record["bpm"] == 100.0 and record["edit"] == "loop" and sf.info(paths[0]).duration == pytest.approx(2.4)


@pytest.mark.parametrize("script,flag", [("finetune", "--pretrained"), ("generate", "--model"), ("app", "--model")])
def test_each_script_s_model_help_names_every_model_it_takes(script, flag, capsys, monkeypatch):
    """The help of the flag that chooses a model names 'bundled' and every preset (it lacked some)."""
    import importlib.util

    monkeypatch.setenv("COLUMNS", "1000")  # argparse would break 'audio-diffusion-256' at a hyphen

    from audiodiff.presets import PRESETS

    spec = importlib.util.spec_from_file_location(f"script_{script}", ROOT / "scripts" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit):
        module.parse_args(["--help"])
    helped = " ".join(capsys.readouterr().out.split())
    said = helped[helped.index(flag):]
    for name in ("bundled", *PRESETS):
        assert name in said, (script, name)
