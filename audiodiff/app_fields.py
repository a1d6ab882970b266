"""The app's fields, read and checked in one place before any work, in the page's own words
(issue 26): every message names the field as the page labels it ("seed must be a whole number
from 0 to 4294967295, got -3"), never a flag, an environment variable, "None" or a server path.

The library's messages are written for the command line ("use at most --steps 1000", "raise the
limit with the environment variable AUDIODIFF_MAX_SECONDS") and stay so: the scripts and their tests
rely on them. The page checks the same limits up front in its words (`read_page`), and
`page_words` translates whatever library message still reaches it (a loop too short for its overlap,
a join whose overlap leaves no room): flags become the fields' names, image columns seconds.

gradio's own bounds (`gr.Number(minimum=...)`, `precision=0`) are not used: the first shows a toast
that names no field ("Value -3 is less than minimum value 0"), the second silently rounds a seed of
2.5 to 2. The page passes what was typed, and this module says what is wrong with it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import GenerationError
from .finetune_config import MAX_SEED
from .generate import EditRequest, request_seconds
from .metrics import MAX_BPM, MIN_BPM
from .sampling.autoguide import DEFAULT_BASE_GUIDANCE, MAX_BASE_GUIDANCE
from .sampling.options import (DEFAULT_CANDIDATES, DEFAULT_LEVEL_HOLD, DEFAULT_TEMPO_HOLD, MAX_CANDIDATES,
                                MAX_LEVEL_HOLD, MAX_TEMPO_HOLD, check_bpm_use, overlap_columns, sample_shape)
from .sampling.quantize import DEFAULT_QUANTIZE
from .sampling.schedulers import SCHEDULERS

MODES = ("continue", "vary", "join")
# Each field's label on the page; a message names the field by its label's first word.
LABELS = {"seconds": "seconds", "seed": "seed", "scheduler": "scheduler", "steps": "steps",
          "overlap": "overlap (seconds)", "bpm": "bpm (optional)", "strength": "strength",
          "candidates": "candidates", "level_hold": "level hold", "tempo_hold": "tempo hold",
          "quantize": "beat grid", "base_guidance": "base guidance"}
DEFAULT_APP_SECONDS = 10.0  # long enough to hear a continuation seam, short enough to wait for on a CPU


class PageError(GenerationError):
    """A value of the page that can't be used; the message names its field and says what to enter."""


def _shown(value) -> str:
    """A typed value as the message repeats it: short, and text in quotes unless it reads as a number
    (the bpm box is text: "got 300", as a number field says it)."""
    text = value.strip() if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
    text = text if len(text) <= 24 else text[:21] + "..."
    try:
        quoted = isinstance(value, str) and not math.isfinite(float(text))
    except ValueError:
        quoted = True
    return f"'{text}'" if quoted else text


def _number(value, name: str, expected: str) -> float | None:
    """A field's value as a finite float; None when the field is empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise PageError(f"{name} must be {expected}, got {_shown(value)}")
    return number


def whole_number(value, name: str, lowest: int, highest: int, why: str = "") -> int:
    """A field that takes a whole number from `lowest` to `highest` (`why`: what bounds it)."""
    expected = f"a whole number from {lowest} to {highest}{why}"
    number = _number(value, name, expected)
    if number is None:
        raise PageError(f"{name} is empty: enter {expected}")
    if number != int(number) or not lowest <= number <= highest:
        raise PageError(f"{name} must be {expected}, got {_shown(value)}")
    return int(number)


def read_strength(value) -> float:
    """A variation's strength: more than 0 and at most 1 (the share of the steps run again)."""
    expected = "more than 0 and at most 1"
    number = _number(value, "strength", f"a number {expected}")
    if number is None:
        raise PageError(f"strength is empty: enter a number {expected}, e.g. 0.5")
    if not 0 < number <= 1:
        raise PageError(f"strength must be {expected}, got {_shown(value)}")
    return number


def edit_request(audio: str | None, mode: str, strength: float | None, second_audio: str | None,
                 loop: bool, invert: bool = False) -> EditRequest:
    """The edit for `generate()` from the page's controls; EditRequest() (none) for plain generation.

    audio + "continue": init_audio (the clip continues it); + "vary": init_audio and strength,
    invert when ticked (a variation of it); + "join": fill_gap=(audio, second_audio) (new audio
    between the two). loop: loop=True (a new clip that repeats seamlessly; not with audio).
    """
    if mode not in MODES:
        raise PageError(f"mode must be one of {', '.join(MODES)}, got {_shown(mode)}")
    if audio is None:
        if mode == "join" and second_audio is not None:
            raise PageError("join needs two pieces of audio: upload the first one too (the second is only the end)")
        return EditRequest(loop=bool(loop))
    if loop:
        raise PageError("a loop is a new clip, made without your audio: untick loop to "
                        f"{mode} the uploaded audio, or clear the audio to make a loop")
    if mode == "continue":
        return EditRequest(init_audio=audio)
    if mode == "vary":
        return EditRequest(init_audio=audio, strength=read_strength(strength), invert=bool(invert))
    if second_audio is None:
        raise PageError("join needs a second piece of audio: upload the audio the new part should lead into")
    return EditRequest(fill_gap=(audio, second_audio))


@dataclass(frozen=True)
class PageRequest:
    """The page's values, checked: what `AudioStudio.generate` is called with."""

    seconds: float
    seed: int
    scheduler: str
    steps: int
    overlap: float
    bpm: float | None
    edit: EditRequest
    candidates: int = DEFAULT_CANDIDATES
    level_hold: float = DEFAULT_LEVEL_HOLD
    tempo_hold: float = DEFAULT_TEMPO_HOLD
    quantize: float = DEFAULT_QUANTIZE
    base_guidance: float = DEFAULT_BASE_GUIDANCE


def _seconds(value, mel) -> float:
    number = _number(value, "seconds", "a number of seconds")
    if number is None:
        raise PageError(f"seconds is empty: enter the length of the clip in seconds, e.g. {DEFAULT_APP_SECONDS:g}")
    shortest = mel.columns_to_seconds(1)  # one column of the model's spectrogram
    if number < shortest:
        what = "a positive number" if number <= 0 else f"at least {shortest:.3g} s with this model"
        raise PageError(f"seconds must be {what}, got {_shown(value)}")
    return number


def _overlap(value, pipe) -> float:
    mel = pipe.mel
    expected = f"from 0 to less than one slice of this model ({mel.slice_seconds:.2f} s)"
    number = _number(value, "overlap", f"a number of seconds {expected}")
    if number is None:
        raise PageError(f"overlap is empty: enter the seconds {expected}")
    try:
        overlap_columns(number, mel, sample_shape(pipe.unet)[1])
    except ValueError:
        raise PageError(f"overlap must be {expected}, got {_shown(value)} s") from None
    return number


def _bpm(value) -> float | None:
    expected = f"from {MIN_BPM:g} to {MAX_BPM:g}"
    number = _number(value, "bpm", f"a tempo {expected}, or empty")
    if not number:  # empty or 0: the clip keeps the beat of its first slice
        return None
    if not MIN_BPM <= number <= MAX_BPM:
        raise PageError(f"bpm must be {expected}, got {_shown(value)}; leave it empty (or 0) and the clip keeps "
                        "the beat of its first slice")
    return number


def _hold(value, name: str, highest: float, default: float, lowest: float = 0.0) -> float:
    """A hold's (or the beat grid's, or base guidance's) strength: from `lowest` (off) to `highest`."""
    expected = f"from {lowest:g} (off) to {highest:g}"
    number = _number(value, name, f"a number {expected}")
    if number is None:
        raise PageError(f"{name} is empty: enter a number {expected}, e.g. {default:g} (the usual strength)")
    if not lowest <= number <= highest:
        raise PageError(f"{name} must be {expected}, got {_shown(value)}")
    return number


def _scheduler(value) -> str:
    if value not in SCHEDULERS:
        choose = f"one of {', '.join(SCHEDULERS)}"
        raise PageError(f"scheduler is empty: choose {choose}" if not value else
                        f"scheduler must be {choose}, got {_shown(value)}")
    return value


def _check_together(request: PageRequest) -> None:
    """What only the fields together say: a bpm for an edit of given audio, inversion's scheduler,
    uploads gone from the server, and the request's length against the app's limit."""
    from .limits import RequestLimits

    edit = request.edit
    check_bpm_use(request.bpm, edit.kind in (None, "loop"), "bpm", PageError)
    if request.bpm is not None and not request.tempo_hold:
        raise PageError(f"bpm {request.bpm:g} is kept by the tempo hold: set tempo hold above 0, or empty bpm")
    if edit.invert and request.scheduler != "ddim":
        raise PageError(f"invert needs the ddim scheduler: choose ddim, or untick invert "
                        f"(scheduler {request.scheduler})")
    for path in edit.files():
        if not Path(path).is_file():
            raise PageError(f"{Path(path).name} is no longer on the server (uploads are kept for an hour): "
                            "upload it again")
    longest = RequestLimits.from_env().max_seconds
    total, _ = request_seconds(edit, request.seconds)
    if total > longest:
        limit = f"this app makes at most {longest / 60:g} minutes ({longest:g} s) of audio per request"
        if edit.files():
            raise PageError(f"seconds: with your audio this clip would be {total:.0f} s long, and {limit}; "
                            "ask for fewer seconds or upload a shorter excerpt")
        raise PageError(f"seconds must be at most {longest:g}: {limit}; got {_shown(request.seconds)}")


def read_page(pipe, *, seconds, seed, scheduler, steps, overlap, bpm, loop=False, audio=None, mode="continue",
              strength=None, invert=False, second_audio=None, candidates=DEFAULT_CANDIDATES,
              level_hold=DEFAULT_LEVEL_HOLD, tempo_hold=DEFAULT_TEMPO_HOLD, quantize=DEFAULT_QUANTIZE,
              base_guidance=DEFAULT_BASE_GUIDANCE) -> PageRequest:
    """The page's values -> a PageRequest, or PageError naming the first field (in the page's
    order) that can't be used. `pipe` is the loaded model, whose limits some fields have."""
    noise_levels = pipe.scheduler.config.num_train_timesteps
    request = PageRequest(
        seconds=_seconds(seconds, pipe.mel),
        seed=whole_number(seed, "seed", 0, MAX_SEED),
        scheduler=_scheduler(scheduler),
        steps=whole_number(steps, "steps", 1, noise_levels, " (the noise levels this model was trained with)"),
        overlap=_overlap(overlap, pipe),
        bpm=_bpm(bpm),
        edit=edit_request(audio, mode, strength, second_audio, bool(loop), bool(invert)),
        candidates=whole_number(candidates, "candidates", 1, MAX_CANDIDATES,
                                " (each one more costs the UNet calls of a slice again)"),
        level_hold=_hold(level_hold, "level hold", MAX_LEVEL_HOLD, DEFAULT_LEVEL_HOLD),
        tempo_hold=_hold(tempo_hold, "tempo hold", MAX_TEMPO_HOLD, DEFAULT_TEMPO_HOLD),
        quantize=_hold(quantize, "beat grid", 1.0, DEFAULT_QUANTIZE),
        base_guidance=_hold(base_guidance, "base guidance", MAX_BASE_GUIDANCE, DEFAULT_BASE_GUIDANCE, lowest=1.0),
    )
    _check_together(request)
    return request


# ---- the library's messages in the page's words -----------------------------------------------
# The flags a library message may name -> the page's field (or what stands for it on the page)
FLAG_WORDS = {"seconds": "seconds", "steps": "steps", "scheduler": "scheduler", "overlap": "overlap", "bpm": "bpm",
              "strength": "strength", "invert": "invert", "loop": "loop", "init-audio": "your audio",
              "fill-gap": "join", "no-tempo-hold": "no tempo hold", "quantize": "beat grid",
              "base-guidance": "base guidance"}


def page_words(text: str, mel) -> str:
    """A library message with the command line's words put into the page's: flags become the
    fields' names, the environment variable that raises a limit goes (it is the server's owner's
    business), and image columns become seconds of this model's audio."""
    text = re.sub(r"[,;]?\s*or raise the limit with the environment variable \S+(?: \([^)]*\))?", "", text)
    text = re.sub(r"\bAUDIODIFF_[A-Z_]+(?:=\S+)?", "the app's limit", text)
    text = re.sub(r"--([a-z][a-z-]*)(?: FILE)?", lambda m: FLAG_WORDS.get(m[1], m[1].replace("-", " ")), text)

    def in_seconds(columns: str) -> str:
        return f"{mel.columns_to_seconds(int(columns)):.2f} s"

    text = re.sub(r"\b(\d+) columns", lambda m: in_seconds(m[1]), text)  # "375 columns"
    return re.sub(r"\b(a slice (?:of )?)(\d+)(?![\d.]| s)", lambda m: m[1] + in_seconds(m[2]), text)  # "a slice 168"
