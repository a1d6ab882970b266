"""Sampled instruments: a score of MIDI notes played through FluidSynth and a General MIDI soundfont.

The built-in genre set (synthetic.py) writes its scores in arrange.py and renders them here. The
synthesizer is Debian's `fluidsynth` library driven through ctypes (no Python binding to install),
playing the `fluid-soundfont-gm` soundfont (FluidR3_GM, 148 MB of recorded instruments):

    sudo apt-get install -y fluidsynth fluid-soundfont-gm

Rendering is deterministic: a fresh synthesizer per clip (its own reverb and chorus off: the room
is ours, seeded, in arrange.py), samples loaded on demand (a clip costs ~0.05 s of set-up, not the
0.2 s of loading the whole soundfont), events applied at exact sample positions, float output.
The same score at the same rate gives the same bytes. `AUDIODIFF_SOUNDFONT` names another .sf2.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

INSTALL = "sudo apt-get install -y fluidsynth fluid-soundfont-gm"
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2",
              "/usr/share/sounds/sf2/default-GM.sf2", "/usr/share/soundfonts/default.sf2")
DRUMS = 9  # the General MIDI percussion channel (bank 128)
GAIN = 0.2  # FluidSynth's master gain: float output, so no clipping; the clip is normalised after
_BLOCK = 4096  # samples written per call between events


class RendererMissing(ValueError):
    """FluidSynth or a General MIDI soundfont is not installed: the message says how to install it (a
    ValueError, so that the scripts report it in one line with exit status 2, as any set-up the user fixes)."""


@dataclass(frozen=True)
class Note:
    """One note of a score: seconds from the clip's start, seconds held, MIDI channel/key/velocity."""

    start: float
    length: float
    channel: int
    key: int
    velocity: int


@dataclass(frozen=True)
class Part:
    """A channel's instrument: General MIDI bank (128 for drum kits) and program, and its volume."""

    channel: int
    program: int
    volume: int = 100  # MIDI CC 7
    bank: int = 0


def soundfont() -> Path:
    """The General MIDI soundfont to play: $AUDIODIFF_SOUNDFONT, or Debian's fluid-soundfont-gm."""
    chosen = os.environ.get("AUDIODIFF_SOUNDFONT")
    if chosen:
        if not Path(chosen).is_file():
            raise RendererMissing(f"AUDIODIFF_SOUNDFONT={chosen} is not a file; unset it to use {SOUNDFONTS[0]}")
        return Path(chosen)
    for path in SOUNDFONTS:
        if Path(path).is_file():
            return Path(path)
    raise RendererMissing(f"the built-in genre set needs a General MIDI soundfont; install one with: {INSTALL}")


@functools.lru_cache(maxsize=1)
def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("fluidsynth")
    try:
        lib = ctypes.CDLL(name or "libfluidsynth.so.3")
    except OSError:
        raise RendererMissing(f"the built-in genre set is played by FluidSynth; install it with: {INSTALL}") from None
    p, i, d, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.POINTER(ctypes.c_float)
    for fn, result, args in (
        ("new_fluid_settings", p, []), ("delete_fluid_settings", None, [p]),
        ("fluid_settings_setnum", i, [p, ctypes.c_char_p, d]), ("fluid_settings_setint", i, [p, ctypes.c_char_p, i]),
        ("new_fluid_synth", p, [p]), ("delete_fluid_synth", None, [p]),
        ("fluid_synth_sfload", i, [p, ctypes.c_char_p, i]),
        ("fluid_synth_program_select", i, [p, i, i, i, i]), ("fluid_synth_cc", i, [p, i, i, i]),
        ("fluid_synth_noteon", i, [p, i, i, i]), ("fluid_synth_noteoff", i, [p, i, i]),
        ("fluid_synth_write_float", i, [p, i, f, i, i, f, i, i]),
    ):
        getattr(lib, fn).restype = result
        getattr(lib, fn).argtypes = args
    return lib


def check_renderer() -> None:
    """Raise RendererMissing (one line saying how to install it) unless FluidSynth and a soundfont are here."""
    _library()
    soundfont()


# One synth at a time in a process: FluidSynth's synth creation, its shared sample cache (the
# soundfont's samples, loaded as notes need them) and deletion are not safe across threads: the
# data loader's checking threads rendering two tracks at once aborted the interpreter (a new synth
# made in one thread while another was deleted). Rendering is much faster than real time, so
# serialising it costs little; processes (the loader's workers) each have their own library state.
_RENDER_LOCK = threading.Lock()


def render_score(notes: Sequence[Note], parts: Sequence[Part], seconds: float, sample_rate: int) -> np.ndarray:
    """Play `notes` on `parts` for round(seconds * sample_rate) samples: float64 mono (L + R) / 2."""
    with _RENDER_LOCK:
        return _render_score(notes, parts, seconds, sample_rate)


def _render_score(notes: Sequence[Note], parts: Sequence[Part], seconds: float, sample_rate: int) -> np.ndarray:
    lib, font = _library(), soundfont()
    length = int(round(seconds * sample_rate))
    settings = lib.new_fluid_settings()
    synth = None
    try:
        for key, value in ((b"synth.reverb.active", 0), (b"synth.chorus.active", 0),
                           (b"synth.dynamic-sample-loading", 1), (b"synth.polyphony", 512)):
            lib.fluid_settings_setint(settings, key, value)
        lib.fluid_settings_setnum(settings, b"synth.sample-rate", float(sample_rate))
        lib.fluid_settings_setnum(settings, b"synth.gain", GAIN)
        synth = lib.new_fluid_synth(settings)
        font_id = lib.fluid_synth_sfload(synth, str(font).encode(), 1)
        if not synth or font_id < 0:
            raise RendererMissing(f"FluidSynth could not load the soundfont {font}; reinstall it with: {INSTALL}")
        for part in parts:
            lib.fluid_synth_program_select(synth, part.channel, font_id, part.bank, part.program)
            lib.fluid_synth_cc(synth, part.channel, 7, part.volume)
        return _play(lib, synth, _events(notes, sample_rate, length), length)
    finally:
        if synth:
            lib.delete_fluid_synth(synth)
        lib.delete_fluid_settings(settings)


def _events(notes: Sequence[Note], sample_rate: int, length: int) -> list[tuple[int, int, int, int, int]]:
    """(sample, order, channel, key, velocity) sorted; within one sample, note-offs before note-ons."""
    events = []
    for note in notes:
        on = max(0, int(round(note.start * sample_rate)))
        off = max(on + 1, int(round((note.start + note.length) * sample_rate)))
        if on < length:
            events.append((on, 1, note.channel, note.key, note.velocity))
            if off < length:
                events.append((off, 0, note.channel, note.key, 0))
    events.sort()
    return events


def _play(lib, synth, events, length: int) -> np.ndarray:
    left, right = np.zeros(length, np.float32), np.zeros(length, np.float32)
    pointer = ctypes.POINTER(ctypes.c_float)
    position, index = 0, 0
    while position < length:
        while index < len(events) and events[index][0] <= position:
            _, on, channel, key, velocity = events[index]
            if on:
                lib.fluid_synth_noteon(synth, channel, key, velocity)
            else:
                lib.fluid_synth_noteoff(synth, channel, key)
            index += 1
        stop = min(length, position + _BLOCK, events[index][0] if index < len(events) else length)
        n = stop - position
        lib.fluid_synth_write_float(synth, n, left[position:].ctypes.data_as(pointer), 0, 1,
                                    right[position:].ctypes.data_as(pointer), 0, 1)
        position = stop
    return (left.astype(np.float64) + right) / 2.0
