"""`--train-vae`: fine-tune a latent pipeline's VAE on the genre, as a run of its own (the
reference's train_vae.py is a script of its own too), before fine-tuning the UNet on its latents.

A VAE run trains the AutoencoderKL of `vqvae/` as an autoencoder on the genre's Mel images (the
reconstruction's mean squared error plus a small KL term, KL_WEIGHT, on a draw from the
posterior), checkpoints it as a UNet run is checkpointed (checkpoints/step-N, safetensors + JSON,
so `--resume` continues it exactly), and saves the pipeline with the fine-tuned VAE and the UNet
unchanged. Whether it paid is measured: the VAE's round trip on the held-out slices (mean absolute
error on the [-1, 1] Mel image of their latents decoded), before and after, is printed and written
to the run's `vae_round_trip.json` and README. The UNet was trained on the old VAE's latents, so
fine-tune it next: `finetune.py --pretrained RUN_FOLDER` (its latents are then the new VAE's).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

from . import checkpoint as checkpoint_io
from .runs import CHECKPOINTS, list_checkpoints

DEFAULT_VAE_LR = 1e-5  # small: the VAE is already trained, and the UNet's latents move with it
KL_WEIGHT = 1e-6  # keeps the posterior near the prior without blurring the reconstruction (LDM's KL-f8 is 1e-6)
ROUND_TRIP_FILE = "vae_round_trip.json"


def check_vae_run(pipe, config, processes: int) -> None:
    """Refuse, before any data is read, a VAE run that can't be: no VAE, LoRA, several processes."""
    if not config.train_vae:
        if config.vae_lr is not None:
            raise ValueError("--vae-lr is for --train-vae runs")
        return
    if getattr(pipe, "vqvae", None) is None:
        raise ValueError(f"--train-vae fine-tunes a latent pipeline's VAE; {pipe.source} has none (no vqvae/)")
    if config.lora_rank or processes > 1 or config.streaming or config.grad_accum > 1:
        raise ValueError("--train-vae runs in one process, on all the VAE's weights, on local data, a batch a step: "
                         "drop --lora-rank, --streaming, --grad-accum or the extra processes")


@torch.no_grad()
def round_trip(vae_pipe, images: torch.Tensor) -> float:
    """Mean absolute error of the VAE's round trip (posterior mean, decoded) on Mel images (B, 1, H, W)."""
    vae_pipe.vqvae.eval()
    return round(float((vae_pipe.decode(vae_pipe.encode(images)) - images.cpu()).abs().mean()), 5)


def vae_loss(vae, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    posterior = vae.encode(images).latent_dist
    draw = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(images.device)
    return torch.nn.functional.mse_loss(vae.decode(draw).sample, images) + KL_WEIGHT * posterior.kl().mean()


def _held_out_images(config, data, mel) -> torch.Tensor:
    """The fixed slices the round trip is measured on: held-out tracks' (else training tracks')."""
    from .data import validation_slices
    from .mel import audio_to_images

    tracks = data.split.validation or data.split.train
    return audio_to_images(validation_slices(tracks, mel, count=min(8, 2 * len(tracks)), seed=config.seed), mel)


def _save(run_dir: Path, step: int, vae, optimizer, lr_scheduler, losses: list, config, before: float) -> None:
    """A checkpoint written under a temporary name and renamed (as TrainLoop.save); the newest kept."""
    final, temporary = run_dir / CHECKPOINTS / f"step-{step:06d}", run_dir / CHECKPOINTS / f".tmp-step-{step:06d}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    checkpoint_io.write_checkpoint(temporary, unet=vae, optimizer=optimizer, lr_scheduler=lr_scheduler, ema=None,
                                   grad_scaler=None, step=step, loss_history=losses,
                                   rng_states=[checkpoint_io.rng_state()],
                                   config={**config.to_dict(), "vae_round_trip_before": before})
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    for old in list_checkpoints(run_dir)[:-config.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)


def finetune_vae(config, accelerator, pipe, data, run_dir: Path, checkpoint: Path | None, new_run):
    """Train the VAE for the run's steps (resuming from `checkpoint`), save the pipeline with it, and
    return train.RunResult; the round trip before and after is printed and recorded."""
    from .train import RunResult, step_generator

    vae, device, say = pipe.vqvae, accelerator.device, accelerator.print
    held_out = _held_out_images(config, data, pipe.mel)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr or DEFAULT_VAE_LR, weight_decay=0.0)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    step, losses, seconds = 0, [], []
    if checkpoint is not None:
        before = float(checkpoint_io.check_loadable(checkpoint)["config"]["vae_round_trip_before"])
        step, losses = checkpoint_io.restore(checkpoint, unet=vae, optimizer=optimizer, lr_scheduler=lr_scheduler,
                                             ema=None, grad_scaler=None)
    else:
        before = round_trip(pipe.to(device), held_out)
    say(f"fine-tuning the VAE of {pipe.source} for {data.total_steps} steps of batch {config.batch_size} "
        f"(its round trip on {held_out.shape[0]} held-out slices: {before:.4f} before)")
    vae.to(device).requires_grad_(True)
    while step < data.total_steps:
        epoch, skip = divmod(step, data.micro_per_epoch)
        data.loader.dataset.set_epoch(epoch)
        for index, images in enumerate(data.loader):
            if index < skip:
                continue  # trained on before the resume
            started = time.perf_counter()
            vae.train()
            loss = vae_loss(vae, images.to(device), step_generator(config.seed, step))
            if not torch.isfinite(loss):
                raise ValueError(f"the VAE's loss became {loss.item()} at step {step + 1}; lower --vae-lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), config.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            step, new_run.trained = step + 1, True
            losses.append(float(loss.detach()))
            seconds.append(time.perf_counter() - started)
            if step % config.checkpoint_every == 0 or step == data.total_steps:
                _save(run_dir, step, vae, optimizer, lr_scheduler, losses, config, before)
            if step >= data.total_steps:
                break
    return RunResult(run_dir=_finish(pipe, run_dir, before, round_trip(pipe, held_out), step, say),
                     steps=step, final_loss=losses[-1] if losses else float("nan"), losses=losses, step_seconds=seconds)


def _finish(pipe, run_dir: Path, before: float, after: float, steps: int, say) -> Path:
    """Save the pipeline (the new VAE, the UNet as it came) and say whether the VAE run paid."""
    from .pipeline import save_pipeline

    pipe.vqvae.requires_grad_(False).eval().to("cpu")
    pipe.unet.to("cpu")
    save_pipeline(pipe, run_dir, overwrite=True)
    record = {"steps": steps, "vae_round_trip_before": before, "vae_round_trip_after": after,
              "measure": "mean absolute error on the [-1, 1] Mel image of held-out slices, encoded and decoded"}
    (run_dir / ROUND_TRIP_FILE).write_text(json.dumps(record, indent=2) + "\n")
    verdict = "it paid" if after < before else "it did not pay: keep the base model's VAE"
    (run_dir / "README.md").write_text(
        f"# {run_dir.name}\n\nThe VAE of a latent audio-diffusion pipeline fine-tuned with audiodiff for {steps} steps "
        f"(`--train-vae`); the UNet is the base model's, unchanged.\n\nThe VAE's round trip on held-out slices (mean "
        f"absolute error on the [-1, 1] Mel image): {before:.4f} before, {after:.4f} after: {verdict}.\n\n"
        f"Fine-tune the UNet on the new VAE's latents next:\n\n```bash\npython scripts/finetune.py --pretrained "
        f"{run_dir}\n```\n")
    say(f"the VAE's round trip on held-out slices: {before:.4f} before, {after:.4f} after ({verdict})")
    say(f"fine-tuned pipeline written to {run_dir}")
    return run_dir
