"""Fine-tuning a latent pipeline: the UNet learns the VAE's latents of the genre's Mel images, the
VAE stays frozen and travels unchanged into the fine-tuned pipeline (as the Mel configuration does).

TrainLoop (train.py) calls `model_input` on every micro-batch and on the validation slices, and
`sample_images` for its logged samples; for a Mel-image pipeline both are what it did before.
The latents are computed once per slice of a fixed grid before the first step (latent_cache.py),
the posterior's mean; the loop's batches then hold them (a stream's are computed per micro-batch).
"""

from __future__ import annotations

import torch


def model_input(pipe, images: torch.Tensor) -> torch.Tensor:
    """What the UNet is trained on: the Mel images (B, 1, H, W), or for a latent pipeline their
    scaled latents (B, C, H / f, W / f), computed without gradients by the frozen VAE. A batch the
    latent cache made (latent_cache.TrainingBatch) holds them already."""
    cached = getattr(images, "inputs", None)
    if cached is not None:
        return cached
    vqvae = getattr(pipe, "vqvae", None)
    if vqvae is None:
        return images
    vqvae.requires_grad_(False)
    vqvae.to(images.device).eval()
    return pipe.encode(images).to(images.dtype)


@torch.no_grad()
def sample_images(pipe, unet, count: int, num_inference_steps: int, seed: int,
                  encodings: dict | None = None) -> torch.Tensor:
    """`count` Mel images (one slice each, DDIM) from `unet` for the run's logs: sampled on the Mel
    image, or on latents (unclipped) and decoded through the VAE; a conditional UNet conditioned on
    the first track's encoding (`encodings`: track name -> (D,))."""
    from .sampling.loop import sample
    from .sampling.schedulers import make_scheduler

    if encodings:
        from .conditioning import ConditionedUNet

        unet = ConditionedUNet(unet, encodings[min(encodings)][None])

    if getattr(pipe, "vqvae", None) is None:
        return sample(unet, make_scheduler("ddim", pipe.scheduler), batch_size=count, width=pipe.mel.x_res,
                      num_inference_steps=num_inference_steps, seed=seed, progress=False)
    from .sampling.latent import unclipped

    latents = sample(unet, make_scheduler("ddim", unclipped(pipe.scheduler)), batch_size=count, width=pipe.grid.x_res,
                     num_inference_steps=num_inference_steps, seed=seed, progress=False, clip_to=None)
    return pipe.decode(latents)
