"""Fine-tuning: a pretrained (or preset) audio-diffusion pipeline + one genre's audio -> a new pipeline.

Runs on accelerate, so the same code runs on a CPU, one GPU, several GPUs or nodes
(`accelerate launch --config_file configs/accelerate/<setup>.yaml scripts/finetune.py ...`): each
process reads and decodes only its share of the tracks, and only the main process writes
checkpoints, logs and the result.

`finetune` runs a fine-tune in stages, `TrainLoop` one process's share of its steps. Elsewhere: the
configuration (finetune_config.py), what a run leaves in its folder and where a resume starts
(runs.py), the model and data used when none is named, with the offline fallback
(model_choice.py), LoRA (lora.py), the model card and the hub push (model_card.py).

Determinism: the noise and timesteps of step s come from a generator seeded with (seed, s) and the
data of epoch e from (seed, e) (and the process), so a resumed run continues exactly where the
killed one stopped, given the same number of processes.
"""

from __future__ import annotations

import dataclasses
import math
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from . import checkpoint as checkpoint_io
from .objective import (PREDICTION_TYPES, _target_and_weight, diffusion_loss, ema_weights,  # noqa: F401
                        validation_loss, with_objective)
from .mel import MelConfig
from .staging import check_writable_folder, fsync_path
# Names that moved out of this module, imported from here too (scripts/finetune.py, tests, bundle.py,
# benchmarks):
from .finetune_config import (  # noqa: F401
    DEFAULT_BATCH_SIZE, DEFAULT_DATASET, DEFAULT_EMA_POWER, DEFAULT_EPOCHS, DEFAULT_LORA_LR, DEFAULT_LR,
    DEFAULT_WARMUP_STEPS, FLAG_SPELLINGS, MAX_SEED, MIXED_PRECISIONS, FinetuneConfig,
)
from .lora import add_lora, merged_unet  # noqa: F401
from .latent_cache import unet_kwargs, validation_unet
from .latent_training import model_input, sample_images
from .model_card import push_to_hub, write_model_card
from .model_choice import FALLBACK_LR, FALLBACK_MAX_STEPS, Sources, resolve_sources, with_sources  # noqa: F401
from .runs import (  # noqa: F401
    CHECKPOINTS, CONFIG_FILE, SPLIT_FILE, STATE_FILE, RunStart, clean_leftovers, find_resume_checkpoint,
    list_checkpoints, new_run_dir,
)

if TYPE_CHECKING:  # annotations of _TrainingData
    from .data import GenreData, ValidationSplit


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
    from .model import weights_sha256
    from .conditioning import training_encodings
    from .latent_cache import cache_training_inputs
    from .vae_training import check_vae_run, finetune_vae
    from .pipeline import load_pipeline

    start = RunStart.find(config, resume)
    resumed = start.checkpoint is not None
    check_writable_folder(start.run_dir if resumed else start.config.output_dir,
                          "the run folder" if resumed else "--output-dir")
    if resumed and _is_main_launch():
        new_run.lock.take(start.run_dir)  # before anything in it is touched (issue 25)
    accelerator, mixed_precision = _make_accelerator(start.config)
    if accelerator.is_main_process:
        clean_leftovers(start.run_dir if resumed else start.config.output_dir, resumed=resumed)
    start.check_processes(accelerator.num_processes)  # before any data is read
    config, sources = with_sources(start.config, accelerator.print)
    pipe = load_pipeline(sources.pretrained)
    check_vae_run(pipe, config, accelerator.num_processes)  # these two before any data is read
    encodings = None if config.train_vae else training_encodings(pipe, config.encoding, config.cond_dropout, config.streaming)
    pipe = with_objective(pipe, config)
    data = _load_training_data(config, pipe.mel, accelerator, progress)
    data = cache_training_inputs(pipe, config, data, encodings, accelerator.print)  # latent/conditional only
    run_dir = start.run_dir if resumed else _open_run_dir(accelerator, config, data, mixed_precision, sources, new_run,
                                                          base_sha256=weights_sha256(pipe.unet))
    if not resumed and accelerator.is_main_process:
        new_run.lock.take(run_dir)  # a fresh folder: so that a --resume of it while it trains is refused
    if config.train_vae:  # a run of its own: the VAE, checkpointed as the UNet is (vae_training.py)
        return finetune_vae(config, accelerator, pipe, data, run_dir, start.checkpoint, new_run)
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
    draws_per_track: int = 1  # slices of each training track per epoch (draws_per_track)
    encodings: dict | None = None  # conditional pipelines: track name -> (D,) encoding
    inputs_record: dict | None = None  # latent/conditional pipelines: the cache and the scaling factor (latent_cache)


def draws_per_track(tracks: int, batch: int) -> int:
    """Slices drawn from each training track per epoch: 1, or as many as fill one batch when there
    are fewer tracks than a batch holds. An epoch is one slice per track; with a folder of one or
    two long recordings that made every batch one or two slices (the README's `--data-dir
    ../shared/music` fine-tune trained 300 steps of batch 1 out of 8)."""
    return max(1, math.ceil(batch / max(1, tracks)))


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
    draws = draws_per_track(len(train_tracks), config.batch_size * processes) if sharded else 1
    train_tracks = list(train_tracks) * draws  # each drawn `draws` times an epoch, at its own offsets
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
                         total_steps, draws_per_track=draws)


def _open_run_dir(accelerator, config: FinetuneConfig, data: _TrainingData, mixed_precision: str, sources: Sources,
                  new_run: _NewRun, base_sha256: str | None = None) -> Path:
    """A new run's folder, made by the main process with its configuration, its base's weights
    fingerprint (`model.weights_sha256`) and its split, told to every process."""
    run_dir = None
    if accelerator.is_main_process:
        run_dir = new_run.folder = new_run_dir(config.output_dir, data.genre.genre or config.genre, config.run_name)
        (run_dir / CONFIG_FILE).write_text(json.dumps({**config.to_dict(), "mixed_precision_used": mixed_precision,
                                                        "num_processes": data.processes, "fallback": sources.fallback,
                                                        "pretrained_weights_sha256": base_sha256,
                                                        "model_inputs": data.inputs_record},
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
        self.val_images = model_input(self.pipe, val_images.to(self.accelerator.device))

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
            + (f"{data.draws_per_track} slices of each training track per epoch, to fill a batch; " if data.draws_per_track > 1 else "")
            + f"{data.total_steps} steps of batch {config.batch_size}x{config.grad_accum}x{accelerator.num_processes} "
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
        batch = images.to(accelerator.device)
        images = model_input(self.pipe, batch)  # latents for a latent pipeline
        with accelerator.accumulate(self.unet):
            generator = step_generator(config.seed, self.micro * accelerator.num_processes + accelerator.process_index)
            loss, per_item, timesteps = diffusion_loss(self.unet, self.pipe.scheduler, images, generator,
                                                       snr_gamma=self.config.snr_gamma, **unet_kwargs(batch))
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
        unet = validation_unet(accelerator.unwrap_model(self.unet), self.data, self.val_rows)
        return validation_loss(unet, self.ema, self.trainable, self.pipe.scheduler,
                               self.val_images, rows=self.val_rows, total_rows=self.val_count,
                               reduce_sum=lambda t: accelerator.reduce(t, "sum"))

    def log_samples(self, count: int = 2) -> None:
        """Generate `count` slices from fixed seeds with the EMA weights and log audio + spectrograms."""
        from .mel import images_to_audio

        pipe, step = self.pipe, self.step
        unet = self.accelerator.unwrap_model(self.unet)
        tracker = self.accelerator.get_tracker("tensorboard", unwrap=True)
        with ema_weights(self.ema, self.trainable):
            unet.eval()
            with torch.no_grad():
                images = sample_images(pipe, unet, count, self.config.sample_steps, self.config.seed, self.data.encodings)
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
                             fallback=fallback, mixed_precision_used=mixed_precision, split=data.split.describe(),
                             model_inputs=data.inputs_record)
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


def _broadcast_path(accelerator, path):
    """The main process's run folder, told to every process."""
    if accelerator.num_processes == 1:
        return path
    from accelerate.utils import broadcast_object_list

    holder = [str(path) if path is not None else None]
    broadcast_object_list(holder, from_process=0)
    return Path(holder[0])


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fsync_path(path)
