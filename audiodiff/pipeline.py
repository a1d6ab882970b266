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
- latent (`vqvae/`, an AutoencoderKL) and conditional (UNet2DConditionModel) pipelines are
  read by latent.py, their parts checked against each other before any weights are read; other
  kinds of model are refused up front with a message, not half loaded;
- a hub download fetches only the files a pipeline needs (the default model's repository also
  holds TensorBoard logs), and an unreachable hub fails within seconds instead of retrying.

The pipeline object and the checks on a UNet's configuration are model.py's, the random-weight
presets presets.py's; a name here may be either (`load_pipeline`: a folder, "bundled", a preset
or a hub id).

Saving is atomic: the components are written into a hidden sibling folder (staging.py), moved
into place, and `model_index.json` is written last, so its presence means "complete" (what
`latest_run` relies on) and a killed save never leaves a folder that looks loadable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import diffusers
import huggingface_hub
import safetensors.torch
import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin

# Imported from here too, by callers from before each had its own module: GenerationError,
# pick_device (generate.py, app.py, evaluate.py), weights_sha256, with_mel, check_writable_folder,
# staging_folder. HubUnreachableError and hub_is_reachable: the hub module owns them, model loading
# uses them (tests patch pipeline.hub_is_reachable).
from .device import pick_device  # noqa: F401
from .errors import GenerationError  # noqa: F401
from .hub import HubUnreachableError, hub_is_reachable, hub_offline  # noqa: F401
from .mel import MelConfig
from .model import AudioDiffusion, PipelineError, UNet2DModel, _move, check_unet_config, weights_sha256  # noqa: F401
from .presets import PRESETS, build_preset, with_mel  # noqa: F401

LATENT_PRESETS = ("latent-256", "conditional-latent-512", "tiny-latent", "tiny-conditional-latent")  # latent_presets.py
from .staging import _host_tag, check_writable_folder, clean_stale_staging, fsync_path, staging_folder  # noqa: F401
from .latent import CONDITIONAL_UNET_CLASS, VAE_CLASS
from .weights import WEIGHT_SUFFIXES, WEIGHTS_NAME, build_from_weights
from .weights import find_weights as _find_weights
from .weights import read_json as _read_json

logger = logging.getLogger(__name__)

DEFAULT_RUNS_DIR = Path("runs")  # where finetune writes runs (relative to the current directory)

MODEL_INDEX = "model_index.json"
PIPELINE_CLASS = "AudioDiffusionPipeline"
COMPONENTS = ("mel", "scheduler", "unet")  # the folders a saved pipeline consists of
# Entries of a folder that belong to a saved pipeline (anything else, e.g. a run's checkpoints/
# and logs/, is left alone by save_pipeline).
PIPELINE_ENTRIES = (MODEL_INDEX, *COMPONENTS, "vqvae")
# current diffusers, and the two legacy spellings in the wild (older diffusers, teticio's own package)
MEL_ENTRIES = (("diffusers", "Mel"), ("audio_diffusion", "Mel"), ("audiodiffusion.mel", "Mel"))
HUB_METADATA_PATTERNS = ["model_index.json", "mel/*", "scheduler/*", "unet/config.json", "vqvae/config.json"]
HUB_WEIGHT_PATTERNS = [f"{part}/*{suffix}" for part in ("unet", "vqvae")
                       for suffix in (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json")]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_UNSUPPORTED = (
    "audiodiff supports audio-diffusion pipelines: a UNet2DModel on the Mel image or on the latents of an "
    "AutoencoderKL in vqvae/, or a UNet2DConditionModel conditioned on an encoding through cross-attention"
)


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


# ---- the hub ---------------------------------------------------------------------------------------
def _unreachable_message(repo_id: str, detail: str) -> str:
    return (
        f"can't load {repo_id!r} (no such local folder, so it was taken for a hub id): {detail}, and it is "
        f"not in the local Hugging Face cache. "
        f"To work offline, pass --pretrained <folder|preset> (a saved pipeline folder, or one of the presets "
        f"{', '.join(PRESETS)}) and --dataset synthetic or --data-dir <folder of audio files>."
    )


def _weight_patterns(files: list[str], repo_id: str, part: str = "unet") -> list[str]:
    """The one set of weight files of `part` (unet, vqvae) to fetch: the first of WEIGHT_SUFFIXES the repository has."""
    for suffix in WEIGHT_SUFFIXES:
        name = f"{part}/{WEIGHTS_NAME}{suffix}"
        if name in files:
            if suffix.endswith(".index.json"):  # a sharded checkpoint: the index and its shards
                return [name, f"{part}/{WEIGHTS_NAME}*-of-*.{suffix.removesuffix('.index.json').rsplit('.', 1)[-1]}"]
            return [name]
    raise PipelineError(f"{repo_id!r} on the hub has no {part} weights ({part}/{WEIGHTS_NAME}.safetensors or .bin)")


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
            if "vqvae/config.json" in files:  # a latent pipeline: its VAE's weights too
                weights += _weight_patterns(files, repo_id, "vqvae")
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
        pipe = attach_base(_load_folder(path, source=text), path)
    elif path.exists():
        raise PipelineError(f"{text} is a file; --pretrained takes a pipeline folder, a preset or a hub id")
    elif isinstance(name_or_path, str) and text == BUNDLED:
        pipe = _load_folder(bundled_path(), source=BUNDLED)
    elif isinstance(name_or_path, str) and text in PRESETS:
        pipe = build_preset(text)
    elif isinstance(name_or_path, str) and text in LATENT_PRESETS:
        from .latent_presets import build_latent_preset

        pipe = build_latent_preset(text)
    elif isinstance(name_or_path, str) and _HUB_ID.match(text):
        pipe = _load_folder(_download(text), source=text)
    else:
        raise PipelineError(
            f"{text!r} is not a pipeline folder, a preset ({', '.join([BUNDLED, *PRESETS, *LATENT_PRESETS])}) "
            f"or a hub id (owner/name)"
        )
    return pipe.to(device) if device is not None else pipe


def attach_base(pipe: AudioDiffusion, folder: Path) -> AudioDiffusion:
    """A fine-tuned run's pipeline with the UNet it was fine-tuned from attached (`base_unet`),
    for base guidance (sampling.autoguide), when that base loads without the network: the bundled
    model or a pipeline folder that still exists, of the same image, Mel and target. Anything
    else (a hub id, a preset, a latent model, no training_config.json) leaves the pipeline alone."""
    from .runs import CONFIG_FILE
    from .sampling.autoguide import mismatch

    if type(pipe) is not AudioDiffusion or not (folder / CONFIG_FILE).is_file():
        return pipe
    try:
        named = json.loads((folder / CONFIG_FILE).read_text()).get("pretrained")
        if named == BUNDLED:
            base = _load_folder(bundled_path(), source=BUNDLED)
        elif isinstance(named, str) and Path(named).expanduser().is_dir() and Path(named).expanduser().resolve() != folder.resolve():
            base = _load_folder(Path(named).expanduser(), source=named)
        else:
            return pipe
    except (OSError, ValueError, AttributeError):  # an unreadable config or base: no guidance, as without one
        return pipe
    if type(base) is not AudioDiffusion or mismatch(pipe, base):
        return pipe
    _move(base.unet, pipe.device, pipe.dtype)
    pipe.base_unet, pipe.base_source = base.unet.eval(), base.source
    return pipe


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


def _kind(folder: Path, index: dict, source: str) -> tuple[bool, bool]:
    """(latent, conditional) of a pipeline folder, from its index and configs, before any weights
    are read; a VAE or UNet class this program can't drive is refused here."""
    vae_class = _entry(index, "vqvae")[1]
    latent = vae_class is not None or (folder / "vqvae" / "config.json").is_file()
    if latent and vae_class not in (None, VAE_CLASS):
        raise PipelineError(f"{source} has a {vae_class} in vqvae/; latent pipelines need an {VAE_CLASS}. {_UNSUPPORTED}")
    unet_class = _entry(index, "unet")[1]
    if unet_class not in (None, "UNet2DModel", CONDITIONAL_UNET_CLASS):
        raise PipelineError(f"{source} has a {unet_class}, not a UNet2DModel or {CONDITIONAL_UNET_CLASS}; {_UNSUPPORTED}")
    config_path = folder / "unet" / "config.json"
    config = _read_json(config_path, "UNet configuration") if config_path.is_file() else {}
    config_class = config.get("_class_name", unet_class or "UNet2DModel")
    conditional = CONDITIONAL_UNET_CLASS in (unet_class, config_class)
    if not conditional:
        extra = [key for key in ("encoder_hid_dim", "cross_attention_dim", "num_class_embeds", "class_embed_type")
                 if config.get(key) is not None]
        if config_class != "UNet2DModel" or extra:
            what = f"{config_class} with {', '.join(extra)}" if extra else config_class
            raise PipelineError(f"{source} has a UNet this program can't drive ({what}); {_UNSUPPORTED}")
    return latent, conditional


def _check_supported(folder: Path, index: dict, source: str) -> None:
    """Refuse what can't be loaded before any weights are read (a hub download fetches none)."""
    _kind(folder, index, source)


def _load_folder(folder: Path, source: str) -> AudioDiffusion:
    index = _read_model_index(folder, source)
    latent, conditional = _kind(folder, index, source)
    mel = _load_mel(folder, index, source)
    if latent or conditional:
        from .latent import load_parts

        scheduler = _load_scheduler(folder, index, source)
        return load_parts(folder, mel, scheduler, source, latent=latent, conditional=conditional)
    return AudioDiffusion(
        unet=_load_unet(folder / "unet", source, mel),
        scheduler=_load_scheduler(folder, index, source),
        mel=mel,
        source=source,
    )


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


def _load_unet(unet_dir: Path, source: str, mel: MelConfig) -> UNet2DModel:
    config_path = unet_dir / "config.json"
    if not config_path.is_file():
        raise PipelineError(f"{source} has no unet/config.json")
    weights = _find_weights(unet_dir)
    if weights is None:
        raise PipelineError(f"{source} has no UNet weights ({WEIGHTS_NAME}.safetensors or .bin in {unet_dir})")
    config = _read_json(config_path, "UNet configuration")
    check_unet_config(config, mel, source)
    return build_from_weights(UNet2DModel, config, weights, config_path, source, "UNet")


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


def _write_unet(unet: UNet2DModel, folder: Path) -> None:
    unet = _unwrap(unet)
    if not isinstance(unet, UNet2DModel) and type(unet).__name__ not in (CONDITIONAL_UNET_CLASS, VAE_CLASS):
        raise PipelineError(f"can only save a UNet2DModel, a {CONDITIONAL_UNET_CLASS} or an {VAE_CLASS}, "
                            f"got {type(unet).__name__}")
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


def _write_model_index(folder: Path, scheduler_class: str, unet_class: str = "UNet2DModel",
                       vae_class: str | None = None) -> None:
    """Written last and atomically: its presence marks a complete pipeline."""
    index = {
        "_class_name": PIPELINE_CLASS,
        "_diffusers_version": diffusers.__version__,
        "mel": ["diffusers", "Mel"],
        "scheduler": ["diffusers", scheduler_class],
        "unet": ["diffusers", unet_class],
        "vqvae": ["diffusers", vae_class] if vae_class else [None, None],
    }
    partial = folder / f".{MODEL_INDEX}.partial"
    partial.write_text(json.dumps(index, indent=2) + "\n")
    fsync_path(partial)
    os.replace(partial, folder / MODEL_INDEX)


def save_pipeline(
    pipe: AudioDiffusion, folder: str | os.PathLike, unet: UNet2DModel | None = None, *, overwrite: bool = False
) -> Path:
    """Write `pipe` (with `unet` instead of pipe.unet when given, e.g. EMA weights) to `folder`.

    The diffusers AudioDiffusionPipeline layout: model_index.json, mel/, scheduler/, unet/ (and
    vqvae/ for a latent pipeline) with safetensors weights. A folder that already holds a pipeline (or any part of one) is
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
        unet = _unwrap(unet if unet is not None else pipe.unet)
        _write_unet(unet, staging / "unet")
        vqvae = getattr(pipe, "vqvae", None)
        if vqvae is not None:  # a latent pipeline: its VAE, written as the UNet is
            _write_unet(vqvae, staging / "vqvae")
        scheduler_class = _write_scheduler(pipe.scheduler, staging / "scheduler")
        pipe.mel.save_pretrained(staging / "mel")
        classes = (scheduler_class, type(unet).__name__, None if vqvae is None else VAE_CLASS)
        if fresh:  # one rename puts the whole pipeline in place
            _write_model_index(staging, *classes)
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
        _write_model_index(folder, *classes)
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


def completed_runs(runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> list[Path]:
    """The completed pipeline folders one or two levels under `runs_dir`, the most recent first.

    Runs live in runs/<genre>-<timestamp>/; model_index.json is written last, so a folder
    without a readable one (a run in progress, an interrupted save) is skipped, as are hidden
    folders (saves in progress). "Most recent" is the time model_index.json was written.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    candidates = []
    for pattern in (f"*/{MODEL_INDEX}", f"*/*/{MODEL_INDEX}"):
        for index_path in runs_dir.glob(pattern):
            folder = index_path.parent
            if any(part.startswith(".") for part in folder.relative_to(runs_dir).parts) or not _is_complete(folder):
                continue
            candidates.append((index_path.stat().st_mtime, str(folder), folder))
    return [folder for _, _, folder in sorted(candidates, reverse=True)]


def latest_run(runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Path | None:
    """The most recently completed pipeline folder one or two levels under `runs_dir`, or None
    (`completed_runs`)."""
    runs = completed_runs(runs_dir)
    return runs[0] if runs else None
