"""Edits that resample given audio: variations, DDIM inversion, interpolation between two clips.

`vary` runs `sample(strength=s)` slice by slice over the given audio's spectrogram: each slice
starts from the original's columns noised to the level where the last s * steps steps begin
(SDEdit), except the first columns of every slice after the first, which are the previous
slice's output (known columns), so slices join without seams. With `invert_audio=True` each slice
starts instead from the DDIM inversion of the original's columns (`invert`: each DDIM step
undone exactly, the same timesteps in reverse, no clipping) and is sampled with a
stochastic DDIM (eta = 1): the inverted latent carries the original's structure, the seeded step
noise makes the variation. Inverted slices are not masked but blended across the columns they
share (`_resample_slices` says why). With eta = 0, inversion then sampling reproduces the
original (the test for the inversion). `interpolate` inverts two clips fully and samples from
the spherical interpolation (slerp) of their latents, one batch item per alpha, as the
deprecated `AudioDiffusionPipeline.encode`/`slerp` did for one slice, here for any length.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import torch

from ..mel import MelConfig
from .edits import EditError, Timeline, check_audio, prepare
from .finish import decode_audio, peak_protect
from .longclip import LongClip, slice_spans
from . import loop
from .options import DEFAULT_STRENGTH, SamplingOptions, SamplingSetup, check_invertible, check_strength, downsampling_factor
from .plan import SlicePlan, plan_cover, unet_calls
from .progress import JobProgress, job
from .schedulers import alpha_bar, predicted_clean, scheduler_name, set_timesteps, strength_start_index

INVERTED_VARIATION_ETA = 1.0  # DDIM stochasticity when sampling from an inverted latent (variations)


def inversion_scheduler(base_scheduler):
    """The DDIM scheduler to sample from inverted latents with: the pipeline's noise schedule,
    without clipping the predicted clean image to [-1, 1]. Clipping is not invertible: with it,
    a full 50-step inversion and resampling of a built-in clip on the bundled model came back
    with a mean error of 0.23 (as far as an unrelated sample); without it, 0.03."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(base_scheduler.config, clip_sample=False)


# Fixed-point refinements of each inversion step (UNet calls per inverted step: 1 + this).
# Measured on the v-prediction bundled model (a 1 s built-in jazz clip, invert then sample with
# DDIM eta 0, mean error to the image): 20 steps 0.171 with diffusers' DDIMInverseScheduler,
# 0.135 with the first guess alone, 0.014 with 1 refinement, 0.003 with 2, 0.0001 with 10;
# 50 steps 0.067, 0.055, 0.0025, 0.0003. One refinement halves an inversion's speed and
# makes it 12-25x closer; two buy little more that a listener could hear.
INVERSION_REFINEMENTS = 1
INVERSION_CALLS_PER_STEP = 1 + INVERSION_REFINEMENTS


def _predicted_noise(unet, scheduler, x: torch.Tensor, t: int) -> torch.Tensor:
    """The noise (epsilon) the UNet sees in x (float32) at timestep t, whatever it predicts."""
    output = unet(x.to(unet.dtype), t).sample.float()
    clean = predicted_clean(scheduler, output, x, t)
    a = alpha_bar(scheduler, t)
    return (x - math.sqrt(a) * clean) / math.sqrt(1.0 - a)


def _level_below(scheduler, t: int) -> float:
    """alpha_bar of the level DDIM's step at t lands on (diffusers' DDIMScheduler.step's rule)."""
    below = t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    return float(scheduler.alphas_cumprod[below]) if below >= 0 else float(scheduler.final_alpha_cumprod)


@torch.no_grad()
def invert(
    unet,
    scheduler,
    image: torch.Tensor,
    *,
    num_inference_steps: int,
    strength: float = 1.0,
    progress: JobProgress | None = None,
    keep_padding: bool = False,
) -> torch.Tensor:
    """DDIM inversion of clean images (B, 1, H, W) in [-1, 1] -> the latent at the timestep
    `sample(..., strength=strength)` starts from with `inversion_scheduler(scheduler)` and
    `num_inference_steps`.

    Each step is the exact inverse of the DDIM step (eta 0) that sampling takes back down: it
    looks for the x at the higher level whose step lands on the current one. diffusers'
    `DDIMInverseScheduler` takes one guess, the model's noise at the current x, and for a
    velocity model also converts the output with the wrong level's alpha; its error adds up
    (see INVERSION_REFINEMENTS). Here the guess is refined by the fixed point
    x' = step_up(x, eps(x', t)), INVERSION_REFINEMENTS times, so the walk back reproduces the
    image for epsilon, velocity and sample predicting models alike.

    Widths that are not a multiple of the UNet's downsampling factor are padded by repeating the
    last column and cropped. progress: counts each UNet call (INVERSION_CALLS_PER_STEP per
    step; may stop between them). keep_padding: return the padded columns' latents too, for
    `sample(start_noise=...)`: a sample whose padding starts from fresh noise instead drifts far
    from the original (mean error 1.06 instead of 0.03 for a 1.8 s clip, 58 columns padded to
    64, on the previous 4.10 s model).
    """
    check_strength(strength)
    forward = inversion_scheduler(scheduler)
    set_timesteps(forward, num_inference_steps, unet.device)
    timesteps = [int(t) for t in forward.timesteps[strength_start_index(num_inference_steps, strength):]]
    width = image.shape[-1]
    factor = downsampling_factor(unet)
    pad = math.ceil(width / factor) * factor - width
    x = torch.nn.functional.pad(image.to(device=unet.device, dtype=torch.float32), (0, pad, 0, 0), mode="replicate")
    here = None  # the timestep x sits at (None: clean)
    for t in reversed(timesteps):
        a_from, a_to = _level_below(forward, t), alpha_bar(forward, t)

        def step_up(noise: torch.Tensor) -> torch.Tensor:
            clean = (x - math.sqrt(1.0 - a_from) * noise) / math.sqrt(a_from)
            return math.sqrt(a_to) * clean + math.sqrt(1.0 - a_to) * noise

        guess = x
        for call in range(INVERSION_CALLS_PER_STEP):
            if progress is not None:
                progress.check()
            label = (t if here is None else here) if call == 0 else t  # the first guess: x's own level
            guess = step_up(_predicted_noise(unet, forward, guess, label))
            if progress is not None:
                progress.step()
        x, here = guess, t
    return (x if keep_padding else x[..., :width]).float()


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation between a and b (per batch item); alpha 0 gives a, 1 gives b exactly."""
    if alpha == 0:
        return a.clone()
    if alpha == 1:
        return b.clone()
    flat_a, flat_b = a.flatten(1).double(), b.flatten(1).double()
    cos = (flat_a * flat_b).sum(1) / (flat_a.norm(dim=1) * flat_b.norm(dim=1)).clamp_min(1e-12)
    theta = torch.arccos(cos.clamp(-1.0, 1.0)).reshape(-1, *([1] * (a.dim() - 1)))
    sin = torch.sin(theta)
    linear = (1 - alpha) * a.double() + alpha * b.double()
    spherical = (torch.sin((1 - alpha) * theta) * a.double() + torch.sin(alpha * theta) * b.double()) / sin.clamp_min(1e-12)
    return torch.where(sin.abs() < 1e-6, linear, spherical).to(a.dtype)


def _resample_slices(setup: SamplingSetup, plan: SlicePlan, image: torch.Tensor, batch_size: int, strength: float,
                     start_latents, eta: float, tracker: JobProgress | None):
    """Sample over `image` (1|B, 1, H, W) slice by slice -> (B, 1, H, W) images, slice starts, slices.

    Noised starts (start_latents None, SDEdit): each slice after the first starts with known
    columns from the previous one, so the masked sampler makes the slices join.

    Inverted starts (`start_latents(start, end)` -> (B, 1, H, w)): each slice is sampled from
    the inversion of the original's columns alone, and consecutive slices are blended linearly
    across the columns they share. Masks don't mix with inverted latents: DDIM inversion is
    sensitive (inverting the previous slice's output, 0.06 away from the original, gave a latent
    about 1.0 away from the original's), so known columns pasted in from another path pulled the
    deterministic reconstruction off the original further with every slice (mean error 0.06, 0.15,
    0.78, 0.92 over four slices of a built-in clip, against 0.06 in each slice on its own)."""
    out = torch.zeros(batch_size, 1, image.shape[-2], image.shape[-1])
    starts, slices = [], []
    for s in plan.slices:
        start, end, made = s.start, s.end, s.known
        known = image[..., start:end].expand(batch_size, -1, -1, -1).clone()
        mask = latents = None
        if tracker is not None:
            tracker.next_slice("inverting" if start_latents is not None else "sampling")
        if start_latents is not None:
            latents = start_latents(start, end)
            if tracker is not None:
                tracker.set_stage("sampling")
        elif made:
            known[..., :made] = out[..., start : start + made]
            mask = torch.zeros(end - start, dtype=torch.bool)
            mask[:made] = True
        piece = loop.sample(
            setup.unet, setup.scheduler, batch_size=batch_size, width=end - start, num_inference_steps=setup.steps,
            generator=setup.generator, known=known, mask=mask, strength=strength, start_noise=latents,
            progress=tracker or False, eta=eta, clip_to=setup.clip_to,
        ).cpu()
        if latents is not None and made:
            ramp = (torch.arange(made, dtype=torch.float32) + 1) / (made + 1)  # (made,): towards the new slice
            out[..., start : start + made] = out[..., start : start + made] * (1 - ramp) + piece[..., :made] * ramp
        out[..., start + made : end] = piece[..., made:]
        starts.append(start)
        slices.append(piece)
    return out, starts, slices


def _clip_from_image(setup: SamplingSetup, image: torch.Tensor, samples: int, gain, starts, slices) -> LongClip:
    mel = setup.mel
    audio = peak_protect(decode_audio(image, mel, samples, gain))
    return LongClip.from_columns(image, audio, mel, slice_columns=slice_spans(starts, setup.slice_width, image.shape[-1]),
                                 slices=slices, seam_columns=[s + setup.overlap_columns for s in starts[1:]])


def image_of(audio: torch.Tensor, mel: MelConfig) -> tuple[torch.Tensor, float]:
    """(T,) -> (image (1, 1, H, 1 + (T + hop) // hop) with one hop of silence after the audio, so
    it decodes to at least T samples; reference power)."""
    image, _, reference = Timeline(pieces=[(0, audio)], total=audio.numel()).image(mel)
    return image, reference


def vary(pipe, audio: torch.Tensor, strength: float = DEFAULT_STRENGTH, options: SamplingOptions | None = None, *,
         invert_audio: bool = False, eta: float | None = None, progress: "bool | JobProgress" = True,
         **sampling) -> LongClip:
    """A variation (B, T) of the given audio (T,): the last `strength` of the denoising chain
    run from the original noised to that level, or (invert_audio) from its DDIM inversion.

    eta: DDIM stochasticity; default 0 for noised starts, 1 for inverted ones (with 0, an
    inverted start reproduces the original). Inversion needs the ddim scheduler.
    options (or keywords named as its fields): how to sample, see `SamplingOptions`;
    a variation has no RePaint jumps (its repaint_jumps are not used).
    """
    check_strength(strength, EditError)
    setup = prepare(pipe, options, sampling)
    audio = check_audio(audio, setup.mel, "the audio to vary")
    image, reference = image_of(audio, setup.mel)
    setup, made, starts, slices = resample(setup, image, strength, invert_audio, eta, progress)
    return _clip_from_image(setup, made, audio.numel(), math.sqrt(reference), starts, slices)


def resample(setup: SamplingSetup, image: torch.Tensor, strength: float, invert_audio: bool, eta: float | None,
             progress) -> tuple[SamplingSetup, torch.Tensor, list[int], list[torch.Tensor]]:
    """A variation's sampling, for Mel images and latents alike: `image` (1, C, H, W) resampled slice
    by slice from `strength`, each slice started from its own DDIM inversion when `invert_audio`.
    Returns the setup sampled with (the inversion's scheduler, when inverting), the result
    (B, C, H, W), and each slice's start and image."""
    if invert_audio:
        check_invertible(scheduler_name(setup.scheduler), EditError)
        eta = INVERTED_VARIATION_ETA if eta is None else eta
        setup = replace(setup, scheduler=inversion_scheduler(setup.base_scheduler))
    per_step = 1 + (INVERSION_CALLS_PER_STEP if invert_audio else 0)  # (inversion +) sampling of each slice
    plan = plan_cover(setup, image.shape[-1], unet_calls(setup.steps, strength=strength) * per_step)
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        def inverted(start: int, end: int) -> torch.Tensor:
            latents = invert(setup.unet, setup.base_scheduler, image[..., start:end], num_inference_steps=setup.steps,
                             strength=strength, progress=tracker, keep_padding=True)
            return latents.expand(setup.batch_size, -1, -1, -1)

        made, starts, slices = _resample_slices(setup, plan, image, setup.batch_size, strength,
                                                inverted if invert_audio else None, eta or 0.0, tracker)
    return setup, made, starts, slices


def interpolate(pipe, audio_a: torch.Tensor, audio_b: torch.Tensor, alphas: Sequence[float] = (0.5,),
                options: SamplingOptions | None = None, *, progress: "bool | JobProgress" = True,
                **sampling) -> LongClip:
    """Invert A and B (DDIM, the full chain), walk between them: batch item i is sampled (DDIM,
    eta 0, deterministic) from slerp(latent_A, latent_B, alphas[i]). Any length: the shorter of
    the two clips, slice by slice; alpha 0 gives A's reconstruction, 1 gives B's.
    options (or keywords named as its fields): only its steps and overlap are used (always DDIM,
    one batch item per alpha, no RePaint, no random draws that matter)."""
    alphas = [float(a) for a in alphas]
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise EditError(f"interpolation alphas must be between 0 and 1, got {alphas}")
    setup = prepare(pipe, options, dict(sampling, scheduler="ddim", seed=0, generator=None))
    setup = replace(setup, scheduler=inversion_scheduler(setup.base_scheduler))
    audio_a = check_audio(audio_a, setup.mel, "audio A")
    audio_b = check_audio(audio_b, setup.mel, "audio B")
    samples = min(audio_a.numel(), audio_b.numel())
    image_a, reference_a = image_of(audio_a[:samples], setup.mel)
    image_b, reference_b = image_of(audio_b[:samples], setup.mel)
    per_step = 2 * INVERSION_CALLS_PER_STEP + 1  # invert A, invert B, sample
    plan = plan_cover(setup, image_a.shape[-1], per_step * unet_calls(setup.steps))
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        def latents(start: int, end: int) -> torch.Tensor:
            a, b = (invert(setup.unet, setup.base_scheduler, image[..., start:end], num_inference_steps=setup.steps,
                           progress=tracker, keep_padding=True) for image in (image_a, image_b))
            return torch.cat([slerp(a, b, alpha) for alpha in alphas])

        made, starts, slices = _resample_slices(setup, plan, image_a, len(alphas), 1.0, latents, 0.0, tracker)
    gains = [math.sqrt(reference_a) ** (1 - a) * math.sqrt(reference_b) ** a for a in alphas]
    return _clip_from_image(setup, made, samples, gains, starts, slices)
