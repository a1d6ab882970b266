"""Audio in and out: decode any file soundfile reads to mono float32, resample, write WAV.

This is the only module that touches soundfile. Decoding never goes through torchaudio.load or
datasets' Audio feature: both need TorchCodec and system FFmpeg, which a fresh machine lacks.
"""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf
import torch

AudioSource = Union[str, os.PathLike, bytes, BinaryIO]

# Extensions we try to decode in a folder; anything else is ignored (and counted by the caller).
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".aifc", ".w64", ".caf", ".opus"})


class AudioError(ValueError):
    """A file that cannot be used as audio: unreadable, empty, or not audio at all."""


def _describe(source: AudioSource) -> str:
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes of audio>"
    return str(getattr(source, "name", source))


def read_audio(source: AudioSource) -> tuple[np.ndarray, int]:
    """Decode `source` (a path, raw bytes or a file object) to mono float32 at its own rate.

    Returns (audio of shape (T,), sample_rate). Multi-channel audio is averaged to mono.
    Raises AudioError, with the file named, when soundfile cannot decode it.
    """
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        data, sample_rate = sf.read(handle, dtype="float32", always_2d=True)  # (T, C)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"cannot decode {_describe(source)}: {exc}") from exc
    return data.mean(axis=1, dtype=np.float32), int(sample_rate)


@functools.lru_cache(maxsize=32)
def _resampler(orig_sample_rate: int, new_sample_rate: int):
    """One windowed-sinc kernel per pair of rates, built once (resampling is the hot spot of
    data loading; torchaudio.functional.resample would rebuild the kernel on every call)."""
    import torchaudio.transforms as T

    return T.Resample(orig_sample_rate, new_sample_rate)


def resample(audio: torch.Tensor, orig_sample_rate: int, new_sample_rate: int) -> torch.Tensor:
    """Resample (..., T) float audio between rates with torchaudio's windowed-sinc resampler."""
    if orig_sample_rate == new_sample_rate:
        return audio
    kernel = _resampler(int(orig_sample_rate), int(new_sample_rate))
    with torch.no_grad():
        return kernel.to(audio.device)(audio)


def load_audio(source: AudioSource, sample_rate: int | None = None) -> torch.Tensor:
    """Decode `source` to a mono float32 tensor (T,), resampled to `sample_rate` when given."""
    data, file_rate = read_audio(source)
    audio = torch.from_numpy(data)
    if sample_rate is not None:
        audio = resample(audio, file_rate, sample_rate)
    return audio


def to_mono_numpy(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    """(T,) or (1, T) audio, tensor or array -> float32 numpy (T,). NaNs are left to the caller."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().float().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[0] == 1:
        audio = audio[0]
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (T,) or (1, T), got {audio.shape}")
    return audio


def to_pcm16(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 samples, clipped, rounded to nearest."""
    data = audio.detach().cpu().float().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio, dtype=np.float32)
    if not np.all(np.isfinite(data)):
        raise AudioError("refusing to write audio that contains NaN or infinite samples")
    return np.round(np.clip(data, -1.0, 1.0) * 32767.0).astype(np.int16)


def write_wav(path: str | os.PathLike, audio: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write mono (T,) or multi-channel (C, T) float audio as 16-bit PCM WAV. Returns the path."""
    path = Path(path)
    pcm = to_pcm16(audio)
    if pcm.ndim == 2:
        pcm = pcm.T  # soundfile wants (T, C)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, pcm, int(sample_rate), subtype="PCM_16", format="WAV")
    return path


def duration_seconds(source: str | os.PathLike) -> float:
    """Length of an audio file in seconds, read from its header (nothing is decoded)."""
    try:
        info = sf.info(os.fspath(source))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError...
        raise AudioError(f"cannot decode {_describe(source)}: {exc}") from exc
    return info.frames / info.samplerate if info.samplerate else 0.0
