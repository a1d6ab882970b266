"""The scores of the built-in genre set: seeded arrangements in each genre's idiom, for General MIDI.

Each genre has a band and a way of playing that a musician would recognise:
- jazz: swing ride, hi-hat on 2 and 4 and brushes (a brush or jazz kit), a walking upright bass,
  rootless piano voicings comped on swung off-beats, and a tenor/alto sax, trumpet or vibraphone
  line in phrases;
- rock: a kit with a back beat, crashes and fills, a picked bass in eighths, an overdriven or
  distorted guitar playing power chords with palm-muted eighths;
- electronic: four-on-the-floor on an electronic or 808 kit, off-beat hats, a synth bass, a pad
  and a sixteenth-note arpeggio;
- classical: strings (ensemble or a cello line), piano arpeggios and a woodwind melody over a
  functional progression, in 3 or 4, no drums.

A score is drawn from random streams that depend only on (genre, seed, part), one bar after
another, never on the sample rate or the length: one seed is the same piece at any rate, and a
longer clip starts with the shorter one. Timing and velocity are humanised from the same streams.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .fluid import DRUMS, Note, Part

# General MIDI percussion keys
KICK, SIDE_STICK, SNARE, CLAP, SNARE2, CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 36, 37, 38, 39, 40, 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE, RIDE_BELL = 45, 47, 50, 49, 51, 53

QUALITIES = {"maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10), "7": (0, 4, 7, 10), "m7b5": (0, 3, 6, 10),
             "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6)}
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)


@dataclass
class Room:
    """The seeded room the band plays in (rendered in synthetic.py): reverb time, wet share, and the
    top end a listener's seat hears (a low-pass, None for none)."""

    t60: float
    wet: float
    predelay: float = 0.02
    tone_hz: float | None = None


@dataclass
class Score:
    parts: list[Part]
    notes: list[Note] = field(default_factory=list)
    room: Room = field(default_factory=lambda: Room(1.0, 0.2))


class Writer:
    """One clip's score being written: its seeded streams, tempo grid and notes."""

    def __init__(self, genre: str, seed: int, seconds: float):
        self.genre, self.seed, self.seconds = genre, seed, seconds
        self.notes: list[Note] = []
        self.beat = 0.5  # seconds per beat, set by the arrangement

    def rng(self, part: str) -> np.random.Generator:
        """An independent stream per part, so changing or lengthening one part moves no other."""
        words = [self.seed, zlib.crc32(self.genre.encode()), zlib.crc32(part.encode())]
        return np.random.default_rng(np.random.SeedSequence(words))

    def bars(self, beats_per_bar: int) -> int:
        return int(math.ceil(self.seconds / (self.beat * beats_per_bar))) + 1

    def play(self, channel: int, beat: float, beats: float, key: int, velocity: float,
             rng: np.random.Generator | None = None, jitter: float = 0.008) -> None:
        """A note at `beat` (from the clip's start) held `beats`, humanised when `rng` is given.
        The draws are made whether or not the note falls inside the clip (lengths never change them)."""
        start = beat * self.beat
        if rng is not None:
            start += rng.normal(0.0, jitter)
            velocity *= rng.uniform(0.9, 1.1)
        if start < self.seconds and 0 <= key < 128:
            self.notes.append(Note(max(0.0, start), max(0.02, beats * self.beat), channel, int(key),
                                   int(np.clip(round(velocity), 1, 127))))


def nearest(pitch_class: int, target: float, low: int, high: int) -> int:
    """The pitch of `pitch_class` in [low, high] closest to `target`."""
    options = [p for p in range(low, high + 1) if p % 12 == pitch_class % 12]
    return min(options, key=lambda p: abs(p - target))


def swing(position: float, ratio: float) -> float:
    """An eighth-note position (in beats) moved to its swung place: off-beats land at `ratio` of the beat."""
    whole, frac = divmod(position, 1.0)
    return whole + (ratio if abs(frac - 0.5) < 1e-6 else frac)


# ---- jazz ----------------------------------------------------------------------------------------
JAZZ_PROGRESSIONS = (  # (root above the key, quality), one chord per bar
    ((2, "m7"), (7, "7"), (0, "maj7"), (0, "maj7")),  # ii V I I
    ((0, "maj7"), (9, "m7"), (2, "m7"), (7, "7")),  # I vi ii V
    ((0, "maj7"), (9, "7"), (2, "m7"), (7, "7")),  # I VI7 ii V
    ((4, "m7"), (9, "7"), (2, "m7"), (7, "7")),  # iii VI ii V
    ((2, "m7b5"), (7, "7"), (0, "m7"), (0, "m7")),  # minor ii V i
    ((0, "7"), (5, "7"), (0, "7"), (7, "7")),  # blues
)
ROOTLESS = {  # A and B forms of rootless voicings (intervals above the root)
    "maj7": ((4, 7, 11, 14), (11, 14, 16, 19)), "m7": ((3, 7, 10, 14), (10, 14, 15, 19)),
    "7": ((4, 9, 10, 14), (10, 14, 16, 21)), "m7b5": ((3, 6, 10, 12), (10, 12, 15, 18)),
}
COMP_RHYTHMS = ((0.0, 1.5), (1.5, 3.5), (1.0, 3.0), (0.5, 2.0), (0.0, 2.5), (1.5, 2.5, 3.5), (3.5,), (1.0, 2.5))
JAZZ_LEADS = ((66, 50, 74), (65, 55, 79), (56, 58, 82), (59, 58, 80), (11, 60, 84))  # (program, low, high)


def jazz(w: Writer) -> Score:
    style = w.rng("style")
    w.beat = 60.0 / style.uniform(96, 176)
    key = int(style.integers(12))
    progression = JAZZ_PROGRESSIONS[style.integers(len(JAZZ_PROGRESSIONS))]
    ratio = style.uniform(0.62, 0.69)
    kit = int(style.choice([40, 40, 32]))  # brushes, mostly
    piano = int(style.choice([0, 0, 4]))  # grand or electric piano
    lead, low, high = JAZZ_LEADS[style.integers(len(JAZZ_LEADS))]
    parts = [Part(DRUMS, kit, 64, bank=128), Part(0, 32, 112), Part(1, piano, 90), Part(2, lead, 100)]
    chords = [((key + root) % 12, quality) for root, quality in progression]
    bars = w.bars(4)
    _jazz_drums(w, bars, ratio)
    _walking_bass(w, bars, chords, style.integers(28, 34))
    _comping(w, bars, chords, ratio)
    _jazz_line(w, bars, chords, ratio, low, high)
    return Score(parts, w.notes, Room(style.uniform(0.8, 1.4), style.uniform(0.15, 0.25)))


def _jazz_drums(w: Writer, bars: int, ratio: float) -> None:
    rng = w.rng("drums")
    for bar in range(bars):
        t = 4.0 * bar
        for beat in range(4):
            w.play(DRUMS, t + beat, 0.5, RIDE, 84 if beat in (1, 3) else 72, rng, 0.005)
            w.play(DRUMS, t + beat, 0.3, KICK, 34, rng)  # feathered
            if beat in (1, 3):
                w.play(DRUMS, t + beat + ratio, 0.3, RIDE, 58, rng, 0.005)  # the skip note
                w.play(DRUMS, t + beat, 0.3, PEDAL_HAT, 70, rng)
        for position in (0.5, 1.5, 2.5, 3.5):  # brush comping on a few swung off-beats
            if rng.random() < 0.22:
                w.play(DRUMS, t + swing(position, ratio), 0.2, SNARE, rng.uniform(40, 70), rng)


def _walking_bass(w: Writer, bars: int, chords: Sequence, start: int) -> None:
    rng = w.rng("bass")
    pitch = nearest(chords[0][0], start + 6, 28, 50)
    for bar in range(bars):
        root, quality = chords[bar % len(chords)]
        next_root = chords[(bar + 1) % len(chords)][0]
        tones = [(root + i) % 12 for i in QUALITIES[quality]]
        line = [nearest(root, pitch, 28, 50)]
        for _ in range(2):  # beats 2 and 3: chord tones stepping on
            options = [nearest(pc, line[-1], 28, 50) for pc in tones]
            options = [p for p in options if 0 < abs(p - line[-1]) <= 7] or options
            line.append(int(rng.choice(options)))
        target = nearest(next_root, line[-1], 28, 50)
        line.append(target + int(rng.choice([-1, 1, -1, 1, 7 if target + 7 <= 50 else -5])))  # approach
        for beat, key in enumerate(line):
            w.play(0, 4.0 * bar + beat, 0.9, key, 96 if beat == 0 else 84, rng, 0.006)
        pitch = line[-1]


def _comping(w: Writer, bars: int, chords: Sequence, ratio: float) -> None:
    rng = w.rng("piano")
    centre = 60.0
    for bar in range(bars):
        root, quality = chords[bar % len(chords)]
        forms = [[root + i for i in form] for form in ROOTLESS[quality]]
        forms = [[k + 12 * round((centre - np.mean(f)) / 12) for k in f] for f in forms]
        voicing = min(forms, key=lambda f: abs(np.mean(f) - centre))  # the nearest voicing: smooth leading
        centre = float(np.clip(0.6 * centre + 0.4 * np.mean(voicing), 55, 64))
        for position in COMP_RHYTHMS[rng.integers(len(COMP_RHYTHMS))]:
            length, velocity = rng.uniform(0.3, 1.2), rng.uniform(52, 74)
            _chord(w, 1, 4.0 * bar + swing(position, ratio), length, voicing, velocity, rng)


def _chord(w: Writer, channel: int, beat: float, beats: float, keys: Sequence[int], velocity: float,
           rng: np.random.Generator) -> None:
    for key in keys:
        w.play(channel, beat + rng.uniform(0, 0.02), beats, key, velocity, rng, 0.003)


CHORD_SCALES = {"maj7": (0, 2, 4, 5, 7, 9, 11), "m7": (0, 2, 3, 5, 7, 9, 10), "7": (0, 2, 4, 5, 7, 9, 10),
                "m7b5": (0, 1, 3, 5, 6, 8, 10), "maj": MAJOR, "min": MINOR, "dim": (0, 2, 3, 5, 6, 8, 9, 11)}
LINE_RHYTHMS = ((0.5, 0.5, 0.5, 0.5, 1.0, 1.0), (1.0, 0.5, 0.5, 1.0, 1.0), (0.5, 0.5, 1.0, 0.5, 0.5, 1.0),
                (1.5, 0.5, 1.0, 1.0), (0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0), (2.0, 1.0, 1.0), (1.0, 1.0, 2.0))


def melody(w: Writer, channel: int, rng: np.random.Generator, bars: int, beats_per_bar: int, chords: Sequence,
           register: tuple[int, int], swing_ratio: float = 0.5, rest_chance: float = 0.3,
           velocity: float = 84.0, legato: float = 0.95) -> None:
    """A line in two-bar phrases: chord tones on strong beats, steps of the chord's scale between,
    rests between some phrases. Rhythms are cut to the bar; off-beat eighths are swung by `swing_ratio`."""
    low, high = register
    pitch = float(rng.integers(low + 4, high - 4))
    playing = True
    for bar in range(bars):
        if bar % 2 == 0:
            playing = rng.random() >= rest_chance
        root, quality = chords[bar % len(chords)]
        tones = [(root + i) % 12 for i in QUALITIES[quality]]
        scale = sorted({nearest(root + i, pitch, low, high) for i in CHORD_SCALES[quality]}
                       | {nearest(root + i, pitch + 12, low, high) for i in CHORD_SCALES[quality]}
                       | {nearest(root + i, pitch - 12, low, high) for i in CHORD_SCALES[quality]})
        rhythm = LINE_RHYTHMS[rng.integers(len(LINE_RHYTHMS))]
        position = 0.0
        for length in rhythm:
            if position >= beats_per_bar:
                break
            length = min(length, beats_per_bar - position)
            if position == int(position):  # on the beat: the nearest chord tone
                pitch = float(min((nearest(pc, pitch, low, high) for pc in tones), key=lambda p: abs(p - pitch)))
            else:  # between: a step along the scale
                here = min(range(len(scale)), key=lambda i: abs(scale[i] - pitch))
                pitch = float(scale[int(np.clip(here + rng.choice([-2, -1, -1, 1, 1, 2]), 0, len(scale) - 1))])
            accent = 8.0 if position == 0 else 0.0
            start = swing(position, swing_ratio) if swing_ratio != 0.5 else position
            if playing and not (bar % 2 == 1 and position >= beats_per_bar - 1 and rng.random() < 0.5):
                w.play(channel, beats_per_bar * bar + start, length * legato, int(pitch), velocity + accent, rng)
            else:
                rng.random()  # the same draws whether the note sounds or not
            position += length


def _jazz_line(w: Writer, bars: int, chords: Sequence, ratio: float, low: int, high: int) -> None:
    melody(w, 2, w.rng("lead"), bars, 4, chords, (low, high), swing_ratio=ratio, rest_chance=0.35, velocity=86)


# ---- rock ----------------------------------------------------------------------------------------
ROCK_PROGRESSIONS = ((0, 0, 10, 5), (0, 5, 7, 5), (0, 8, 10, 0), (0, 10, 5, 0), (0, 3, 5, 3), (0, 7, 8, 10))
GUITAR_PATTERNS = (  # (position in eighths, accented) per bar: palm-muted eighths with accents
    tuple((i, i in (0, 3, 6)) for i in range(8)), tuple((i, i in (0, 4)) for i in range(8)),
    ((0, True), (3, True), (4, False), (5, False), (6, True)), ((0, True), (2, True), (4, True), (6, True)),
    ((0, True),),  # a held chord
)
KICK_PATTERNS = ((0, 4), (0, 4, 5), (0, 3, 4), (0, 1, 4), (0, 4, 7))  # eighths


def rock(w: Writer) -> Score:
    style = w.rng("style")
    w.beat = 60.0 / style.uniform(96, 152)
    key = int(style.choice([4, 9, 2, 7, 0, 5]))  # E A D G C F: guitar keys
    progression = ROCK_PROGRESSIONS[style.integers(len(ROCK_PROGRESSIONS))]
    bars_per_chord = int(style.choice([1, 1, 2]))
    guitar = int(style.choice([29, 30, 30]))  # overdriven, distortion
    kit = int(style.choice([0, 8, 16]))  # standard, room, power
    parts = [Part(DRUMS, kit, 80, bank=128), Part(0, int(style.choice([33, 34])), 104), Part(1, guitar, 92)]
    pattern, kicks = GUITAR_PATTERNS[style.integers(len(GUITAR_PATTERNS))], KICK_PATTERNS[style.integers(5)]
    bars = w.bars(4)
    roots = [(key + progression[(bar // bars_per_chord) % len(progression)]) % 12 for bar in range(bars)]
    drums, bass, gtr = w.rng("drums"), w.rng("bass"), w.rng("guitar")
    for bar in range(bars):
        t, root = 4.0 * bar, roots[bar]
        fill = bar % 4 == 3 and drums.random() < 0.6
        _rock_drums(w, drums, t, kicks, fill, crash=bar % 4 == 0)
        low = nearest(root, 40, 40, 51)  # the power chord's root, E2..D#3
        for eighth, accent in pattern:
            length = 0.5 if len(pattern) > 1 else 4.0
            for key_ in (low, low + 7, low + 12):
                w.play(1, t + eighth / 2, length * (0.95 if accent else 0.45), key_, 100 if accent else 72, gtr, 0.004)
        for eighth in range(8):
            w.play(0, t + eighth / 2, 0.45, nearest(root, 33, 28, 43), 100 if eighth % 2 == 0 else 86, bass, 0.004)
    return Score(parts, w.notes, Room(style.uniform(0.5, 0.9), style.uniform(0.1, 0.2)))


def _rock_drums(w: Writer, rng: np.random.Generator, t: float, kicks: Sequence[int], fill: bool, crash: bool) -> None:
    if crash:
        w.play(DRUMS, t, 2.0, CRASH, 100, rng)
    for eighth in range(8):
        beat = t + eighth / 2
        if fill and eighth >= 4:  # the last two beats: sixteenths down the toms
            for half in (0.0, 0.25):
                w.play(DRUMS, beat + half, 0.2, (SNARE, HIGH_TOM, MID_TOM, LOW_TOM)[eighth - 4], 100, rng)
            continue
        if not (crash and eighth == 0):
            w.play(DRUMS, beat, 0.2, CLOSED_HAT, 56 if eighth % 2 == 0 else 40, rng, 0.004)
        if eighth in kicks:
            w.play(DRUMS, beat, 0.2, KICK, 120, rng)
        if eighth in (2, 6):
            w.play(DRUMS, beat, 0.2, SNARE, 120, rng)


# ---- electronic ----------------------------------------------------------------------------------
ELECTRONIC_PROGRESSIONS = (((0, "min"), (8, "maj"), (3, "maj"), (10, "maj")), ((0, "min"), (5, "min"), (8, "maj"), (7, "maj")),
                           ((0, "min"), (10, "maj"), (8, "maj"), (10, "maj")), ((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")))
ARP_ORDERS = ((0, 1, 2, 3), (0, 1, 2, 3, 2, 1), (0, 2, 1, 3), (3, 2, 1, 0))
BASS_PATTERNS = ((0.5, 1.5, 2.5, 3.5), (0.5, 0.75, 1.5, 1.75, 2.5, 2.75, 3.5, 3.75), (0.25, 0.5, 1.25, 1.5, 2.25, 2.5, 3.25, 3.5))  # off the beat: the kick owns it


def electronic(w: Writer) -> Score:
    style = w.rng("style")
    w.beat = 60.0 / style.uniform(120, 132)
    key = int(style.integers(12))
    chords = [((key + root) % 12, quality) for root, quality in
              ELECTRONIC_PROGRESSIONS[style.integers(len(ELECTRONIC_PROGRESSIONS))]]
    kit = int(style.choice([24, 25]))  # electronic, TR-808
    parts = [Part(DRUMS, kit, 84, bank=128), Part(0, int(style.choice([38, 39, 87])), 76),
             Part(1, int(style.choice([88, 89, 90, 91, 94])), 76), Part(2, int(style.choice([80, 81, 84, 98])), 72)]
    bass_pattern = BASS_PATTERNS[style.integers(len(BASS_PATTERNS))]
    order = ARP_ORDERS[style.integers(len(ARP_ORDERS))]
    arp_low = int(style.integers(62, 70))
    drums, bass, pad, arp = (w.rng(p) for p in ("drums", "bass", "pad", "arp"))
    bars = w.bars(4)
    for bar in range(bars):
        t = 4.0 * bar
        root, quality = chords[(bar // 2) % len(chords)]
        tones = [root + i for i in QUALITIES[quality]]
        for beat in range(4):  # four on the floor, a clap on 2 and 4, hats on the off-beats
            w.play(DRUMS, t + beat, 0.2, KICK, 127, drums, 0.002)
            w.play(DRUMS, t + beat + 0.5, 0.2, OPEN_HAT if beat % 2 else CLOSED_HAT, 44, drums, 0.002)
            w.play(DRUMS, t + beat + 0.25, 0.1, CLOSED_HAT, 22, drums, 0.002)
            w.play(DRUMS, t + beat + 0.75, 0.1, CLOSED_HAT, 22, drums, 0.002)
            if beat % 2:
                w.play(DRUMS, t + beat, 0.2, CLAP, 100, drums, 0.002)
        for position in bass_pattern:
            w.play(0, t + position, 0.22, nearest(root, 36, 28, 43) + (12 if position % 1 == 0.5 and
                   bass.random() < 0.2 else 0), 104, bass, 0.002)
        if bar % 2 == 0:
            voicing = [nearest(k, 60 + 3 * i, 52, 76) for i, k in enumerate(tones + [root + 12])]
            for key_ in sorted(set(voicing)):
                w.play(1, t, 8.0, key_, 70, pad, 0.0)
        keys = sorted(nearest(k, arp_low + 4, arp_low, arp_low + 12) for k in tones) + [0]
        keys[-1] = keys[0] + 12
        for sixteenth in range(16):
            w.play(2, t + sixteenth / 4, 0.2, keys[order[sixteenth % len(order)] % len(keys)], 80, arp, 0.002)
    return Score(parts, w.notes, Room(style.uniform(1.2, 2.0), style.uniform(0.15, 0.3), predelay=0.03))


# ---- classical -----------------------------------------------------------------------------------
CLASSICAL_PROGRESSIONS = {  # scale degrees (0-based) of a major or minor key, one chord per bar
    "major": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 1, 4), (0, 4, 5, 3), (0, 2, 3, 4)),
    "minor": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 6, 5, 4), (0, 3, 6, 2)),
}
WOODWINDS = (73, 68, 71)  # flute, oboe, clarinet


def classical(w: Writer) -> Score:
    style = w.rng("style")
    w.beat = 60.0 / style.uniform(66, 112)
    meter = int(style.choice([3, 4]))
    key, mode = int(style.integers(12)), "major" if style.random() < 0.6 else "minor"
    scale = MAJOR if mode == "major" else MINOR
    degrees = CLASSICAL_PROGRESSIONS[mode][style.integers(len(CLASSICAL_PROGRESSIONS[mode]))]
    chords = []
    for degree in degrees:
        third, fifth = scale[(degree + 2) % 7] - scale[degree], scale[(degree + 4) % 7] - scale[degree]
        quality = {(4, 7): "maj", (3, 7): "min", (3, 6): "dim"}.get((third % 12, fifth % 12), "maj")
        if mode == "minor" and degree == 4:
            quality = "maj"  # the harmonic minor's dominant
        chords.append(((key + scale[degree]) % 12, quality))
    with_piano = style.random() < 0.6
    strings = int(style.choice([48, 49]))
    parts = [Part(0, strings, 84), Part(1, 42, 96), Part(2, 0, 80 if with_piano else 0),
             Part(3, int(style.choice(WOODWINDS)), 100)]
    bars = w.bars(meter)
    pad, cello, piano = w.rng("strings"), w.rng("cello"), w.rng("piano")
    for bar in range(bars):
        t = float(meter * bar)
        root, quality = chords[bar % len(chords)]
        tones = [root + i for i in QUALITIES[quality]]
        for i, k in enumerate(tones):  # strings: the chord in close position, held the bar
            w.play(0, t, meter * 1.0, nearest(k, 58 + 4 * i, 52, 72), 64, pad, 0.01)
        w.play(1, t, meter * 0.5, nearest(root, 42, 36, 55), 80, cello, 0.01)
        w.play(1, t + meter / 2, meter * 0.5, nearest(tones[2 if len(tones) > 2 else 0], 45, 36, 55), 70, cello, 0.01)
        alberti = [tones[0], tones[2], tones[1], tones[2]]
        for eighth in range(2 * meter):  # piano: an Alberti figure in eighths
            if with_piano:
                w.play(2, t + eighth / 2, 0.5, nearest(alberti[eighth % 4], 57, 48, 67), 58 + (8 if eighth == 0 else 0), piano, 0.006)
    melody(w, 3, w.rng("melody"), bars, meter, chords, (62, 86), rest_chance=0.25, velocity=80, legato=1.0)
    return Score(parts, w.notes, Room(style.uniform(1.6, 2.6), style.uniform(0.25, 0.4), predelay=0.03,
                                      tone_hz=style.uniform(4200, 5200)))


ARRANGERS = {"classical": classical, "electronic": electronic, "jazz": jazz, "rock": rock}


def score(genre: str, seed: int, seconds: float) -> Score:
    """The score of one clip of the built-in set (genre and seed already checked)."""
    return ARRANGERS[genre](Writer(genre, seed, seconds))
