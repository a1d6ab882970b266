"""audiodiff: fine-tune a pretrained audio-diffusion UNet on one music genre and generate long clips."""

from .audio import AudioError, load_audio, read_audio, resample, write_wav
from .mel import (
    MelConfig,
    audio_to_images,
    audio_to_spectrogram,
    images_to_audio,
    images_to_power,
    mel_power,
    spectral_convergence,
)

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "MelConfig",
    "audio_to_images",
    "audio_to_spectrogram",
    "images_to_audio",
    "images_to_power",
    "load_audio",
    "mel_power",
    "read_audio",
    "resample",
    "spectral_convergence",
    "write_wav",
]
