"""The built-in genre set: procedurally rendered, seeded music clips of clearly different genres.

Why it exists: the course's data set lives on the Hugging Face hub, which many machines (and every
test) cannot reach. Wherever it can't, this module stands in for real music: it is the data the
bundled base model is pre-trained on, the data a fine-tune falls back to offline, and the audio
the tests train on. It is a stand-in, not music anyone would mistake for a recording: four small
synthesizer "bands" (additive/wavetable tones, noise-and-sweep drums, a convolution reverb) play
seeded arrangements in the idiom of each genre.

What a model has to learn from it, and therefore what the renderers make sure of:
- Genres differ strongly in their Mel spectrograms: rhythm (swung ride and walking bass; back
  beat; four-on-the-floor; no drums at all), register, timbre (soft piano; distorted power
  chords; saw arpeggios over a sub bass; bowed strings with vibrato) and onset density.
- Clips of one genre differ from each other: tempo, key, mode, progression, voicing, rhythm
  pattern, instrument brightness, drum tuning, mix levels and reverb are all drawn from the seed,
  so a model learns the genre and not one clip.
- Everything is seeded: the same (genre, seed, seconds, sample_rate) gives the same array. The
  score (notes, tempo, timbre settings) is drawn from random streams that do not depend on the
  sample rate or the length, so one seed is the same piece at 16 kHz and at 22.05 kHz, and a
  longer clip starts with the shorter one (up to the final level normalisation).

Rendering is vectorised per note or drum hit (wavetable oscillators with closed-form phase,
pre-rendered drum samples added at each hit, FFT filtering and reverb on whole tracks): a 30 s
clip at 22050 Hz takes a small fraction of a second, so data can be rendered on the fly.

    clips = synthetic_clips(clips_per_genre=32, seconds=30.0)   # [SyntheticClip('classical', 0, 30.0), ...]
    audio = render("jazz", seed=7, seconds=30.0, sample_rate=22050)  # float32 (661500,)
"""

from __future__ import annotations

import functools
import math
import numbers
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

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

_TABLE_SIZE = 4096  # wavetable length (a power of two: the phase wraps with a bit mask)


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
    canvas = _Canvas(genre, seed, seconds, int(sample_rate))
    mix = _RENDERERS[genre](canvas)  # (T,) float64
    return _normalise(mix)


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
    if not isinstance(name, str) or name not in _RENDERERS:
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


# ---- signal building blocks ----------------------------------------------------------------------
def _midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


@functools.lru_cache(maxsize=256)  # at most 256 * 64 KiB
def _wavetable(n_harmonics: int, rolloff: float, odd_only: bool = False,
               partials: tuple[tuple[int, float], ...] = ((1, 1.0),),
               drive: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One period of a band-limited waveform, and its sample-to-sample slope (for linear interpolation).

    The waveform is sum_p level_p sum_k k**-rolloff sin(2 pi k m_p x) over the partials (m_p, level_p):
    one tone (the default) or a chord whose notes are harmonics m_p of the table's frequency; only
    terms with k * m_p <= n_harmonics are kept (odd k only if asked). With `drive`, the period is
    clipped (tanh) and band-limited again: distortion without the aliasing of clipping the audio.
    """
    spectrum = np.zeros(_TABLE_SIZE // 2 + 1, dtype=np.complex128)
    for multiple, level in partials:
        k = np.arange(1, n_harmonics // multiple + 1)
        if odd_only:
            k = k[::2]
        spectrum[k * multiple] += level * k.astype(np.float64) ** -rolloff
    spectrum *= -0.5j * _TABLE_SIZE  # irfft of -iAN/2 at bin k is A sin(2 pi k x)
    table = np.fft.irfft(spectrum, n=_TABLE_SIZE)
    if drive > 0.0:
        clipped = np.fft.rfft(np.tanh(drive * table / np.max(np.abs(table))))
        clipped[n_harmonics + 1 :] = 0.0
        clipped[0] = 0.0
        clean_rms = np.sqrt(np.mean(table**2))
        table = np.fft.irfft(clipped, n=_TABLE_SIZE)
        table *= clean_rms / np.sqrt(np.mean(table**2))
    slope = np.roll(table, -1) - table
    table.flags.writeable = False
    slope.flags.writeable = False
    return table, slope


def _lookup(table: tuple[np.ndarray, np.ndarray], index: np.ndarray) -> np.ndarray:
    """Linearly interpolated wavetable read at fractional positions `index` (in table steps, >= 0)."""
    values, slope = table
    whole = np.floor(index)
    position = whole.astype(np.int64) & (_TABLE_SIZE - 1)
    return values.take(position) + (index - whole) * slope.take(position)


_SINE = _wavetable(1, 1.0)[0]  # sin(2 pi x) over one period


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


def _filter(x: np.ndarray, sample_rate: int, highpass_hz: float | None = None, lowpass_hz: float | None = None,
            order: int = 2, pad: int = 0) -> np.ndarray:
    """Zero-phase filter with Butterworth magnitude responses, by FFT (x is zero-padded by `pad`)."""
    size = _fft_size(len(x) + pad)
    spectrum = np.fft.rfft(x, n=size) * _response(size, sample_rate, highpass_hz, lowpass_hz, order)
    return np.fft.irfft(spectrum, n=size)[: len(x)]


@dataclass(frozen=True)
class _Timbre:
    """A tone: wavetable harmonics and an envelope (attack, exponential decay to sustain, release)."""

    rolloff: float = 1.0  # harmonic k has amplitude k**-rolloff (1: saw, 2: soft, 3: almost sine)
    max_harmonics: int = 32  # also limited to 0.45 * sample_rate / frequency (no aliasing)
    odd_only: bool = False
    attack: float = 0.005  # seconds
    decay: float = math.inf  # seconds (time constant)
    sustain: float = 1.0  # level the decay settles to
    release: float = 0.05  # seconds, linear, after the held time
    vibrato_hz: float = 0.0
    vibrato_depth: float = 0.0  # relative frequency deviation
    partials: tuple[tuple[int, float], ...] = ((1, 1.0),)  # (harmonic of the note, level): a chord in one table
    drive: float = 0.0  # distortion (tanh) of the waveform; 0 is clean


class _Canvas:
    """One clip being rendered: its length, sample rate and seeded random streams."""

    def __init__(self, genre: str, seed: int, seconds: float, sample_rate: int):
        self.genre = genre
        self.seed = seed
        self.sample_rate = sample_rate
        self.length = int(round(seconds * sample_rate))
        self.seconds = self.length / sample_rate
        self.noise = self.rng("noise")  # the only stream whose draws depend on the sample rate

    def rng(self, part: str) -> np.random.Generator:
        """An independent stream per part, so changing or lengthening one part moves no other."""
        words = [self.seed, zlib.crc32(self.genre.encode()), zlib.crc32(part.encode())]
        return np.random.default_rng(np.random.SeedSequence(words))

    def zeros(self) -> np.ndarray:
        return np.zeros(self.length)

    def time(self) -> np.ndarray:
        return np.arange(self.length) / self.sample_rate

    def add(self, track: np.ndarray, start_seconds: float, samples: np.ndarray, gain: float = 1.0) -> None:
        start = int(round(start_seconds * self.sample_rate))
        if start < 0:
            samples, start = samples[-start:], 0
        end = min(self.length, start + len(samples))
        if end > start:
            track[start:end] += gain * samples[: end - start]

    def room(self, start_seconds: float, want: int) -> int:
        """How many of `want` samples starting at `start_seconds` fall inside the clip."""
        return max(0, min(want, self.length - int(round(start_seconds * self.sample_rate))))

    def note(self, track: np.ndarray, timbre: _Timbre, start_seconds: float, hold_seconds: float, midi: float,
             gain: float, phase: float = 0.0, vibrato_phase: float = 0.0) -> None:
        """Add one note: `hold_seconds` at full envelope, then the release."""
        sample_rate = self.sample_rate
        start_seconds = max(0.0, start_seconds)  # a humanised first note may not start before the clip
        n = self.room(start_seconds, int(round((hold_seconds + timbre.release) * sample_rate)))
        if n == 0 or gain == 0.0:
            return
        freq = _midi_hz(midi)
        steps = np.arange(n, dtype=np.float64)
        # phase in table steps: the integral of freq * (1 + depth * sin(w t + p)) dt, times _TABLE_SIZE
        index = steps * (freq * _TABLE_SIZE / sample_rate)
        if timbre.vibrato_depth > 0.0:
            cycles = steps * (timbre.vibrato_hz / sample_rate) + (vibrato_phase / (2.0 * math.pi) + 0.25)
            cosine = _SINE.take((cycles * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1))
            scale = freq * _TABLE_SIZE * timbre.vibrato_depth / (2.0 * math.pi * timbre.vibrato_hz)
            index += scale * (math.cos(vibrato_phase) - cosine)
        index += phase * _TABLE_SIZE
        top = max(m for m, _ in timbre.partials)
        n_harmonics = max(top, min(timbre.max_harmonics * top, int(0.45 * sample_rate / freq), _TABLE_SIZE // 2 - 1))
        table = _wavetable(n_harmonics, round(timbre.rolloff, 2), timbre.odd_only, timbre.partials,
                           round(timbre.drive, 1))
        tone = _lookup(table, index)
        if math.isfinite(timbre.decay):  # exponential decay towards the sustain level
            envelope = np.exp(steps * (-1.0 / (timbre.decay * sample_rate)))
            envelope *= gain * (1.0 - timbre.sustain)
            envelope += gain * timbre.sustain
            tone *= envelope
        else:
            tone *= gain
        attack = min(n, int(timbre.attack * sample_rate))
        if attack > 0:  # linear attack
            tone[:attack] *= steps[:attack] * (1.0 / (timbre.attack * sample_rate))
        hold = int(round(hold_seconds * sample_rate))
        if hold < n:  # linear release after the held time
            tone[hold:] *= np.clip(1.0 - (steps[hold:] - hold) * (1.0 / (timbre.release * sample_rate)), 0.0, 1.0)
        start = int(round(start_seconds * sample_rate))
        track[start : start + n] += tone

    def reverb(self, dry: np.ndarray, t60_seconds: float, wet: float, predelay_seconds: float = 0.02,
               damping_hz: float = 5000.0, tone_hz: float | None = None, tone_order: int = 1,
               bypass: tuple[np.ndarray, float, float] | None = None) -> np.ndarray:
        """`dry` mixed with its convolution with exponentially decaying filtered noise (a diffuse room).

        `tone_hz`: a low-pass (of order `tone_order`) on the result, the darker top end of a recording.
        `bypass` = (signal, highpass_hz, lowpass_hz) is added to the result through that (steep,
        fourth-order) band-pass and without reverb. Both share the full-length FFTs, which are most
        of a clip's rendering time.
        """
        sample_rate = self.sample_rate
        n_ir = int(t60_seconds * sample_rate)
        t = np.arange(n_ir) / sample_rate
        ir = self.noise.standard_normal(n_ir) * np.exp(t * (-6.9 / t60_seconds))
        ir = _filter(ir, sample_rate, highpass_hz=150.0, lowpass_hz=min(damping_hz, 0.4 * sample_rate), order=1)
        ir *= wet / np.sqrt(np.sum(ir**2))  # unit energy times `wet`: the room is `wet` as loud as the dry sound
        kernel = np.zeros(int(predelay_seconds * sample_rate) + n_ir)
        kernel[0] = 1.0 - wet
        kernel[-n_ir:] += ir
        size = _fft_size(len(dry) + len(kernel))
        spectrum = np.fft.rfft(dry, size) * np.fft.rfft(kernel, size)
        if bypass is not None:
            signal, highpass_hz, lowpass_hz = bypass
            spectrum += np.fft.rfft(signal, size) * _response(size, sample_rate, highpass_hz, lowpass_hz, order=4)
        if tone_hz is not None:
            spectrum *= _response(size, sample_rate, None, tone_hz, order=tone_order)
        return np.fft.irfft(spectrum, size)[: len(dry)]

    # ---- drum samples: noise bursts and pitch sweeps with envelopes ------------------------------
    def _noise(self, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        n = int(seconds * self.sample_rate)
        return self.noise.standard_normal(n), np.arange(n) / self.sample_rate

    def kick(self, start_hz: float, end_hz: float, sweep_seconds: float, decay_seconds: float,
             click: float) -> np.ndarray:
        noise, t = self._noise(min(0.7, 6.0 * decay_seconds))
        cycles = end_hz * t + (start_hz - end_hz) * sweep_seconds * (1.0 - np.exp(-t / sweep_seconds))
        body = np.sin(2.0 * math.pi * cycles) * np.exp(-t / decay_seconds) * np.minimum(t / 0.001, 1.0)
        snap = _filter(noise * np.exp(-t / 0.003), self.sample_rate, lowpass_hz=4000.0, pad=256)
        return body + click * snap

    def snare(self, tone_hz: float, noise_decay: float, brightness_hz: float, tone_level: float) -> np.ndarray:
        noise, t = self._noise(6.0 * noise_decay)
        rattle = _filter(noise, self.sample_rate, highpass_hz=1200.0,
                         lowpass_hz=min(brightness_hz, 0.4 * self.sample_rate))
        rattle *= np.exp(-t / noise_decay) / (np.std(rattle) + 1e-12)
        tone = (np.sin(2 * math.pi * tone_hz * t) + 0.5 * np.sin(2 * math.pi * 1.62 * tone_hz * t)) * np.exp(-t / 0.04)
        return 0.7 * rattle + tone_level * tone

    def hat(self, decay_seconds: float, cutoff_hz: float) -> np.ndarray:
        noise, t = self._noise(min(1.5, 6.0 * decay_seconds))
        sizzle = _filter(noise, self.sample_rate, highpass_hz=min(cutoff_hz, 0.3 * self.sample_rate), order=3)
        return sizzle * np.exp(-t / decay_seconds) * np.minimum(t / 0.0005, 1.0) / (np.std(sizzle) + 1e-12)

    def cymbal(self, decay_seconds: float, partials_hz: Sequence[float], ping: float, wash: float = 0.6) -> np.ndarray:
        """Ride/crash: inharmonic partials (the bell) over high-passed noise (the wash)."""
        noise, t = self._noise(min(3.0, 5.0 * decay_seconds))
        noise_part = _filter(noise, self.sample_rate, highpass_hz=min(4000.0, 0.28 * self.sample_rate), order=2)
        noise_part /= np.std(noise_part) + 1e-12
        bell = sum(np.sin(2 * math.pi * f * t + i) for i, f in enumerate(partials_hz) if f < 0.45 * self.sample_rate)
        bell = bell * np.exp(-t / (0.35 * decay_seconds)) / max(1, len(partials_hz)) ** 0.5
        return (wash * noise_part + ping * bell) * np.exp(-t / decay_seconds) * np.minimum(t / 0.0008, 1.0)

    def clap(self, decay_seconds: float) -> np.ndarray:
        noise, t = self._noise(6.0 * decay_seconds + 0.03)
        bursts = sum(np.exp(-np.maximum(t - d, 0.0) / 0.004) * (t >= d) for d in (0.0, 0.009, 0.018))
        body = bursts + 0.8 * np.exp(-np.maximum(t - 0.027, 0.0) / decay_seconds) * (t >= 0.027)
        band = _filter(noise, self.sample_rate, highpass_hz=900.0, lowpass_hz=min(3500.0, 0.4 * self.sample_rate))
        return band * body / (np.std(band) + 1e-12)


def _normalise(mix: np.ndarray) -> np.ndarray:
    mix = mix - mix.mean()
    rms = float(np.sqrt(np.mean(mix**2)))
    peak = float(np.max(np.abs(mix)))
    if not (rms > 0.0 and math.isfinite(rms)):  # cannot happen for clips of at least MIN_SECONDS
        raise RuntimeError("synthetic rendering produced silence or non-finite samples; please report this")
    gain = min(10.0 ** (TARGET_RMS_DBFS / 20.0) / rms, PEAK_LIMIT / peak)
    return (mix * gain).astype(np.float32)


def _db(value: float) -> float:
    return 10.0 ** (value / 20.0)


MIX_SPREAD_DB = 1.5


def _mix_levels(style: np.random.Generator, nominal_db: dict[str, float]) -> dict[str, float]:
    """Linear gains: each part's nominal level (dB) plus a seeded offset of at most MIX_SPREAD_DB.

    Small on purpose: a genre's balance of parts is part of its identity (the spectrum a model
    learns), while the variety between clips comes from the notes, tempo, key and patterns.
    """
    return {name: _db(level + style.uniform(-MIX_SPREAD_DB, MIX_SPREAD_DB)) for name, level in nominal_db.items()}


# ---- harmony -------------------------------------------------------------------------------------
_QUALITIES = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6),
    "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10), "7": (0, 4, 7, 10), "m7b5": (0, 3, 6, 10),
}
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


def _nearest(pitch_class: int, target: float, low: int, high: int) -> int:
    """The pitch of `pitch_class` closest to `target`, folded into [low, high]."""
    pitch = int(target) + ((pitch_class - int(target) + 6) % 12) - 6
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


def _swing(position: float, ratio: float) -> float:
    """Beat position with off-beat eighths delayed to `ratio` of the beat (0.5 = straight)."""
    whole = math.floor(position)
    return whole + ratio if abs(position - whole - 0.5) < 1e-9 else position


# ---- jazz: swung ride, walking bass, seventh-chord piano comping ---------------------------------
_JAZZ_PROGRESSIONS = (
    ((2, "m7"), (7, "7"), (0, "maj7"), (0, "maj7")),  # ii V I I
    ((0, "maj7"), (9, "m7"), (2, "m7"), (7, "7")),  # I vi ii V
    ((0, "maj7"), (9, "7"), (2, "m7"), (7, "7")),  # I VI7 ii V
    ((4, "m7"), (9, "7"), (2, "m7"), (7, "7")),  # iii VI ii V
    ((2, "m7b5"), (7, "7"), (0, "m7"), (0, "m7")),  # minor ii V i
    ((0, "7"), (5, "7"), (0, "7"), (7, "7")),  # blues-like
)
_COMP_RHYTHMS = ((0.0, 1.5), (1.5, 3.5), (1.0, 3.0), (0.5, 2.0), (0.0, 2.5), (1.5, 2.5, 3.5), (0.0, 3.5), (1.0, 2.5))


def _key_and_progression(style: np.random.Generator, progressions: Sequence) -> tuple[int, Any]:
    """A key (semitones above C) and one of `progressions`, drawn in this order from the genre's
    style generator: a clip's audio depends on the order of its draws."""
    key = int(style.integers(12))
    return key, progressions[style.integers(len(progressions))]


def _groove(c: "_Canvas", bpm_range: tuple[float, float], progressions: Sequence, one_bar_chance: float):
    """The first draws of a rock or electronic clip, in their order: tempo, key, progression and
    whether a chord lasts one bar or two -> (style generator, bpm, key, progression, bars per chord)."""
    style = c.rng("style")
    bpm = style.uniform(*bpm_range)
    key, progression = _key_and_progression(style, progressions)
    return style, bpm, key, progression, 1 if style.random() < one_bar_chance else 2


def _jazz(c: _Canvas) -> np.ndarray:
    style = c.rng("style")
    bpm = style.uniform(100, 180)
    beat = 60.0 / bpm
    swing = style.uniform(0.6, 0.7)
    key, progression = _key_and_progression(style, _JAZZ_PROGRESSIONS)
    beats_per_chord = 2 if style.random() < (0.5 if bpm < 140 else 0.2) else 4
    n_chords = math.ceil(c.seconds / (beats_per_chord * beat)) + 1
    chords = [progression[i % len(progression)] for i in range(n_chords)]

    piano_bright = _Timbre(rolloff=style.uniform(0.9, 1.3), max_harmonics=14, attack=0.002,
                           decay=style.uniform(0.08, 0.2), sustain=0.0, release=0.08)
    piano_body = _Timbre(rolloff=style.uniform(1.8, 2.6), max_harmonics=6, attack=0.003, decay=style.uniform(1.0, 1.6),
                         sustain=0.0, release=0.12)
    bass = _Timbre(rolloff=style.uniform(1.8, 2.6), max_harmonics=8, attack=0.008, decay=style.uniform(0.25, 0.6),
                   sustain=0.25, release=0.06)
    ride_partials = style.uniform(2500, 5500, size=6)
    ride = c.cymbal(style.uniform(0.2, 0.3), ride_partials, ping=style.uniform(0.7, 1.0),
                    wash=style.uniform(0.25, 0.35))
    chick = c.hat(style.uniform(0.02, 0.04), 6000.0)
    brush = c.snare(style.uniform(170, 230), style.uniform(0.08, 0.15), 6000.0, tone_level=0.2)
    feather = c.kick(90.0, 50.0, 0.03, 0.2, click=0.0)
    gain = _mix_levels(style, {"ride": -5.5, "bass": 0.0, "piano": -4.0, "chick": -14.5, "brush": -22.0, "kick": -26.0})
    if style.random() < 0.6:
        gain["kick"] = 0.0  # the bass drum "feathered" on every beat, in some bands only
    dense_ride = style.random() < 0.3
    voicing_low = int(style.integers(52, 57))

    drums, tonal = c.zeros(), c.zeros()
    rng = c.rng("drums")
    n_bars = math.ceil(c.seconds / (4 * beat)) + 1
    for bar in range(n_bars):
        t0 = bar * 4 * beat
        positions = [(0.0, 0.7), (1.0, 0.9), (1.5, 0.5), (2.0, 0.7), (3.0, 0.9), (3.5, 0.5)]
        if dense_ride:
            positions += [(0.5, 0.35), (2.5, 0.35)]
        for position, velocity in positions:
            jitter = rng.normal(0.0, 0.006)
            level = gain["ride"] * velocity * rng.uniform(0.85, 1.1)
            c.add(drums, t0 + _swing(position, swing) * beat + jitter, ride, level)
        for position in (1.0, 3.0):
            c.add(drums, t0 + position * beat + rng.normal(0, 0.004), chick, gain["chick"])
        for position in (0.5, 1.5, 2.5, 3.5):
            if rng.random() < 0.18:
                c.add(drums, t0 + _swing(position, swing) * beat, brush, gain["brush"] * rng.uniform(0.5, 1.0))
        if gain["kick"]:
            for position in range(4):
                c.add(drums, t0 + position * beat, feather, gain["kick"])

    rng = c.rng("bass")
    previous = 40
    for index, (root, quality) in enumerate(chords):
        root_pc = (key + root) % 12
        start = index * beats_per_chord * beat
        notes = [_nearest(root_pc, previous, 28, 50)]
        next_root_pc = (key + chords[index + 1][0]) % 12 if index + 1 < len(chords) else root_pc
        for step in range(1, beats_per_chord):
            if step == beats_per_chord - 1:
                target = _nearest(next_root_pc, notes[-1], 28, 50)
                note = target + int(rng.choice([-1, 1, 1, -2, 7]))
            else:
                tones = [_nearest((root_pc + i) % 12, notes[-1] + rng.integers(-5, 6), 28, 50)
                         for i in _QUALITIES[quality]]
                tones = [p for p in tones if p != notes[-1]] or tones
                note = int(rng.choice(tones))
            notes.append(_nearest(note % 12, note, 28, 52))
        for step, note in enumerate(notes):
            c.note(tonal, bass, start + step * beat + rng.normal(0, 0.004), 0.85 * beat, note,
                   gain["bass"] * rng.uniform(0.8, 1.0), phase=rng.random())
        previous = notes[-1]

    rng = c.rng("piano")
    for bar in range(n_bars):
        rhythm = _COMP_RHYTHMS[rng.integers(len(_COMP_RHYTHMS))] if rng.random() < 0.95 else ()  # (a bar's rest)
        for hit, position in enumerate(rhythm):
            chord_index = int(bar * 4 // beats_per_chord + position // beats_per_chord)
            if chord_index >= len(chords):
                break
            root, quality = chords[chord_index]
            intervals = list(_QUALITIES[quality][1:]) + ([14] if rng.random() < 0.5 else [])
            pitches = [voicing_low + (key + root + i - voicing_low) % 12 for i in intervals]
            until = rhythm[hit + 1] if hit + 1 < len(rhythm) else 4.0
            hold = min(until - position, rng.uniform(0.5, 1.5)) * beat
            start = bar * 4 * beat + _swing(position, swing) * beat + rng.normal(0, 0.005)
            velocity = gain["piano"] * rng.uniform(0.5, 0.9) / len(pitches) ** 0.5
            for pitch in pitches:
                spread = rng.uniform(0, 0.012)  # fingers never land together
                c.note(tonal, piano_bright, start + spread, hold, pitch, 0.5 * velocity, phase=rng.random())
                c.note(tonal, piano_body, start + spread, hold, pitch, velocity, phase=rng.random())

    mix = drums + tonal
    return c.reverb(mix, t60_seconds=style.uniform(0.6, 1.2), wet=style.uniform(0.15, 0.3), damping_hz=6000.0,
                    tone_hz=style.uniform(4000, 4500), tone_order=2)  # the darker top of older records


# ---- rock: back beat, distorted power chords, root-following bass --------------------------------
_ROCK_PROGRESSIONS = (  # roots of power chords, semitones above the key
    (0, 7, 9, 5), (0, 5, 7, 5), (0, 10, 5, 0), (0, 8, 10, 0), (0, 3, 5, 3), (0, 0, 5, 7), (0, 5, 10, 5),
)
# guitar patterns: (eighth-note slot, length in slots, palm-muted)
_GUITAR_PATTERNS = (
    tuple((s, 1.0, True) for s in range(8)),  # chugging eighths
    tuple((s, 1.0, False) for s in range(8)),  # driving open eighths
    ((0, 4.0, False), (4, 4.0, False)),  # half notes
    ((0, 8.0, False),),  # whole-bar ringing chord
    ((0, 3.0, False), (3, 1.0, True), (4, 2.0, False), (6, 2.0, True)),  # syncopated
    ((0, 1.0, True), (1, 1.0, True), (2, 2.0, False), (4, 1.0, True), (5, 1.0, True), (6, 2.0, False)),
)
_KICK_PATTERNS = ((0, 4), (0, 4, 5), (0, 3, 4), (0, 1, 4), (0, 4, 7))


def _rock(c: _Canvas) -> np.ndarray:
    style, bpm, key, progression, bars_per_chord = _groove(c, (100, 150), _ROCK_PROGRESSIONS, 0.75)
    eighth = 30.0 / bpm
    verse, chorus = (_GUITAR_PATTERNS[i] for i in style.choice(len(_GUITAR_PATTERNS), size=2, replace=False))
    kick_pattern = _KICK_PATTERNS[style.integers(len(_KICK_PATTERNS))]
    guitar_low = int(style.integers(38, 47))  # power chord roots from D2 to A2 upwards
    drive = style.uniform(3.0, 10.0)  # clipping: power chords become a dense buzz
    cabinet_hz = style.uniform(2000, 3500)
    # a power chord in just intonation (root, fifth, octave) is harmonics 2, 3, 4 of the note an octave down
    power_chord = ((2, 1.0), (3, 0.8), (4, 0.5))
    open_guitar = _Timbre(rolloff=1.1, max_harmonics=64, attack=0.003, decay=style.uniform(0.8, 2.0), sustain=0.6,
                          release=0.04, partials=power_chord, drive=drive)
    muted_guitar = _Timbre(rolloff=1.4, max_harmonics=40, attack=0.002, decay=style.uniform(0.12, 0.2), sustain=0.45,
                           release=0.03, partials=power_chord, drive=0.8 * drive)
    bass = _Timbre(rolloff=style.uniform(1.2, 1.8), max_harmonics=14, attack=0.004, decay=style.uniform(0.15, 0.35),
                   sustain=0.4, release=0.03)
    kick = c.kick(style.uniform(100, 140), style.uniform(45, 60), 0.03, style.uniform(0.12, 0.25),
                  click=style.uniform(0.2, 0.5))
    snare = c.snare(style.uniform(160, 220), style.uniform(0.1, 0.2), style.uniform(6000, 9000),
                    tone_level=style.uniform(0.4, 0.8))
    hat = c.hat(style.uniform(0.03, 0.06), 7000.0)
    open_hat = c.hat(style.uniform(0.08, 0.15), 6000.0)
    crash = c.cymbal(style.uniform(0.4, 0.7), style.uniform(3000, 7000, size=5), ping=0.3)
    gain = _mix_levels(style, {"kick": -1.0, "snare": -2.0, "hat": -17.0, "crash": -12.5, "guitar": 1.5, "bass": -3.0})
    chorus_hat = style.random() < 0.5

    n_bars = math.ceil(c.seconds / (8 * eighth)) + 1
    roots = [(key + progression[(bar // bars_per_chord) % len(progression)]) % 12 for bar in range(n_bars)]
    section = [(bar // 4) % 2 for bar in range(n_bars)]  # verse / chorus, four bars each

    drums = c.zeros()
    rng = c.rng("drums")
    for bar in range(n_bars):
        t0 = bar * 8 * eighth
        fill = bar % 8 == 7 and rng.random() < 0.6
        if bar % 4 == 0:
            c.add(drums, t0, crash, gain["crash"])
        for slot in kick_pattern:
            c.add(drums, t0 + slot * eighth, kick, gain["kick"] * rng.uniform(0.9, 1.0))
        for slot in (2, 6):
            if not (fill and slot == 6):
                c.add(drums, t0 + slot * eighth + rng.normal(0, 0.003), snare, gain["snare"] * rng.uniform(0.9, 1.0))
        if fill:
            for i, slot in enumerate((6.0, 6.5, 7.0, 7.5)):
                c.add(drums, t0 + slot * eighth, snare, gain["snare"] * (0.6 + 0.13 * i))
        for slot in range(8):
            accent = 1.0 if slot % 2 == 0 else 0.6
            if section[bar] and chorus_hat:
                if slot % 2 == 1:
                    c.add(drums, t0 + slot * eighth, open_hat, gain["hat"] * 1.2)
            else:
                level = gain["hat"] * accent * rng.uniform(0.8, 1.0)
                c.add(drums, t0 + slot * eighth + rng.normal(0, 0.003), hat, level)

    guitar, low = c.zeros(), c.zeros()
    rng = c.rng("guitar")
    for bar in range(n_bars):
        t0 = bar * 8 * eighth
        root = _nearest(roots[bar], guitar_low + 5, guitar_low, guitar_low + 11)
        for slot, length, muted in (chorus if section[bar] else verse):
            timbre = muted_guitar if muted else open_guitar
            hold = (0.85 if muted else 0.95) * length * eighth
            c.note(guitar, timbre, t0 + slot * eighth + rng.normal(0, 0.004), hold, root - 12 + rng.normal(0, 0.04),
                   0.75 if muted else 1.0, phase=rng.random())
        bass_root = _nearest(roots[bar], 36, 28, 40)
        for slot in range(8):
            level = gain["bass"] * (1.0 if slot % 2 == 0 else 0.8)
            c.note(low, bass, t0 + slot * eighth, 0.85 * eighth, bass_root, level, phase=rng.random())

    guitar *= 0.38 * gain["guitar"]  # a fixed scale (never the clip's own level: a longer clip starts as a shorter one)
    # the room on the drums and the cabinet (a band-pass) on the guitars, in one FFT pass
    mix = c.reverb(drums, t60_seconds=style.uniform(0.4, 0.8), wet=style.uniform(0.1, 0.25), damping_hz=7000.0,
                   tone_hz=style.uniform(5000, 7000), bypass=(guitar, 90.0, cabinet_hz))
    return mix + low


# ---- electronic: four-on-the-floor, off-beat open hats, saw arpeggios, side-chained sub bass ------
_ELECTRONIC_PROGRESSIONS = (
    ((0, "min"), (8, "maj"), (3, "maj"), (10, "maj")),  # i VI III VII
    ((0, "min"), (10, "maj"), (8, "maj"), (10, "maj")),  # i VII VI VII
    ((0, "min"), (5, "min")),  # i iv
    ((0, "min"), (8, "maj"), (5, "min"), (7, "min")),  # i VI iv v
    ((0, "min"), (3, "maj"), (10, "maj"), (5, "min")),  # i III VII iv
)


def _electronic(c: _Canvas) -> np.ndarray:
    style, bpm, key, progression, bars_per_chord = _groove(c, (120, 135), _ELECTRONIC_PROGRESSIONS, 0.5)
    beat = 60.0 / bpm
    arp_shape = ("up", "down", "updown", "random")[style.integers(4)]
    arp_sequence = style.integers(0, 7, size=8)
    arp_low = int(style.integers(62, 70))
    arp_square = style.random() < 0.3
    arp_max_harmonics = int(style.integers(30, 60))
    filter_period = style.choice([2, 4, 8]) * 4 * beat
    filter_phase = style.uniform(0, 2 * math.pi)
    bass_style = ("offbeat", "rolling", "sustain")[style.integers(3)]
    arp = _Timbre(rolloff=1.0, max_harmonics=arp_max_harmonics, odd_only=arp_square, attack=0.003,
                  decay=style.uniform(0.06, 0.18), sustain=0.15, release=0.03)
    sub = _Timbre(rolloff=style.uniform(2.2, 3.5), max_harmonics=4, attack=0.004, decay=0.3, sustain=0.8, release=0.03)
    pad = _Timbre(rolloff=1.4, max_harmonics=8, attack=style.uniform(0.3, 0.8), release=0.4)
    kick = c.kick(style.uniform(130, 180), style.uniform(42, 55), style.uniform(0.025, 0.05), style.uniform(0.2, 0.4),
                  click=style.uniform(0.1, 0.4))
    open_hat = c.hat(style.uniform(0.15, 0.25), 7500.0)
    closed_hat = c.hat(style.uniform(0.03, 0.045), 8000.0)
    clap = c.clap(style.uniform(0.08, 0.15))
    gain = _mix_levels(style, {"kick": 2.0, "open_hat": -4.5, "closed_hat": -15.0, "clap": -7.5, "arp": -5.0,
                               "sub": -3.0, "pad": -15.0})
    duck_depth = style.uniform(0.5, 0.85)
    duck_seconds = style.uniform(0.08, 0.16)

    n_bars = math.ceil(c.seconds / (4 * beat)) + 1
    chords = [progression[(bar // bars_per_chord) % len(progression)] for bar in range(n_bars)]

    drums = c.zeros()
    for bar in range(n_bars):  # machine-exact: no timing or velocity variation
        t0 = bar * 4 * beat
        for position in range(4):
            c.add(drums, t0 + position * beat, kick, gain["kick"])
            c.add(drums, t0 + (position + 0.5) * beat, open_hat, gain["open_hat"])
            for sixteenth in (0.25, 0.75):
                c.add(drums, t0 + (position + sixteenth) * beat, closed_hat, gain["closed_hat"])
        for position in (1, 3):
            c.add(drums, t0 + position * beat, clap, gain["clap"])

    synth, low = c.zeros(), c.zeros()
    rng = c.rng("synth")
    for bar in range(n_bars):
        t0 = bar * 4 * beat
        root, quality = chords[bar]
        base = _nearest((key + root) % 12, arp_low + 6, arp_low, arp_low + 11)
        tones = [base + i for i in _QUALITIES[quality]] + [base + 12 + i for i in _QUALITIES[quality]] + [base + 24]
        if arp_shape == "up":
            order = list(range(len(tones)))
        elif arp_shape == "down":
            order = list(range(len(tones)))[::-1]
        elif arp_shape == "updown":
            order = list(range(len(tones))) + list(range(len(tones) - 2, 0, -1))
        else:
            order = list(arp_sequence)
        for step in range(16):
            start = t0 + step * beat / 4
            openness = 0.5 - 0.5 * math.cos(2 * math.pi * start / filter_period + filter_phase)
            timbre = _Timbre(rolloff=arp.rolloff, max_harmonics=max(2, int(2 + openness * (arp_max_harmonics - 2))),
                             odd_only=arp.odd_only, attack=arp.attack, decay=arp.decay, sustain=arp.sustain,
                             release=arp.release)
            pitch = tones[order[step % len(order)]]
            c.note(synth, timbre, start, 0.55 * beat / 4, pitch, gain["arp"], phase=rng.random())
        bass_note = _nearest((key + root) % 12, 34, 28, 40)
        if bass_style == "offbeat":
            hits = [(p + 0.5, 0.45) for p in range(4)]
        elif bass_style == "rolling":
            hits = [(p + s, 0.22) for p in range(4) for s in (0.25, 0.5, 0.75)]
        else:
            hits = [(0.0, 3.9)]
        for position, length in hits:
            c.note(low, sub, t0 + position * beat, length * beat, bass_note, gain["sub"], phase=rng.random())
        if bar % bars_per_chord == 0:
            for i in _QUALITIES[quality]:
                c.note(synth, pad, t0, 4 * beat * bars_per_chord - 0.2, base - 12 + i, gain["pad"], phase=rng.random())

    # delay on the arpeggio (three sixteenths), then side-chain ducking on every beat
    echo = int(round(0.75 * beat * c.sample_rate))
    delayed = np.zeros_like(synth)
    delayed[echo:] = 0.35 * synth[:-echo]
    delayed[2 * echo :] += 0.12 * synth[: -2 * echo]
    synth += delayed
    duck = 1.0 - duck_depth * np.exp(-np.mod(c.time(), beat) / duck_seconds)
    tonal = c.reverb(synth * duck, t60_seconds=style.uniform(0.8, 1.5), wet=style.uniform(0.15, 0.3))
    return drums + tonal + low * duck


# ---- classical: bowed strings (slow attack, vibrato), slow harmony, legato melody, no drums -------
_CLASSICAL_PROGRESSIONS = {
    "major": ((0, 5, 7, 0), (0, 9, 5, 7), (0, 9, 2, 7), (0, 7, 9, 4, 5, 0, 5, 7), (0, 2, 7, 0), (0, 5, 0, 7)),
    "minor": ((0, 5, 7, 0), (0, 8, 5, 7), (0, 3, 8, 7), (0, 10, 8, 7), (0, 5, 8, 7)),
}
_DEGREE_QUALITY = {
    "major": {0: "maj", 2: "min", 4: "min", 5: "maj", 7: "maj", 9: "min", 11: "dim"},
    "minor": {0: "min", 2: "dim", 3: "maj", 5: "min", 7: "maj", 8: "maj", 10: "maj"},
}
_MELODY_RHYTHMS = {
    4: ((2, 2), (1, 1, 2), (3, 1), (1, 1, 1, 1), (1.5, 0.5, 2), (4,), (2, 1, 1)),
    3: ((2, 1), (1, 1, 1), (3,), (1.5, 0.5, 1)),
}


def _classical(c: _Canvas) -> np.ndarray:
    style = c.rng("style")
    bpm = style.uniform(60, 90)
    beat = 60.0 / bpm
    beats_per_bar = 3 if style.random() < 0.35 else 4
    key = int(style.integers(12))
    mode = "major" if style.random() < 0.6 else "minor"
    progressions = _CLASSICAL_PROGRESSIONS[mode]
    progression = progressions[style.integers(len(progressions))]
    pulsed = style.random() < 0.3
    instrument = ("violin", "flute", "oboe")[style.integers(3)]
    melody_low = int(style.integers(62, 69))
    strings = _Timbre(rolloff=style.uniform(1.3, 1.6), max_harmonics=16,
                      attack=style.uniform(0.15, 0.4), release=style.uniform(0.3, 0.6),
                      vibrato_hz=style.uniform(4.5, 6.0), vibrato_depth=style.uniform(0.002, 0.005))
    if instrument == "violin":
        lead = _Timbre(rolloff=style.uniform(1.2, 1.4), max_harmonics=16, attack=style.uniform(0.08, 0.16),
                       release=0.2, vibrato_hz=style.uniform(5.0, 6.5), vibrato_depth=style.uniform(0.004, 0.008))
    elif instrument == "flute":
        lead = _Timbre(rolloff=1.6, max_harmonics=16, attack=style.uniform(0.06, 0.12), release=0.15,
                       vibrato_hz=style.uniform(4.5, 5.5), vibrato_depth=style.uniform(0.003, 0.006))
    else:
        lead = _Timbre(rolloff=1.3, max_harmonics=12, attack=style.uniform(0.05, 0.1), release=0.15,
                       vibrato_hz=style.uniform(4.5, 5.5), vibrato_depth=style.uniform(0.002, 0.004))
    gain = _mix_levels(style, {"bass": -1.0, "inner": -3.0, "lead": -2.0})
    swell_period = style.choice([2, 4]) * beats_per_bar * beat
    swell_phase = style.uniform(0, 2 * math.pi)

    bar_seconds = beats_per_bar * beat
    n_bars = math.ceil(c.seconds / bar_seconds) + 1
    roots = [progression[bar % len(progression)] for bar in range(n_bars)]

    def chord_tones(degree: int) -> list[int]:
        quality = _DEGREE_QUALITY[mode][degree]
        return [(key + degree + i) % 12 for i in _QUALITIES[quality]]

    def scale(degree: int) -> list[int]:
        steps = list(_MAJOR if mode == "major" else _MINOR)
        if mode == "minor" and degree == 7:
            steps[-1] = 11  # harmonic minor over the dominant
        return [(key + s) % 12 for s in steps]

    tonal = c.zeros()
    rng = c.rng("strings")
    voices = [(38, 50, 44), (48, 62, 55), (55, 69, 62)]  # cello, viola, violin II: (low, high, start)
    previous = [start for _, _, start in voices]
    for bar in range(n_bars):
        t0 = bar * bar_seconds
        tones = chord_tones(roots[bar])
        for v, (low, high, _) in enumerate(voices):
            if v == 0:
                pitch = _nearest(tones[0], previous[v], low, high)
            else:  # voice leading: the nearest chord tone to where this voice was
                pitch = min((_nearest(pc, previous[v], low, high) for pc in tones), key=lambda p: abs(p - previous[v]))
            previous[v] = pitch
            articulations = range(0, beats_per_bar, 2 if beats_per_bar == 4 else 3) if pulsed else (0,)
            for position in articulations:
                length = (2 if beats_per_bar == 4 else 3) if pulsed else beats_per_bar
                level = (gain["bass"] if v == 0 else gain["inner"]) * rng.uniform(0.85, 1.0)
                c.note(tonal, strings, t0 + position * beat, length * beat, pitch + rng.normal(0, 0.03), level,
                       phase=rng.random(), vibrato_phase=rng.uniform(0, 2 * math.pi))

    rng = c.rng("melody")
    pitch = _nearest(chord_tones(roots[0])[0], melody_low + 7, melody_low, melody_low + 19)
    for bar in range(n_bars):
        t0 = bar * bar_seconds
        phrase_end = bar % 4 == 3
        rhythms = _MELODY_RHYTHMS[beats_per_bar]
        rhythm = (beats_per_bar,) if phrase_end and rng.random() < 0.6 else rhythms[rng.integers(len(rhythms))]
        tones = chord_tones(roots[bar])
        steps = scale(roots[bar])
        position = 0.0
        for index, length in enumerate(rhythm):
            if index == 0:  # strong beat: a chord tone near the line
                choices = [_nearest(pc, pitch, melody_low, melody_low + 19) for pc in tones]
                pitch = min(choices, key=lambda p: abs(p - pitch))
            else:  # otherwise step along the scale
                direction = int(rng.choice([-2, -1, -1, 1, 1, 2]))
                candidates = sorted({_nearest(pc, pitch, melody_low, melody_low + 19) for pc in steps})
                here = min(range(len(candidates)), key=lambda i: abs(candidates[i] - pitch))
                pitch = candidates[min(max(here + direction, 0), len(candidates) - 1)]
            c.note(tonal, lead, t0 + position * beat, length * beat, pitch, gain["lead"] * rng.uniform(0.85, 1.0),
                   phase=rng.random(), vibrato_phase=rng.uniform(0, 2 * math.pi))
            position += length

    swell = 0.75 + 0.25 * np.sin(2 * math.pi * c.time() / swell_period + swell_phase)
    # a hall, and the dark top of strings heard from a seat in it
    return c.reverb(tonal * swell, t60_seconds=style.uniform(1.6, 2.8), wet=style.uniform(0.25, 0.45),
                    damping_hz=4500.0, tone_hz=style.uniform(3000, 3300), tone_order=3)


_RENDERERS: dict[str, Callable[[_Canvas], np.ndarray]] = {
    "classical": _classical,
    "electronic": _electronic,
    "jazz": _jazz,
    "rock": _rock,
}
assert GENRES == tuple(sorted(_RENDERERS)) and set(_GENRE_SLOTS) == set(_RENDERERS)
