"""What a UNet learns: the target its scheduler names and each timestep's weight in the loss.

The loss targets what the scheduler's `prediction_type` says the model predicts (the noise, the
velocity or the clean image), so fine-tuning keeps a model's own objective; a preset trained from
scratch may take another (`with_objective`). Min-SNR weighting (Hang et al. 2023) is optional.
Why the bundled recipe predicts the velocity is measured in docs/tonality.md. The held-out loss
(`validation_loss`) is measured with the EMA weights swapped in (`ema_weights`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .finetune_config import FinetuneConfig


PREDICTION_TYPES = (None, "epsilon", "v_prediction")


def with_objective(pipe, config: "FinetuneConfig"):
    """`pipe` set to train `config.prediction_type`. A preset starts from random weights, so it takes
    any; a trained model keeps its own (a new target would undo what it learned): asking another
    is a ValueError."""
    from diffusers import DDPMScheduler

    from .presets import PRESETS

    wanted = config.prediction_type
    own = getattr(pipe.scheduler.config, "prediction_type", "epsilon")
    if wanted is None or wanted == own:
        return pipe
    if getattr(pipe, "source", None) not in PRESETS:
        raise ValueError(f"--prediction-type {wanted}: {config.pretrained or 'the pretrained model'} was trained "
                         f"with {own}; a new target applies to a preset trained from scratch")
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config, prediction_type=wanted)
    return pipe


def _target_and_weight(scheduler, images, noise, timesteps, snr_gamma: float | None):
    """What the model learns to predict (its scheduler's prediction_type: the noise, the velocity
    sqrt(a) noise - sqrt(1 - a) x0, or the clean image) and each item's loss weight: 1, or min-SNR-gamma
    (min(SNR, gamma) / SNR for the noise, / (SNR + 1) for the velocity, itself for the image)."""
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    target = {"v_prediction": lambda: scheduler.get_velocity(images, noise, timesteps),
              "sample": lambda: images}.get(kind, lambda: noise)()
    if snr_gamma is None:
        return target, None
    alpha_bar = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = alpha_bar / (1.0 - alpha_bar)
    clipped = snr.clamp(max=snr_gamma)
    weight = {"v_prediction": clipped / (snr + 1.0), "sample": clipped}.get(kind, clipped / snr)
    return target, weight


def diffusion_loss(unet, scheduler, images: torch.Tensor, generator: torch.Generator, timesteps=None, noise=None,
                   snr_gamma: float | None = None, **unet_kwargs):
    """MSE between the model's output and its target (the added noise, the velocity or the clean
    image, as its scheduler's prediction_type says) at uniform random timesteps, optionally weighted
    by min-SNR-`snr_gamma`.

    images: (B, 1, H, W) clean Mel images in [-1, 1]. Noise and timesteps come from `generator`
    (CPU) so that they do not depend on the device or on the number of processes.
    noise: the noise to add instead of drawing it (then only the timesteps come from `generator`).
    unet_kwargs: passed to the UNet (a conditional one's encoder_hidden_states).
    Returns (loss over the batch, per-item losses (B,), timesteps (B,)).
    """
    batch = images.shape[0]
    if noise is None:
        noise = torch.randn(images.shape, generator=generator)
    noise = noise.to(images.device, images.dtype)
    if timesteps is None:
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator)
    timesteps = timesteps.to(images.device)
    noisy = scheduler.add_noise(images, noise, timesteps)
    predicted = unet(noisy, timesteps, **unet_kwargs).sample
    target, weight = _target_and_weight(scheduler, images, noise, timesteps, snr_gamma)
    per_item = F.mse_loss(predicted.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    loss = per_item.mean() if weight is None else (per_item * weight).mean()
    return loss, per_item.detach(), timesteps.detach().cpu()


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
