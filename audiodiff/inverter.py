"""The learned Mel inverter: what lies inside each Mel band, guessed from the whole column.

A 64-band Mel image at 16 kHz keeps one number per band, and above 1 kHz a band spans 4-25 linear
bins: where a piano's partials stood inside it is lost. The plain inversion (mel.py's NNLS) spreads
each band's energy smoothly over its bins, so every upper band decodes as a little band of noise:
the built-in set's held-out jazz reads spectral flatness 0.0014 as recorded and 0.0022 through that
codec, and a model of the image can't be more tonal than its codec (issue 23).

This small network (two hidden layers on five neighbouring columns, 0.9 M parameters, 1.9 MB in
float16) reads the image and guesses the linear spectrum in dB, as a correction to that smooth
spread; the guess is projected back onto the image (multiplicative NNLS from it), so every band
keeps the image's energy and only the distribution inside a band is learned. mel.images_to_audio
starts its mel-consistent Griffin-Lim there instead of at the smooth spread. Measured (session 16,
30 s clips; spectral distance: RMS over bins of the dB difference to the recording, levels matched,
60 dB down clipped, mean over frames; flatness as metrics.spectral_flatness):

                                         magnitudes (dB)   decoded audio (dB)   flatness (recorded)
                                         smooth  learned    smooth  learned     smooth  learned
    held-out built-in jazz (8 tracks)     7.50    4.65       6.67    4.58       0.0022  0.0014  (0.0014)
    ../shared/music (3 recordings)        4.49    4.14       3.96    3.65       0.0033  0.0023  (0.0031)

On the recordings the decoded audio is more tonal than the recording (their noise between partials
is not put back); it is still nearer to it than the smooth start's. Tried and not taken: Griffin-Lim
aiming at the guessed magnitudes themselves (no mel consistency): nearest in spectral distance on
the built-in set, but the bundled model's generated clips came out noisier than with no network
(flatness 0.0028 against 0.0027, eight clips).

It was trained on the built-in set (fluid.py's soundfont, all four genres, seeds no model trains
on) by `scripts/train_inverter.py`, and it applies to that Mel image only (16 kHz, n_fft 1024,
hop 384, 64 bands, 80 dB): `inverter_for(mel)` gives None for any other, and those decode as before.
Nothing loaded here runs code: the weights are safetensors, the settings JSON.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

from .mel import MelConfig, images_to_db, images_to_power, mel_to_linear_power, smooth_spread

INVERTER_DIR = Path(__file__).parent / "bundled" / "inverter"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MATCHED_FIELDS = ("sample_rate", "n_fft", "hop_length", "y_res", "top_db")  # what the network has learned
FLOOR_DB = 100.0  # guesses and targets are clipped this far below the image's 0 dB
CORRECTION_DB = 20.0  # the output layer's scale: one unit is 20 dB
PROJECTION_ITERATIONS = 30
MAX_CONTEXT, MAX_WIDTH = 8, 4096  # what a settings file may ask for before anything is allocated


class MelInverter(torch.nn.Module):
    """Mel image columns -> linear power spectrum (dB relative to the image's 0 dB)."""

    def __init__(self, mel: dict, context: int = 2, width: int = 640):
        super().__init__()
        self.mel, self.context, self.width = dict(mel), int(context), int(width)
        n_mels, n_freqs = int(mel["y_res"]), int(mel["n_fft"]) // 2 + 1
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(n_mels * (2 * self.context + 1), self.width), torch.nn.GELU(),
            torch.nn.Linear(self.width, self.width), torch.nn.GELU(), torch.nn.Linear(self.width, n_freqs),
        )
        torch.nn.init.zeros_(self.layers[-1].weight)  # starts as the smooth spread
        torch.nn.init.zeros_(self.layers[-1].bias)

    @property
    def mel_config(self) -> MelConfig:
        return MelConfig.from_dict(self.mel)

    def matches(self, mel: MelConfig) -> bool:
        mine = self.mel_config
        return all(getattr(mine, name) == getattr(mel, name) for name in MATCHED_FIELDS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, n_mels, F) images in [-1, 1] -> guessed linear power in dB, (B, n_freqs, F)."""
        mel = self.mel_config
        weight = self.layers[0].weight  # the network runs where its weights are (the CPU: ~0.04 s for 30 s)
        features = columns(images, mel, self.context).to(weight.device, weight.dtype)
        return self.predict(features, smooth_db(images, mel).transpose(1, 2).to(weight.device)).transpose(1, 2).to(images.device)

    def predict(self, features: torch.Tensor, smooth: torch.Tensor) -> torch.Tensor:
        """(..., n_mels * (2 context + 1)) column features and (..., n_freqs) smooth spread in dB ->
        the guess in dB (..., n_freqs): the spread plus the network's correction."""
        return smooth.float() + CORRECTION_DB * self.layers(features).float()

    def linear_power(self, images: torch.Tensor) -> torch.Tensor:
        """The guess projected onto the images' Mel power: (B, n_freqs, F), relative to 0 dB."""
        mel = self.mel_config
        with torch.no_grad():
            guess = torch.pow(10.0, self.forward(images).clamp_min(-FLOOR_DB) / 10.0)
        return project(guess, images_to_power(images, mel).to(guess.dtype), mel)

    def save(self, folder: str | Path) -> Path:
        import safetensors.torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        settings = {"mel": self.mel, "context": self.context, "width": self.width}
        (folder / CONFIG_NAME).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
        state = {name: value.detach().to(torch.float16).contiguous() for name, value in self.state_dict().items()}
        safetensors.torch.save_file(state, str(folder / WEIGHTS_NAME))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "MelInverter":
        import safetensors.torch

        folder = Path(folder)
        try:
            settings = json.loads((folder / CONFIG_NAME).read_text())
            context, width = settings["context"], settings["width"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (context, width)) \
                    or not (0 <= context <= MAX_CONTEXT and 1 <= width <= MAX_WIDTH):
                raise ValueError(f"context {context!r} and width {width!r} must be whole numbers within "
                                 f"0-{MAX_CONTEXT} and 1-{MAX_WIDTH}")
            model = cls(MelConfig.from_dict(settings["mel"]).to_dict(), context, width)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{folder / CONFIG_NAME} is not an inverter's settings: {exc}") from None
        state = safetensors.torch.load_file(str(folder / WEIGHTS_NAME), device="cpu")
        try:
            model.load_state_dict({name: value.float() for name, value in state.items()})
        except RuntimeError as exc:  # names or shapes that are not this network's
            raise ValueError(f"{folder / WEIGHTS_NAME} does not hold the network {CONFIG_NAME} describes") from exc
        return model.eval()


def columns(images: torch.Tensor, mel: MelConfig, context: int) -> torch.Tensor:
    """Each column with `context` neighbours on each side (edges repeated), in units of top_db:
    (B, 1, n_mels, F) -> (B, F, n_mels * (2 context + 1)), values in [-1, 0]."""
    level = images_to_db(images, mel) / mel.top_db  # (B, n_mels, F)
    frames = level.shape[-1]
    padded = torch.nn.functional.pad(level, (context, context), mode="replicate")
    stacked = torch.cat([padded[..., i : i + frames] for i in range(2 * context + 1)], dim=1)
    return stacked.transpose(1, 2)


def smooth_db(images: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """The smooth spread A^T (b / A A^T 1) of the images' Mel power in dB: (B, n_freqs, F)."""
    spread = smooth_spread(images_to_power(images, mel), mel)
    return (10.0 * torch.log10(spread.clamp_min(1e-30))).clamp_min(-FLOOR_DB)


def project(guess: torch.Tensor, mel_power: torch.Tensor, mel: MelConfig,
            iterations: int = PROJECTION_ITERATIONS) -> torch.Tensor:
    """Multiplicative NNLS from `guess` (B, n_freqs, F) towards A x = mel_power: the Mel bands'
    energies become the image's while the shape inside each band stays the guess's."""
    return mel_to_linear_power(mel_power, mel, iterations, start=guess)


@functools.lru_cache(maxsize=1)
def bundled() -> MelInverter | None:
    """The shipped inverter, or None where the package has none."""
    if not (INVERTER_DIR / WEIGHTS_NAME).is_file():
        return None
    return MelInverter.load(INVERTER_DIR)


def inverter_for(mel: MelConfig) -> MelInverter | None:
    """The shipped inverter when it was trained for this Mel image, else None (decode as before)."""
    model = bundled()
    return model if model is not None and model.matches(mel) else None
