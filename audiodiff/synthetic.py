"""The built-in genre set: seeded clips of four genres, played on sampled instruments.

Why it exists: the course's data set lives on the Hugging Face hub, which many machines (and every
test) cannot reach. Wherever it can't, this module stands in for real music: it is the data the
bundled base model is pre-trained on, the data a fine-tune falls back to offline, and the audio
the tests train on. Each clip is a score written in its genre's idiom (arrange.py: a jazz trio
and horn, a rock band, a four-on-the-floor track, a chamber group) played on the General MIDI
instruments of a recorded soundfont through FluidSynth (fluid.py), in a seeded room:

    sudo apt-get install -y fluidsynth fluid-soundfont-gm    # what it needs; without it, one line says so

What a model has to learn from it, and therefore what the arrangements make sure of:
- Genres differ strongly: rhythm (swung ride and walking bass; back beat; four-on-the-floor; no
  drums at all), register, instruments and onset density.
- Clips of one genre differ from each other: tempo, key, mode, progression, voicing, patterns,
  instruments (kit, piano, lead, guitar, synth), the line, and the room are drawn from the seed,
  so a model learns the genre and not one clip.
- Everything is seeded: the same (genre, seed, seconds, sample_rate) gives the same bytes on one
  installation. The score is drawn from random streams that depend on neither the sample rate nor
  the length, so one seed is the same piece at 16 kHz and at 22.05 kHz, and a longer clip starts
  with the shorter one (up to the final level normalisation).

A 30 s clip at 16 kHz renders in about 0.1 s, so data can be rendered on the fly.

    clips = synthetic_clips(clips_per_genre=32, seconds=30.0)   # [SyntheticClip('classical', 0, 30.0), ...]
    audio = render("jazz", seed=7, seconds=30.0, sample_rate=22050)  # float32 (661500,)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import arrange, fluid
from .fluid import RendererMissing  # noqa: F401  (callers catch it from here)

GENRES: tuple[str, ...] = ("classical", "electronic", "jazz", "rock")

MIN_SECONDS = 0.1  # every genre sounds within its first 0.1 s, so no clip can be silent
MIN_SAMPLE_RATE = 8000
TARGET_RMS_DBFS = -18.0  # the level every clip is normalised to (unless its peak forbids)
PEAK_LIMIT = 0.98  # the largest |sample|; a margin below 0.99 survives the float32 cast

# Clip seeds of synthetic_clips: seed * _SEED_STRIDE + index * _SLOT_STRIDE + slot. The slot is
# fixed per genre (never its position in GENRES), so adding a genre later changes no existing
# clip; seeds of different genres differ modulo _SLOT_STRIDE, so they are never shared.
_GENRE_SLOTS = {"classical": 0, "electronic": 1, "jazz": 2, "rock": 3}
_SLOT_STRIDE = 16
_SEED_STRIDE = 1 << 20
MAX_CLIPS_PER_GENRE = _SEED_STRIDE // _SLOT_STRIDE


# ---- public API ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticClip:
    """One clip of the built-in genre set: render it with `clip.render(sample_rate)`."""

    genre: str
    seed: int
    seconds: float

    def __post_init__(self):
        _check_genre(self.genre, exact=True)
        _check_seed(self.seed)
        _check_seconds(self.seconds)

    @property
    def name(self) -> str:
        """Unique within a list from synthetic_clips, e.g. "jazz-0002"."""
        return f"{self.genre}-{self.seed:04d}"

    def render(self, sample_rate: int = 22050) -> np.ndarray:
        return render(self.genre, self.seed, self.seconds, sample_rate)


def render(genre: str, seed: int, seconds: float = 30.0, sample_rate: int = 22050) -> np.ndarray:
    """Render one clip: float32 mono (round(seconds * sample_rate),), RMS about -18 dBFS, peak <= 0.98.

    `genre` is one of GENRES (case-insensitive); the same arguments always give the same array.
    """
    genre = _check_genre(genre)
    seed = _check_seed(seed)
    seconds = _check_seconds(seconds)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate < MIN_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be an integer of at least {MIN_SAMPLE_RATE} Hz, got {sample_rate!r}")
    score = arrange.score(genre, seed, seconds)
    dry = fluid.render_score(score.notes, score.parts, seconds, int(sample_rate))
    return _normalise(_room(dry, int(sample_rate), score.room, _room_rng(genre, seed)))


def synthetic_clips(
    clips_per_genre: int = 32,
    seconds: float = 30.0,
    genres: Sequence[str] | None = None,
    seed: int = 0,
) -> list[SyntheticClip]:
    """The deterministic list of clips of the built-in set: `clips_per_genre` per genre, genre by genre.

    Clip seeds are derived from (seed, genre, index) so that no two genres share a seed, and the
    first k clips of a genre are the same whatever `clips_per_genre` is.
    """
    if isinstance(clips_per_genre, bool) or not isinstance(clips_per_genre, numbers.Integral) or clips_per_genre < 1:
        raise ValueError(f"clips_per_genre must be a positive integer, got {clips_per_genre!r}")
    if clips_per_genre > MAX_CLIPS_PER_GENRE:
        raise ValueError(f"clips_per_genre can be at most {MAX_CLIPS_PER_GENRE}, got {clips_per_genre}")
    seconds = _check_seconds(seconds)
    seed = _check_seed(seed)
    if genres is None:
        genres = GENRES
    elif isinstance(genres, str):
        genres = [genres]
    chosen = list(dict.fromkeys(_check_genre(g) for g in genres))  # canonical names, first occurrence order
    if not chosen:
        raise ValueError(f"genres is empty; choose some of {', '.join(GENRES)} (or pass None for all)")
    return [
        SyntheticClip(genre, seed * _SEED_STRIDE + index * _SLOT_STRIDE + _GENRE_SLOTS[genre], seconds)
        for genre in chosen
        for index in range(int(clips_per_genre))
    ]


# ---- argument checks -----------------------------------------------------------------------------
def _check_genre(genre, exact: bool = False) -> str:
    """The canonical (lowercase) genre name; `exact` accepts only the canonical name itself."""
    name = genre.strip().lower() if isinstance(genre, str) and not exact else genre
    if not isinstance(name, str) or name not in _GENRE_SLOTS:
        raise ValueError(f"unknown synthetic genre {genre!r}; the built-in genres are: {', '.join(GENRES)}")
    return name


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_seconds(seconds) -> float:
    valid = not isinstance(seconds, bool) and isinstance(seconds, numbers.Real) and math.isfinite(seconds)
    if not valid or seconds < MIN_SECONDS:
        raise ValueError(f"seconds must be a finite number of at least {MIN_SECONDS}, got {seconds!r}")
    return float(seconds)


# ---- the room -----------------------------------------------------------------------------------
def _room_rng(genre: str, seed: int) -> np.random.Generator:
    """The room's stream (the only draws that depend on the sample rate: one per sample of its response)."""
    return np.random.default_rng(np.random.SeedSequence([seed, _GENRE_SLOTS[genre], 0x600D]))


def _room(dry: np.ndarray, sample_rate: int, room: arrange.Room, rng: np.random.Generator) -> np.ndarray:
    """`dry` in a diffuse room: mixed with its convolution with exponentially decaying, band-limited
    noise (unit energy times `room.wet`) after `room.predelay`; then `room.tone_hz`'s gentle low-pass
    (a seat in a hall hears less top)."""
    n_ir = int(room.t60 * sample_rate)
    t = np.arange(n_ir) / sample_rate
    ir = rng.standard_normal(n_ir) * np.exp(t * (-6.9 / room.t60))
    size = _fft_size(n_ir)
    ir = np.fft.irfft(np.fft.rfft(ir, size) * _response(size, sample_rate, 150.0, min(6000.0, 0.4 * sample_rate), 1), size)[:n_ir]
    ir *= room.wet / np.sqrt(np.sum(ir**2))
    kernel = np.zeros(int(room.predelay * sample_rate) + n_ir)
    kernel[0] = 1.0 - room.wet
    kernel[-n_ir:] += ir
    size = _fft_size(len(dry) + len(kernel))
    spectrum = np.fft.rfft(dry, size) * np.fft.rfft(kernel, size)
    if room.tone_hz is not None:
        spectrum *= _response(size, sample_rate, None, room.tone_hz, order=2)
    return np.fft.irfft(spectrum, size)[: len(dry)]


def _fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: FFT lengths numpy's pocketfft handles fastest."""
    best = 1 << max(0, (n - 1).bit_length())
    for odd in (3, 5, 9, 15, 25, 27, 45, 75, 81, 125, 135, 225, 243, 375, 405, 625, 675):
        size = odd << max(0, math.ceil(math.log2(n / odd)))
        if n <= size < best:
            best = size
    return best


def _response(size: int, sample_rate: int, highpass_hz: float | None, lowpass_hz: float | None,
              order: int) -> np.ndarray:
    """Butterworth magnitude responses on the bins of an rfft of length `size`."""
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    gain = np.ones_like(freqs)
    if lowpass_hz is not None:
        gain /= np.sqrt(1.0 + np.square(freqs / lowpass_hz) ** order)
    if highpass_hz is not None:
        ratio = np.divide(highpass_hz, freqs, out=np.full_like(freqs, np.inf), where=freqs > 0)
        gain /= np.sqrt(1.0 + np.square(ratio) ** order)
    return gain


def _normalise(mix: np.ndarray) -> np.ndarray:
    mix = mix - mix.mean()
    rms = float(np.sqrt(np.mean(mix**2)))
    peak = float(np.max(np.abs(mix)))
    if not (rms > 0.0 and math.isfinite(rms)):  # cannot happen for clips of at least MIN_SECONDS
        raise RuntimeError("synthetic rendering produced silence or non-finite samples; please report this")
    gain = min(10.0 ** (TARGET_RMS_DBFS / 20.0) / rms, PEAK_LIMIT / peak)
    return (mix * gain).astype(np.float32)
