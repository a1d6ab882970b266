"""Features and distances of the genre evaluation: what a window of audio looks like as numbers,
and how far apart two sets of such rows are (DESIGN section 7). The reports that use them are in
`audiodiff.evaluate`.

The usual learned embeddings (VGGish, CLAP, PANNs) are downloads, and these machines can't
download, so the default features are computed offline from the signal, on fixed windows (2 s,
every 1 s) of audio resampled to 16 kHz and scaled to a fixed RMS (level is measured by the
loudness report, not here): log-Mel band means and spreads, MFCCs, a key-invariant description of
harmony (the magnitudes of the DFT of the chroma vector, which do not change under transposition,
so two jazz clips in different keys look alike), spectral contrast, flatness and centroid, onset
density, tempo and pulse clarity, and the dynamics inside the window. A Fréchet distance compares
the two sets' means and covariances, as FAD does with a learned embedding. A `Standardizer` fitted
on a report's reference audio puts every feature in the same units, so no feature dominates
because of its unit. A local learned embedding can replace the features: a TorchScript module that
maps (B, T) audio to (B, D) embeddings (`TorchScriptEmbedding`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .audio import resample, to_mono_numpy
from .metrics import tempo_and_clarity

__all__ = [
    "EvaluationError", "FEATURE_NAMES", "FeatureExtractor", "HandcraftedFeatures", "MIN_CLIP_SECONDS", "Standardizer",
    "TorchScriptEmbedding", "audio_features", "feature_matrix", "frechet_distance",
]

# ---- analysis settings -------------------------------------------------------------------------
FEATURE_SAMPLE_RATE = 16000  # every clip is analysed at one rate, so models of any rate compare
N_FFT = 1024  # 64 ms frames: resolves the bass (15.6 Hz bins)
HOP_LENGTH = 256  # 16 ms: onsets and tempo at 62.5 frames per second
# 2 s windows every 1 s: a bar at 120 bpm, long enough for onset density, tempo and pulse, short
# enough that a 4 s generated clip gives three windows. On the built-in set, 16 fresh 4 s clips of
# a genre lie at FD 4-19 from its held-out tracks and at 66-230 from every other genre's; 8 s
# clips with 4 s windows separate no better (measured).
WINDOW_SECONDS = 2.0
HOP_SECONDS = 1.0
MIN_CLIP_SECONDS = 0.5  # shorter audio is skipped (counted): too short for onset and tempo features
TARGET_RMS = 0.1  # -20 dBFS: clips are scaled to this before analysis (features ignore level)
N_MEL_BANDS = 16  # log-Mel band statistics (coarse: the spectral envelope, not the notes)
N_MFCC_BANDS = 40
N_MFCC = 6  # MFCC 1..6: the envelope's shape (0 is the level; higher ones mostly add noise between clips)
N_CONTRAST_BANDS = 6  # spectral contrast: 6 octave bands + the rest = 7 values
RIDGE = 1e-6  # added to covariance diagonals: sets smaller than the feature count are rank-deficient


def _feature_names() -> list[str]:
    names = [f"logmel_mean_{i}" for i in range(N_MEL_BANDS)] + [f"logmel_std_{i}" for i in range(N_MEL_BANDS)]
    names += [f"mfcc_{i}" for i in range(1, N_MFCC + 1)]
    names += [f"chroma_dft_{k}" for k in range(1, 7)] + ["chroma_change"]
    names += [f"contrast_{i}" for i in range(N_CONTRAST_BANDS + 1)]
    names += ["flatness", "centroid_mean", "centroid_std"]
    names += ["onset_mean", "onset_std", "onset_rate", "tempo", "pulse_clarity"]
    names += ["window_level", "level_std"]
    return names


FEATURE_NAMES: tuple[str, ...] = tuple(_feature_names())


class EvaluationError(ValueError):
    """An evaluation that can't be carried out as asked; the message says what to do.

    Defined here, the lowest module of the evaluation, so that a feature extractor can raise it;
    `audiodiff.evaluate` raises it too."""


# ---- features --------------------------------------------------------------------------------------
def _to_numpy(audio) -> np.ndarray:
    """Mono float32 numpy (T,); NaN and infinite samples count as silence for the features."""
    return np.nan_to_num(to_mono_numpy(audio), nan=0.0, posinf=0.0, neginf=0.0)


def _window_starts(frames: int, window_frames: int, hop_frames: int) -> list[tuple[int, int]]:
    """(start, end) frame ranges of the windows; a clip shorter than a window is one window."""
    if frames <= window_frames:
        return [(0, frames)]
    return [(s, s + window_frames) for s in range(0, frames - window_frames + 1, hop_frames)]


def audio_features(
    audio,
    sample_rate: int,
    *,
    window_seconds: float = WINDOW_SECONDS,
    hop_seconds: float = HOP_SECONDS,
) -> torch.Tensor:
    """Hand-made genre features of mono audio (T,): (n_windows, len(FEATURE_NAMES)) float64.

    The clip is resampled to 16 kHz and scaled to -20 dBFS RMS; frame-level descriptors are
    computed once for the whole clip and summarised per window of `window_seconds` every
    `hop_seconds` (a clip shorter than a window is one window). Finite for any input, silence
    included. Raises ValueError for audio shorter than MIN_CLIP_SECONDS.
    """
    import librosa

    x = _to_numpy(audio)
    if x.size < MIN_CLIP_SECONDS * sample_rate:
        raise ValueError(f"audio of {x.size / sample_rate:.2f} s is too short to describe (at least {MIN_CLIP_SECONDS} s)")
    if not (window_seconds > 0 and hop_seconds > 0):
        raise ValueError(f"window_seconds and hop_seconds must be positive, got {window_seconds} and {hop_seconds}")
    sr = FEATURE_SAMPLE_RATE
    x = resample(torch.from_numpy(x), int(sample_rate), sr).numpy().astype(np.float64)
    rms = math.sqrt(float(np.mean(x * x)))
    if rms > 1e-6:
        x = x * (TARGET_RMS / rms)

    magnitude = np.abs(librosa.stft(x, n_fft=N_FFT, hop_length=HOP_LENGTH, center=True))  # (513, F)
    power = magnitude**2
    frames = power.shape[1]
    logmel = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MEL_BANDS),
                                 ref=1.0, amin=1e-10, top_db=None)  # (16, F) dB
    logmel_fine = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MFCC_BANDS),
                                      ref=1.0, amin=1e-10, top_db=None)  # (40, F)
    mfcc = librosa.feature.mfcc(S=logmel_fine, n_mfcc=N_MFCC + 1)[1:]  # (6, F)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=N_FFT, norm=None, tuning=0.0)  # (12, F)
    total = chroma.sum(axis=0, keepdims=True)
    chroma = np.divide(chroma, total, out=np.zeros_like(chroma), where=total > 1e-12)  # each frame sums to 1 (or 0)
    chroma_dft = np.abs(np.fft.fft(chroma, axis=0))[1:7]  # (6, F): interval content, transposition-invariant
    chroma_change = np.concatenate([[0.0], 0.5 * np.abs(np.diff(chroma, axis=1)).sum(axis=0)])  # (F,)
    contrast = librosa.feature.spectral_contrast(S=magnitude, sr=sr, n_fft=N_FFT, n_bands=N_CONTRAST_BANDS,
                                                 fmin=100.0)  # (7, F) dB
    flatness = np.log10(librosa.feature.spectral_flatness(S=magnitude, amin=1e-10)[0] + 1e-10)  # (F,)
    centroid = np.log2(librosa.feature.spectral_centroid(S=magnitude, sr=sr, n_fft=N_FFT)[0] + 1.0)  # (F,) octaves
    onset = librosa.onset.onset_strength(S=logmel_fine, sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH)[:frames]  # (F,)
    onset = np.pad(onset, (0, frames - onset.size))
    peaks = np.zeros(frames)
    if onset.max() > 1e-9:
        peaks[librosa.onset.onset_detect(onset_envelope=onset, sr=sr, hop_length=HOP_LENGTH, units="frames")] = 1.0
    level = 10.0 * np.log10(np.maximum(power.sum(axis=0) / (N_FFT * N_FFT / 4), 1e-10))  # (F,) ~dBFS per frame

    frames_per_second = sr / HOP_LENGTH
    window_frames = max(1, int(round(window_seconds * frames_per_second)))
    hop_frames = max(1, int(round(hop_seconds * frames_per_second)))
    rows = []
    for start, end in _window_starts(frames, window_frames, hop_frames):
        part = slice(start, end)
        tempo, clarity = tempo_and_clarity(onset[part], frames_per_second)
        window_power = float(np.mean(power[:, part].sum(axis=0))) / (N_FFT * N_FFT / 4)
        rows.append(np.concatenate([
            logmel[:, part].mean(axis=1), logmel[:, part].std(axis=1),
            mfcc[:, part].mean(axis=1),
            chroma_dft[:, part].mean(axis=1), [chroma_change[part].mean()],
            contrast[:, part].mean(axis=1),
            [flatness[part].mean(), centroid[part].mean(), centroid[part].std()],
            [onset[part].mean(), onset[part].std(), peaks[part].sum() * frames_per_second / (end - start), tempo, clarity],
            [10.0 * math.log10(max(window_power, 1e-10)), level[part].std()],
        ]))
    features = np.nan_to_num(np.stack(rows), nan=0.0, posinf=0.0, neginf=0.0)
    assert features.shape[1] == len(FEATURE_NAMES)
    return torch.from_numpy(features)  # (n_windows, D)


@dataclass(frozen=True)
class HandcraftedFeatures:
    """The default, offline feature extractor (see `audio_features`)."""

    window_seconds: float = WINDOW_SECONDS
    hop_seconds: float = HOP_SECONDS

    @property
    def name(self) -> str:
        return (f"handcrafted ({len(FEATURE_NAMES)} features per {self.window_seconds:g} s window, "
                f"every {self.hop_seconds:g} s)")

    def __call__(self, audio, sample_rate: int) -> torch.Tensor:
        return audio_features(audio, sample_rate, window_seconds=self.window_seconds, hop_seconds=self.hop_seconds)

    def describe(self) -> dict:
        return {"kind": "handcrafted", "dims": len(FEATURE_NAMES), "names": list(FEATURE_NAMES),
                "window_seconds": self.window_seconds, "hop_seconds": self.hop_seconds,
                "sample_rate": FEATURE_SAMPLE_RATE}


class TorchScriptEmbedding:
    """A learned audio embedding from a local TorchScript file, used instead of the hand-made features.

    The module takes (B, T) float audio at its sample rate and returns (B, D) embeddings. Its
    rate is the module's own `sample_rate` attribute when it has one, else `sample_rate`.
    Each clip is cut into the same windows as the default features (a clip shorter than a
    window is one window, padded with zeros), and each window gives one embedding.
    Save one with `torch.jit.save(torch.jit.script(model), path)`: a CLAP or VGGish audio tower
    fits once wrapped with its own preprocessing inside, so that it takes raw waveforms. Only a
    small scripted module is tested here: no learned checkpoint can be downloaded on these
    machines.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int | None = None, *, window_seconds: float = WINDOW_SECONDS,
                 hop_seconds: float = HOP_SECONDS, device=None, batch_size: int = 16):
        path = Path(path).expanduser()
        if not path.is_file():
            raise EvaluationError(f"embedding checkpoint {path} does not exist (expected a TorchScript .pt file)")
        try:
            self.module = torch.jit.load(str(path), map_location=device or "cpu").eval()
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/ValueError/pickle errors
            raise EvaluationError(f"{path} is not a TorchScript module ({type(exc).__name__}: {exc}); save one with "
                                  "torch.jit.save(torch.jit.script(model), path)") from exc
        own_rate = getattr(self.module, "sample_rate", None)
        self.sample_rate = int(own_rate if own_rate is not None else (sample_rate or FEATURE_SAMPLE_RATE))
        self.path, self.device = path, torch.device(device or "cpu")
        self.window_seconds, self.hop_seconds, self.batch_size = window_seconds, hop_seconds, batch_size

    @property
    def name(self) -> str:
        return f"TorchScript embedding {self.path.name} at {self.sample_rate} Hz"

    @torch.no_grad()
    def __call__(self, audio, sample_rate: int) -> torch.Tensor:
        x = torch.from_numpy(_to_numpy(audio))
        if x.numel() < MIN_CLIP_SECONDS * sample_rate:
            seconds = x.numel() / sample_rate
            raise ValueError(f"audio of {seconds:.2f} s is too short to describe (at least {MIN_CLIP_SECONDS} s)")
        x = resample(x, int(sample_rate), self.sample_rate)
        window = int(round(self.window_seconds * self.sample_rate))
        hop = int(round(self.hop_seconds * self.sample_rate))
        if x.numel() <= window:
            windows = torch.nn.functional.pad(x, (0, window - x.numel()))[None]  # (1, window)
        else:
            windows = x.unfold(0, window, hop)  # (N, window)
        out = []
        for batch in windows.split(self.batch_size):
            embedding = self.module(batch.to(self.device))
            if not isinstance(embedding, torch.Tensor) or embedding.dim() != 2 or embedding.shape[0] != batch.shape[0]:
                shape = tuple(embedding.shape) if isinstance(embedding, torch.Tensor) else type(embedding).__name__
                raise EvaluationError(f"embedding {self.path.name} must map (B, T) audio to (B, D); it returned {shape} "
                                      f"for input {tuple(batch.shape)}")
            out.append(embedding.detach().double().cpu())
        return torch.nan_to_num(torch.cat(out))  # (N, D)

    def describe(self) -> dict:
        return {"kind": "torchscript", "path": str(self.path), "sample_rate": self.sample_rate,
                "window_seconds": self.window_seconds, "hop_seconds": self.hop_seconds}


FeatureExtractor = Callable[[torch.Tensor, int], torch.Tensor]


# ---- the distance ------------------------------------------------------------------------------------
def feature_matrix(features) -> np.ndarray:
    """Feature rows (N, D), a tensor or an array, as float64 numpy; ValueError when empty or not finite."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1:
        raise ValueError(f"expected features of shape (N, D) with N >= 1, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("features contain NaN or infinite values")
    return array


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    return (matrix + matrix.T) / 2


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a positive semi-definite matrix (negative rounding clipped)."""
    values, vectors = np.linalg.eigh(_symmetric(matrix))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(features_a, features_b, ridge: float = RIDGE) -> float:
    """Fréchet distance between Gaussians fitted to two sets of feature rows (N_a, D), (N_b, D).

    |mu_a - mu_b|^2 + tr(C_a) + tr(C_b) - 2 tr((C_a^1/2 C_b C_a^1/2)^1/2), with the matrix
    square roots taken from symmetric eigendecompositions (stable where scipy's sqrtm of the
    non-symmetric C_a C_b is not) and `ridge` added to both diagonals, so rank-deficient
    covariances (fewer rows than features, constant features, silence) give a finite value.
    Symmetric, 0 for identical sets, never negative.
    """
    a, b = feature_matrix(features_a), feature_matrix(features_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets have different widths: {a.shape[1]} and {b.shape[1]}")
    eye = np.eye(a.shape[1])
    cov_a = (np.cov(a, rowvar=False) if a.shape[0] > 1 else np.zeros((a.shape[1],) * 2)).reshape(eye.shape) + ridge * eye
    cov_b = (np.cov(b, rowvar=False) if b.shape[0] > 1 else np.zeros((b.shape[1],) * 2)).reshape(eye.shape) + ridge * eye
    root_a = _sqrt_psd(cov_a)
    cross = np.linalg.eigvalsh(_symmetric(root_a @ cov_b @ root_a))
    trace_cross = float(np.sqrt(np.clip(cross, 0.0, None)).sum())
    mean_term = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    return max(0.0, mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * trace_cross)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and standard deviation of reference features; features that do not
    vary in the reference keep their unit (std 1) instead of being blown up."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, *feature_sets) -> "Standardizer":
        rows = np.concatenate([feature_matrix(f) for f in feature_sets])
        std = rows.std(axis=0)
        return cls(rows.mean(axis=0), np.where(std > 1e-8, std, 1.0))

    def __call__(self, features) -> np.ndarray:
        return (feature_matrix(features) - self.mean) / self.std
