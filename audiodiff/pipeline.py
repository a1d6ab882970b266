"""Loading and saving audio-diffusion pipelines: the one place models enter and leave the program.

A pipeline is a UNet that denoises Mel images, the scheduler it was trained with, and the Mel
configuration that turns audio into those images (DESIGN section 1). Training and generation
both get theirs from `load_pipeline`, so a model is always used with its own Mel parameters.

Why the components are read here instead of through `DiffusionPipeline.from_pretrained`:
- the public checkpoints were saved by several diffusers versions: older ones name the Mel
  component `["audio_diffusion", "Mel"]`, which current diffusers refuses, and older UNets use
  the pre-0.14 attention key names (`query`, `key`, `value`, `proj_attn`);
- the course's default model ships its UNet only as a pickled `.bin`. Unpickling runs code, so
  a `.bin` goes through torch's weights-only unpickler and nothing else; we always save
  safetensors;
- only unconditional Mel-image pipelines fit this project's training and sampling, so latent
  (`vqvae/`) and conditional UNets are refused up front with a message, not half loaded;
- a hub download fetches only the files a pipeline needs (the default model's repository also
  holds TensorBoard logs), and an unreachable hub fails within seconds instead of retrying.

Architecture presets (`tiny`, `small`, `audio-diffusion-256`) build seeded random weights with a
DDPM scheduler, so everything downstream works without the network.

Saving is atomic: the components are written into a hidden sibling folder, moved into place,
and `model_index.json` is written last, so its presence means "complete" (what `latest_run`
relies on) and a killed save never leaves a folder that looks loadable. The hidden folder's name
carries the saving process's host and id, so the next save into that folder (or the next
fine-tuning start) removes one whose process is gone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import diffusers
import huggingface_hub
import safetensors.torch
import torch
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

# HubUnreachableError and hub_is_reachable are also imported from here by callers (and tests patch
# pipeline.hub_is_reachable): the hub module owns them, model loading uses them.
from .hub import HubUnreachableError, hub_is_reachable, hub_offline  # noqa: F401
from .mel import MelConfig


def _import_without_package_inits(module: str, packages: tuple[str, ...]):
    """Import `module` without running the `__init__.py` of `packages` (its parents).

    Why: `from diffusers import UNet2DModel` runs `diffusers/models/unets/__init__.py` and
    `diffusers/models/transformers/__init__.py`, which import every UNet and transformer diffusers
    has (and, through them, peft and transformers): ~2 s of a ~4 s start on a small CPU, for one
    class that needs two of those files. Each package not yet imported is stood in for, during
    this import only, by an empty module with the package's search path, so its submodules load
    and its `__init__` does not; afterwards the stand-ins are dropped, so a later import of the
    package (diffusers' own pipelines, the tests) runs its real `__init__`, which reuses the
    submodules already loaded (the same classes)."""
    import importlib
    import importlib.util
    import sys

    stand_ins = []
    for name in packages:
        if name not in sys.modules:
            spec = importlib.util.find_spec(name)
            sys.modules[name] = importlib.util.module_from_spec(spec)  # search path set, __init__ not run
            stand_ins.append(name)
    try:
        return importlib.import_module(module)
    finally:
        for name in stand_ins:
            del sys.modules[name]


UNet2DModel = _import_without_package_inits(
    "diffusers.models.unets.unet_2d", ("diffusers.models.unets", "diffusers.models.transformers")
).UNet2DModel
# ModelMixin.to() and .device import diffusers.hooks.group_offloading, and diffusers/hooks/__init__.py
# imports peft (~1 s); loaded here the same way, the package init never runs on the way to sampling.
_import_without_package_inits("diffusers.hooks.group_offloading", ("diffusers.hooks",))

logger = logging.getLogger(__name__)

DEFAULT_PRETRAINED = "teticio/audio-diffusion-instrumental-hiphop-256"
DEFAULT_RUNS_DIR = Path("runs")  # where finetune writes runs (relative to the current directory)

MODEL_INDEX = "model_index.json"
PIPELINE_CLASS = "AudioDiffusionPipeline"
WEIGHTS_NAME = "diffusion_pytorch_model"
COMPONENTS = ("mel", "scheduler", "unet")  # the folders a saved pipeline consists of
# Entries of a folder that belong to a saved pipeline (anything else, e.g. a run's checkpoints/
# and logs/, is left alone by save_pipeline).
PIPELINE_ENTRIES = (MODEL_INDEX, *COMPONENTS, "vqvae")
MEL_ENTRIES = (("diffusers", "Mel"), ("audio_diffusion", "Mel"))  # current and legacy
# UNet weight files in order of preference: safetensors (plain, sharded, fp16), a pickled .bin last
WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".fp16.safetensors", ".fp16.safetensors.index.json",
                   ".bin", ".bin.index.json", ".fp16.bin")
HUB_METADATA_PATTERNS = ["model_index.json", "mel/*", "scheduler/*", "unet/config.json"]
HUB_WEIGHT_PATTERNS = ["unet/*.safetensors", "unet/*.safetensors.index.json", "unet/*.bin", "unet/*.bin.index.json"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_UNSUPPORTED = (
    "audiodiff supports only unconditional Mel-image pipelines (a UNet2DModel on the Mel image, "
    "no vqvae/, no conditioning); use a folder or hub id of that kind, or a preset "
    "(--pretrained tiny|small|audio-diffusion-256)"
)


class PipelineError(ValueError):
    """A pipeline folder or name that can't be used; the message says what to do instead."""


class GenerationError(ValueError):
    """A generation request that can't be carried out; the message says what to do. Defined here
    because choosing the model and the device to generate with (below) raises it; generate.py and
    the edits raise it for the rest of a request."""


# ---- the pipeline object -------------------------------------------------------------------------
@dataclass
class AudioDiffusion:
    """An unconditional Mel-image diffusion pipeline: what training and sampling work on."""

    unet: UNet2DModel
    scheduler: SchedulerMixin  # the class named in scheduler_config.json (DDPM, DDIM, DPMSolverMultistep, ...)
    mel: MelConfig
    source: str  # what it was loaded from: preset name, folder, or hub id (for model cards / JSON sidecars)

    def to(self, device=None, dtype=None) -> "AudioDiffusion":
        """Move the UNet (the only component with tensors) in place; returns self."""
        self.unet.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    def describe(self) -> str:
        """One line for logs and model cards: size, image, sample rate, slice length, scheduler."""
        millions = self.num_parameters / 1e6
        return (
            f"{self.source}: UNet2DModel {millions:.{2 if millions < 10 else 1}f} M parameters, "
            f"{self.mel.x_res}x{self.mel.y_res} Mel images at {self.mel.sample_rate} Hz "
            f"(hop {self.mel.hop_length}, {self.mel.slice_seconds:.2f} s per image), "
            f"{type(self.scheduler).__name__}"
        )


# ---- presets: random weights, offline ------------------------------------------------------------
def unet_sample_size(mel: MelConfig) -> int | tuple[int, int]:
    """UNet2DModel's sample_size for a Mel image: (height, width) = (y_res, x_res); an int when
    square, as in the public checkpoints."""
    return mel.x_res if mel.x_res == mel.y_res else (mel.y_res, mel.x_res)


@dataclass(frozen=True)
class Preset:
    """An architecture to start from random weights: the Mel image and the UNet's layout."""

    mel: MelConfig
    block_out_channels: tuple[int, ...]
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    layers_per_block: int
    norm_num_groups: int
    description: str

    def unet_kwargs(self, mel: MelConfig) -> dict:
        return dict(
            sample_size=unet_sample_size(mel), in_channels=1, out_channels=1,
            layers_per_block=self.layers_per_block, block_out_channels=self.block_out_channels,
            down_block_types=self.down_block_types, up_block_types=self.up_block_types,
            norm_num_groups=self.norm_num_groups,
        )


# 1.99 M parameters: the architecture of the first bundled base model (session 1). 64x64
# images of 1.02 s at 16 kHz (64 mel bands up to 8 kHz, n_fft 1024, the public 4x overlap):
# what a 2-core CPU can pre-train in under an hour (batch 16 in ~1-2 s) and generate from in
# real time (one forward ~60 ms), and 8 MB of weights, small enough to ship in the package.
_COMPACT = Preset(
    mel=MelConfig(x_res=64, y_res=64, sample_rate=16000, n_fft=1024, hop_length=256),
    block_out_channels=(32, 48, 64, 96),
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    layers_per_block=1, norm_num_groups=8,
    description="the first bundled model's layout: 64x64 Mel, 16 kHz, 1.02 s per image, 1.99 M parameters",
)


PRESETS: dict[str, Preset] = {
    # 0.28 M parameters, 0.13 GFLOP per image. 32x32 images of ~1 s of 16 kHz audio (n_fft
    # 2048 and 4x overlap, as in the public models): the real code paths at test speed; a
    # forward of 4 images takes ~30 ms on a 2-core CPU, mostly per-layer overhead.
    "tiny": Preset(
        mel=MelConfig(x_res=32, y_res=32, sample_rate=16000, n_fft=2048, hop_length=512),
        block_out_channels=(16, 32, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1, norm_num_groups=8,
        description="tests and CPU demos: 32x32 Mel, 16 kHz, 1.02 s per image, 0.28 M parameters",
    ),
    # 4.48 M parameters, 7.8 GFLOP per image. The public layout scaled down: 128x128 images
    # of 2.97 s at 22050 Hz (the public n_fft and hop, half the mel bands, half the width);
    # channels in the public ratios 1:1:2:2:4 at a quarter of the width, 4 channels per norm
    # group at the top as there, attention at 16x16 and the mid block at 8x8 as there. 25x
    # fewer parameters and 63x less compute than the 256 model: fine-tunes on a small GPU, or
    # slowly on a CPU.
    "small": Preset(
        mel=MelConfig(x_res=128, y_res=128, sample_rate=22050, n_fft=2048, hop_length=512),
        block_out_channels=(32, 32, 64, 64, 128),
        down_block_types=("DownBlock2D",) * 3 + ("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 3,
        layers_per_block=2, norm_num_groups=8,
        description="in between: 128x128 Mel, 22050 Hz, 2.97 s per image, 4.48 M parameters",
    ),
    "compact": _COMPACT,
    # 1.99 M parameters: the architecture of the bundled base model (BUNDLED below). The compact
    # UNet on 64x168 images of 4.03 s at 16 kHz (n_fft 1024, hop 384: 24 ms frames, 2.67x
    # overlap), so one image holds two bars at 120 bpm and a continued slice can see whole beats
    # of the past. Chosen by measurement (OMP_NUM_THREADS=1, one run each; codec = spectral
    # convergence of a Griffin-Lim round trip on 6 slices of real jazz; codec realism = the
    # held-out built-in jazz sent through the codec, its FD to the originals over the FD
    # between two halves of the genre: the floor of the realism a model of that image can reach):
    #   image   rate    hop  n_fft (seconds)     fwd     train step  codec  codec realism
    #   64x64   16 kHz  256  1024 (1.02 s)       29 ms   1.0 s       0.032  0.47
    #   64x256  16 kHz  256  1024 (4.10 s)       94 ms   7.7 s       0.026  0.42 (64x192)
    #   64x176  11 kHz  256  1024 (4.10 s)       60 ms   3.1 s       0.038  0.28 (12 kHz)
    #   64x128  16 kHz  512  2048 (4.10 s)       41 ms   1.9 s       0.016  2.41
    #   64x128  16 kHz  512  1024 (4.10 s)       41 ms   2.0 s       0.013  1.63   <- stage 1
    #   64x168  16 kHz  384  1024 (4.03 s)       ~55 ms  ~2.8 s      -      0.29   <- this
    # Session 3 chose hop 512 by the spectral convergence column; its clips then measured 5.6
    # on the realism scale, and the last column shows why: with 64 bands and 2x overlap the
    # codec alone costs 1.63. Hop 384 keeps 4 s per image for 1.3x the columns, and its codec
    # is as good as any. The recipe (bundle.py) trains 64x128 first and moves the weights to
    # this image (`with_mel`): cheaper steps for most of the way.
    "compact-4s": dataclasses.replace(
        _COMPACT, mel=MelConfig(x_res=168, y_res=64, sample_rate=16000, n_fft=1024, hop_length=384),
        description="the bundled model's layout: 64x168 Mel, 16 kHz, 4.03 s per image, 1.99 M parameters",
    ),
    # The bundled recipe's first stage (and session 3's bundled model): 64x128 Mel, hop 512.
    "compact-4s-hop512": dataclasses.replace(
        _COMPACT, mel=MelConfig(x_res=128, y_res=64, sample_rate=16000, n_fft=1024, hop_length=512),
        description="the bundled recipe's first stage: 64x128 Mel, 16 kHz, hop 512, 4.10 s per image, 1.99 M parameters",
    ),
    # 113.7 M parameters, 496 GFLOP per image: the layout of teticio/audio-diffusion-*-256
    # (DESIGN section 1).
    "audio-diffusion-256": Preset(
        mel=MelConfig(),
        block_out_channels=(128, 128, 256, 256, 512, 512),
        down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
        layers_per_block=2, norm_num_groups=32,
        description="the public 256 layout: 256x256 Mel, 22050 Hz, 5.94 s per image, 113.7 M parameters",
    ),
}


# The bundled base model: the "compact-4s" preset pre-trained on every genre of the built-in set
# (scripts/make_bundled.py, two stages: bundle.py), shipped inside the package so that everything runs offline.
BUNDLED = "bundled"
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled" / "base"


def bundled_path() -> Path:
    """The folder of the bundled base model; a clear error when the package was built without it."""
    if not (BUNDLED_DIR / MODEL_INDEX).is_file():
        raise PipelineError(
            f"the bundled base model is missing from {BUNDLED_DIR}; rebuild it with python scripts/make_bundled.py"
        )
    return BUNDLED_DIR


def default_scheduler() -> DDPMScheduler:
    """The scheduler the public models were trained with: DDPM, 1000 steps, linear betas 1e-4..0.02."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)


def build_preset(name: str, seed: int = 0, mel: MelConfig | None = None) -> AudioDiffusion:
    """A preset architecture with random weights drawn from `seed` and a DDPM scheduler.

    `mel` replaces the preset's Mel configuration (the UNet's sample size follows it). The
    global torch RNG is left as it was. Works under `with torch.device("meta")` (to count
    parameters without allocating them).
    """
    if name not in PRESETS:
        raise PipelineError(f"unknown preset {name!r}; the presets are: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    mel = mel or preset.mel
    factor = 2 ** (len(preset.block_out_channels) - 1)  # each down block but the last halves H and W
    if mel.x_res % factor or mel.y_res % factor:
        raise PipelineError(
            f"preset {name!r} downsamples {len(preset.block_out_channels) - 1} times, so the Mel image's "
            f"x_res and y_res must be multiples of {factor}; got {mel.x_res}x{mel.y_res}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DModel(**preset.unet_kwargs(mel))
    return AudioDiffusion(unet=unet.eval(), scheduler=default_scheduler(), mel=mel, source=name)


def weights_sha256(unet) -> str:
    """A fingerprint of a UNet's weights (every tensor's name, dtype, shape and bytes, by name): a
    run records its base's, so that a later comparison can tell when "bundled" or a folder has
    changed since the run started from it."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(unet.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def with_mel(pipe: AudioDiffusion, mel: MelConfig) -> AudioDiffusion:
    """The same UNet weights and scheduler on another Mel image: a warm start for training.

    Convolutions and attention don't depend on the image's size, so the weights load into a UNet
    whose sample size is the new image's; what they have learnt transfers as far as the new
    image resembles the old (same bands and rate, another hop: the same sounds, played at
    another speed along the time axis). The UNet must still be able to halve the new size at
    every down block (`check_unet_config`, as for any pipeline loaded)."""
    config = {**pipe.unet.config, "sample_size": unet_sample_size(mel)}
    check_unet_config(config, mel, f"{pipe.source} on a {mel.y_res}x{mel.x_res} image")
    unet = UNet2DModel.from_config(config)
    unet.load_state_dict(pipe.unet.state_dict())
    return AudioDiffusion(unet=unet.to(pipe.device, pipe.dtype).eval(), scheduler=pipe.scheduler, mel=mel,
                          source=pipe.source)


# ---- the hub ---------------------------------------------------------------------------------------
def _unreachable_message(repo_id: str, detail: str) -> str:
    return (
        f"can't load {repo_id!r} (no such local folder, so it was taken for a hub id): {detail}, and it is "
        f"not in the local Hugging Face cache. "
        f"To work offline, pass --pretrained <folder|preset> (a saved pipeline folder, or one of the presets "
        f"{', '.join(PRESETS)}) and --dataset synthetic or --data-dir <folder of audio files>."
    )


def _weight_patterns(files: list[str], repo_id: str) -> list[str]:
    """The one set of UNet weight files to fetch: the first of WEIGHT_SUFFIXES the repository has."""
    for suffix in WEIGHT_SUFFIXES:
        name = f"unet/{WEIGHTS_NAME}{suffix}"
        if name in files:
            if suffix.endswith(".index.json"):  # a sharded checkpoint: the index and its shards
                return [name, f"unet/{WEIGHTS_NAME}*-of-*.{suffix.removesuffix('.index.json').rsplit('.', 1)[-1]}"]
            return [name]
    raise PipelineError(f"{repo_id!r} on the hub has no UNet weights (unet/{WEIGHTS_NAME}.safetensors or .bin)")


def _download(repo_id: str) -> Path:
    """The local folder of hub pipeline `repo_id` holding only the files a pipeline needs.

    Online: the metadata first (so a latent or conditional model is refused before its weights
    are fetched), then safetensors weights, or the `.bin` only when the repository has no
    safetensors. Offline or unreachable: the local cache, else HubUnreachableError at once.
    """
    all_patterns = HUB_METADATA_PATTERNS + HUB_WEIGHT_PATTERNS
    if hub_is_reachable():
        try:
            files = huggingface_hub.HfApi().list_repo_files(repo_id)
            folder = Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=HUB_METADATA_PATTERNS))
            _check_supported(folder, _read_model_index(folder, repo_id), repo_id)
            weights = _weight_patterns(files, repo_id)
            return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=HUB_METADATA_PATTERNS + weights))
        except (huggingface_hub.errors.RepositoryNotFoundError, huggingface_hub.errors.GatedRepoError) as exc:
            raise PipelineError(
                f"{repo_id!r} is not a model on the Hugging Face hub that this account can read "
                f"(check the name; for a private or gated model log in with `hf auth login`): {exc}"
            ) from exc
        except PipelineError:
            raise
        except Exception as exc:  # noqa: BLE001 - the connection dropped mid-way: try the cache
            detail = f"the Hugging Face hub failed ({type(exc).__name__}: {exc})"
    else:
        detail = "the Hugging Face hub can't be reached" + (" (HF_HUB_OFFLINE is set)" if hub_offline() else "")
    try:
        folder = Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=all_patterns, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - LocalEntryNotFoundError and friends: not cached
        raise HubUnreachableError(_unreachable_message(repo_id, detail)) from exc
    if not (folder / MODEL_INDEX).is_file() or _find_weights(folder / "unet") is None:
        raise HubUnreachableError(_unreachable_message(repo_id, detail + " (the cached copy is incomplete)"))
    logger.info("loading %s from the local Hugging Face cache (%s)", repo_id, detail)
    return folder


# ---- loading ---------------------------------------------------------------------------------------
def load_pipeline(name_or_path: str | os.PathLike, *, device=None) -> AudioDiffusion:
    """A pipeline from a local folder, a preset name, or a hub id (owner/name), in that order.

    Raises PipelineError for anything that is not a usable unconditional Mel-image pipeline,
    HubUnreachableError for a hub id that can't be fetched (never after long retries).
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        pipe = _load_folder(path, source=text)
    elif path.exists():
        raise PipelineError(f"{text} is a file; --pretrained takes a pipeline folder, a preset or a hub id")
    elif isinstance(name_or_path, str) and text == BUNDLED:
        pipe = _load_folder(bundled_path(), source=BUNDLED)
    elif isinstance(name_or_path, str) and text in PRESETS:
        pipe = build_preset(text)
    elif isinstance(name_or_path, str) and _HUB_ID.match(text):
        pipe = _load_folder(_download(text), source=text)
    else:
        raise PipelineError(
            f"{text!r} is not a pipeline folder, a preset ({', '.join([BUNDLED, *PRESETS])}) or a hub id (owner/name)"
        )
    return pipe.to(device) if device is not None else pipe


def _read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PipelineError(f"can't read {what} {path}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise PipelineError(f"{what} {path} does not hold a JSON object")
    return value


def _read_model_index(folder: Path, source: str) -> dict:
    index_path = folder / MODEL_INDEX
    if not index_path.is_file():
        hint = ""
        if (folder / "checkpoints").is_dir():
            hint = " It looks like a run still in progress or stopped before its end: resume it (--resume) to finish it."
        elif any((folder / name).exists() for name in COMPONENTS):
            hint = " It has pipeline components but no model_index.json: an interrupted save or a run still in progress."
        raise PipelineError(f"{source} is not a pipeline folder: no {MODEL_INDEX}.{hint}")
    return _read_json(index_path, "pipeline index")


def _entry(index: dict, name: str) -> tuple:
    value = index.get(name)
    return tuple(value) if isinstance(value, (list, tuple)) else (None, None)


def _check_supported(folder: Path, index: dict, source: str) -> None:
    """Refuse latent and conditional pipelines before loading any weights."""
    if any(part is not None for part in _entry(index, "vqvae")) or (folder / "vqvae" / "config.json").is_file():
        raise PipelineError(f"{source} is a latent audio-diffusion pipeline (it has a vqvae/ autoencoder); {_UNSUPPORTED}")
    unet_class = _entry(index, "unet")[1]
    if unet_class not in (None, "UNet2DModel"):
        raise PipelineError(f"{source} has a {unet_class}, not an unconditional UNet2DModel; {_UNSUPPORTED}")
    config_path = folder / "unet" / "config.json"
    if config_path.is_file():
        config = _read_json(config_path, "UNet configuration")
        conditional = [key for key in ("encoder_hid_dim", "cross_attention_dim", "num_class_embeds", "class_embed_type")
                       if config.get(key) is not None]
        if config.get("_class_name", "UNet2DModel") != "UNet2DModel" or conditional:
            what = f"{config.get('_class_name')} with {', '.join(conditional)}" if conditional else config.get("_class_name")
            raise PipelineError(f"{source} has a conditional UNet ({what}); {_UNSUPPORTED}")


def _load_folder(folder: Path, source: str) -> AudioDiffusion:
    index = _read_model_index(folder, source)
    _check_supported(folder, index, source)
    mel = _load_mel(folder, index, source)
    return AudioDiffusion(
        unet=_load_unet(folder / "unet", source, mel),
        scheduler=_load_scheduler(folder, index, source),
        mel=mel,
        source=source,
    )


# Bounds on a UNet configuration read from a folder, far beyond any real model (the public 256
# layout: 6 blocks, 2 layers each, at most 512 channels) but small enough that building the model
# can't hang or exhaust memory before the weights are even read.
MAX_UNET_BLOCKS = 8
MAX_LAYERS_PER_BLOCK = 16
MAX_UNET_CHANNELS = 4096


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_unet_config(config: Mapping, mel: MelConfig, source: str) -> None:
    """Refuse, before the UNet is built, a configuration that can't work with this Mel image: one
    that would hang or crash while being built (absurd sizes, attention_head_dim 0) or whose images
    are not the Mel config's (sample_size must be (y_res, x_res), an int when square)."""
    where = f"{source}: unet/config.json"
    layers = config.get("layers_per_block", 2)
    if not (_positive_int(layers) and layers <= MAX_LAYERS_PER_BLOCK):
        raise PipelineError(f"{where} has layers_per_block {layers!r}; expected a whole number from 1 to {MAX_LAYERS_PER_BLOCK}")
    channels = config.get("block_out_channels", (64, 128, 256, 512))
    if (not isinstance(channels, (list, tuple)) or not 1 <= len(channels) <= MAX_UNET_BLOCKS
            or not all(_positive_int(c) and c <= MAX_UNET_CHANNELS for c in channels)):
        raise PipelineError(f"{where} has block_out_channels {channels!r}; expected 1 to {MAX_UNET_BLOCKS} whole "
                            f"numbers from 1 to {MAX_UNET_CHANNELS}")
    for key in ("down_block_types", "up_block_types"):
        types = config.get(key)
        if types is not None and (not isinstance(types, (list, tuple)) or len(types) != len(channels)):
            raise PipelineError(f"{where} has {len(types) if isinstance(types, (list, tuple)) else types!r} {key} "
                                f"for {len(channels)} block_out_channels; expected one per block")
    groups = config.get("norm_num_groups", 32)
    if groups is not None and not (_positive_int(groups) and all(c % groups == 0 for c in channels)):
        raise PipelineError(f"{where} has norm_num_groups {groups!r}; it must be a whole number that divides every "
                            f"block_out_channels entry {list(channels)}")
    head_dim = config.get("attention_head_dim", 8)
    head_dims = head_dim if isinstance(head_dim, (list, tuple)) else [head_dim]
    if not all(d is None or (_positive_int(d) and d <= min(channels)) for d in head_dims):
        raise PipelineError(f"{where} has attention_head_dim {head_dim!r}; expected a whole number from 1 to "
                            f"{min(channels)} (the smallest block width)")
    size = config.get("sample_size")
    shape = (size, size) if _positive_int(size) else tuple(size) if isinstance(size, (list, tuple)) else None
    if shape != (mel.y_res, mel.x_res):
        expected = mel.x_res if mel.x_res == mel.y_res else [mel.y_res, mel.x_res]
        raise PipelineError(f"{where} has sample_size {size!r}, but its Mel config (mel/mel_config.json) makes "
                            f"{mel.y_res}x{mel.x_res} images (y_res x x_res): the UNet was not trained on these images; "
                            f"expected sample_size {expected}")
    factor = 2 ** (len(channels) - 1)
    if mel.x_res % factor or mel.y_res % factor:
        raise PipelineError(f"{where} downsamples {len(channels) - 1} times, so the Mel image's x_res and y_res must "
                            f"be multiples of {factor}; got {mel.x_res}x{mel.y_res}")


def _load_mel(folder: Path, index: dict, source: str) -> MelConfig:
    entry = _entry(index, "mel")
    config_path = folder / "mel" / "mel_config.json"
    if entry == (None, None) or not config_path.is_file():
        raise PipelineError(
            f"{source} has no Mel component (mel/mel_config.json): it is not an audio-diffusion pipeline, "
            f"and audiodiff needs the Mel configuration the model was trained with; {_UNSUPPORTED}"
        )
    if entry not in MEL_ENTRIES:
        raise PipelineError(f"{source}: unknown Mel component {list(entry)} in {MODEL_INDEX}; expected {list(MEL_ENTRIES[0])}")
    return MelConfig.from_pretrained(config_path)


def _load_scheduler(folder: Path, index: dict, source: str) -> SchedulerMixin:
    config_path = folder / "scheduler" / "scheduler_config.json"
    if not config_path.is_file():
        raise PipelineError(f"{source} has no scheduler/scheduler_config.json")
    config = _read_json(config_path, "scheduler configuration")
    name = config.get("_class_name") or _entry(index, "scheduler")[1]
    cls = getattr(diffusers, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise PipelineError(f"{source}: scheduler {name!r} is not a diffusers scheduler class (e.g. DDPMScheduler)")
    _check_scheduler_config(config, source)
    try:
        return cls.from_config(config)
    except (TypeError, ValueError, NotImplementedError, OverflowError) as exc:
        raise PipelineError(f"{source}: scheduler/scheduler_config.json can't be used: {str(exc).splitlines()[0]}") from None


BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")


def _check_scheduler_config(config: Mapping, source: str) -> None:
    """The numbers a scheduler allocates or takes logarithms of, in range before it is built (issue 25:
    num_train_timesteps 1e10 allocated for minutes; beta_start 5 died in a math domain error)."""
    where = f"{source}: scheduler/scheduler_config.json"
    steps = config.get("num_train_timesteps", 1000)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100_000:
        raise PipelineError(f"{where}: num_train_timesteps must be an integer from 1 to 100000, got {steps!r}")
    for key in ("beta_start", "beta_end"):
        value = config.get(key, 0.01)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise PipelineError(f"{where}: {key} must be a number between 0 and 1, got {value!r}")
    schedule = config.get("beta_schedule", "linear")
    if schedule not in BETA_SCHEDULES:
        raise PipelineError(f"{where}: beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, got {schedule!r}")
    if config.get("trained_betas") is not None:
        raise PipelineError(f"{where}: trained_betas (a list of betas) is not supported; use a beta_schedule")


def _find_weights(unet_dir: Path) -> Path | None:
    """The UNet's weight file: the first of WEIGHT_SUFFIXES present."""
    for suffix in WEIGHT_SUFFIXES:
        candidate = unet_dir / f"{WEIGHTS_NAME}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _load_bin(path: Path) -> dict:
    """A pickled state dict through torch's weights-only unpickler: tensors and containers only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError for forbidden globals, or a corrupt file
        raise PipelineError(
            f"refusing to load {path}: it is not a plain tensor checkpoint, and unpickling anything else could run "
            f"code ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Use a model that ships "
            f"safetensors, or convert this one on a machine you trust."
        ) from exc
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise PipelineError(f"refusing to load {path}: it does not hold a state dict of named tensors")
    return dict(state)


def _load_file(path: Path) -> dict:
    if path.name.endswith(".index.json"):  # sharded: {"weight_map": {key: shard file}}
        index = _read_json(path, "weight index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise PipelineError(f"{path}: weight_map must map weight names to shard file names")
        shards = sorted(set(weight_map.values()))
        if not shards:
            raise PipelineError(f"{path} lists no weight shards")
        outside = [shard for shard in shards if Path(shard).name != shard or shard in (".", "..")]
        if outside:  # only files beside the index are opened (issue 25: ../../elsewhere, /etc/passwd)
            raise PipelineError(f"{path} names shards outside its folder ({outside[0]!r}); refusing to read them")
        state = {}
        for shard in shards:
            state.update(_load_file(path.parent / shard))
        return state
    if not path.is_file():
        raise PipelineError(f"missing UNet weight file {path}")
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt file
            raise PipelineError(f"can't read {path}: {exc}") from exc
    return _load_bin(path)


def _rename_deprecated_attention_keys(unet: UNet2DModel, state: dict) -> dict:
    """Checkpoints saved before diffusers 0.14 name attention weights query/key/value/proj_attn."""
    renames = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
    for path, module in unet.named_modules():
        if getattr(module, "_from_deprecated_attn_block", False):
            for old, new in renames.items():
                for kind in ("weight", "bias"):
                    if f"{path}.{old}.{kind}" in state:
                        state[f"{path}.{new}.{kind}"] = state.pop(f"{path}.{old}.{kind}")
    return state


def _load_unet(unet_dir: Path, source: str, mel: MelConfig) -> UNet2DModel:
    config_path = unet_dir / "config.json"
    if not config_path.is_file():
        raise PipelineError(f"{source} has no unet/config.json")
    weights = _find_weights(unet_dir)
    if weights is None:
        raise PipelineError(f"{source} has no UNet weights ({WEIGHTS_NAME}.safetensors or .bin in {unet_dir})")
    config = _read_json(config_path, "UNet configuration")
    check_unet_config(config, mel, source)
    try:
        with torch.device("meta"):  # no random initialisation: every parameter comes from the file
            unet = UNet2DModel.from_config(config)
    except Exception as exc:  # noqa: BLE001 - diffusers fails on bad configs in many ways (UnboundLocalError...)
        raise PipelineError(f"{source}: unet/config.json does not describe a UNet this version can build "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    state = _rename_deprecated_attention_keys(unet, _load_file(weights))
    # float32 master weights whatever the file holds (fp16 variants): move with .to(dtype=...)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:  # it would only ever make silence (issue 25)
        raise PipelineError(f"{source}: the UNet weights hold NaN or infinite values ({bad}); the model is broken")
    try:
        unet.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise PipelineError(f"{weights} does not match {config_path}: {str(exc).splitlines()[0]} ...") from exc
    return unet.eval()


# ---- saving ----------------------------------------------------------------------------------------
def _unwrap(unet: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(unet, "_orig_mod"):
            unet = unet._orig_mod
        elif isinstance(unet, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            unet = unet.module
        else:
            return unet


def check_writable_folder(folder: str | os.PathLike, flag: str = "--output-dir", error: type[Exception] = ValueError) -> Path:
    """Refuse, before any work, a folder that outputs can't be written into: a file, under a
    file, behind a broken link, or not writable. Raises `error` with a sentence naming `flag`;
    creates nothing (a missing folder is tried in its nearest existing parent, by a real write,
    so permissions, read-only file systems and immutable folders all show). Returns the Path."""
    import tempfile

    folder = Path(folder).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            raise error(f"{flag} {folder} can't be created: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"is under {existing}, which is a file"
        raise error(f"{flag} {folder} {where}, not a folder; choose a folder for the outputs")
    try:
        tempfile.TemporaryDirectory(prefix=".write-test-", dir=existing).cleanup()
    except OSError as exc:
        what = folder if existing == folder else f"{existing} (where {folder} would be created)"
        raise error(f"{flag} {what} is not writable ({exc.strerror or exc}); choose a folder you can write to") from exc
    return folder


def fsync_path(path: Path) -> None:
    """Flush one file to disk (atomic saves rename only what is already durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_unet(unet: UNet2DModel, folder: Path) -> None:
    unet = _unwrap(unet)
    if not isinstance(unet, UNet2DModel):
        raise PipelineError(f"can only save a UNet2DModel, got {type(unet).__name__}")
    state = unet.state_dict()
    if any("lora_" in key or ".base_layer." in key for key in state):
        raise PipelineError("the UNet still carries LoRA adapters: merge them into its weights before saving")
    # (float32, contiguous, CPU) tensors: the file loads anywhere, whatever device and dtype trained it
    tensors = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
               for k, v in state.items()}
    folder.mkdir(parents=True)
    unet.save_config(folder)
    weights = folder / f"{WEIGHTS_NAME}.safetensors"
    safetensors.torch.save_file(tensors, weights, metadata={"format": "pt"})
    # safetensors writes owner-only (0600) files; a pipeline folder is meant to be shared like any other file
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(weights, 0o666 & ~umask)
    for path in (weights, folder / "config.json"):
        fsync_path(path)


def _write_scheduler(scheduler: SchedulerMixin, folder: Path) -> str:
    name = type(scheduler).__name__
    if getattr(diffusers, name, None) is not type(scheduler):
        raise PipelineError(f"can only save diffusers scheduler classes (e.g. DDPMScheduler), got {name}")
    folder.mkdir(parents=True)
    scheduler.save_config(folder)
    return name


def _write_model_index(folder: Path, scheduler_class: str) -> None:
    """Written last and atomically: its presence marks a complete pipeline."""
    index = {
        "_class_name": PIPELINE_CLASS,
        "_diffusers_version": diffusers.__version__,
        "mel": ["diffusers", "Mel"],
        "scheduler": ["diffusers", scheduler_class],
        "unet": ["diffusers", "UNet2DModel"],
        "vqvae": [None, None],
    }
    partial = folder / f".{MODEL_INDEX}.partial"
    partial.write_text(json.dumps(index, indent=2) + "\n")
    fsync_path(partial)
    os.replace(partial, folder / MODEL_INDEX)


STAGING_MARK = ".saving-"
# Staging folders named by older versions carry no process id: removed once this old (seconds)
LEGACY_STAGING_SECONDS = 600


def _host_tag() -> str:
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def staging_folder(folder: Path, pid: int | None = None) -> Path:
    """The hidden sibling a save into `folder` stages in: .NAME.saving-<random>-<host>-<pid>."""
    folder = Path(folder)
    pid = os.getpid() if pid is None else pid
    return folder.parent / f".{folder.name}{STAGING_MARK}{uuid.uuid4().hex[:8]}-{_host_tag()}-{pid}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except (OverflowError, ValueError):
        return False
    return True


def clean_stale_staging(parent: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the staging folders in `parent` (of saves into `parent/name`, or of any save when name
    is None) that a killed save left behind: those whose process, on this host, is gone, and
    unnamed ones of older versions once LEGACY_STAGING_SECONDS old. Another host's or a running
    save's staging folder is left alone. Returns the folders removed."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    prefix = f".{name}{STAGING_MARK}" if name is not None else "."
    removed = []
    for path in parent.iterdir():
        if not (path.name.startswith(prefix) and STAGING_MARK in path.name) or path.is_symlink() or not path.is_dir():
            continue
        owner = path.name.rsplit(STAGING_MARK, 1)[1].split("-")
        if len(owner) == 3 and owner[2].isdigit():
            if owner[1] != _host_tag() or _process_alive(int(owner[2])):
                continue
        elif len(owner) != 1 or time.time() - path.stat().st_mtime < LEGACY_STAGING_SECONDS:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def save_pipeline(
    pipe: AudioDiffusion, folder: str | os.PathLike, unet: UNet2DModel | None = None, *, overwrite: bool = False
) -> Path:
    """Write `pipe` (with `unet` instead of pipe.unet when given, e.g. EMA weights) to `folder`.

    The diffusers AudioDiffusionPipeline layout: model_index.json, mel/, scheduler/, unet/ with
    safetensors weights. A folder that already holds a pipeline (or any part of one) is
    refused unless `overwrite=True`; anything else in it (a run's checkpoints/, logs/, README)
    is kept. Atomic: the components are written into a hidden sibling folder first. Into a new
    or empty folder, one rename then moves the complete pipeline into place; into a folder with
    other contents, the components are moved in one by one and model_index.json is written
    last. A save killed at any moment therefore never leaves a folder that looks complete
    (with `overwrite=True`, the old pipeline is gone from then on). Returns the folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder")
    existing = [name for name in PIPELINE_ENTRIES if (folder / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{folder} already holds a pipeline ({', '.join(existing)}); choose another folder or pass overwrite=True"
        )
    clean_stale_staging(folder.parent, folder.name)  # what a killed save into this folder left
    fresh = not folder.exists() or not any(folder.iterdir())
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(folder)  # a sibling, on the same file system: renames are atomic
    staging.mkdir()
    try:
        _write_unet(unet if unet is not None else pipe.unet, staging / "unet")
        scheduler_class = _write_scheduler(pipe.scheduler, staging / "scheduler")
        pipe.mel.save_pretrained(staging / "mel")
        if fresh:  # one rename puts the whole pipeline in place
            _write_model_index(staging, scheduler_class)
            if folder.exists():
                folder.rmdir()
            os.replace(staging, folder)
            return folder
        # Into a folder with other contents (a run's checkpoints/ and logs/, or the pipeline being
        # replaced): from here on the old pipeline, if any, is incomplete, so its index goes first.
        (folder / MODEL_INDEX).unlink(missing_ok=True)
        trash = staging / ".replaced"
        trash.mkdir()
        for name in (*COMPONENTS, "vqvae"):
            if (folder / name).exists():
                os.replace(folder / name, trash / name)
            if (staging / name).exists():
                os.replace(staging / name, folder / name)
        _write_model_index(folder, scheduler_class)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


# ---- runs ------------------------------------------------------------------------------------------
def _is_complete(folder: Path) -> bool:
    try:
        index = json.loads((folder / MODEL_INDEX).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(index, dict) and "unet" in index


def latest_run(runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Path | None:
    """The most recently completed pipeline folder one or two levels under `runs_dir`, or None.

    Runs live in runs/<genre>-<timestamp>/; model_index.json is written last, so a folder
    without a readable one (a run in progress, an interrupted save) is skipped, as are hidden
    folders (saves in progress). "Most recent" is the time model_index.json was written.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return None
    candidates = []
    for pattern in (f"*/{MODEL_INDEX}", f"*/*/{MODEL_INDEX}"):
        for index_path in runs_dir.glob(pattern):
            folder = index_path.parent
            if any(part.startswith(".") for part in folder.relative_to(runs_dir).parts) or not _is_complete(folder):
                continue
            candidates.append((index_path.stat().st_mtime, str(folder), folder))
    return max(candidates)[2] if candidates else None


# ---- which model and device to generate with ------------------------------------------------------
def pick_device(device: str | None) -> torch.device:
    """None or "auto": CUDA when available, else CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise GenerationError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if chosen.type not in ("cpu", "cuda", "mps"):  # e.g. "meta": tensors without data, no audio could come out
        raise GenerationError(f"can't generate on device {device!r}; use auto, cpu, cuda or cuda:N")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise GenerationError(f"--device {device} asked for Apple's MPS, which is not available here; use --device cpu")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise GenerationError(f"--device {device} asked for CUDA, but no CUDA GPU is available; use --device cpu")
    return chosen


def resolve_model(model: str | os.PathLike | None, *, runs_dir: str | os.PathLike | None = None, device=None):
    """Load the pipeline to generate with -> (AudioDiffusion, how it was chosen).

    None: the most recent fine-tuned run under `runs_dir` (default runs/), else the course's
    pretrained hub model; when that can't be reached either (offline), the bundled base model,
    with a notice that is printed and recorded in the JSON sidecar (DESIGN section 6).
    """
    runs_dir = Path(runs_dir) if runs_dir is not None else DEFAULT_RUNS_DIR
    if model is None:
        run = latest_run(runs_dir)
        if run is not None:
            return load_pipeline(run, device=device), f"latest fine-tuned run ({run})"
        try:
            return load_pipeline(DEFAULT_PRETRAINED, device=device), f"default pretrained model (no run under {runs_dir}/)"
        except HubUnreachableError:
            notice = (f"no fine-tuned run under {runs_dir}/ and the hub can't be reached (offline), so this uses the "
                      f"bundled base model instead of {DEFAULT_PRETRAINED}; run `python scripts/finetune.py --genre jazz` "
                      f"first for a genre, or pass --model <pipeline folder|preset>")
            try:
                return load_pipeline(BUNDLED, device=device), notice
            except PipelineError as exc:
                raise GenerationError(
                    f"no model to generate with: there is no fine-tuned run under {runs_dir}/, the default pretrained "
                    f"model {DEFAULT_PRETRAINED} can't be reached and {exc}. Run `python scripts/finetune.py "
                    f"--genre jazz` first, or pass --model <pipeline folder|preset> (e.g. --model tiny)."
                ) from exc
    try:
        return load_pipeline(model, device=device), "given"
    except HubUnreachableError as exc:
        raise HubUnreachableError(
            f"can't load model {os.fspath(model)!r}: it is not a local folder or preset, and as a hub id it can't be "
            f"fetched (the hub can't be reached and it is not cached). Pass --model <pipeline folder|preset>."
        ) from exc
