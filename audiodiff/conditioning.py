"""Conditional pipelines: encodings from a file, and the conditioned UNet the sampler calls.

A conditional UNet (UNet2DConditionModel, e.g. teticio/conditional-latent-audio-diffusion-512)
reads an encoding of `cross_attention_dim` numbers per clip through cross-attention, as
`encoder_hidden_states` of shape (B, 1, D) (the reference's layout). Encodings come from a `.npy`
or `.safetensors` file, never a pickle: one vector per clip, or a single vector for all of them,
checked against the model before any sampling (`load_encoding`). Fine-tuning reads one per track
(`read_track_encodings`, `training_encodings`).

`ConditionedUNet` wraps the UNet so that it is called as every unconditional one is,
`unet(x, t).sample`: the loop, the holds, DDIM inversion (which diffusers' `encode` runs without
the encoding) and variations all see the encoding without knowing of it. With a guidance scale
other than 1 it applies classifier-free guidance, uncond + scale * (cond - uncond), the
unconditional prediction made with a null (all-zero) encoding: meaningful for models trained with
conditioning dropout to zeros, as the reference's conditional training does not do by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import torch

from .errors import GenerationError
from .latent import cross_attention_dim, is_conditional_unet

ENCODING_SUFFIXES = (".npy", ".safetensors")
MAX_GUIDANCE_SCALE = 50.0


def _read_encoding_file(path: Path) -> torch.Tensor:
    """The one array in a .npy or .safetensors file, as float32; no pickle is ever read."""
    if path.suffix not in ENCODING_SUFFIXES:
        raise GenerationError(f"--encoding takes a .npy or .safetensors file, got {path.name}")
    if not path.is_file():
        raise GenerationError(f"encoding file not found: {path}")
    try:
        if path.suffix == ".npy":
            import numpy as np

            return torch.from_numpy(np.asarray(np.load(path, allow_pickle=False), dtype=np.float32))
        import safetensors.torch

        tensors = safetensors.torch.load_file(path)
    except GenerationError:
        raise
    except Exception as exc:  # noqa: BLE001 - a pickled or corrupt file: one line, never run
        raise GenerationError(f"can't read the encoding {path.name} as a plain array "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if len(tensors) != 1:
        raise GenerationError(f"{path.name} holds {len(tensors)} tensors ({', '.join(sorted(tensors)[:4])}); "
                              "an encoding file holds one, (clips, size) or (size,)")
    return next(iter(tensors.values())).float()


def load_encoding(path: str | os.PathLike, dim: int, batch_size: int) -> torch.Tensor:
    """An encoding file -> (N, dim) float32, N = 1 (one for every clip) or `batch_size`.

    Shapes accepted: (dim,), (N, dim) and (N, 1, dim) (the reference's (B, 1, D)). Anything else,
    another size than the model's cross_attention_dim, or non-finite values: GenerationError."""
    path = Path(path)
    encoding = _read_encoding_file(path)
    if encoding.dim() == 3 and encoding.shape[1] == 1:
        encoding = encoding[:, 0]
    elif encoding.dim() == 1:
        encoding = encoding[None]
    if encoding.dim() != 2 or encoding.shape[-1] != dim:
        raise GenerationError(f"{path.name} holds an encoding of shape {tuple(encoding.shape)}, but this model reads "
                              f"encodings of {dim} numbers (cross_attention_dim): give ({dim},) or (clips, {dim})")
    if encoding.shape[0] not in (1, batch_size):
        raise GenerationError(f"{path.name} holds {encoding.shape[0]} encodings for {batch_size} clip(s); give one "
                              f"per clip or a single one for all")
    if not torch.isfinite(encoding).all():
        raise GenerationError(f"{path.name} holds NaN or infinite values")
    return encoding


def check_guidance_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= MAX_GUIDANCE_SCALE:
        raise GenerationError(f"--guidance-scale must be a number from 0 to {MAX_GUIDANCE_SCALE:g}, got {scale!r}")
    return float(scale)


class ConditionedUNet(torch.nn.Module):
    """A conditional UNet called as an unconditional one: `unet(x, t).sample`, the encoding (and
    classifier-free guidance) added inside. Batches of a multiple of the encodings' count (a
    slice's candidates) repeat each encoding over its item's rows; a batch of one (the inversion of
    given audio, shared by every clip) uses the first encoding."""

    def __init__(self, unet, encoding: torch.Tensor, guidance_scale: float = 1.0):
        super().__init__()
        self.unet = unet
        self.register_buffer("encoding", encoding.to(device=unet.device, dtype=unet.dtype), persistent=False)
        self.guidance_scale = float(guidance_scale)

    @property
    def config(self):
        return self.unet.config

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def _encoding_for(self, batch: int) -> torch.Tensor:
        """(batch, 1, D) encoder_hidden_states."""
        encoding = self.encoding
        n = encoding.shape[0]
        if n == 1 or batch == 1:
            encoding = encoding[:1].expand(batch, -1)
        elif batch % n == 0:
            encoding = encoding.repeat_interleave(batch // n, dim=0)
        else:
            raise ValueError(f"a batch of {batch} can't share {n} encodings")
        return encoding[:, None, :]

    def forward(self, sample: torch.Tensor, timestep, *args, **kwargs):
        encoding = self._encoding_for(sample.shape[0]).to(sample.dtype)
        if self.guidance_scale == 1.0:
            return SimpleNamespace(sample=self.unet(sample, timestep, encoder_hidden_states=encoding).sample)
        both = self.unet(torch.cat([sample, sample]), timestep,
                         encoder_hidden_states=torch.cat([torch.zeros_like(encoding), encoding])).sample
        unconditional, conditional = both.chunk(2)
        return SimpleNamespace(sample=unconditional + self.guidance_scale * (conditional - unconditional))


def condition(pipe, encoding_path: str | os.PathLike | None, guidance_scale: float, batch_size: int):
    """`pipe` ready to sample: a conditional one with its UNet conditioned on the encoding file
    (refused in one line without one, or with one that doesn't fit); an unconditional one as it is
    (refused with an encoding or a guidance scale, which it would ignore)."""
    check_guidance_scale(guidance_scale)
    if not is_conditional_unet(pipe.unet):
        if encoding_path is not None or guidance_scale != 1.0:
            raise GenerationError(f"{pipe.source} is not a conditional model: --encoding and --guidance-scale are for "
                                  "models with a UNet2DConditionModel")
        return pipe
    dim = cross_attention_dim(pipe.unet)
    if encoding_path is None:
        raise GenerationError(f"{pipe.source} is a conditional model: give it an encoding of {dim} numbers per clip "
                              "with --encoding FILE (.npy or .safetensors)")
    encoding = load_encoding(encoding_path, dim, batch_size)
    return replace(pipe, unet=ConditionedUNet(pipe.unet, encoding, guidance_scale))


# ---- fine-tuning: one encoding per track ------------------------------------------------------------
@dataclass(frozen=True)
class TrackEncodings:
    """The encodings a conditional fine-tune reads (`--encoding FILE`), before they are matched to
    the genre's tracks: by name (a .safetensors file whose keys are track names), in the order of
    the tracks' sorted names (a (tracks, D) array), or one for every track (a (D,) array)."""

    path: Path
    by_name: dict | None = None  # track name -> (D,)
    rows: torch.Tensor | None = None  # (N, D)

    def for_tracks(self, names) -> dict:
        """track name -> (D,) for every one of `names` (a track may appear twice: a split by time);
        a missing track or a count that doesn't match is refused in one line."""
        names = sorted(set(names))
        if self.by_name is not None:
            missing = [name for name in names if name not in self.by_name]
            if missing:
                raise GenerationError(f"{self.path.name} has no encoding for {len(missing)} of the {len(names)} tracks "
                                      f"(e.g. {', '.join(missing[:3])}); its keys must be the tracks' names")
            return {name: self.by_name[name] for name in names}
        if self.rows.shape[0] == 1:
            return {name: self.rows[0] for name in names}
        if self.rows.shape[0] != len(names):
            raise GenerationError(f"{self.path.name} holds {self.rows.shape[0]} encodings for {len(names)} tracks; give "
                                  "one per track (in the order of their sorted names), a single one for all, or a "
                                  ".safetensors file keyed by track name")
        return dict(zip(names, self.rows))


def _vector(value: torch.Tensor, dim: int, where: str) -> torch.Tensor:
    value = value.float().reshape(-1) if value.numel() == dim else value
    if value.dim() != 1 or value.shape[0] != dim or not torch.isfinite(value).all():
        raise GenerationError(f"{where} is not {dim} finite numbers (cross_attention_dim); got shape {tuple(value.shape)}")
    return value


def read_track_encodings(path: str | os.PathLike, dim: int) -> TrackEncodings:
    """`--encoding FILE` for fine-tuning, read (never unpickled) and checked against the model's
    encoding size; a .safetensors file with more than one tensor is keyed by track name."""
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        import safetensors.torch

        try:
            tensors = safetensors.torch.load_file(path)
        except Exception as exc:  # noqa: BLE001 - corrupt: one line
            raise GenerationError(f"can't read the encoding {path.name} ({type(exc).__name__})") from None
        if len(tensors) > 1 or (tensors and next(iter(tensors.values())).numel() == dim):
            return TrackEncodings(path, by_name={name: _vector(v, dim, f"{path.name}: {name}") for name, v in tensors.items()})
    rows = _read_rows(path, dim)
    return TrackEncodings(path, rows=rows)


def _read_rows(path: Path, dim: int) -> torch.Tensor:
    encoding = _read_encoding_file(path)
    if encoding.dim() == 3 and encoding.shape[1] == 1:
        encoding = encoding[:, 0]
    encoding = encoding[None] if encoding.dim() == 1 else encoding
    if encoding.dim() != 2 or encoding.shape[-1] != dim or not torch.isfinite(encoding).all():
        raise GenerationError(f"{path.name} holds encodings of shape {tuple(encoding.shape)}, but this model reads "
                              f"{dim} finite numbers per track (cross_attention_dim): give ({dim},) or (tracks, {dim})")
    return encoding


def training_encodings(pipe, encoding_path, cond_dropout, streaming: bool) -> TrackEncodings | None:
    """What a fine-tune of `pipe` conditions on, checked before any data is read: a conditional
    pipeline needs `--encoding`, an unconditional one takes neither it nor `--cond-dropout`."""
    if not is_conditional_unet(pipe.unet):
        if encoding_path is not None or cond_dropout is not None:
            raise GenerationError(f"{pipe.source} is not a conditional model: --encoding and --cond-dropout are for "
                                  "models with a UNet2DConditionModel")
        return None
    dim = cross_attention_dim(pipe.unet)
    if encoding_path is None:
        raise GenerationError(f"{pipe.source} is a conditional pipeline: fine-tuning it needs an encoding of {dim} "
                              "numbers per track, --encoding FILE (.npy or .safetensors, see docs/latent-models.md)")
    if streaming:
        raise GenerationError("--streaming can't fine-tune a conditional pipeline: its encodings are matched to "
                              "tracks by name before training; drop --streaming")
    return read_track_encodings(encoding_path, dim)
