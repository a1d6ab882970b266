"""The Mel-image codec: audio <-> (B, 1, y_res, x_res) images in [-1, 1].

Compatible bit for bit (up to float rounding) with diffusers' `Mel` (the codec of the public
audio-diffusion checkpoints), but batched in torch, on any device, and with a decoder that is
faster and more accurate than the reference's librosa NNLS + Griffin-Lim.

Encoding (DESIGN section 2): Hann-window STFT (center, zero padding) -> power -> Slaney mel
filterbank -> dB relative to the image's own maximum, floored at -top_db -> grey level
uint8((L + top_db) * 255 / top_db + 0.5) -> p / 255 * 2 - 1. Row 0 is the lowest mel band.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torchaudio.functional as AF

CONFIG_NAME = "mel_config.json"
AMIN = 1e-10  # librosa.power_to_db's floor: silence is -100 dB before the reference is removed


MEL_RANGES = {"x_res": (1, 4096), "y_res": (1, 1024), "sample_rate": (1000, 192000), "n_fft": (16, 16384),
              "hop_length": (1, 16384), "top_db": (1, 200), "n_iter": (1, 1000)}


@dataclass(frozen=True)
class MelConfig:
    """The fields of a pipeline's `mel/mel_config.json`; defaults are the public 256 checkpoints'."""

    x_res: int = 256  # STFT frames per image (image width)
    y_res: int = 256  # mel bands (image height)
    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    top_db: int = 80  # dynamic range of one image: grey 0 is top_db below the image's maximum
    n_iter: int = 32  # Griffin-Lim iterations used when decoding

    def __post_init__(self):
        # Every field has a range, checked before anything is allocated: a config comes from files
        # anyone can edit (a pipeline's mel/, a PNG's metadata), and n_iter 1e9 or x_res 2**22
        # would hang or exhaust memory (issue 25). The ranges hold every public model with room.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            low, high = MEL_RANGES[field.name]
            whole = isinstance(value, int) or (field.name == "top_db" and isinstance(value, float))
            if isinstance(value, bool) or not whole or not (low <= value <= high):
                kind = "a number" if field.name == "top_db" else "an integer"
                raise ValueError(f"MelConfig.{field.name} must be {kind} from {low} to {high}, got {value!r}")
        if self.hop_length >= self.n_fft:  # the inverse STFT needs overlapping windows
            raise ValueError(f"MelConfig.hop_length ({self.hop_length}) must be less than n_fft ({self.n_fft})")

    # ---- derived values -------------------------------------------------------------------
    @property
    def n_mels(self) -> int:
        return self.y_res

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def slice_samples(self) -> int:
        """Samples in one image's slice: with centring, x_res*hop - 1 samples give x_res frames."""
        return self.x_res * self.hop_length - 1

    @property
    def slice_seconds(self) -> float:
        return self.slice_samples / self.sample_rate

    @property
    def pixels_per_second(self) -> float:
        """Image columns (STFT frames) per second of audio."""
        return self.sample_rate / self.hop_length

    def seconds_to_columns(self, seconds: float) -> float:
        """Image columns in `seconds` of audio, fractional: the one conversion (round as the use needs)."""
        return seconds * self.sample_rate / self.hop_length

    def columns_to_seconds(self, columns: float) -> float:
        """Where column `columns` lies in the audio, in seconds (column j is centred on sample j * hop)."""
        return columns * (self.hop_length / self.sample_rate)

    def frames_to_samples(self, frames: int) -> int:
        """Length of the audio decoded from an image `frames` columns wide."""
        return (frames - 1) * self.hop_length

    def samples_to_frames(self, samples: int) -> int:
        """Columns of the image encoded from `samples` samples (centred STFT)."""
        return 1 + samples // self.hop_length

    # ---- (de)serialisation, compatible with diffusers' Mel.from_pretrained ----------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "MelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "MelConfig":
        """Read `mel_config.json` from a file, a folder holding it, or a pipeline folder (`mel/`)."""
        path = Path(path)
        candidates = [path] if path.suffix == ".json" else [path / CONFIG_NAME, path / "mel" / CONFIG_NAME]
        for candidate in candidates:
            if candidate.is_file():
                try:
                    return cls.from_dict(json.loads(candidate.read_text()))
                except (json.JSONDecodeError, TypeError, ValueError) as exc:
                    raise ValueError(f"{candidate} is not a valid Mel configuration: {exc}") from exc
        raise FileNotFoundError(f"no {CONFIG_NAME} in {path} (looked for {', '.join(map(str, candidates))})")

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write `folder/mel_config.json` in the format diffusers' `Mel` reads."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            import diffusers

            version = diffusers.__version__
        except ImportError:  # pragma: no cover - diffusers is a dependency
            version = "unknown"
        payload = {"_class_name": "Mel", "_diffusers_version": version, **self.to_dict()}
        target = folder / CONFIG_NAME
        target.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        return target


# ---- cached constants ----------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _filterbank_cpu(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Slaney-scale, Slaney-normalised mel filterbank (librosa's default), (n_mels, n_freqs)."""
    fb = AF.melscale_fbanks(
        n_freqs=n_fft // 2 + 1, f_min=0.0, f_max=sample_rate / 2, n_mels=n_mels,
        sample_rate=sample_rate, norm="slaney", mel_scale="slaney",
    )  # (n_freqs, n_mels)
    return fb.T.contiguous()


@functools.lru_cache(maxsize=32)
def _constants(config: MelConfig, device: torch.device, dtype: torch.dtype):
    fb = _filterbank_cpu(config.sample_rate, config.n_fft, config.n_mels).to(device, dtype)
    window = torch.hann_window(config.n_fft, periodic=True, device=device, dtype=dtype)
    # Each linear bin feeds at most two neighbouring mel bands: the filterbank is ~99 % zeros,
    # and sparse products with it are an order of magnitude faster than dense ones.
    return fb, window, fb.to_sparse().coalesce(), fb.T.to_sparse().coalesce()


def filterbank(config: MelConfig, device=None, dtype=torch.float32) -> torch.Tensor:
    """The mel filterbank as (n_mels, n_freqs) on `device`."""
    return _constants(config, torch.device(device or "cpu"), dtype)[0]


def _sparse_apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(R, K) sparse @ (B, K, F) dense -> (B, R, F)."""
    batch, k, frames = x.shape
    out = torch.sparse.mm(matrix, x.transpose(0, 1).reshape(k, batch * frames))
    return out.reshape(-1, batch, frames).transpose(0, 1)


def to_mel(power: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Linear power (B, n_freqs, F) -> mel power (B, n_mels, F): A x."""
    return _sparse_apply(_constants(config, power.device, power.dtype)[2], power)


def from_mel(mel: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Mel values (B, n_mels, F) spread back over the linear bins (B, n_freqs, F): A^T y."""
    return _sparse_apply(_constants(config, mel.device, mel.dtype)[3], mel)


def _as_batch(audio: torch.Tensor) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor):
        audio = torch.as_tensor(audio)
    if audio.dim() == 1:
        audio = audio.unsqueeze(0)
    if audio.dim() != 2:
        raise ValueError(f"expected audio of shape (T,) or (B, T), got {tuple(audio.shape)}")
    if not audio.is_floating_point():
        raise ValueError(f"expected floating-point audio, got {audio.dtype}")
    return audio.float() if audio.dtype == torch.float64 else audio


def _stft(audio: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """(B, T) -> complex (B, n_freqs, 1 + T // hop)."""
    window = _constants(config, audio.device, audio.dtype)[1]
    return torch.stft(
        audio, config.n_fft, hop_length=config.hop_length, win_length=config.n_fft, window=window,
        center=True, pad_mode="constant", return_complex=True,
    )


def _istft(spec: torch.Tensor, config: MelConfig, length: int) -> torch.Tensor:
    window = _constants(config, spec.device, spec.real.dtype)[1]
    return torch.istft(
        spec, config.n_fft, hop_length=config.hop_length, win_length=config.n_fft, window=window,
        center=True, length=length,
    )


def mel_power(audio: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Mel power spectrogram of (B, T) audio: (B, n_mels, 1 + T // hop_length)."""
    audio = _as_batch(audio)
    spec = _stft(audio, config)
    power = spec.real.square() + spec.imag.square()  # (B, n_freqs, F)
    return to_mel(power, config)  # (B, n_mels, F)


def power_to_images(power: torch.Tensor, config: MelConfig, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Mel power (B, n_mels, F) -> images (B, 1, n_mels, F) in [-1, 1].

    `reference` is the power that maps to 0 dB (grey 255), per item (B,); by default each
    item's own maximum, as in the reference codec.
    """
    if reference is None:
        reference = power.amax(dim=(-2, -1))
    reference = torch.as_tensor(reference, dtype=power.dtype, device=power.device).reshape(-1, 1, 1)
    level_db = 10.0 * torch.log10(power.clamp_min(AMIN)) - 10.0 * torch.log10(reference.clamp_min(AMIN))
    level_db = level_db.clamp_min(-config.top_db)
    grey = torch.floor(((level_db + config.top_db) * (255.0 / config.top_db)).clamp(0.0, 255.0) + 0.5)
    return (grey / 255.0 * 2.0 - 1.0).unsqueeze(1)


def audio_to_images(audio: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """(B, T) or (T,) audio at `config.sample_rate`, T <= slice_samples -> (B, 1, y_res, x_res).

    Equal to diffusers' `Mel.audio_slice_to_image` followed by p / 255 * 2 - 1. Shorter audio
    is zero-padded at the end.
    """
    audio = _as_batch(audio)
    length = audio.shape[-1]
    if length > config.slice_samples:
        raise ValueError(
            f"audio_to_images takes at most one slice ({config.slice_samples} samples at "
            f"{config.sample_rate} Hz), got {length}; slice longer audio first or use audio_to_spectrogram"
        )
    audio = torch.nn.functional.pad(audio, (0, config.slice_samples - length))
    return power_to_images(mel_power(audio, config), config)


def audio_to_spectrogram(audio: torch.Tensor, config: MelConfig, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Audio of any length -> one wide image (B, 1, y_res, 1 + T // hop) with one level reference.

    Unlike slicing and encoding slice by slice, the whole clip shares one 0 dB reference, so
    its level is consistent from start to end.
    """
    return power_to_images(mel_power(_as_batch(audio), config), config, reference)


def images_to_power(images: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """(B, 1, n_mels, F) images in [-1, 1] -> mel power (B, n_mels, F) relative to the 0 dB grey."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images of shape (B, 1, n_mels, frames), got {tuple(images.shape)}")
    if images.shape[2] != config.n_mels:
        raise ValueError(f"images have {images.shape[2]} rows but the Mel config has {config.n_mels} mel bands")
    return torch.pow(10.0, images_to_db(images, config) / 10.0)


def images_to_db(images: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """(B, 1, n_mels, F) images in [-1, 1] -> level in dB (B, n_mels, F) relative to the 0 dB grey
    (255), down to -top_db (grey 0): the inverse of the pixel formula (DESIGN section 2)."""
    grey = ((images[:, 0].float() + 1.0) * 127.5).clamp(0.0, 255.0)
    return grey * (config.top_db / 255.0) - config.top_db


def smooth_spread(mel: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Mel power (B, n_mels, F) spread evenly over each band's linear bins: A^T (b / A A^T 1),
    (B, n_freqs, F), exact for a spectrum that is flat within each band."""
    fb = filterbank(config, mel.device, mel.dtype)  # A: (n_mels, n_freqs)
    row_energy = fb @ fb.sum(dim=0)  # A A^T 1: (n_mels,)
    return from_mel(mel / row_energy.clamp_min(torch.finfo(mel.dtype).tiny)[:, None], config)


def mel_to_linear_power(mel: torch.Tensor, config: MelConfig, num_iterations: int = 30,
                        start: torch.Tensor | None = None) -> torch.Tensor:
    """Non-negative least squares: the linear power (B, n_freqs, F) whose mel projection is `mel`.

    The mel filterbank is a short, wide, non-negative matrix in which each linear bin feeds at
    most two neighbouring mel bands, so the problem is underdetermined and well posed. We start
    from the smooth non-negative spread A^T (b / A A^T 1) (exact for a spectrum that is flat
    within each band) and refine it with multiplicative NNLS updates, which keep every entry
    non-negative without projection and cost two sparse products per iteration.
    (librosa's `mel_to_stft` runs L-BFGS-B per block on the CPU and stops short of the solution.)
    A `start` (B, n_freqs, F) replaces that spread: the updates keep its shape inside each band
    (the learned inverter's guess, inverter.py).
    """
    x = smooth_spread(mel, config) if start is None else start
    numerator = from_mel(mel, config)  # A^T b
    for _ in range(num_iterations):
        x = x * numerator / (from_mel(to_mel(x, config), config) + 1e-20)
    return x


def locked_phase(magnitude: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """A phase estimate for linear magnitudes (B, n_freqs, F): the peak-locked phase vocoder.

    Each frame's spectral peaks get a frequency from parabolic interpolation of the log
    magnitude; every bin takes the nearest peak's frequency, the phase advances by it from
    frame to frame, and bins around a peak alternate by pi (the main lobe of a Hann window
    whose time origin is the frame start). Griffin-Lim started here converges far faster at
    low frequencies, where most of the energy and most of the error of a random start lie.
    """
    batch, n_bins, frames = magnitude.shape
    log_mag = torch.log(magnitude + 1e-9)
    left, centre, right = log_mag[:, :-2], log_mag[:, 1:-1], log_mag[:, 2:]
    is_peak = torch.zeros_like(magnitude, dtype=torch.bool)
    is_peak[:, 1:-1] = (centre > left) & (centre >= right)
    curvature = left - 2 * centre + right
    curvature = torch.where(curvature.abs() < 1e-9, torch.full_like(curvature, -1e-9), curvature)
    offset = torch.zeros_like(magnitude)
    offset[:, 1:-1] = torch.where(is_peak[:, 1:-1], 0.5 * (left - right) / curvature, 0.0).clamp(-0.5, 0.5)
    bins = torch.arange(n_bins, device=magnitude.device).view(1, n_bins, 1).expand(batch, n_bins, frames)
    previous_peak = torch.where(is_peak, bins, torch.zeros_like(bins)).cummax(dim=1).values
    next_peak = torch.where(is_peak, bins, torch.full_like(bins, n_bins - 1)).flip(1).cummin(dim=1).values.flip(1)
    nearest = torch.where(bins - previous_peak <= next_peak - bins, previous_peak, next_peak)
    peak_frequency = torch.gather(bins.to(magnitude.dtype) + offset, 1, nearest)  # in bins
    advance = (2 * math.pi * config.hop_length / config.n_fft) * peak_frequency  # radians per frame
    phase = torch.cumsum(advance, dim=2)
    return torch.gather(phase, 1, nearest) + math.pi * (bins - nearest).to(magnitude.dtype)


def griffin_lim(
    magnitude: torch.Tensor,
    config: MelConfig,
    length: int,
    n_iter: int,
    momentum: float = 0.99,
    phase: torch.Tensor | None = None,
    mel: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013, the `momentum` form librosa uses), batched.

    magnitude: (B, n_freqs, F) linear STFT magnitudes, phase: the initial phase (same shape;
    default the peak-locked estimate) -> (B, length) audio. When the target mel power
    (B, n_mels, F) is given, each iteration also moves the linear magnitudes to the ones
    closest to the current estimate that still match that mel power (one multiplicative
    update): a mel spectrogram fixes the magnitudes only up to its null space, and letting
    Griffin-Lim use that freedom makes the result consistent sooner.
    """
    coverage = filterbank(config, magnitude.device, magnitude.dtype).sum(dim=0)[:, None].clamp_min(1e-20)  # A^T 1
    if phase is None:
        phase = locked_phase(magnitude, config)
    spec = torch.polar(magnitude, phase)
    previous = torch.zeros_like(spec)
    beta = momentum / (1.0 + momentum)
    for _ in range(n_iter):
        rebuilt = _stft(_istft(spec, config, length), config)
        if mel is not None:
            power = rebuilt.real.square() + rebuilt.imag.square()
            ratio = mel / to_mel(power, config).add_(1e-20)
            magnitude = power.mul_(from_mel(ratio, config)).div_(coverage).sqrt_()
        # accelerated step, then keep the phase and impose the target magnitude: one fused pass
        spec = rebuilt - beta * previous
        spec.mul_(magnitude / spec.abs().add_(1e-16))
        previous = rebuilt
    return _istft(spec, config, length)


def images_to_audio(
    images: torch.Tensor,
    config: MelConfig,
    n_iter: int | None = None,
    momentum: float = 0.99,
    nnls_iterations: int = 30,
    seed: int | None = None,
    inverter="auto",
) -> torch.Tensor:
    """(B, 1, n_mels, F) images in [-1, 1], any width F -> (B, (F - 1) * hop_length) audio.

    dB -> mel power -> linear power -> magnitude -> mel-consistent Griffin-Lim with momentum,
    from the peak-locked phase estimate. The linear power it starts from: where the learned
    inverter knows this Mel image (`inverter="auto"`: the shipped one, inverter.py), its guess of
    each band's inside, projected onto the image; otherwise (or `inverter=None`) the NNLS spread.
    Deterministic: the same images give the same audio. `seed` chooses a random initial phase
    and the NNLS start instead (the reference's start), for comparisons. The level is relative
    to the images' 0 dB grey, like the reference's: normalise loudness afterwards.
    """
    mel = images_to_power(images, config)
    learned = _inverter(inverter, config) if seed is None else None
    if learned is not None:
        magnitude = learned.linear_power(images).to(mel.dtype).sqrt()
    else:
        magnitude = mel_to_linear_power(mel, config, nnls_iterations).sqrt()
    phase = None
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
        phase = 2 * math.pi * torch.rand(magnitude.shape, generator=generator).to(magnitude.device, magnitude.dtype)
    return griffin_lim(
        magnitude, config, config.frames_to_samples(images.shape[-1]),
        n_iter if n_iter is not None else config.n_iter, momentum, phase=phase, mel=mel,
    )


def _inverter(inverter, config: MelConfig):
    """The learned inverter to decode with: "auto" -> the shipped one if it knows `config`'s image."""
    if inverter is None:
        return None
    if isinstance(inverter, str):
        if inverter != "auto":
            raise ValueError(f"inverter must be 'auto', None or a MelInverter, got {inverter!r}")
        from .inverter import inverter_for

        return inverter_for(config)
    if not inverter.matches(config):
        raise ValueError("this inverter was trained for another Mel image than the one being decoded")
    return inverter


def spectral_convergence(images_in: torch.Tensor, images_out: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """SC = ||M_in - M_out|| / ||M_in|| on linear mel magnitudes, per item (B,)."""
    m_in = images_to_power(images_in, config).sqrt()
    m_out = images_to_power(images_out, config).sqrt()
    return torch.linalg.vector_norm(m_in - m_out, dim=(-2, -1)) / torch.linalg.vector_norm(m_in, dim=(-2, -1))
