"""Encodings for a folder of audio (`scripts/encode.py`): one vector per track, written as a
`.safetensors` file keyed by track name, the file `finetune.py --encoding` reads.

For each audio file: decode it (soundfile, `audio.load_audio`) at the Mel config's sample rate,
cut it into slices of one Mel image each (a last piece shorter than half a slice is left out
unless it is the whole track; a shorter one is zero-padded), turn each into a Mel image exactly as
training does (`mel.audio_to_images`), encode the slices with the encoder and average them.

Track names are the ones `finetune.py --data-dir` gives (`data/sources._load_folder`): with genre
sub-folders, the path under the folder (`jazz/a.wav`, sub-folders walked as it walks them) plus
the audio files at the top by name; in a flat folder, the file names. So the file plugs into a
fine-tune on the same folder, with or without `--genre`. A single file is keyed by its name.
(Hub datasets name tracks by name and hash of their bytes: not covered here.)

Everything a user can get wrong is checked before the first file is encoded; files that can't be
decoded are skipped and counted. The output is never overwritten: an existing file is refused,
and the file is written whole under a temporary name, then linked to its name (which fails if
another process took it meanwhile).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .audio import AUDIO_EXTENSIONS, AudioError, load_audio
from .encoder import AudioEncoder, load_encoder
from .errors import GenerationError
from .mel import MEL_RANGES, MelConfig, audio_to_images

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16  # slices per encoder call: 16 x 256^2 images is ~4 MB of input
OUTPUT_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class EncodeResult:
    output: Path
    tracks: int
    slices: int
    encoding_size: int
    skipped: tuple  # ((track name, reason), ...)


# ---- what to encode ---------------------------------------------------------------------------
def track_files(source: str | os.PathLike) -> list[tuple[str, Path]]:
    """(track name, path) for every audio file of `source`, named as `finetune.py --data-dir` names
    them (see the module's docstring); a single file gives one, keyed by its name."""
    from .data.sources import _audio_files  # the walk finetune uses, links and hidden files alike

    root = Path(source).expanduser()
    if root.is_file():
        return [(root.name, root)]
    if not root.is_dir():
        raise GenerationError(f"input {root} does not exist: give a folder of audio or one audio file")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    nested = [path for folder in subfolders for path in _audio_files(folder)[0]]
    top = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
                 and p.suffix.lower() in AUDIO_EXTENSIONS)
    if nested:  # DIR/<genre>/**/*.wav, and the top level's files by name
        files = [(p.relative_to(root).as_posix(), p) for p in nested] + [(p.name, p) for p in top]
    else:
        files = [(p.name, p) for p in top]
    if not files:
        raise GenerationError(f"no audio files in {root} (looked for {', '.join(sorted(AUDIO_EXTENSIONS))}, "
                              "at the top and in sub-folders)")
    return files


def resolve_mel(encoder: AudioEncoder, mel_source: str | os.PathLike | None,
                seconds_per_slice: float | None) -> MelConfig:
    """The Mel config to make the encoder's images with: `mel_source` (a mel_config.json, a folder
    holding one or a pipeline folder) or the one in the encoder's config, the slice length changed
    to `seconds_per_slice` when given. A pipeline whose conditional UNet reads encodings of another
    size than the encoder's, or images of another height than the encoder's, is refused."""
    mel = encoder.mel
    if mel_source is not None:
        path = Path(mel_source).expanduser()
        try:
            given = MelConfig.from_pretrained(path)
        except (FileNotFoundError, ValueError) as exc:
            raise GenerationError(f"--mel: {exc}") from None
        if mel is not None and given.y_res != mel.y_res:
            raise GenerationError(f"--mel {path} makes images {given.y_res} high, but the encoder was made for "
                                  f"{mel.y_res}: give the Mel config the encoder was trained with")
        _check_pipeline_size(path, encoder.encoding_size)
        mel = given
    if mel is None:
        raise GenerationError("the encoder's config.json has no mel_config: give --mel (a pipeline or mel folder)")
    if seconds_per_slice is not None:
        columns = round(seconds_per_slice * mel.sample_rate / mel.hop_length)
        low, high = MEL_RANGES["x_res"]
        if not low + 7 <= columns <= high:
            raise GenerationError(f"--seconds-per-slice {seconds_per_slice:g} gives {columns} Mel columns; "
                                  f"give between {(low + 7) * mel.hop_length / mel.sample_rate:.2f} and "
                                  f"{high * mel.hop_length / mel.sample_rate:.1f} s")
        mel = replace(mel, x_res=columns)
    return mel


def _check_pipeline_size(path: Path, size: int) -> None:
    """When `path` is a pipeline folder with a conditional UNet, its cross_attention_dim must be `size`."""
    unet_config = path / "unet" / "config.json"
    if not unet_config.is_file():
        return
    try:
        dim = json.loads(unet_config.read_text()).get("cross_attention_dim")
    except (json.JSONDecodeError, OSError, AttributeError):
        return  # the pipeline's own loader reports a broken UNet; here it only lends its Mel
    if isinstance(dim, int) and dim != size:
        raise GenerationError(f"the encoder makes encodings of {size} numbers, but the pipeline {path} reads "
                              f"{dim} (cross_attention_dim): use an encoder of size {dim}")


def check_output(output: str | os.PathLike) -> Path:
    output = Path(output).expanduser()
    if output.suffix != OUTPUT_SUFFIX:
        raise GenerationError(f"--output must be a {OUTPUT_SUFFIX} file (keys: track names), got {output.name}")
    if output.exists() or output.is_symlink():
        raise GenerationError(f"{output} exists; it is never overwritten: give another --output")
    return output


# ---- encoding ---------------------------------------------------------------------------------
def slice_images(audio: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """(T,) audio at mel.sample_rate -> (S, 1, y_res, x_res) Mel images, one per slice."""
    n = mel.slice_samples
    pieces = list(audio.split(n))
    if len(pieces) > 1 and pieces[-1].shape[0] < n // 2:
        pieces = pieces[:-1]  # a short tail would weigh as much as a whole slice in the mean
    padded = torch.stack([torch.nn.functional.pad(p, (0, n - p.shape[0])) for p in pieces])  # (S, n)
    return audio_to_images(padded, mel)


@torch.no_grad()
def encode_track(encoder: AudioEncoder, audio: torch.Tensor, mel: MelConfig,
                 batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[torch.Tensor, int]:
    """(T,) audio -> ((D,) mean of its slices' encodings, number of slices)."""
    images = slice_images(audio, mel)
    parameter = next(encoder.parameters())
    total = torch.zeros(encoder.encoding_size, dtype=torch.float64)
    for batch in images.split(batch_size):
        total += encoder(batch.to(parameter.device, parameter.dtype)).double().sum(dim=0).cpu()
    return (total / images.shape[0]).float(), images.shape[0]


def _read(path: Path, mel: MelConfig) -> torch.Tensor:
    audio = load_audio(path, mel.sample_rate)
    if audio.numel() == 0:
        raise AudioError(f"{path} holds no samples")
    if not torch.isfinite(audio).all():
        raise AudioError(f"{path} holds NaN or infinite samples")
    return audio


def write_encodings(output: Path, encodings: dict) -> Path:
    """Write {track name: (D,)} to `output`, whole, under a name never taken (FileExistsError)."""
    import safetensors.torch

    output.parent.mkdir(parents=True, exist_ok=True)
    payload = safetensors.torch.save({name: value.contiguous() for name, value in encodings.items()},
                                     metadata={"format": "pt", "audiodiff": "track encodings (encode.py)"})
    temporary = output.with_name(f".{output.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(payload)
    try:
        os.link(temporary, output)  # fails when the name exists: nothing is replaced
    except FileExistsError:
        raise FileExistsError(f"{output} exists; it is never overwritten: give another --output") from None
    except OSError:  # no hard links here: an exclusive create instead
        with open(output, "xb") as handle:
            handle.write(payload)
    finally:
        temporary.unlink(missing_ok=True)
    return output


def encode_folder(encoder_dir, source, output, mel_source=None, seconds_per_slice: float | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True) -> EncodeResult:
    """Encode every track of `source` with the encoder in `encoder_dir` and write the encodings to
    `output` (see the module's docstring). Bad input is refused before the first file is encoded;
    unreadable files are skipped and listed in the result; none readable: GenerationError."""
    from tqdm.auto import tqdm

    output = check_output(output)
    encoder = load_encoder(encoder_dir)
    mel = resolve_mel(encoder, mel_source, seconds_per_slice)
    files = track_files(source)
    encodings, skipped, slices = {}, [], 0
    for name, path in tqdm(files, desc="encoding", unit="track", disable=not progress):
        try:
            audio = _read(path, mel)
        except AudioError as exc:
            skipped.append((name, str(exc).splitlines()[0] if str(exc) else "unreadable"))
            continue
        encodings[name], count = encode_track(encoder, audio, mel, batch_size)
        slices += count
    if not encodings:
        raise GenerationError(f"none of the {len(files)} audio files in {source} could be decoded "
                              f"(e.g. {skipped[0][1]})")
    write_encodings(output, encodings)
    return EncodeResult(output, len(encodings), slices, encoder.encoding_size, tuple(skipped))
