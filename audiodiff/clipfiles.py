"""A clip's files: NAME.wav, NAME.png (with its Mel config), NAME.json, under a name never taken.

The one place that writes what a user gets for a generated clip (`scripts/generate.py`, the app
and the edits all go through `write_clip_files`, via `audiodiff.generate.generate`):
- `NAME.wav`: 16-bit PCM at the model's sample rate (`audiodiff.audio.write_wav`);
- `NAME.png`: the spectrogram the audio was decoded from, low frequencies at the bottom, with a
  time axis under it. Its PNG text metadata carries the Mel configuration, the crop box of the
  spectrogram inside the picture and the clip's length, so the PNG alone can be turned back into
  audio (`png_to_image`, `png_to_audio`: riffusion's habit);
- `NAME.json`: how it was made (what the caller says) and what the clip is (length, seams, Mel
  configuration, versions), keys in `RECORD_ORDER`.
Names are taken atomically: the files are written whole under temporary names, then linked to
their names with links that fail when a name exists; when NAME is taken, NAME-1, NAME-2, ... is
used. So nothing is ever overwritten, even by two processes asking for one name at once, and a
kill leaves no empty or half-written clip (`reserve_name` does it where there are no hard links).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from .audio import write_wav
from .display import time_ticks
from .mel import MelConfig, images_to_audio
from .metrics import DEFAULT_PEAK_CEILING, DEFAULT_TARGET_LUFS, normalize_loudness
from .errors import GenerationError
from .sample import columns_for_samples

if TYPE_CHECKING:
    from .sample import LongClip

AXIS_HEIGHT = 16  # pixels of time axis under the spectrogram
PNG_TICK_GAP_PIXELS = 60  # at least, between time labels in PIL's small default font ("12s")
PNG_KEY_MEL = "audiodiff:mel_config"
PNG_KEY_BOX = "audiodiff:spectrogram_box"  # [left, top, right, bottom] of the spectrogram, PIL crop order
PNG_KEY_SAMPLES = "audiodiff:samples"
PNG_KEY_LAYOUT = "audiodiff:layout"
PNG_LAYOUT = "grey = (x + 1) * 127.5; row 0 = highest mel band (low frequencies at the bottom)"


# ---- names -----------------------------------------------------------------------------------
def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug[:60] or "clip"


def default_name(source: str, seed: int, kind: str | None = None) -> str:
    """e.g. `jazz-20260101-120000-seed0` for a run folder, `tiny-loop-seed3` for a loop from a preset."""
    model = _slug(Path(os.fspath(source)).name or str(source))
    return f"{model}-{kind}-seed{seed}" if kind else f"{model}-seed{seed}"


def _stems(base: str, batch_size: int) -> list[str]:
    return [base] if batch_size == 1 else [f"{base}_{i + 1}" for i in range(batch_size)]


OUTPUT_SUFFIXES = (".json", ".wav", ".png")  # the JSON first: it is the reservation the others follow
MAX_NAME_BYTES = 200  # file names hold 255 bytes; room for "-N", "_B" and the suffix


def reserve_name(output_dir: Path, name: str, batch_size: int = 1,
                 suffixes: tuple[str, ...] = OUTPUT_SUFFIXES) -> tuple[str, list[Path]]:
    """Atomically take `name` (or the first free `name-N`) for a batch -> (name, reserved paths).

    Every file of every clip (NAME.json, NAME.wav, NAME.png per stem: `suffixes`) is created empty with an
    exclusive create (O_EXCL): when any of them exists, or another process takes one first, the
    ones made so far are removed and the next name is tried. So two processes asking for the same
    name at the same moment get different names, and the files written into the reserved paths
    never replace a file that was there before.
    """
    def empty_files(candidate: str):
        for stem in _stems(candidate, batch_size):
            for ext in suffixes:
                yield output_dir / f"{stem}{ext}", _create_empty

    return _claim_first_free(name, empty_files)


def _create_empty(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _claim_first_free(name: str, claims) -> tuple[str, list[Path]]:
    """NAME, NAME-1, NAME-2, ...: the first candidate all of whose paths can be made exclusively ->
    (candidate, the paths made). `claims(candidate)` yields (path, make), where make(path) raises
    FileExistsError when the path is taken: then the candidate's paths made so far are removed and
    the next one is tried. Any other error removes them too, and is raised."""
    candidate, n = name, 0
    while True:
        made: list[Path] = []
        try:
            for path, make in claims(candidate):
                make(path)
                made.append(path)
            return candidate, made
        except BaseException as exc:
            for path in made:
                path.unlink(missing_ok=True)
            if not isinstance(exc, FileExistsError):
                raise
        n += 1
        candidate = f"{name}-{n}"


# ---- the PNG -----------------------------------------------------------------------------------
def spectrogram_png(image: torch.Tensor, mel: MelConfig, samples: int, path: Path) -> Path:
    """Write one (1, H, W) or (H, W) image in [-1, 1] as a PNG with a time axis and metadata."""
    grey = ((image.detach().float().cpu().reshape(image.shape[-2], image.shape[-1]) + 1.0) * 127.5)
    grey = grey.round().clamp(0, 255).to(torch.uint8).numpy()  # (H, W), row 0 = lowest band
    height, width = grey.shape
    picture = Image.new("L", (width, height + AXIS_HEIGHT), color=255)
    picture.paste(Image.fromarray(np.ascontiguousarray(grey[::-1])), (0, 0))  # low frequencies at the bottom
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    seconds = samples / mel.sample_rate
    columns_per_second = mel.seconds_to_columns(1.0)
    for t in time_ticks(seconds, width / max(seconds, 1e-9), PNG_TICK_GAP_PIXELS):
        x = min(int(round(t * columns_per_second)), width - 1)
        draw.line([(x, height), (x, height + 4)], fill=0)
        label = f"{t:g}s"
        text_width = draw.textlength(label, font=font)
        draw.text((min(max(x - text_width / 2, 0), width - text_width), height + 4), label, fill=0, font=font)
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_KEY_MEL, json.dumps(mel.to_dict(), sort_keys=True))
    info.add_text(PNG_KEY_BOX, json.dumps([0, 0, width, height]))
    info.add_text(PNG_KEY_SAMPLES, str(samples))
    info.add_text(PNG_KEY_LAYOUT, PNG_LAYOUT)
    picture.save(path, pnginfo=info)
    return path


MAX_PNG_PIXELS = 32_000_000  # ~13 minutes of the public 256 model's spectrogram; decoding more is refused


def png_to_image(path: str | os.PathLike) -> tuple[torch.Tensor, MelConfig, int]:
    """Read a PNG written by `spectrogram_png` -> (image (1, 1, H, W) in [-1, 1], MelConfig, samples).

    Everything in it is checked before the pixels are decoded: its size, the Mel config, the crop
    box and the length (issue 25: a 12000x12000 PNG was decoded before its rows were checked; a
    truncated one was a traceback)."""
    path = Path(path)
    try:
        with Image.open(path) as picture:
            text = dict(getattr(picture, "text", {}) or {})
            if PNG_KEY_MEL not in text or PNG_KEY_BOX not in text:
                raise GenerationError(f"{path} carries no audiodiff spectrogram metadata (was it written by "
                                      f"scripts/generate.py?)")
            mel, box, samples = _png_metadata(path, text, picture.size)
            grey = np.asarray(picture.convert("L").crop(box), dtype=np.float32)[::-1]  # back to row 0 = lowest band
    except GenerationError:
        raise
    except (OSError, SyntaxError, ValueError, TypeError, RecursionError, Image.DecompressionBombError) as exc:
        raise GenerationError(f"{path} is not a readable spectrogram PNG ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'damaged'})") from None
    image = torch.from_numpy(grey.copy()).div(127.5).sub(1.0).reshape(1, 1, *grey.shape)
    return image, mel, samples


def _png_metadata(path: Path, text: dict, size: tuple[int, int]) -> tuple[MelConfig, tuple, int]:
    """The PNG's Mel config, crop box and length, each checked against the picture's size."""
    width, height = size
    if width * height > MAX_PNG_PIXELS:
        raise GenerationError(f"{path} is {width}x{height} pixels; a spectrogram PNG holds at most {MAX_PNG_PIXELS}")
    mel = MelConfig.from_dict(json.loads(text[PNG_KEY_MEL]))
    box = json.loads(text[PNG_KEY_BOX])
    valid = (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in box)
             and 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height and box[3] - box[1] == mel.y_res)
    if not valid:
        raise GenerationError(f"{path}: its spectrogram box {box!r} does not fit the picture ({width}x{height}) "
                              f"and its {mel.y_res} mel bands")
    columns = box[2] - box[0]
    most = mel.frames_to_samples(columns) + mel.hop_length
    samples = text.get(PNG_KEY_SAMPLES, str(mel.frames_to_samples(columns)))
    if not (isinstance(samples, str) and samples.isdigit() and 0 < int(samples) <= most):
        raise GenerationError(f"{path}: its length {samples!r} must be a whole number of samples from 1 to {most}")
    return mel, tuple(box), int(samples)


def png_to_audio(path: str | os.PathLike, *, target_lufs: float | None = DEFAULT_TARGET_LUFS) -> tuple[torch.Tensor, int]:
    """Turn a spectrogram PNG (with its metadata) back into audio -> ((T,), sample_rate)."""
    image, mel, samples = png_to_image(path)
    audio = images_to_audio(image, mel)[0, :samples]
    if target_lufs is not None:
        audio = normalize_loudness(audio, mel.sample_rate, target_lufs, DEFAULT_PEAK_CEILING)
    return audio, mel.sample_rate


# ---- the JSON and the writer ---------------------------------------------------------------------
def _versions() -> dict:
    import diffusers

    from . import __version__

    return {"audiodiff": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__}




# The keys of NAME.json in the order written; an edit's own fields (init_audio, strength, ...),
# which are not listed, come right after "edit".
RECORD_ORDER = ("model", "model_choice", "edit", "seed", "batch_size", "batch_index", "steps", "scheduler", "seconds",
                "samples", "sample_rate", "overlap_seconds", "repaint_jumps", "candidates", "draws", "level_hold",
                "tempo_hold", "bpm", "first_slice_redraws", "quantize", "beats_moved_seconds",
                "seam_seconds", "mel", "device",
                "torch_threads", "created", "files", "versions", "alpha", "target_lufs")


def _in_record_order(record: dict) -> dict:
    after_edit = RECORD_ORDER.index("edit") + 0.5
    rank = {key: RECORD_ORDER.index(key) if key in RECORD_ORDER else after_edit for key in record}
    return dict(sorted(record.items(), key=lambda item: rank[item[0]]))  # stable: unlisted keys keep their order


TEMP_PREFIX = ".tmp-clip-"  # .tmp-clip-<pid>-<index>.<ext>: a clip's files before they get their name


def write_clip_files(
    clip: LongClip,
    mel: MelConfig,
    output_dir: Path,
    name: str,
    made_with: dict,
    *,
    per_clip: Sequence[dict] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write each clip of a batch as NAME.wav, NAME.png and NAME.json -> the paths (wav, png, json per clip).

    clip: the generated batch (audio (B, T), image (B, 1, H, W)); mel: the model's Mel configuration,
        which the PNG and the JSON carry.
    name: the wanted name; a batch of B > 1 clips is NAME_1 ... NAME_B. When any of those files
        exists, NAME-1, NAME-2, ... is taken instead (atomically) and said through `log`.
    made_with: how the clips were made (model, seed, steps, scheduler, ...), written into every JSON
        with what the clip itself tells (batch index, seconds, samples, seams, Mel configuration,
        torch threads, time, file names, versions); per_clip: more fields for each clip (e.g. alpha).
    The files are written whole under temporary names first and then given their names (hard links
    that fail when the name exists: never an overwrite), so even a kill -9 leaves no empty or
    half-written NAME.*; temporary files of dead processes are removed by the next call (issue 25).
    """
    say = log or (lambda message: None)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # checked before the work, but the folder may have changed meanwhile
        raise GenerationError(f"can't create --output-dir {output_dir}: {exc.strerror or exc}") from exc
    _clean_stale_temporaries(output_dir)
    samples = clip.audio.shape[-1]
    temporaries: list[Path] = []
    try:
        for index in range(clip.audio.shape[0]):
            temporaries.append(write_wav(_temporary(output_dir, index, ".wav"), clip.audio[index], clip.sample_rate))
            temporaries.append(spectrogram_png(clip.image[index][..., : columns_for_samples(samples, mel)], mel,
                                               samples, _temporary(output_dir, index, ".png")))
        records = [{**made_with, **_clip_facts(clip, mel, index), **(per_clip[index] if per_clip else {})}
                   for index in range(clip.audio.shape[0])]
        base, written = _publish(output_dir, name, records)
    finally:
        for path in temporaries + [_temporary(output_dir, i, ".json") for i in range(clip.audio.shape[0])]:
            path.unlink(missing_ok=True)
    if base != name:
        say(f"{name} already exists in {output_dir}; writing {base} instead")
    return written


_CALL_TOKENS = threading.local()


def _temporary(output_dir: Path, index: int, suffix: str) -> Path:
    """This call's temporary file: the PID first (for the stale check), then a token per thread."""
    token = getattr(_CALL_TOKENS, "token", None)
    if token is None:
        token = _CALL_TOKENS.token = uuid.uuid4().hex[:8]
    return output_dir / f"{TEMP_PREFIX}{os.getpid()}-{token}-{index}{suffix}"


def _clean_stale_temporaries(output_dir: Path) -> None:
    from .staging import _process_alive

    for path in output_dir.glob(f"{TEMP_PREFIX}*"):
        pid = path.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            path.unlink(missing_ok=True)


def _clip_facts(clip: LongClip, mel: MelConfig, index: int) -> dict:
    samples = clip.audio.shape[-1]
    return {
        "batch_size": clip.audio.shape[0],
        "batch_index": index,
        "seconds": round(samples / clip.sample_rate, 6),
        "samples": samples,
        "sample_rate": clip.sample_rate,
        "seam_seconds": [round(s, 4) for s in (clip.seams_of(index) if hasattr(clip, "seams_of") else clip.seam_seconds)],
        "mel": mel.to_dict(),
        "torch_threads": torch.get_num_threads(),  # the same bytes for a seed need the same count (docs/generating.md)
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _publish(output_dir: Path, name: str, records: list[dict]) -> tuple[str, list[Path]]:
    """Give the written files (each clip's temporary wav and png) the first free NAME (or NAME-N)
    with their JSON: each by an exclusive hard link, undone when any name of the batch is taken.
    Where the file system has no hard links, the names are reserved (`reserve_name`) and replaced."""
    tried: list[str] = []

    def linked_files(candidate: str):
        tried.append(candidate)
        for index, (stem, record) in enumerate(zip(_stems(candidate, len(records)), records)):
            meta = _temporary(output_dir, index, ".json")
            full = {**record, "files": {"wav": f"{stem}.wav", "png": f"{stem}.png"}, "versions": _versions()}
            meta.write_text(json.dumps(_in_record_order(full), indent=2) + "\n")
        for source, target in _pairs(output_dir, candidate, len(records)):
            yield target, lambda target, source=source: os.link(source, target)

    try:
        return _claim_first_free(name, linked_files)
    except OSError:  # no hard links here (FAT, some network file systems): reserve, then replace
        return _publish_by_replacing(output_dir, tried[-1], _pairs(output_dir, tried[-1], len(records)))


def _pairs(output_dir: Path, candidate: str, count: int) -> list[tuple[Path, Path]]:
    """(temporary file, its name) for the wav, png and json of each of `count` clips named after `candidate`."""
    return [(_temporary(output_dir, i, ext), output_dir / f"{stem}{ext}")
            for i, stem in enumerate(_stems(candidate, count)) for ext in (".wav", ".png", ".json")]


def _publish_by_replacing(output_dir: Path, name: str, pairs: list[tuple[Path, Path]]) -> tuple[str, list[Path]]:
    base, reserved = reserve_name(output_dir, name, len(pairs) // 3)
    if base != name:  # the JSON names its files: rewrite them for the name reserved
        for source, _ in pairs[2::3]:
            record = json.loads(source.read_text())
            record["files"] = {k: v.replace(name, base, 1) for k, v in record["files"].items()}
            source.write_text(json.dumps(record, indent=2) + "\n")
    try:
        targets = [output_dir / f"{stem}{ext}" for stem in _stems(base, len(pairs) // 3) for ext in (".wav", ".png", ".json")]
        for (source, _), target in zip(pairs, targets):
            os.replace(source, target)
        return base, targets
    except BaseException:
        for path in reserved:
            path.unlink(missing_ok=True)
        raise
