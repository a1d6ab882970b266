import json
import math

import numpy as np
import pytest
import torch
import torchaudio.functional as AF
from diffusers.pipelines.deprecated.audio_diffusion import Mel
from PIL import Image

import audiodiff
from audiodiff import mel as mel_module
from audiodiff.mel import MelConfig, audio_to_images, audio_to_spectrogram, images_to_audio, spectral_convergence

from conftest import make_signals


def reference_images(audio_batch, config):
    """diffusers' own Mel, slice 0 of each item, as uint8 arrays (B, H, W)."""
    mel = Mel(**config.to_dict())
    out = []
    for audio in audio_batch:
        mel.load_audio(raw_audio=np.asarray(audio, dtype=np.float32))
        out.append(np.array(mel.audio_slice_to_image(0)))
    return np.stack(out)


def to_grey(images):
    return np.round((images[:, 0].numpy() + 1.0) * 127.5).astype(np.int16)


def agreement(ours, ref):
    diff = np.abs(to_grey(ours) - ref.astype(np.int16))
    return float((diff == 0).mean()), int(diff.max())


@pytest.fixture(scope="module")
def batch_and_reference():
    config = MelConfig()
    signals = make_signals(seconds=config.slice_seconds + 0.5)
    names = list(signals)
    audio = np.stack([signals[n][: config.slice_samples] for n in names])
    return names, audio, reference_images(audio, config), config


def test_parity_with_diffusers_mel(batch_and_reference):
    names, audio, ref, config = batch_and_reference
    ours = audio_to_images(torch.from_numpy(audio), config)
    assert ours.shape == (len(names), 1, config.y_res, config.x_res)
    assert ours.min() >= -1 and ours.max() <= 1
    for i, name in enumerate(names):
        identical, worst = agreement(ours[i : i + 1], ref[i : i + 1])
        assert identical >= 0.999, f"{name}: only {identical:.5f} of pixels identical"
        assert worst <= 1, f"{name}: a pixel is {worst} grey levels off"


def test_silence_is_all_white(batch_and_reference):
    names, audio, ref, config = batch_and_reference
    images = audio_to_images(torch.zeros(1, 1000), config)
    assert torch.all(images == 1.0)
    assert np.all(ref[names.index("silence")] == 255)


def _variant_images(audio, config, norm="slaney", mel_scale="slaney", pad_mode="constant"):
    """The encoder with one detail changed, to show that the parity test notices such changes."""
    fb = AF.melscale_fbanks(config.n_freqs, 0.0, config.sample_rate / 2, config.n_mels, config.sample_rate,
                            norm=norm, mel_scale=mel_scale).T
    spec = torch.stft(audio, config.n_fft, config.hop_length, window=torch.hann_window(config.n_fft),
                      center=True, pad_mode=pad_mode, return_complex=True)
    return mel_module.power_to_images(fb @ spec.abs().square(), config)


@pytest.mark.parametrize("change", [{"norm": None}, {"mel_scale": "htk"}, {"pad_mode": "reflect"}])
def test_parity_check_detects_a_changed_codec(batch_and_reference, change):
    names, audio, ref, config = batch_and_reference
    picked = [names.index(n) for n in ("chord", "transients", "noise")]
    variant = _variant_images(torch.from_numpy(audio[picked]), config, **change)
    failures = 0
    for j, i in enumerate(picked):
        identical, worst = agreement(variant[j : j + 1], ref[i : i + 1])
        failures += identical < 0.999 or worst > 1
    assert failures >= 1, f"changing {change} went unnoticed by the parity criterion"


def test_short_audio_is_zero_padded_and_long_audio_refused():
    config = MelConfig()
    audio = torch.from_numpy(make_signals(seconds=2.0)["chord"])
    padded = torch.nn.functional.pad(audio, (0, config.slice_samples - audio.numel()))
    assert torch.equal(audio_to_images(audio, config), audio_to_images(padded, config))
    with pytest.raises(ValueError, match="at most one slice"):
        audio_to_images(torch.zeros(config.slice_samples + 1), config)


def test_mel_config_round_trip_with_diffusers(tmp_path):
    config = MelConfig(x_res=64, y_res=64, sample_rate=16000, n_fft=1024, hop_length=256, top_db=60, n_iter=8)
    config.save_pretrained(tmp_path / "mel")
    loaded = Mel.from_pretrained(tmp_path / "mel")
    assert (loaded.x_res, loaded.y_res, loaded.sr, loaded.n_fft, loaded.hop_length, loaded.top_db, loaded.n_iter) == (
        64, 64, 16000, 1024, 256, 60, 8)
    # and one saved by diffusers loads in ours, from the file, its folder, or the pipeline folder
    Mel(x_res=128, y_res=96, sample_rate=44100).save_pretrained(tmp_path / "pipe" / "mel")
    for where in (tmp_path / "pipe", tmp_path / "pipe" / "mel", tmp_path / "pipe" / "mel" / "mel_config.json"):
        ours = MelConfig.from_pretrained(where)
        assert (ours.x_res, ours.y_res, ours.sample_rate) == (128, 96, 44100)
    assert MelConfig.from_pretrained(tmp_path / "mel") == config


def test_mel_config_derived_values_and_validation(tmp_path):
    config = MelConfig()
    assert config.slice_samples == 131071
    assert math.isclose(config.slice_seconds, 131071 / 22050)
    assert math.isclose(config.pixels_per_second, 22050 / 512)
    assert config.samples_to_frames(config.slice_samples) == config.x_res
    assert config.frames_to_samples(config.x_res) == 255 * 512
    with pytest.raises(ValueError, match="hop_length"):
        MelConfig(hop_length=4096)
    with pytest.raises(ValueError, match="x_res must be an integer from 1 to 4096"):
        MelConfig(x_res=0)
    with pytest.raises(FileNotFoundError, match="mel_config.json"):
        MelConfig.from_pretrained(tmp_path)
    (tmp_path / "mel_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid"):
        MelConfig.from_pretrained(tmp_path)


@pytest.mark.parametrize("field,value", [
    ("n_iter", 10**9), ("sample_rate", 10**12), ("x_res", 2**22), ("n_fft", 10**9), ("n_fft", 2048.5),
    ("sample_rate", 16000.5), ("hop_length", 2048), ("top_db", float("nan")), ("y_res", True), ("n_iter", "32"),
])
def test_hostile_mel_numbers_are_refused_in_one_line_before_any_allocation(field, value):
    """Numbers from files anyone edits (a pipeline's mel/, a PNG's metadata) have ranges (issue 25)."""
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"MelConfig.{field}|hop_length"):
        MelConfig.from_dict({**MelConfig().to_dict(), field: value})
    assert time.perf_counter() - start < 0.1


def test_images_to_audio_any_width_deterministic_and_accurate():
    config = MelConfig(n_iter=16)
    signals = make_signals(seconds=12.0)
    audio = torch.from_numpy(np.stack([signals["chord"], signals["transients"]]))
    wide = audio_to_spectrogram(audio, config)  # one image for the whole 12 s
    assert wide.shape == (2, 1, config.y_res, 1 + audio.shape[-1] // config.hop_length)
    for width in (wide.shape[-1], 100, 7):
        out = images_to_audio(wide[..., :width], config)
        assert out.shape == (2, config.frames_to_samples(width))
        assert torch.isfinite(out).all()
    out = images_to_audio(wide, config)
    assert torch.equal(out, images_to_audio(wide, config))
    again = audio_to_spectrogram(out, config)
    sc = spectral_convergence(wide, again[..., : wide.shape[-1]], config)
    assert torch.all(sc < 0.1), sc


def test_decoder_beats_the_reference_at_the_same_iterations():
    """At the reference's own iteration count, half its spectral convergence error or less."""
    config = MelConfig(n_iter=32)
    rng = np.random.default_rng(3)
    signals = make_signals(seconds=config.slice_seconds + 0.1)
    # a small "band": bass, chord, hats, a sweep
    mix = signals["bass"] * 0.5 + signals["chord"] + 0.3 * signals["transients"] + 0.5 * signals["sweep"]
    audio = torch.from_numpy(mix[None, : config.slice_samples].astype(np.float32))
    images = audio_to_images(audio, config)
    ours = images_to_audio(images, config)
    ref_mel = Mel(**config.to_dict())
    grey = Image.fromarray(to_grey(images)[0].astype(np.uint8))
    ref_audio = torch.from_numpy(ref_mel.image_to_audio(grey).astype(np.float32))[None]
    sc_ours = spectral_convergence(images, audio_to_images(ours, config), config).item()
    sc_ref = spectral_convergence(images, audio_to_images(ref_audio, config), config).item()
    assert sc_ours <= 0.5 * sc_ref, (sc_ours, sc_ref)


def test_public_api_exports():
    for name in ("MelConfig", "audio_to_images", "images_to_audio", "load_audio", "write_wav"):
        assert hasattr(audiodiff, name)


def test_images_to_db_inverts_the_pixel_formula():
    """Grey 255 is 0 dB, grey 0 is -top_db, linear between; images_to_power is 10**(dB/10) of it."""
    config = mel_module.MelConfig(x_res=4, y_res=2, top_db=80)
    grey = torch.tensor([[0.0, 51.0, 204.0, 255.0], [255.0, 127.5, 0.0, 25.5]])
    images = (grey / 255.0 * 2.0 - 1.0).view(1, 1, 2, 4)
    level_db = mel_module.images_to_db(images, config)
    assert level_db.shape == (1, 2, 4)
    expected = torch.tensor([[-80.0, -64.0, -16.0, 0.0], [0.0, -40.0, -80.0, -72.0]])
    assert torch.allclose(level_db[0], expected, atol=1e-4)
    assert torch.equal(mel_module.images_to_power(images, config), torch.pow(10.0, level_db / 10.0))
    # what evaluate's codec fidelity computed by hand before it asked mel.py, to float rounding
    by_hand = (images[:, 0] + 1.0) * (config.top_db / 2.0) - config.top_db
    assert torch.allclose(level_db, by_hand, atol=1e-4)
