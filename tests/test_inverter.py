"""The learned Mel inverter (audiodiff/inverter.py): what it keeps, what it learns, how it is used."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiodiff import inverter as inverter_module
from audiodiff.inverter import MelInverter, inverter_for, smooth_db
from audiodiff.inverter_training import InverterRecipe, clip_columns, train_inverter
from audiodiff.mel import (
    MelConfig, _stft, audio_to_spectrogram, images_to_audio, images_to_power, mel_power, mel_to_linear_power, to_mel,
)
from audiodiff.metrics import spectral_flatness

REPO = Path(__file__).resolve().parents[1]
MEL = MelConfig(x_res=168, y_res=64, sample_rate=16000, n_fft=1024, hop_length=384)  # the bundled model's


def _chord(seconds=3.0, sample_rate=16000):
    """Three piano-like notes with 12 decaying partials each: harmonic lines up to 8 kHz."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    notes = sum(sum(0.3 / h * np.sin(2 * np.pi * f * h * t) for h in range(1, 13) if f * h < 7900)
                for f in (196.0, 246.9, 293.7))
    return torch.from_numpy((notes * np.exp(-0.4 * t)).astype(np.float32))


def test_an_untrained_inverter_is_the_smooth_spread_and_any_guess_keeps_the_image():
    """The output layer starts at zero (the smooth spread); the projection gives every Mel band the
    image's energy whatever the guess, so only the shape inside a band is learned."""
    model = MelInverter(MEL.to_dict(), context=1, width=16)
    image = audio_to_spectrogram(_chord()[None], MEL)
    assert torch.allclose(model(image), smooth_db(image, MEL), atol=1e-4)
    torch.nn.init.normal_(model.layers[-1].weight, std=0.05)  # a wild guess
    power = model.linear_power(image)
    assert power.shape == (1, MEL.n_freqs, image.shape[-1]) and bool((power >= 0).all())
    target = images_to_power(image, MEL)
    loud = target > 1e-6  # the bands that carry the sound

    def misses(power):
        error = (to_mel(power, MEL)[loud] / target[loud] - 1.0).abs()
        return float(error.median()), float(error.quantile(0.9))

    plain = misses(mel_to_linear_power(target, MEL))  # the lowest bands overlap too much to be met exactly
    assert misses(power)[0] < 0.01 and misses(power)[1] <= 1.1 * plain[1] + 0.01, (misses(power), plain)


def test_saved_inverters_are_safetensors_and_json_and_load_to_the_same_guess(tmp_path):
    model = MelInverter(MEL.to_dict(), context=1, width=16)
    torch.nn.init.normal_(model.layers[-1].weight, std=0.05)
    folder = model.save(tmp_path / "inverter")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = MelInverter.load(folder)
    image = audio_to_spectrogram(_chord()[None], MEL)
    assert loaded.matches(MEL) and not loaded.matches(MelConfig())
    assert torch.allclose(loaded(image), model(image), atol=0.05)  # weights are stored in float16


def test_an_inverter_folder_with_hostile_or_mismatched_settings_is_refused_in_one_line(tmp_path):
    import json

    folder = MelInverter(MEL.to_dict(), context=1, width=16).save(tmp_path / "inverter")
    settings = json.loads((folder / "config.json").read_text())
    for bad in ({"width": 10**9}, {"context": -1}, {"width": "16"}, {"mel": {**MEL.to_dict(), "n_fft": 10**9}}):
        (folder / "config.json").write_text(json.dumps({**settings, **bad}))
        with pytest.raises(ValueError, match="not an inverter's settings"):
            MelInverter.load(folder)
    (folder / "config.json").write_text(json.dumps({**settings, "width": 32}))  # weights of width 16
    with pytest.raises(ValueError, match="does not hold the network"):
        MelInverter.load(folder)


def test_the_inverter_is_used_only_for_the_mel_image_it_learned():
    image = audio_to_spectrogram(_chord()[None], MEL)
    wrong = MelInverter(MelConfig().to_dict(), width=8)
    with pytest.raises(ValueError, match="another Mel image"):
        images_to_audio(image, MEL, inverter=wrong)
    with pytest.raises(ValueError, match="inverter must be"):
        images_to_audio(image, MEL, inverter="learned")
    assert inverter_for(MelConfig()) is None  # the public 256 spec decodes as before
    plain = images_to_audio(image, MEL, inverter=None)
    assert torch.equal(plain, images_to_audio(image, MEL, inverter=None, n_iter=MEL.n_iter))
    seeded = images_to_audio(image, MEL, seed=0)  # the reference's start: always the plain path
    assert torch.equal(seeded, images_to_audio(image, MEL, seed=0, inverter=None))


shipped = pytest.mark.skipif(inverter_module.bundled() is None, reason="no shipped inverter in this checkout")


@shipped
def test_the_shipped_inverter_puts_the_partials_back_inside_the_bands():
    """A chord's upper partials: the learned guess is closer to the real spectrum than the smooth
    spread, and the decoded audio is more tonal, while the Mel image still round-trips."""
    audio = _chord()
    image = audio_to_spectrogram(audio[None], MEL)
    frames = image.shape[-1]
    truth = _stft(audio[None, : MEL.frames_to_samples(frames)], MEL).abs().square()[0, :, :frames]
    truth = truth / mel_power(audio[None], MEL).amax()

    def distance(power):
        floor = truth.max() * 1e-6
        return float((10 * torch.log10(power.clamp_min(floor)) - 10 * torch.log10(truth.clamp_min(floor))).abs().mean())

    learned = inverter_for(MEL).linear_power(image)[0]
    smooth = mel_to_linear_power(images_to_power(image, MEL), MEL)[0]
    assert distance(learned) < 0.85 * distance(smooth), (distance(learned), distance(smooth))
    with_model, without = images_to_audio(image, MEL), images_to_audio(image, MEL, inverter=None)
    assert torch.equal(with_model, images_to_audio(image, MEL))  # deterministic
    assert spectral_flatness(with_model[0].numpy(), 16000) < 0.8 * spectral_flatness(without[0].numpy(), 16000)
    again = audio_to_spectrogram(with_model, MEL)[..., : frames - 1]
    assert float((again - image[..., : frames - 1]).abs().mean()) < 0.05  # about 2 dB on average


def test_training_learns_the_inside_of_the_bands_from_a_few_columns():
    """A few hundred steps on two synthetic clips: the guess beats the smooth spread it starts from."""
    rng = np.random.default_rng(0)
    clips = [_chord(4.0), _chord(4.0) * 0.5 + torch.from_numpy(0.01 * rng.standard_normal(64000).astype(np.float32))]
    data = tuple(torch.cat(parts) for parts in zip(*(clip_columns(c, MEL, 1) for c in clips)))
    recipe = InverterRecipe(steps=300, batch_size=64, width=32, context=1, lr=3e-3)
    model, summary = train_inverter(MEL, recipe, progress=False, data=data)
    assert summary["columns"] == data[0].shape[0]
    assert summary["final_loss_db"] < 0.8 * summary["smooth_spread_error_db"], summary
    short = InverterRecipe(steps=3, batch_size=8, width=8, context=1)  # the schedule's shortest run
    assert train_inverter(MEL, short, progress=False, data=data)[1]["recipe"]["steps"] == 3
    with pytest.raises(ValueError, match="at least 3 training steps"):
        train_inverter(MEL, InverterRecipe(steps=2), progress=False, data=data)


def _script(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "train_inverter.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_training_script_never_writes_over_a_folder_and_says_so_in_one_line(tmp_path):
    (tmp_path / "taken").mkdir()
    done = _script(["--out", str(tmp_path / "taken")], tmp_path)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "already exists" in done.stderr
    done = _script(["--install-from", str(tmp_path / "taken")], tmp_path)
    assert done.returncode == 2 and "no trained inverter" in done.stderr
    assert not any((tmp_path / "taken").iterdir())
