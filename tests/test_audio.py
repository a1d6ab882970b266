import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.audio import AudioError, load_audio, read_audio, resample, write_wav

from conftest import tone


@pytest.mark.parametrize(
    "fmt,subtype,suffix",
    [("WAV", "PCM_16", ".wav"), ("WAV", "PCM_24", ".wav"), ("WAV", "FLOAT", ".wav"), ("FLAC", "PCM_16", ".flac"),
     ("OGG", "VORBIS", ".ogg"), ("AIFF", "PCM_16", ".aiff"), ("MP3", "MPEG_LAYER_III", ".mp3")],
)
def test_read_formats_and_downmix(tmp_path, fmt, subtype, suffix):
    left, right = tone(440, 1.0, 44100, 0.5), tone(440, 1.0, 44100, 0.1)
    path = tmp_path / f"a{suffix}"
    sf.write(path, np.stack([left, right], axis=1), 44100, format=fmt, subtype=subtype)
    audio, rate = read_audio(path)
    assert rate == 44100 and audio.dtype == np.float32 and audio.ndim == 1
    lossy = fmt in ("OGG", "MP3")
    if not lossy:
        assert abs(len(audio) - 44100) == 0
        np.testing.assert_allclose(audio, (left + right) / 2, atol=2e-4)
    else:  # lossy codecs add delay/padding; the level of the downmix must survive
        assert abs(np.sqrt(np.mean(audio**2)) - np.sqrt(np.mean(((left + right) / 2) ** 2))) < 0.03
    # bytes decode the same as the path
    np.testing.assert_array_equal(read_audio(path.read_bytes())[0], audio)


def test_load_audio_resamples(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, tone(1000, 2.0, 44100), 44100)
    audio = load_audio(path, sample_rate=22050)
    assert isinstance(audio, torch.Tensor) and audio.shape == (44100,)
    spectrum = np.abs(np.fft.rfft(audio.numpy()))
    assert abs(np.argmax(spectrum) * 22050 / len(audio) - 1000) < 2  # the tone kept its pitch
    assert torch.equal(resample(audio, 22050, 22050), audio)


@pytest.mark.parametrize("content", [b"", b"this is not audio at all", b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_unreadable_audio_raises_a_clear_error(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="broken.wav"):
        read_audio(path)
    with pytest.raises(AudioError, match="cannot decode"):
        read_audio(content)


def test_write_wav_is_pcm16_and_round_trips(tmp_path):
    audio = torch.from_numpy(tone(440, 0.5, 22050, 0.9))
    audio[10] = 3.0  # clipped, not wrapped
    path = write_wav(tmp_path / "out" / "x.wav", audio, 22050)
    info = sf.info(path)
    assert (info.subtype, info.samplerate, info.channels, info.frames) == ("PCM_16", 22050, 1, audio.numel())
    back, _ = read_audio(path)
    assert back[10] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(back[11:], audio.numpy()[11:], atol=2 / 32767)  # written as x*32767, read back as x/32768
    with pytest.raises(AudioError, match="NaN"):
        write_wav(tmp_path / "nan.wav", torch.tensor([0.0, float("nan")]), 22050)
