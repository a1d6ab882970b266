"""`python scripts/generate.py --seconds 30`: a pipeline -> NAME.wav, NAME.png, NAME.json.

What a user gets for each generated clip:
- `NAME.wav`: 16-bit PCM at the model's sample rate, exactly `seconds` long, loudness
  normalised once (audiodiff.sample.generate_long does the work);
- `NAME.png`: the spectrogram the audio was decoded from, low frequencies at the bottom, with
  a time axis under it. Its PNG text metadata carries the Mel configuration, the crop box of
  the spectrogram inside the picture and the clip's length, so the PNG alone can be turned
  back into audio (`png_to_audio`, riffusion's habit);
- `NAME.json`: how it was made (model, seed, steps, scheduler, seconds, overlap, versions), so a
  clip can be reproduced.

Files are never overwritten: when NAME is taken, NAME-1, NAME-2, ... is used and said.
With no model given, the most recent fine-tuned run under runs/ is used, else the course's
pretrained hub model; offline with neither, the error says what to run first.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

# the clip's files (names, PNG codec, writer) live in clipfiles.py; imported from here too
from .clipfiles import (  # noqa: F401
    AXIS_HEIGHT,
    MAX_NAME_BYTES,
    default_name,
    png_to_audio,
    png_to_image,
    reserve_name,
    spectrogram_png,
    write_clip_files,
)
from .device import place
# GenerationError, pick_device and resolve_model have their own modules; imported from here too
from .model_choice import resolve_model  # noqa: F401
from .pipeline import GenerationError, pick_device  # noqa: F401
from .metrics import DEFAULT_TARGET_LUFS
from .sampling.longclip import generate_long
from .sampling.options import (DEFAULT_STRENGTH, SamplingOptions, check_bpm_use, check_invertible, check_strength,
                               sampling_options)

DEFAULT_OUTPUT_DIR = Path("samples")


def check_output_dir(output_dir: str | os.PathLike, flag: str = "--output-dir") -> Path:
    """`pipeline.check_writable_folder`, raising GenerationError: before any work, nothing created."""
    from .pipeline import check_writable_folder

    return check_writable_folder(output_dir, flag, error=GenerationError)


DEFAULT_CLIP_SECONDS = 30.0  # a new clip's length, and the seconds a continuation or a gap fill adds
EDIT_KINDS = ("continue", "vary", "fill-gap", "loop", "interpolate")


@dataclass(frozen=True)
class EditRequest:
    """Which edit of `generate` to run (None of these: plain generation).

    init_audio: continue this audio by `seconds`; with `strength` (or `invert`), a variation of it.
    invert: the variation starts from the DDIM inversion of the audio (keeps more of it).
    fill_gap: (A, B): A, then `seconds` of new audio, then B.
    loop: a clip of `seconds` whose end flows into its start.
    interpolate: (A, B): invert both and sample at each of `alphas` between them.
    """

    init_audio: str | os.PathLike | None = None
    strength: float | None = None
    invert: bool = False
    fill_gap: tuple | None = None
    loop: bool = False
    interpolate: tuple | None = None
    alphas: tuple[float, ...] | None = None

    @property
    def kind(self) -> str | None:
        if self.fill_gap is not None:
            return "fill-gap"
        if self.interpolate is not None:
            return "interpolate"
        if self.init_audio is not None:
            return "vary" if (self.strength is not None or self.invert) else "continue"
        return "loop" if self.loop else None

    def check(self) -> None:
        """Raise GenerationError for combinations that mean nothing."""
        chosen = [name for name, on in (("--init-audio", self.init_audio is not None), ("--fill-gap", self.fill_gap is not None),
                                        ("--interpolate", self.interpolate is not None), ("--loop", self.loop)) if on]
        if len(chosen) > 1:
            raise GenerationError(f"{' and '.join(chosen)} can't be combined; choose one edit")
        if (self.strength is not None or self.invert) and self.init_audio is None:
            raise GenerationError("--strength and --invert make a variation of --init-audio FILE; give the audio to vary")
        if self.strength is not None:
            check_strength(self.strength, GenerationError)
        if self.alphas is not None:
            if self.interpolate is None:
                raise GenerationError("--alpha goes with --interpolate A B")
            if not self.alphas or any(not 0.0 <= a <= 1.0 for a in self.alphas):
                raise GenerationError(f"each --alpha must be between 0 and 1, got {list(self.alphas)}")
        for pair, flag in ((self.fill_gap, "--fill-gap"), (self.interpolate, "--interpolate")):
            if pair is not None and len(pair) != 2:
                raise GenerationError(f"{flag} takes two audio files, A and B")

    def check_bpm(self, bpm: float | None) -> None:
        """A bpm is for what the model makes from nothing (new clips, loops), not edits of given audio."""
        check_bpm_use(bpm, self.kind in (None, "loop"), "--bpm", GenerationError)

    def files(self) -> list[str]:
        if self.init_audio is not None:
            return [os.fspath(self.init_audio)]
        return [os.fspath(f) for f in (self.fill_gap or self.interpolate or ())]


def _load_input(path, sample_rate: int, seconds: float | None = None) -> torch.Tensor:
    """An input audio file -> mono (T,) at the model's rate (the first `seconds` of it when given)."""
    from .audio import load_audio

    audio = load_audio(path, sample_rate)  # generate() has checked that the file exists
    if seconds is not None:
        audio = audio[: int(round(seconds * sample_rate))]
    return audio


def ends_quietly(audio: torch.Tensor, sample_rate: int, tail_seconds: float = 0.25, below_db: float = 20.0) -> bool:
    """True when the last `tail_seconds` are more than `below_db` quieter (RMS) than the whole:
    a fade-out, which a continuation would continue from silence."""
    tail = audio[-int(tail_seconds * sample_rate) :]
    rms = lambda x: float(x.pow(2).mean().sqrt()) + 1e-12
    return 20 * math.log10(rms(tail) / rms(audio)) < -below_db


def _named(path: str | os.PathLike) -> str:
    """An input as a clip's JSON records it: the file's name, never where it lies (in the app, an
    upload's server path that gradio would then serve to anyone who asks: issue 25)."""
    return Path(path).name


def _edit_functions(pipe):
    """-> (the edits, the new-clip function) for `pipe`: edits.py's and generate_long, or for a latent
    pipeline the same in latent space (sampling/latent_edits.py)."""
    if getattr(pipe, "vqvae", None) is None:
        from . import edits

        return edits, generate_long
    from types import SimpleNamespace

    from .sampling import latent_edits as lat
    from .sampling.latent import generate_long_latent

    edits = SimpleNamespace(continue_audio=lat.continue_latent, vary=lat.vary_latent, fill_gap=lat.fill_gap_latent,
                            interpolate=lat.interpolate_latent, make_loop=lat.make_loop_latent)
    return edits, generate_long_latent


def _run_edit(pipe, edit: EditRequest, seconds: float | None, options: SamplingOptions, progress,
              say: Callable[[str], None]):
    """Run the requested edit (or plain generation) -> (LongClip, seconds used, extra JSON fields)."""
    edits, make_new = _edit_functions(pipe)
    rate = pipe.mel.sample_rate
    kind = edit.kind
    if kind == "continue":
        seconds = DEFAULT_CLIP_SECONDS if seconds is None else seconds
        audio = _load_input(edit.init_audio, rate)
        if audio.numel() > rate and ends_quietly(audio, rate):
            say(f"note: {edit.init_audio} ends much quieter than it plays (a fade-out?); the continuation starts from "
                "that quiet end. Cut the fade off first for a continuation of the music itself.")
        clip = edits.continue_audio(pipe, audio, seconds, options, progress=progress)
        return clip, seconds, {"init_audio": _named(edit.init_audio), "seconds_added": seconds}
    if kind == "vary":
        strength = DEFAULT_STRENGTH if edit.strength is None else edit.strength
        audio = _load_input(edit.init_audio, rate, seconds)
        clip = edits.vary(pipe, audio, strength, options, invert_audio=edit.invert, progress=progress)
        return clip, audio.numel() / rate, {"init_audio": _named(edit.init_audio), "strength": strength,
                                            "invert": edit.invert}
    if kind == "fill-gap":
        seconds = DEFAULT_CLIP_SECONDS if seconds is None else seconds
        a, b = (_load_input(f, rate) for f in edit.fill_gap)
        clip = edits.fill_gap(pipe, a, b, seconds, options, progress=progress)
        return clip, clip.seconds, {"fill_gap": [_named(f) for f in edit.fill_gap], "gap_seconds": seconds}
    if kind == "interpolate":
        a, b = (_load_input(f, rate, seconds) for f in edit.interpolate)
        alphas = list(edit.alphas or (0.5,))
        clip = edits.interpolate(pipe, a, b, alphas, options, progress=progress)
        return clip, clip.seconds, {"interpolate": [_named(f) for f in edit.interpolate], "alphas": alphas}
    seconds = DEFAULT_CLIP_SECONDS if seconds is None else seconds
    if kind == "loop":
        return edits.make_loop(pipe, seconds, options, progress=progress), seconds, {"loop": True}
    return make_new(pipe, seconds, options, progress=progress), seconds, {}


def _check_request(seconds: float | None, options: SamplingOptions, name: str | None, edit: EditRequest) -> None:
    """Everything about a request that can be checked before the model is loaded."""
    if seconds is not None and not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise GenerationError(f"seconds must be a positive number, got {seconds}")
    if name is not None and (Path(name).name != name or name in ("", ".", "..")):
        raise GenerationError(f"--name must be a plain file name without folders, got {name!r}; use --output-dir for the folder")
    if name is not None and len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise GenerationError(f"--name is {len(os.fsencode(name))} bytes long; file names hold at most {MAX_NAME_BYTES} "
                              "here (room is left for -N, _N and the suffix): choose a shorter name")
    edit.check()
    edit.check_bpm(options.bpm)
    if edit.invert or edit.kind == "interpolate":
        check_invertible(options.scheduler, GenerationError)
    for path in edit.files():
        if not Path(path).is_file():
            raise GenerationError(f"audio file not found: {path}")
    _check_limits(edit, seconds, options.batch_size)


def _load_model(model, pipe, model_choice: str | None, runs_dir, target, say: Callable[[str], None]):
    """The pipeline to generate with, on `target` -> (pipe, how it was chosen)."""
    if pipe is None:
        pipe, chosen = resolve_model(model, runs_dir=runs_dir)
    else:
        chosen = model_choice or "given (already loaded)"
    place(pipe, target)  # with the base UNet that guides it and a latent model's VAE
    if model is None:
        say(f"model: {pipe.source} ({chosen})")
    return pipe, chosen


def _conditioned(pipe, encoding, guidance_scale: float, options: SamplingOptions, edit: EditRequest) -> tuple:
    """A conditional model's UNet conditioned on the encoding file, checked against it before any
    sampling (conditioning.py) -> (pipe, what the clip's JSON records of it)."""
    from .conditioning import condition

    clips = len(edit.alphas or (0.5,)) if edit.kind == "interpolate" else options.batch_size
    conditioned = condition(pipe, encoding, guidance_scale, clips)
    if conditioned is pipe:
        return pipe, {}
    return conditioned, {"encoding": _named(encoding), "guidance_scale": guidance_scale}


def _fit_to_model(pipe, options: SamplingOptions, edit: EditRequest, say: Callable[[str], None]) -> tuple[SamplingOptions, dict]:
    """A latent model's options checked (what it can't do refused in one line, before any sampling)
    and its holds off unless asked for, with a note -> (options, what the clip's JSON records of it:
    which holds ran, and how)."""
    if getattr(pipe, "vqvae", None) is None:
        return options, {}
    from .sampling.latent import holds_record, latent_options

    options, note = latent_options(options, GenerationError)
    if note:
        say(f"note: {note}")
    return options, {"latent": True, **holds_record(options), **({"note": note} if note else {})}


def _resolve_for(pipe, options: SamplingOptions, seconds: float | None) -> SamplingOptions:
    """The options' defaults for the loaded model, and the checks that need it."""
    if getattr(pipe, "vqvae", None) is not None:  # resolved against the latents the UNet samples
        from .sampling.latent import latent_view

        pipe = latent_view(pipe)
    try:
        options = options.resolve(pipe)
    except ValueError as exc:
        raise GenerationError(str(exc)) from exc
    column_seconds = pipe.mel.columns_to_seconds(1)
    if seconds is not None and seconds < column_seconds:
        raise GenerationError(f"seconds must be at least one spectrogram column of this model, {column_seconds:.4g} s "
                              f"({pipe.mel.hop_length} samples at {pipe.mel.sample_rate} Hz), got {seconds:g}")
    return options


SAMPLING_KEYWORDS = {"seed": "seed", "steps": "num_inference_steps", "scheduler": "scheduler",
                     "overlap_seconds": "overlap_seconds", "batch_size": "batch_size", "repaint_jumps": "repaint_jumps",
                     "candidates": "candidates", "draws": "draws", "level_hold": "level_hold", "tempo_hold": "tempo_hold",
                     "bpm": "bpm", "base_guidance": "base_guidance", "latent_holds": "latent_holds",
                     "quantize": "quantize"}
EDIT_KEYWORDS = ("init_audio", "strength", "invert", "fill_gap", "loop", "interpolate", "alphas")


def request_from_keywords(options: SamplingOptions | None, edit: EditRequest | None,
                          keywords: dict) -> tuple[SamplingOptions, EditRequest]:
    """The keyword layer of `generate` (`seed=3, steps=20, init_audio="a.wav"`, the flags' names):
    keywords laid over `options` and `edit` -> (SamplingOptions, EditRequest), checked when made."""
    unknown = set(keywords) - set(SAMPLING_KEYWORDS) - set(EDIT_KEYWORDS)
    if unknown:
        raise TypeError(f"generate() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    sampling = {SAMPLING_KEYWORDS[k]: v for k, v in keywords.items() if k in SAMPLING_KEYWORDS}
    try:
        options = sampling_options(options, sampling)
    except ValueError as exc:
        raise GenerationError(str(exc)) from exc
    changes = {k: v for k, v in keywords.items() if k in EDIT_KEYWORDS}
    for pair in ("fill_gap", "interpolate"):
        if pair in changes:
            changes[pair] = tuple(changes[pair]) if changes[pair] else None
    if changes.get("alphas") is not None:
        changes["alphas"] = tuple(changes["alphas"])
    return options, replace(edit or EditRequest(), **changes)


def generate(
    model: str | os.PathLike | None,
    seconds: float | None = None,
    options: SamplingOptions | None = None,
    edit: EditRequest | None = None,
    *,
    output_dir: str | os.PathLike = DEFAULT_OUTPUT_DIR,
    name: str | None = None,
    device: str | None = None,
    runs_dir: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    pipe=None,
    model_choice: str | None = None,
    encoding: str | os.PathLike | None = None,
    guidance_scale: float = 1.0,
    **keywords,
) -> list[Path]:
    """Generate clips and write NAME.wav/.png/.json for each; returns the paths (wav, png, json per clip).

    seconds: the clip's length (default 30); for a continuation and a gap fill, the seconds of new
        audio; for variations and interpolation, how much of the input to use (default: all of it).
    options: how to sample (`SamplingOptions`; default: its defaults, seed 0). edit: which edit of
        your own audio (`EditRequest`; default: a new clip). Interpolation makes one clip per alpha
        (default 0.5) and ignores the batch size. See the module docstring for the model default.
    keywords: the same as the flags' names, laid over `options` and `edit` (`request_from_keywords`):
        seed, steps, scheduler, overlap_seconds, batch_size, repaint_jumps, candidates, draws, level_hold,
        tempo_hold, bpm, base_guidance, latent_holds, quantize; init_audio, strength, invert, fill_gap, loop, interpolate, alphas.
    pipe: an already loaded pipeline (an app loads it once and generates many times); `model` is
        then only recorded, with `model_choice` (how it was chosen, as `resolve_model` says).
    encoding, guidance_scale: for conditional models (conditioning.py): a .npy or .safetensors file
        of one encoding per clip or one for all, and the classifier-free guidance scale (1: none).
    A request beyond `audiodiff.limits` (seconds of audio, batch size), an output folder that
    can't be written, or a device that can't generate is refused before the model is loaded; the
    files of each clip are reserved atomically (`reserve_name`), so concurrent runs never collide.
    """
    say = log or (lambda message: None)
    options, edit = request_from_keywords(options, edit, keywords)
    _check_request(seconds, options, name, edit)
    if encoding is not None:
        from .conditioning import ENCODING_SUFFIXES

        if Path(encoding).suffix not in ENCODING_SUFFIXES or not Path(encoding).is_file():
            raise GenerationError(f"--encoding takes an existing .npy or .safetensors file, got {encoding}")
    if edit.kind == "loop" and options.bpm is not None:
        _say_loop_beats(DEFAULT_CLIP_SECONDS if seconds is None else seconds, options.bpm, say)
    target = pick_device(device)
    output_dir = check_output_dir(output_dir)
    pipe, chosen = _load_model(model, pipe, model_choice, runs_dir, target, say)
    pipe, condition_record = _conditioned(pipe, encoding, guidance_scale, options, edit)
    options, model_record = _fit_to_model(pipe, options, edit, say)
    model_record.update(condition_record)
    options = _resolve_for(pipe, options, seconds)
    clip, seconds, edit_record = _run_edit(pipe, edit, seconds, options, progress, say)
    return write_clip_files(clip, pipe.mel, output_dir, name or default_name(pipe.source, options.seed, edit.kind),
                            {**_made_with(pipe, chosen, edit, edit_record, options, target), **model_record},
                            per_clip=_per_clip(clip, edit, edit_record, options.quantize), log=say)


def _made_with(pipe, chosen: str, edit: EditRequest, edit_record: dict, options: SamplingOptions, target) -> dict:
    """What every clip's JSON records of how it was made."""
    made_with = {"model": str(pipe.source), "model_choice": chosen, "edit": edit.kind or "generate", **edit_record,
                 "seed": options.seed, "steps": options.num_inference_steps, "scheduler": options.scheduler,
                 "overlap_seconds": options.overlap_seconds, "repaint_jumps": options.repaint_jumps,
                 "candidates": options.candidates, "draws": options.draws, "level_hold": options.level_hold, "tempo_hold": options.tempo_hold,
                 "device": str(target)}
    # base guidance ran only where the run's base is attached (pipeline.attach_base): 1.0 otherwise
    base = getattr(pipe, "base_unet", None) is not None
    made_with["base_guidance"] = options.base_guidance if base else 1.0
    if base and options.base_guidance != 1.0:
        made_with["guided_away_from"] = pipe.base_source
    if edit.kind in (None, "loop"):
        made_with["target_lufs"] = DEFAULT_TARGET_LUFS
    return made_with


def _per_clip(clip, edit: EditRequest, edit_record: dict, quantize: float) -> list[dict] | None:
    """What each clip's JSON records of itself: its alpha (interpolation), the beat the tempo hold
    kept, how many times its first slice was drawn again for want of a clear pulse, and how far
    its beats were settled on a grid (`quantize`, 0 where they were not, and the most a column moved)."""
    per_clip = [{"alpha": alpha} for alpha in edit_record["alphas"]] if edit.kind == "interpolate" else None
    if getattr(clip, "bpm", None):
        per_clip = [{"bpm": bpm} for bpm in clip.bpm]
    if per_clip is not None and getattr(clip, "first_slice_redraws", None) is not None:
        per_clip = [{**record, "first_slice_redraws": n} for record, n in zip(per_clip, clip.first_slice_redraws)]
    moved = getattr(clip, "beats_moved_seconds", None)
    if per_clip is not None:  # the beats settled on a grid (sampling.quantize): how far, 0 where they were not
        strength = quantize if moved is not None else 0.0
        per_clip = [{**record, "quantize": strength, "beats_moved_seconds": moved[i] if moved else 0.0}
                    for i, record in enumerate(per_clip)]
    return per_clip


def _say_loop_beats(seconds: float, bpm: float, say: Callable[[str], None]) -> None:
    """A loop at a given tempo that is not a whole number of beats stumbles where it wraps: say so,
    with the nearest lengths that are (the length asked for is kept: it is exact by promise)."""
    beats = seconds * bpm / 60.0
    if abs(beats - round(beats)) > 0.05:
        whole = [n for n in (math.floor(beats), math.ceil(beats)) if n >= 1]
        options = " or ".join(f"--seconds {n * 60.0 / bpm:.3f} ({n} beats)" for n in whole)
        say(f"note: a {seconds:g} s loop is {beats:.2f} beats at {bpm:g} bpm, so its beat slips where it wraps; "
            f"{options} repeats on the beat")


def request_seconds(edit: EditRequest, seconds: float | None, batch_size: int = 1) -> tuple[float, int]:
    """What a request makes -> (seconds of audio per clip, input audio included; clips): what the
    limits (`audiodiff.limits`) are checked against, here and by the app in its own words."""
    from .audio import duration_seconds

    inputs = [duration_seconds(f) for f in edit.files()]
    kind = edit.kind
    if kind in ("vary", "interpolate"):  # `seconds` is how much of the input to use
        total = min(inputs + ([seconds] if seconds is not None else []))
    else:  # continue: the input, then `seconds` more; fill-gap: A, `seconds`, B
        total = (DEFAULT_CLIP_SECONDS if seconds is None else seconds) + sum(inputs)
    return total, len(edit.alphas or (0.5,)) if kind == "interpolate" else batch_size


def _check_limits(edit: EditRequest, seconds: float | None, batch_size: int) -> None:
    """The request's seconds of audio (what comes out, input audio included) against the limits."""
    from .limits import RequestLimits

    total, clips = request_seconds(edit, seconds, batch_size)
    RequestLimits.from_env().check(seconds=total, clips=clips, batch_size=clips)
