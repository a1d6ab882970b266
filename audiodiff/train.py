"""Fine-tuning: a pretrained (or preset) audio-diffusion pipeline + one genre's audio -> a new pipeline.

Runs on accelerate, so the same code runs on a CPU, one GPU, several GPUs or nodes
(`accelerate launch --config_file configs/accelerate/<setup>.yaml scripts/finetune.py ...`): each
process reads and decodes only its share of the tracks, and only the main process writes
checkpoints, logs and the result.

What a run leaves in its folder (`runs/<genre>-<timestamp>/`):
    checkpoints/step-000500/   full training state (model, EMA, optimiser, LR schedule, RNG, step,
                               loss history) as safetensors + JSON, no pickle (checkpoint.py);
                               written under a temporary name and renamed when complete, so a kill
                               at any moment leaves the previous checkpoint as the latest one
    logs/                      TensorBoard: loss (and per timestep quarter), lr, validation loss at
                               fixed timesteps and noise, generated audio and spectrograms
    training_config.json       this run's configuration (a resumed run reads it back), the precision
                               --mixed-precision auto chose and the number of processes
    validation_split.json      exactly what was held out for validation: recordings, time ranges
    model_index.json, unet/, scheduler/, mel/, README.md
                               the fine-tuned pipeline (EMA weights), written last

Determinism: the noise and timesteps of step s come from a generator seeded with (seed, s) and the
data of epoch e from (seed, e) (and the process), so a resumed run continues exactly where the
killed one stopped, given the same number of processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from . import checkpoint as checkpoint_io
from .objective import PREDICTION_TYPES, _target_and_weight, diffusion_loss, with_objective  # noqa: F401
from .mel import MelConfig

if TYPE_CHECKING:  # annotations of _TrainingData
    from .data import GenreData, ValidationSplit

DEFAULT_DATASET = "lewtun/music_genres"
CHECKPOINTS = "checkpoints"
STATE_FILE = checkpoint_io.STATE_FILE
CONFIG_FILE = "training_config.json"
SPLIT_FILE = "validation_split.json"  # exactly what was held out: recording ids and time ranges

# ---- defaults, with the data-budget arithmetic behind them ------------------------------------
# The course's Jazz subset of lewtun/music_genres has 306 tracks of ~30 s. 10 % are held out
# (whole songs, by song_id) for validation -> ~275 training tracks. Each epoch draws one random 5.9 s
# slice per track, so at batch 8 one epoch is 275 / 8 = 34 optimiser steps (34 / N on N processes,
# each taking its own batch of its share), and 20 epochs = ~690 steps: every
# track is seen 20 times at 20 different offsets (a 30 s track holds ~5 distinct slices, so each
# region ~4 times) -- enough to move a pretrained model toward the genre, not enough to memorise.
DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 8  # fits the 256 model in ~10 GB at fp16; small GPUs use batch 1 + --grad-accum 8
# A pretrained model needs small steps: 5e-5 is half the from-scratch rate of the public
# checkpoints (1e-4), enough to adapt in a few hundred steps without wiping what it knows. LoRA
# trains only small low-rank adapters starting at zero, which need a 10x larger rate.
DEFAULT_LR = 5e-5
DEFAULT_LORA_LR = 5e-4
DEFAULT_WARMUP_STEPS = 50  # ~1.5 epochs: AdamW's moment estimates settle before full-size steps
# EMA with warm-up: the decay grows as 1 - (1 + step)^-0.75 toward 0.9999, so a short fine-tune
# (~0.995 at step 1000) averages over its own recent steps rather than staying at the base model.
DEFAULT_EMA_MAX_DECAY = 0.9999
DEFAULT_EMA_POWER = 0.75
# Step s draws its noise from a torch generator seeded with seed * 1_000_003 + s, which must fit in
# 64 bits; 32-bit seeds (numpy's classic range) keep that true for any number of steps.
MAX_SEED = 2**32 - 1


MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")


def resolve_mixed_precision(requested: str, device_type: str, capability: tuple[int, int] | None = None) -> str:
    """The precision `--mixed-precision auto` means on a device: bf16 on GPUs with native bf16
    (compute capability 8.0+: A100, RTX 30xx and newer), fp16 with loss scaling on older GPUs
    (V100, T4, RTX 20xx: accelerate adds the GradScaler), full precision ("no") on a CPU or any
    other device. An explicit choice is returned unchanged.

    capability: the CUDA device's (major, minor), read from torch when None. (torch's own
    `is_bf16_supported()` also says yes for emulated bf16, which is slower than fp16.)
    """
    if requested != "auto":
        return requested
    if device_type != "cuda":
        return "no"
    if capability is None:
        capability = torch.cuda.get_device_capability()
    return "bf16" if tuple(capability) >= (8, 0) else "fp16"


def _device_type(config: "FinetuneConfig") -> str:
    """The device accelerate will train on: CUDA when present unless --device cpu."""
    return "cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"


# Flags of scripts/finetune.py spelled otherwise than their field: flag -> (field, the field's value).
FLAG_SPELLINGS = {
    "genre": ("genre", lambda genre: None if genre is not None and genre.lower() == "all" else genre),
    "no_ema": ("ema", lambda no_ema: not no_ema),
    "device": ("device", lambda device: None if device == "auto" else device),
}


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything a fine-tuning run needs; saved with the run so that it can be resumed and reproduced."""

    genre: str | None = "jazz"
    pretrained: str | None = None  # hub id, pipeline folder or preset name; None -> the course's model
    dataset: str | None = None  # hub dataset id or "synthetic"; None with no data_dir -> the course's dataset
    data_dir: str | None = None
    split: str = "train"
    genre_column: str = "genre"
    audio_column: str = "audio"
    recording_column: str | None = None  # None: song_id when the dataset has it (the split never divides a recording)
    streaming: bool = False
    synthetic_clips_per_genre: int = 32  # size of the built-in set (--dataset synthetic)
    synthetic_seconds: float = 30.0
    output_dir: str = "runs"
    run_name: str | None = None
    max_steps: int | None = None  # overrides epochs
    epochs: int | None = None  # None -> DEFAULT_EPOCHS (or FALLBACK_MAX_STEPS on the bundled model)
    batch_size: int = DEFAULT_BATCH_SIZE
    grad_accum: int = 1
    lr: float | None = None  # None -> DEFAULT_LR, or DEFAULT_LORA_LR with LoRA
    warmup_steps: int = DEFAULT_WARMUP_STEPS
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    ema: bool = True
    ema_max_decay: float = DEFAULT_EMA_MAX_DECAY
    mixed_precision: str = "auto"  # auto | no | fp16 | bf16 (auto: resolve_mixed_precision)
    gradient_checkpointing: bool = False
    lora_rank: int = 0  # 0 = full fine-tune
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    validate_every: int = 100
    sample_every: int = 500
    sample_steps: int = 50
    validation_fraction: float = 0.1
    num_workers: int = 2
    prediction_type: str | None = None  # None: the model's own; epsilon | v_prediction (see diffusion_loss)
    snr_gamma: float | None = None  # min-SNR loss weighting (Hang et al. 2023); None: uniform over timesteps
    push_to_hub: bool = False
    hub_model_id: str | None = None
    device: str | None = None  # None = automatic (CUDA when available); "cpu" forces the CPU

    def __post_init__(self):
        positive = ("batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints", "validate_every",
                    "sample_every", "sample_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "epochs"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.lr is not None and not (0 < self.lr < 1):
            raise ValueError(f"lr must be between 0 and 1, got {self.lr}")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise ValueError(f"mixed-precision must be auto, no, fp16 or bf16, got {self.mixed_precision!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation fraction must be in [0, 1), got {self.validation_fraction}")
        if self.lora_rank < 0 or self.warmup_steps < 0 or self.num_workers < 0:
            raise ValueError("lora-rank, warmup-steps and num-workers must not be negative")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction-type must be one of {', '.join(PREDICTION_TYPES[1:])}, got {self.prediction_type!r}")
        if self.snr_gamma is not None and not (0 < self.snr_gamma <= 1000):
            raise ValueError(f"snr-gamma must be in (0, 1000], got {self.snr_gamma}")
        if self.dataset is not None and self.data_dir is not None:
            raise ValueError("give either --dataset or --data-dir, not both")
        if self.recording_column is not None and (self.data_dir is not None or str(self.dataset).lower() == "synthetic"):
            raise ValueError("--recording-column applies to datasets with columns; in a --data-dir each file, "
                             "in the built-in set each clip, is one recording")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push-to-hub needs --hub-model-id USER/NAME")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED} (2**32 - 1), got {self.seed}")
        name = self.run_name
        if name is not None and (Path(name).name != name or name in ("", ".", "..") or name.startswith(".")):
            raise ValueError(f"--run-name must be a plain folder name (no '/', not absolute, not starting with '.'), "
                             f"got {name!r}; use --output-dir for where runs go")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return DEFAULT_LORA_LR if self.lora_rank else DEFAULT_LR

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FinetuneConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_flags(cls, flags: dict) -> "FinetuneConfig":
        """The configuration that scripts/finetune.py's flags ask for (`vars(args)`): a flag is the
        field of its name (dashes as underscores), except for the spellings in FLAG_SPELLINGS
        (--genre all: every genre, --no-ema, --device auto: automatic). Flags that are not fields
        (--resume) are left to the caller; a field without a flag keeps its default."""
        values = dict(flags)
        for flag, (name, spell) in FLAG_SPELLINGS.items():
            if flag in values:
                values[name] = spell(values.pop(flag))
        return cls.from_dict(values)


# ---- the run folder ---------------------------------------------------------------------------
def new_run_dir(output_dir: str | Path, genre: str | None, run_name: str | None = None) -> Path:
    """A fresh folder for a run; never an existing one (a suffix is added instead)."""
    root = Path(output_dir)
    base = run_name or f"{(genre or 'all').lower().replace(' ', '-')}-{datetime.now():%Y%m%d-%H%M%S}"
    candidate, n = root / base, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    candidate.mkdir(parents=True)
    return candidate


CHECKPOINT_NAME = re.compile(r"step-\d{6,9}")


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders of an interrupted write are ignored)."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    if folder.is_symlink():  # saving and pruning would happen outside the run (issue 25)
        raise checkpoint_io.CheckpointError(f"{folder} is a symbolic link; a run's checkpoints must be a real folder "
                                            f"inside it")
    done = [p for p in folder.iterdir() if CHECKPOINT_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
            and (p / STATE_FILE).is_file()]  # a stray step-best or a link is not a checkpoint
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def find_resume_checkpoint(resume: str, output_dir: str | Path) -> Path:
    """`latest` -> the newest checkpoint of the newest run under output_dir; a run folder -> its newest
    checkpoint; a checkpoint folder -> itself."""
    if resume == "latest":
        runs = [p for p in Path(output_dir).glob("*") if list_checkpoints(p)] if Path(output_dir).is_dir() else []
        if not runs:
            raise FileNotFoundError(f"--resume latest: no run with a checkpoint under {output_dir}")
        newest = max(runs, key=lambda p: list_checkpoints(p)[-1].stat().st_mtime)
        return list_checkpoints(newest)[-1]
    path = Path(resume)
    if (path / STATE_FILE).is_file():
        return path
    checkpoints = list_checkpoints(path)
    if not checkpoints:
        raise FileNotFoundError(f"--resume {resume}: not a run folder with checkpoints, nor a checkpoint folder")
    return checkpoints[-1]


# ---- model pieces -----------------------------------------------------------------------------
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"]


def add_lora(unet, rank: int) -> None:
    """Freeze the UNet and add LoRA adapters (peft) to its attention projections and ResNet convs."""
    from peft import LoraConfig, inject_adapter_in_model

    unet.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS)
    inject_adapter_in_model(config, unet)
    for name, parameter in unet.named_parameters():
        parameter.requires_grad_("lora_" in name)


def merged_unet(unet):
    """A plain UNet2DModel (a copy) with any LoRA adapters merged into its weights."""
    import copy

    from diffusers import UNet2DModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = copy.deepcopy(unet)
    adapters = [m for m in merged.modules() if isinstance(m, BaseTunerLayer)]
    if not adapters:
        return merged
    for module in adapters:
        module.merge()
    plain = UNet2DModel.from_config(merged.config)
    state = {k.replace(".base_layer.", "."): v for k, v in merged.state_dict().items() if "lora_" not in k}
    plain.load_state_dict(state)
    return plain


def timestep_quarter_losses(losses: torch.Tensor, timesteps: torch.Tensor, num_train_timesteps: int) -> dict:
    """Mean loss per quarter of the timestep range (improved-diffusion's loss_q0..q3): which noise
    levels the genre is hard at."""
    quarter = (timesteps * 4 // num_train_timesteps).clamp(max=3)
    return {f"loss_q{q}": losses[quarter == q].mean().item() for q in range(4) if (quarter == q).any()}


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


# ---- the run -------------------------------------------------------------------------------------
@dataclass
class RunResult:
    run_dir: Path
    steps: int
    final_loss: float
    losses: list[float]
    step_seconds: list[float] = dataclasses.field(default_factory=list)  # wall time of each optimiser step
    decoded_tracks: list[int] | None = None  # tracks each process decoded (one entry per process); None when streaming


@dataclass(frozen=True)
class Sources:
    pretrained: str
    dataset: str | None
    fallback: str | None  # the one-line notice when the defaults fell back to the bundled model, else None


def resolve_sources(config: FinetuneConfig, hub_reachable=None) -> Sources:
    """Which model and data a run uses (DESIGN section 6).

    The defaults are the course's hub model and dataset. When the hub can't be reached (no network
    or HF_HUB_OFFLINE=1, decided within seconds) a default falls back to the bundled base model /
    the built-in genre set, with a notice; a value the user typed never falls back (an unreachable
    hub id given explicitly fails fast with a message on how to work offline).
    """
    from .data import SYNTHETIC
    from .model_choice import DEFAULT_PRETRAINED
    from .pipeline import BUNDLED, hub_is_reachable

    default_model = config.pretrained is None
    default_data = config.dataset is None and config.data_dir is None
    pretrained = config.pretrained or DEFAULT_PRETRAINED
    dataset = config.dataset if not default_data else (None if config.data_dir else DEFAULT_DATASET)
    if not (default_model or default_data):
        return Sources(pretrained, dataset, None)
    if (hub_reachable or hub_is_reachable)():
        return Sources(pretrained, dataset, None)
    used = []
    if default_model:
        pretrained = BUNDLED
        used.append(f"the bundled base model instead of {DEFAULT_PRETRAINED}")
    if default_data:
        dataset = SYNTHETIC
        used.append(f"the built-in synthetic genre set instead of {DEFAULT_DATASET}")
    notice = (f"the Hugging Face hub can't be reached (offline), so this run uses {' and '.join(used)}; "
              f"for real music pass --pretrained <hub id|folder> and --dataset <hub id> or --data-dir DIR")
    return Sources(pretrained, dataset, notice)


# On the bundled model (1.02 s images, 2 M parameters) an "epoch" of one slice per track is tiny,
# so a fallback run without --max-steps/--epochs trains a fixed budget instead: 300 steps of batch 8
# at a learning rate suited to a small model (2e-4) moves it clearly toward the genre and takes a
# few minutes on a 2-core CPU.
FALLBACK_MAX_STEPS = 300
FALLBACK_LR = 2e-4


@dataclass
class _NewRun:
    """The run folder this call made, and whether its first optimiser step is done."""

    folder: Path | None = None
    trained: bool = False
    lock: checkpoint_io.RunLock = dataclasses.field(default_factory=checkpoint_io.RunLock)  # held for the run


def finetune(config: FinetuneConfig, resume: str | None = None, progress: bool = True) -> RunResult:
    """Run (or resume) a fine-tune and return where its pipeline was written.

    An error before the first optimiser step (a bad input found after the run folder was made, an
    interrupted start) removes the new run folder: no half-made run is left behind.
    """
    new_run = _NewRun()
    try:
        return _finetune(config, resume, progress, new_run)
    except BaseException:
        if new_run.folder is not None and not new_run.trained and not list_checkpoints(new_run.folder):
            shutil.rmtree(new_run.folder, ignore_errors=True)
        raise
    finally:
        new_run.lock.release()


def _finetune(config: FinetuneConfig, resume: str | None, progress: bool, new_run: _NewRun) -> RunResult:
    """The run in stages: where it starts, the accelerator, model and data, the run folder, then the loop."""
    from .pipeline import check_writable_folder, load_pipeline, weights_sha256

    start = _Start.find(config, resume)
    resumed = start.checkpoint is not None
    check_writable_folder(start.run_dir if resumed else start.config.output_dir,
                          "the run folder" if resumed else "--output-dir")
    if resumed and _is_main_launch():
        new_run.lock.take(start.run_dir)  # before anything in it is touched (issue 25)
    accelerator, mixed_precision = _make_accelerator(start.config)
    if accelerator.is_main_process:
        _clean_leftovers(start.run_dir if resumed else start.config.output_dir, resumed=resumed)
    start.check_processes(accelerator.num_processes)  # before any data is read
    config, sources = _with_sources(start.config, accelerator.print)
    pipe = with_objective(load_pipeline(sources.pretrained), config)
    data = _load_training_data(config, pipe.mel, accelerator, progress)
    run_dir = start.run_dir if resumed else _open_run_dir(accelerator, config, data, mixed_precision, sources, new_run,
                                                          base_sha256=weights_sha256(pipe.unet))
    if not resumed and accelerator.is_main_process:
        new_run.lock.take(run_dir)  # a fresh folder: so that a --resume of it while it trains is refused
    accelerator.project_configuration.logging_dir = str(run_dir)  # TensorBoard -> run_dir/logs
    loop = TrainLoop(config, accelerator, pipe, data, run_dir, new_run, progress=progress)
    if resumed:
        loop.restore(start.checkpoint)
    loop.load_validation_images()
    loop.announce()
    loop.run_loop()
    return loop.finish(mixed_precision, sources.fallback)


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the run stopped with its checkpoints intact."""


def _read_saved_config(run_dir: Path) -> dict:
    """A resumed run's training_config.json: a JSON object, or one line saying what is wrong."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise checkpoint_io.CheckpointError(f"{run_dir} has no {CONFIG_FILE}: resume a run folder (or a checkpoint "
                                            f"inside one's {CHECKPOINTS}/ folder)")
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise checkpoint_io.CheckpointError(f"can't read {path}: {type(exc).__name__}") from None
    if not isinstance(saved, dict):
        raise checkpoint_io.CheckpointError(f"{path} does not hold a JSON object of settings")
    return saved


OUTSIDE_EFFECTS = ("push_to_hub", "hub_model_id", "output_dir")  # fields a resume takes from the command line only


@dataclass(frozen=True)
class _Start:
    """Where a run starts: a new run from the configuration given, or (a resume) a checkpoint of a run
    folder, with the configuration saved there (only max_steps can be raised on the command line)."""

    config: FinetuneConfig
    checkpoint: Path | None = None
    run_dir: Path | None = None
    saved: dict = dataclasses.field(default_factory=dict)  # the resumed run's training_config.json

    @classmethod
    def find(cls, config: FinetuneConfig, resume: str | None) -> "_Start":
        if not resume:
            return cls(config)
        checkpoint = find_resume_checkpoint(resume, config.output_dir)
        checkpoint_io.check_loadable(checkpoint)  # a pickled (old or tampered) checkpoint: refused before any work
        if checkpoint.parent.name != CHECKPOINTS:  # a lone checkpoint folder: its run is not two folders up
            raise checkpoint_io.CheckpointError(f"{checkpoint} is not inside a run's {CHECKPOINTS}/ folder; resume "
                                                f"the run folder it came from")
        run_dir = checkpoint.parent.parent
        saved = _read_saved_config(run_dir)
        # The training state comes from the folder; what acts outside it (an upload, where output
        # goes) only from this command line: a shared run folder must not push to someone's hub (issue 25)
        here = {name: getattr(config, name) for name in OUTSIDE_EFFECTS}
        try:
            config = FinetuneConfig.from_dict({**saved, **here, "max_steps": config.max_steps or saved.get("max_steps")})
        except (TypeError, ValueError) as exc:  # wrong types or values written into the folder's settings
            raise checkpoint_io.CheckpointError(f"{run_dir / CONFIG_FILE} holds settings that can't be used: "
                                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        return cls(config, checkpoint, run_dir, saved)

    def check_processes(self, num_processes: int) -> None:
        """Each process trained on its own share of the tracks, so only as many processes continue exactly."""
        if self.checkpoint is None or self.config.streaming:
            return
        trained_by = self.saved.get("num_processes", 1)
        if isinstance(trained_by, bool) or not isinstance(trained_by, int) or trained_by < 1:
            raise checkpoint_io.CheckpointError(f"{self.run_dir / CONFIG_FILE}: num_processes must be a positive "
                                                f"integer, got {trained_by!r}")
        if trained_by != num_processes:
            raise ValueError(f"{self.run_dir} was trained by {trained_by} process(es), each on its own share of the "
                             f"tracks; resume it with {trained_by} (e.g. torchrun --nproc_per_node {trained_by}) to "
                             f"continue exactly")


def _make_accelerator(config: FinetuneConfig):
    """The accelerator for this process, and the precision it trains in (--mixed-precision auto resolved)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    mixed_precision = resolve_mixed_precision(config.mixed_precision, _device_type(config))
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=config.grad_accum,
        cpu=config.device == "cpu",
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=config.output_dir, logging_dir=config.output_dir),
    )
    if accelerator.distributed_type.name in ("DEEPSPEED", "FSDP"):
        # their optimiser state is sharded across processes; checkpoint.py writes whole tensors from one
        raise ValueError(f"checkpoints under {accelerator.distributed_type.name} are not supported yet (the optimiser "
                         f"state is sharded); launch with plain data parallelism (accelerate launch --multi_gpu)")
    return accelerator, mixed_precision


def _with_sources(config: FinetuneConfig, say) -> tuple[FinetuneConfig, Sources]:
    """The configuration with the model and data this run uses written in (resolve_sources), and the
    fallback's step budget when the defaults fell back offline."""
    sources = resolve_sources(config)
    if sources.fallback:
        say(sources.fallback)
        if config.max_steps is None and config.epochs is None:
            config = dataclasses.replace(config, max_steps=FALLBACK_MAX_STEPS, lr=config.lr or FALLBACK_LR)
    # Saved with the run: a resumed run uses the same model and data whatever the network does.
    return dataclasses.replace(config, pretrained=sources.pretrained, dataset=sources.dataset), sources


@dataclass(frozen=True)
class _TrainingData:
    """The genre's tracks, their validation split, and this process's loader over its training share.

    Each process trains on, and so decodes, only its share of the tracks: the ones it checked in
    load_genre (genre.owners). A stream is read whole by every process, which keeps every n-th batch."""

    genre: "GenreData"
    split: "ValidationSplit"
    loader: "torch.utils.data.DataLoader"
    sharded: bool
    processes: int
    rank: int
    stride: int  # batches of the loader per micro-step of this process
    micro_per_epoch: int
    steps_per_epoch: int
    total_steps: int


def _owners(genre, tracks, processes: int) -> list[int]:
    """The process that owns (decoded and checked) each of `tracks`: load_genre's record, else round robin."""
    return [genre.owners.get(track.name, k % processes) for k, track in enumerate(tracks)]


def _load_training_data(config: FinetuneConfig, mel: MelConfig, accelerator, progress: bool) -> _TrainingData:
    from .data import load_genre, make_dataloader, split_validation

    # the base model's Mel config travels unchanged into the fine-tuned one
    genre = load_genre(
        config.genre, mel, dataset=config.dataset, data_dir=config.data_dir, split=config.split,
        genre_column=config.genre_column, audio_column=config.audio_column, recording_column=config.recording_column,
        streaming=config.streaming, synthetic_clips_per_genre=config.synthetic_clips_per_genre,
        synthetic_seconds=config.synthetic_seconds, progress=progress and accelerator.is_main_process,
        shard=_shard(accelerator),
    )
    split = split_validation(genre.tracks, config.validation_fraction, seed=config.seed, durations=genre.durations,
                             min_held_out_seconds=mel.slice_seconds)
    train_tracks = split.train
    if not train_tracks:
        raise ValueError(f"{genre.description}: no tracks left for training after holding out validation tracks")
    sharded = not config.streaming
    processes, rank = accelerator.num_processes, accelerator.process_index
    train_owners = _owners(genre, train_tracks, processes) if sharded else None
    per_process = min(train_owners.count(p) for p in range(processes)) if sharded else len(train_tracks)
    if sharded and per_process == 0:
        raise ValueError(f"{genre.description}: {len(train_tracks)} training tracks cannot be shared among "
                         f"{processes} processes; use fewer processes or more tracks")
    loader = make_dataloader(train_tracks, mel, batch_size=config.batch_size, seed=config.seed,
                             num_workers=config.num_workers, shuffle=True,
                             drop_last=per_process >= config.batch_size,
                             **(dict(process_index=rank, num_processes=processes, owners=train_owners) if sharded else {}))
    stride = 1 if sharded else processes
    micro_per_epoch = max(1, len(loader) // stride)
    steps_per_epoch = max(1, micro_per_epoch // config.grad_accum)
    total_steps = config.max_steps or (config.epochs or DEFAULT_EPOCHS) * steps_per_epoch
    return _TrainingData(genre, split, loader, sharded, processes, rank, stride, micro_per_epoch, steps_per_epoch,
                         total_steps)


def _open_run_dir(accelerator, config: FinetuneConfig, data: _TrainingData, mixed_precision: str, sources: Sources,
                  new_run: _NewRun, base_sha256: str | None = None) -> Path:
    """A new run's folder, made by the main process with its configuration, its base's weights
    fingerprint (`pipeline.weights_sha256`) and its split, told to every process."""
    run_dir = None
    if accelerator.is_main_process:
        run_dir = new_run.folder = new_run_dir(config.output_dir, data.genre.genre or config.genre, config.run_name)
        (run_dir / CONFIG_FILE).write_text(json.dumps({**config.to_dict(), "mixed_precision_used": mixed_precision,
                                                        "num_processes": data.processes, "fallback": sources.fallback,
                                                        "pretrained_weights_sha256": base_sha256},
                                                       indent=2) + "\n")
        (run_dir / SPLIT_FILE).write_text(json.dumps(data.split.record(), indent=2) + "\n")
    return _broadcast_path(accelerator, run_dir)


class TrainLoop:
    """One process's share of a fine-tuning run, in the spirit of improved-diffusion's TrainLoop:
    __init__ builds the model, optimiser, LR schedule and EMA; `restore` continues from a checkpoint;
    `run_loop` feeds this process's micro-batches to `run_step`, which at its intervals calls
    `validate`, `log_samples` and `save`; `finish` writes the pipeline. Only the main process writes."""

    def __init__(self, config: FinetuneConfig, accelerator, pipe, data: _TrainingData, run_dir: Path,
                 new_run: _NewRun, progress: bool = True):
        from diffusers.optimization import get_cosine_schedule_with_warmup
        from diffusers.training_utils import EMAModel

        self.config, self.accelerator, self.pipe, self.data, self.run_dir = config, accelerator, pipe, data, run_dir
        self.new_run, self.progress = new_run, progress
        unet = pipe.unet
        unet.train()
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        if config.lora_rank:
            add_lora(unet, config.lora_rank)
        self.trainable = [p for p in unet.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(self.trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.lr_scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, data.total_steps)
        self.ema = (EMAModel(self.trainable, decay=config.ema_max_decay, use_ema_warmup=True, power=DEFAULT_EMA_POWER)
                    if config.ema else None)
        self.unet, self.optimizer = accelerator.prepare(unet, optimizer)
        # The LR schedule is stepped here once per optimiser step (a prepared one would advance once per
        # process), and checkpointed with the rest of the state.
        # The loader is not handed to accelerate: each process's sampler draws from its own share of the
        # tracks, in an order fixed by (seed, epoch, process), so resuming with the same number of
        # processes is exact.
        if self.ema is not None:
            self.ema.to(accelerator.device)
        self.start_step = self.step = 0  # optimiser steps: done before this invocation (a resume) / done so far
        self.loss_history: list[float] = []  # the losses of steps before this invocation (a resume)
        self.losses: list[float] = []  # this invocation's
        self.step_seconds: list[float] = []  # wall time of each of this invocation's optimiser steps
        self.val_images, self.val_rows, self.val_count = None, None, 0

    def restore(self, checkpoint: Path) -> None:
        """Continue from a checkpoint: model, optimiser, LR schedule, EMA, scaler, RNG, step and losses."""
        accelerator = self.accelerator
        self.start_step, self.loss_history = checkpoint_io.restore(
            checkpoint, unet=accelerator.unwrap_model(self.unet), optimizer=self.optimizer,
            lr_scheduler=self.lr_scheduler, ema=self.ema, grad_scaler=accelerator.scaler,
            process_index=accelerator.process_index)
        self.step = self.start_step

    def load_validation_images(self) -> None:
        """The held-out slices, fixed for the run. Each process makes (decodes) only those of tracks it
        owns; the loss is summed over processes."""
        from .data import validation_slices
        from .mel import audio_to_images

        val_tracks, mel, data = self.data.split.validation, self.pipe.mel, self.data
        if not val_tracks:
            return
        self.val_count = min(8, 2 * len(val_tracks))
        self.val_rows = list(range(self.val_count))
        if data.sharded and data.processes > 1:
            val_owner = _owners(data.genre, val_tracks, data.processes)
            self.val_rows = [k for k in self.val_rows if val_owner[k % len(val_tracks)] == data.rank]
        val_audio = validation_slices(val_tracks, mel, count=self.val_count, seed=self.config.seed, indices=self.val_rows)
        val_images = audio_to_images(val_audio, mel) if self.val_rows else torch.zeros(0, 1, mel.y_res, mel.x_res)
        self.val_images = val_images.to(self.accelerator.device)

    def announce(self) -> None:
        """Start the TensorBoard log and say in one line what this run trains, on what, for how long."""
        accelerator, config, data, genre, pipe = self.accelerator, self.config, self.data, self.data.genre, self.pipe
        if not accelerator.is_main_process:
            return
        accelerator.init_trackers("logs", config={k: v for k, v in config.to_dict().items() if v is not None and not isinstance(v, (list, dict))})
        mel, skipped = pipe.mel, sum(genre.skipped.values())
        accelerator.print(
            f"fine-tuning {pipe.source} ({sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.1f} M parameters, "
            f"{mel.x_res}x{mel.y_res} Mel images at {mel.sample_rate} Hz) on {genre.description}: "
            f"{len(data.split.train)} training + {len(data.split.validation)} validation tracks "
            f"({data.split.describe()}), {skipped} files skipped; "
            f"{data.total_steps} steps of batch {config.batch_size}x{config.grad_accum}x{accelerator.num_processes} "
            f"({data.steps_per_epoch} steps per epoch) on {accelerator.device}"
            + (f", resuming at step {self.start_step}" if self.start_step else "")
        )

    def run_loop(self) -> None:
        """Train to the last step, epoch after epoch, on this process's micro-batches of each; on a
        resume the micro-batches the killed run already trained on are skipped."""
        data = self.data
        self.bar = tqdm(total=data.total_steps, initial=self.start_step, desc="fine-tuning", unit="step",
                        disable=not (self.progress and self.accelerator.is_main_process), dynamic_ncols=True)
        self.micro = self.step * self.config.grad_accum  # micro-batches done, over all epochs
        self.last_step_time = time.perf_counter()
        while self.step < data.total_steps:
            epoch, skip = divmod(self.micro, data.micro_per_epoch)
            data.loader.dataset.set_epoch(epoch)
            if hasattr(data.loader.sampler, "set_epoch"):
                data.loader.sampler.set_epoch(epoch)
            for index, images in enumerate(data.loader):
                position, mine = divmod(index, data.stride)
                if mine != (data.rank if data.stride > 1 else 0) or position >= data.micro_per_epoch:
                    continue
                if position < skip:
                    continue  # already trained on before the resume
                self.run_step(images, epoch)
                if self.step >= data.total_steps:
                    break
        self.bar.close()

    def run_step(self, images: torch.Tensor, epoch: int) -> None:
        """One micro-batch (B, 1, H, W): forward and backward; on the last of an accumulation, the optimiser step."""
        accelerator, config = self.accelerator, self.config
        images = images.to(accelerator.device)
        with accelerator.accumulate(self.unet):
            generator = step_generator(config.seed, self.micro * accelerator.num_processes + accelerator.process_index)
            loss, per_item, timesteps = diffusion_loss(self.unet, self.pipe.scheduler, images, generator,
                                                       snr_gamma=self.config.snr_gamma)
            self._stop_unless_finite(loss)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(self.trainable, config.max_grad_norm)
            self.optimizer.step()
            if accelerator.sync_gradients:
                self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.micro += 1
        if accelerator.sync_gradients:
            self._after_optimizer_step(loss, per_item, timesteps, epoch)

    def _stop_unless_finite(self, loss: torch.Tensor) -> None:
        """Stop at the first non-finite loss, before it reaches the weights: the checkpoints written so
        far are the last good ones (issue 25). Every process stops together."""
        finite = torch.isfinite(loss.detach()).float().reshape(1)
        if self.accelerator.num_processes > 1:
            finite = self.accelerator.gather(finite).min().reshape(1)
        if finite.item() == 1.0:
            return
        kept = list_checkpoints(self.run_dir)
        where = f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint was written yet"
        raise TrainingDiverged(f"the loss became {loss.item()} at step {self.step + 1}, so training stopped; {where} "
                               f"(lower --lr, then --resume from it)")

    def _after_optimizer_step(self, loss, per_item, timesteps, epoch: int) -> None:
        """EMA update, logs (loss, lr, loss per timestep quarter), and validation, samples and a
        checkpoint when their step comes."""
        accelerator, config, step = self.accelerator, self.config, self.step + 1
        self.step = step
        self.new_run.trained = True
        if self.ema is not None:
            self.ema.step(self.trainable)
        loss_value = accelerator.gather(loss.detach()[None]).mean().item()
        self.losses.append(loss_value)
        lr_now = self.lr_scheduler.get_last_lr()[0]
        logs = {"loss": loss_value, "lr": lr_now, "epoch": epoch,
                **timestep_quarter_losses(per_item, timesteps, self.pipe.scheduler.config.num_train_timesteps)}
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr_now:.2e}")
        last = step == self.data.total_steps
        if self.val_images is not None and (step % config.validate_every == 0 or last):
            logs["val_loss"] = self.validate()
        accelerator.log(logs, step=step)
        if accelerator.is_main_process and step % config.sample_every == 0:
            self.log_samples()
        if step % config.checkpoint_every == 0 or last:
            self.save()
        now = time.perf_counter()
        self.step_seconds.append(now - self.last_step_time)
        self.last_step_time = now

    def validate(self) -> float:
        """The EMA model's validation loss over every process's held-out slices (validation_loss)."""
        accelerator = self.accelerator
        return validation_loss(accelerator.unwrap_model(self.unet), self.ema, self.trainable, self.pipe.scheduler,
                               self.val_images, rows=self.val_rows, total_rows=self.val_count,
                               reduce_sum=lambda t: accelerator.reduce(t, "sum"))

    def log_samples(self, count: int = 2) -> None:
        """Generate `count` slices from fixed seeds with the EMA weights and log audio + spectrograms."""
        from .mel import images_to_audio
        from .sample import make_scheduler, sample

        pipe, step = self.pipe, self.step
        unet = self.accelerator.unwrap_model(self.unet)
        tracker = self.accelerator.get_tracker("tensorboard", unwrap=True)
        with ema_weights(self.ema, self.trainable):
            unet.eval()
            with torch.no_grad():
                images = sample(unet, make_scheduler("ddim", pipe.scheduler), batch_size=count, width=pipe.mel.x_res,
                                num_inference_steps=self.config.sample_steps, seed=self.config.seed, progress=False)
            unet.train()
        audio = images_to_audio(images.float().cpu(), pipe.mel)
        peak = audio.abs().amax(dim=-1, keepdim=True).clamp_min(1e-6)
        for i in range(count):
            tracker.add_audio(f"sample_{i}", (audio[i] / peak[i]).unsqueeze(0), step, sample_rate=pipe.mel.sample_rate)
            tracker.add_image(f"spectrogram_{i}", ((images[i].float().cpu() + 1) / 2).flip(-2), step)

    def save(self) -> Path:
        """Write the full state (checkpoint.py: safetensors + JSON) under a temporary name, then rename:
        the rename is atomic, so a checkpoint folder named step-N is always complete. Only the main
        process writes; every process hands it its RNG state. Keeps the newest `keep_checkpoints`."""
        accelerator, run_dir, step = self.accelerator, self.run_dir, self.step
        accelerator.wait_for_everyone()
        rng_states = [checkpoint_io.rng_state()]
        if accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            rng_states = [json.loads(text) for text in gather_object([json.dumps(rng_states[0])])]
        final = run_dir / CHECKPOINTS / f"step-{step:06d}"
        if accelerator.is_main_process:
            temporary = run_dir / CHECKPOINTS / f".tmp-step-{step:06d}"
            shutil.rmtree(temporary, ignore_errors=True)
            temporary.mkdir(parents=True)
            checkpoint_io.write_checkpoint(
                temporary, unet=accelerator.unwrap_model(self.unet), optimizer=self.optimizer,
                lr_scheduler=self.lr_scheduler, ema=self.ema, grad_scaler=accelerator.scaler, step=step,
                loss_history=self.loss_history + self.losses, rng_states=rng_states, config=self.config.to_dict())
            _fsync_tree(temporary)
            if final.exists():
                shutil.rmtree(final)
            os.replace(temporary, final)
            for old in list_checkpoints(run_dir)[:-self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        return final

    def finish(self, mixed_precision: str, fallback: str | None) -> RunResult:
        """The main process writes the fine-tuned pipeline (EMA weights, LoRA merged) and its model card."""
        from .pipeline import save_pipeline

        accelerator, config, data = self.accelerator, self.config, self.data
        decoded = self._decoded_tracks()
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            with ema_weights(self.ema, self.trainable):
                result_unet = merged_unet(accelerator.unwrap_model(self.unet))
            result_unet.to("cpu")  # master weights are float32 even under mixed precision
            self.pipe.unet = result_unet
            save_pipeline(self.pipe, self.run_dir, unet=result_unet, overwrite=True)
            write_model_card(self.run_dir, config, self.pipe, config.pretrained, data.genre, len(data.split.train),
                             len(data.split.validation), self.step, self.loss_history + self.losses,
                             fallback=fallback, mixed_precision_used=mixed_precision, split=data.split.describe())
            if config.push_to_hub:
                push_to_hub(self.run_dir, config.hub_model_id)
            accelerator.print(f"fine-tuned pipeline written to {self.run_dir}")
        accelerator.end_training()
        return RunResult(run_dir=self.run_dir, steps=self.step, final_loss=self.losses[-1] if self.losses else float("nan"),
                         losses=self.losses, step_seconds=self.step_seconds, decoded_tracks=decoded)

    def _decoded_tracks(self) -> list[int] | None:
        """How many tracks each process decoded (None when streaming); said when there are several."""
        from .data import decoded_track_count

        if not self.data.sharded:
            return None
        decoded = [decoded_track_count(self.data.genre.tracks)]
        if self.data.processes > 1:
            from accelerate.utils import gather_object

            decoded = gather_object(decoded)
            self.accelerator.print(f"tracks decoded per process: {', '.join(map(str, decoded))} "
                                   f"(of {len(self.data.genre.tracks)})")
        return decoded


def _shard(accelerator):
    """Each process decodes and checks its share of the tracks (data.Shard); None for one process."""
    if accelerator.num_processes == 1:
        return None
    from accelerate.utils import gather_object

    from .data import Shard

    return Shard(accelerator.process_index, accelerator.num_processes, lambda obj: gather_object([obj]))


def _is_main_launch() -> bool:
    """The launch's main process (torchrun and accelerate set RANK), known before the accelerator exists."""
    return os.environ.get("RANK", "0") == "0"


def _clean_leftovers(folder: Path, resumed: bool) -> None:
    """What kills left behind: staging folders of final pipeline saves (in --output-dir, or the resumed
    run's), and the resumed run's unfinished checkpoint folders (never the latest complete one)."""
    from .pipeline import clean_stale_staging

    folder = Path(folder)
    if not resumed:
        clean_stale_staging(folder)
        return
    clean_stale_staging(folder.parent, folder.name)
    checkpoints = folder / CHECKPOINTS
    for temporary in checkpoints.glob(".tmp-step-*") if checkpoints.is_dir() else []:
        shutil.rmtree(temporary, ignore_errors=True)


def _broadcast_path(accelerator, path):
    """The main process's run folder, told to every process."""
    if accelerator.num_processes == 1:
        return path
    from accelerate.utils import broadcast_object_list

    holder = [str(path) if path is not None else None]
    broadcast_object_list(holder, from_process=0)
    return Path(holder[0])


@contextmanager
def ema_weights(ema, trainable):
    """Inside the block the parameters `trainable` hold the EMA weights; afterwards (even after an
    error) their training values again. No EMA (None): the block runs on the training weights."""
    if ema is None:
        yield
        return
    ema.store(trainable)
    ema.copy_to(trainable)
    try:
        yield
    finally:
        ema.restore(trainable)


@torch.no_grad()
def validation_loss(unet, ema, trainable, scheduler, images: torch.Tensor, num_timesteps: int = 8,
                    rows: list[int] | None = None, total_rows: int | None = None, reduce_sum=None) -> float:
    """Noise-prediction MSE of the (EMA) model on held-out slices at fixed timesteps and fixed noise:
    comparable from step to step, unlike the training loss.

    Spread over processes: `images` are rows `rows` of the run's `total_rows` validation slices
    (possibly none), each keeps the noise it would have in one batch, and `reduce_sum` (a sum over
    processes) makes every process return the mean over all of them."""
    with ema_weights(ema, trainable):
        was_training = unet.training
        unet.eval()
        total = scheduler.config.num_train_timesteps
        fixed = torch.linspace(0, total - 1, num_timesteps).long()
        rows = list(range(images.shape[0])) if rows is None else rows
        total_rows = images.shape[0] if total_rows is None else total_rows
        sums = torch.zeros(2, dtype=torch.float64)  # (sum of per-item losses, count)
        for t in fixed:
            generator = torch.Generator().manual_seed(int(t))
            noise = torch.randn((total_rows, *images.shape[1:]), generator=generator)[rows]  # (N, 1, H, W)
            if images.shape[0]:
                timesteps = torch.full((images.shape[0],), int(t), dtype=torch.long)
                _, per_item, _ = diffusion_loss(unet, scheduler, images, generator, timesteps, noise=noise)
                sums += torch.tensor([per_item.double().sum().item(), images.shape[0]], dtype=torch.float64)
        unet.train(was_training)
    if reduce_sum is not None:
        sums = reduce_sum(sums.float().to(images.device)).double().cpu()
    return float(sums[0] / sums[1]) if sums[1] > 0 else float("nan")


def _fsync_tree(folder: Path) -> None:
    from .pipeline import fsync_path

    for path in folder.rglob("*"):
        if path.is_file():
            fsync_path(path)


def write_model_card(run_dir: Path, config: FinetuneConfig, pipe, pretrained: str, data, n_train: int, n_val: int,
                     steps: int, losses: list[float], fallback: str | None = None,
                     mixed_precision_used: str | None = None, split: str | None = None) -> Path:
    mel = pipe.mel
    precision = mixed_precision_used or config.mixed_precision
    if config.mixed_precision == "auto" and mixed_precision_used:
        precision += " (chosen by --mixed-precision auto)"
    final_loss = f"{sum(losses[-20:]) / len(losses[-20:]):.4f}" if losses else "n/a"
    card = f"""---
library_name: diffusers
tags: [audio-diffusion, audiodiff, music, {(data.genre or 'music').lower()}]
---
# {run_dir.name}

An unconditional audio-diffusion pipeline (Mel-spectrogram UNet) fine-tuned with
[audiodiff](https://github.com/) on **{data.genre or 'all genres'}**.

| | |
|---|---|
| base model | `{pretrained}` |
| genre | {data.genre or 'all'} |
| data | {data.description}: {n_train} training tracks, {n_val} held out ({sum(data.skipped.values())} files skipped) |
| validation | {split or 'n/a'}; exactly what: `{SPLIT_FILE}` |
| steps | {steps} (batch {config.batch_size} x accumulation {config.grad_accum}) |
| learning rate | {config.learning_rate:g}, {config.warmup_steps} warm-up steps, cosine decay; AdamW, weight decay {config.weight_decay:g} |
| EMA | {'yes (max decay %g, warm-up power %g)' % (config.ema_max_decay, DEFAULT_EMA_POWER) if config.ema else 'no'} |
| LoRA | {('rank %d, merged into the weights' % config.lora_rank) if config.lora_rank else 'no (full fine-tune)'} |
| mixed precision | {precision} |
| seed | {config.seed} |
| final training loss (mean of the last 20 steps) | {final_loss} |
| Mel | {mel.x_res}x{mel.y_res}, {mel.sample_rate} Hz, n_fft {mel.n_fft}, hop {mel.hop_length}, top_db {mel.top_db} (the base model's, unchanged) |

{('> Note: ' + fallback + chr(10)) if fallback else ''}
The full configuration is in `{CONFIG_FILE}`; TensorBoard logs in `logs/`.

## Generate

```bash
python scripts/generate.py --model {run_dir} --seconds 30
```

It also loads in diffusers: `AudioDiffusionPipeline.from_pretrained("{run_dir}")`
(`from diffusers.pipelines.deprecated import AudioDiffusionPipeline`).
"""
    path = run_dir / "README.md"
    path.write_text(card)
    return path


def push_to_hub(run_dir: Path, repo_id: str, api=None) -> str:
    """Upload the pipeline folder (not its checkpoints) to the hub; returns the repo URL."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(run_dir), ignore_patterns=[f"{CHECKPOINTS}/*", ".tmp*", checkpoint_io.LOCK_FILE],
                      commit_message=f"Upload {run_dir.name} (audiodiff fine-tune)")
    return f"https://huggingface.co/{repo_id}"
