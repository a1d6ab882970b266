"""The denoising loop: one explicit loop in diffusers' style (model call, `scheduler.step`), with
masks, RePaint and a feathered mask edge, around one x0 adapter (`Denoiser`).

A mask of *known* pixels (usually whole columns, i.e. moments in time) turns the loop into
inpainting: after every scheduler step to timestep t_prev the known pixels are overwritten with
the known clean image noised to t_prev, so the generated pixels are always denoised next to known
pixels at the *same* noise level. (The reference pipeline pastes them at the level of the step's
input, one step behind; after its last step the known part is still noisy.) After the last step
the known pixels equal the clean known image exactly. Any mask works: a prefix (continuation),
both ends (gap filling), the start of a clip at its end (loops).

Determinism: every random tensor (initial noise, DDPM step noise, RePaint noise) is drawn on the
CPU from one seeded `torch.Generator`, so a seed gives the same noise on every device and the
same bytes on the same device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .options import check_counts, check_strength, downsampling_factor, make_generator, sample_shape
from .progress import JobProgress, job_progress
from .schedulers import (alpha_bar, is_stateless, model_output_for, noised, predicted_clean, scheduler_name,
                         set_timesteps, strength_start_index)

Guide = Callable[[torch.Tensor, int], "torch.Tensor | None"]


class Denoiser:
    """The x0 adapter (k-diffusion's `external.py` idea): the UNet as the loop calls it,
    (x_t, t, step index) -> model output, remembering its last call so that the clean image it
    predicted can be read back (`last_prediction`)."""

    def __init__(self, unet, scheduler):
        self.unet, self.scheduler, self.last = unet, scheduler, None

    def predict(self, x: torch.Tensor, t, step: int) -> torch.Tensor:
        return self.unet(self.scheduler.scale_model_input(x, t), t).sample  # (B, 1, H, W)

    def __call__(self, x: torch.Tensor, t, step: int) -> torch.Tensor:
        out = self.predict(x, t, step)
        self.last = (out, x, t)
        return out

    def last_prediction(self) -> torch.Tensor:
        """The clean image the last call predicted (after any steering)."""
        out, x, t = self.last
        return predicted_clean(self.scheduler, out, x, t)


class Steered(Denoiser):
    """A denoiser whose prediction is steered: `guide(clean, step)` gets the clean image `inner`
    predicts (float) and returns what the step is taken towards (None: unchanged); the model output
    is rewritten to predict it. The level and tempo holds (`audiodiff.sampling.steering`) are guides."""

    def __init__(self, inner: Denoiser, guide: Guide):
        super().__init__(inner.unet, inner.scheduler)
        self.inner, self.guide = inner, guide

    def predict(self, x: torch.Tensor, t, step: int) -> torch.Tensor:
        out = self.inner.predict(x, t, step)
        clean = predicted_clean(self.scheduler, out, x, t)
        steered = self.guide(clean.float(), step)
        return out if steered is None else model_output_for(self.scheduler, steered.to(clean), x, t)


@dataclass(frozen=True)
class Draws:
    """Each item sampled as `count` draws (neighbouring rows) until step index `at`; then `choose`
    picks one per item from the clean images the draws predict there, (B, count, 1, H, W) -> (B,),
    and only that draw goes on (`sampling.tonal.tonal_draws`: the most tonal)."""

    count: int
    at: int
    choose: Callable[[torch.Tensor], torch.Tensor]

    def extra_calls(self, steps: int, repaint_jumps: int = 0) -> int:
        """The UNet calls the other draws add, counted as progress counts them (per row)."""
        done = min(self.at + 1, steps)
        return (self.count - 1) * (done + repaint_jumps * min(done, steps - 1))


def denoiser(unet, scheduler, guide: Guide | None = None) -> Denoiser:
    """The UNet through the x0 adapter, steered by `guide` when one is given."""
    model = Denoiser(unet, scheduler)
    return model if guide is None else Steered(model, guide)


@dataclass
class Canvas:
    """The images being denoised: their padded shape, and the known pixels, where they are known
    (mask) and how strongly the columns next to them are pulled toward them (pull)."""

    shape: tuple[int, int, int, int]  # (B, C, H, padded width)
    width: int  # the width asked for; the rest is padding, generated and cropped
    known: torch.Tensor | None = None  # (B, 1, H, padded W) in the UNet's dtype
    known_exact: torch.Tensor | None = None  # the same in float32: what known pixels equal at the end
    mask: torch.Tensor | None = None  # (B, 1, H, padded W) bool, None when nothing is known
    pull: torch.Tensor | None = None  # (1, 1, 1, padded W) weights, None without a feathered edge

    @classmethod
    def prepare(cls, unet, batch_size: int, width: int | None, known, mask, pull) -> "Canvas":
        """Pad to a multiple of the UNet's downsampling factor (the padding is generated, then cropped)."""
        height, sample_width = sample_shape(unet)
        width = int(width or sample_width)
        factor = downsampling_factor(unet)
        pad = math.ceil(width / factor) * factor - width
        canvas = cls(shape=(batch_size, unet.config.in_channels, height, width + pad), width=width)
        if known is None:
            if pull is not None:
                raise ValueError(f"pull must be ({width},) weights in [0, 1], with the known image")
            return canvas
        device, dtype = unet.device, unet.dtype
        known = torch.as_tensor(known).to(device=device, dtype=torch.float32)
        if known.dim() != 4 or known.shape[-2:] != (height, width) or known.shape[0] not in (1, batch_size):
            raise ValueError(f"known image must be (B or 1, 1, {height}, {width}), got {tuple(known.shape)}")
        canvas.known_exact = torch.nn.functional.pad(known.expand(batch_size, -1, -1, -1), (0, pad))  # float32
        canvas.known = canvas.known_exact.to(dtype)
        if mask is not None:
            full = torch.nn.functional.pad(_expand_mask(mask, batch_size, height, width).to(device), (0, pad), value=False)
            canvas.mask = full if full.any() else None
        if pull is not None:
            pull = torch.as_tensor(pull, dtype=torch.float32)
            if pull.shape != (width,) or not bool(((pull >= 0) & (pull <= 1)).all()):
                raise ValueError(f"pull must be ({width},) weights in [0, 1], with the known image")
            canvas.pull = torch.nn.functional.pad(pull, (0, pad)).view(1, 1, 1, -1).to(device, dtype)
        return canvas

    def impose(self, x: torch.Tensor, noise: torch.Tensor, alpha_bar_t: float) -> torch.Tensor:
        """The known pixels at the level of the step's *output* (no lag), and the pulled columns
        moved that fraction of the way toward them."""
        if self.mask is None and self.pull is None:
            return x
        target = noised(self.known, noise, alpha_bar_t)
        if self.pull is not None:
            x = x + self.pull * (target - x)
        if self.mask is not None:
            x = torch.where(self.mask, target, x)
        return x

    def rows(self, index: torch.Tensor) -> "Canvas":
        """The canvas of rows `index` only."""
        pick = (lambda t: None if t is None else t[index])
        return Canvas(shape=(len(index), *self.shape[1:]), width=self.width, known=pick(self.known),
                      known_exact=pick(self.known_exact), mask=pick(self.mask), pull=self.pull)

    def finish(self, x: torch.Tensor, clip_to: float | None = 1.0) -> torch.Tensor:
        """The last step's output -> (B, 1, H, width) in [-clip_to, clip_to] (None: as it is, for
        latents, which are not bounded), known pixels exactly as given."""
        if not torch.isfinite(x).all():  # decoded, it would be silence written as a clip (issue 25)
            from ..errors import GenerationError

            raise GenerationError("the model produced NaN or infinite values (broken weights, or an overflow in half "
                                  "precision: try --device cpu); no clip was written")
        x = x.float() if clip_to is None else x.float().clamp(-clip_to, clip_to)
        if self.mask is not None:
            x = torch.where(self.mask, self.known_exact, x)  # exactly the clean known image, in float32
        return x[..., : self.width]


def _expand_mask(mask: torch.Tensor, batch_size: int, height: int, width: int) -> torch.Tensor:
    """Known-pixel mask -> bool (B, 1, H, W). (W,) = known columns for every item, (B, W) =
    known columns per item, (B|1, 1, H|1, W) = any pixels."""
    mask = torch.as_tensor(mask).bool()
    if mask.dim() == 1:
        mask = mask.view(1, 1, 1, -1)
    elif mask.dim() == 2:
        mask = mask.view(mask.shape[0], 1, 1, mask.shape[1])
    elif mask.dim() != 4:
        raise ValueError(f"mask must be (W,), (B, W) or (B, 1, H, W), got shape {tuple(mask.shape)}")
    if mask.shape[-1] != width:
        raise ValueError(f"mask covers {mask.shape[-1]} columns but the image is {width} wide")
    try:
        return mask.expand(batch_size, 1, height, width)
    except RuntimeError as exc:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not fit images of shape {(batch_size, 1, height, width)}") from exc


def _check_request(scheduler, num_inference_steps, batch_size, repaint_jumps, known, mask, strength) -> None:
    check_counts(num_inference_steps, batch_size, repaint_jumps)
    if repaint_jumps and not is_stateless(scheduler):
        raise ValueError(f"repaint_jumps needs a scheduler whose steps can be redone (ddim or ddpm), not {scheduler_name(scheduler)}")
    if strength is not None:
        check_strength(strength)
    if (mask is not None or strength is not None) and known is None:
        raise ValueError("a mask or a strength needs the known image (`known`)")


def _timesteps(scheduler, num_inference_steps: int, strength: float | None, device) -> torch.Tensor:
    """The timesteps to run: all of them, or the last `strength` of the chain."""
    set_timesteps(scheduler, num_inference_steps, device)
    if strength is None:
        return scheduler.timesteps
    start_index = strength_start_index(num_inference_steps, strength)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start_index * getattr(scheduler, "order", 1))
    return scheduler.timesteps[start_index:]


def _start(canvas: Canvas, noise: torch.Tensor, scheduler, t0, start_noise, strength) -> torch.Tensor:
    """x at the first timestep run: `start_noise`, the known image noised there (strength), or
    noise; known pixels at that level."""
    if start_noise is not None:
        start_noise = torch.as_tensor(start_noise).to(device=noise.device, dtype=noise.dtype)
        batch_size, channels, height, _ = canvas.shape
        if start_noise.shape == canvas.shape:  # padded too (an inversion of the padded image: `invert(keep_padding=True)`)
            x = start_noise
        elif start_noise.shape == (batch_size, channels, height, canvas.width):
            x = torch.cat([start_noise, noise[..., canvas.width :]], dim=-1)
        else:
            raise ValueError(f"start_noise must have shape {(batch_size, channels, height, canvas.width)}, "
                             f"got {tuple(start_noise.shape)}")
    elif strength is not None:
        x = noised(canvas.known, noise, alpha_bar(scheduler, t0))
    else:
        x = noise * scheduler.init_noise_sigma
    if canvas.mask is not None:
        x = torch.where(canvas.mask, noised(canvas.known, noise, alpha_bar(scheduler, t0)), x)
    return x


def _keep_chosen(x: torch.Tensor, noise: torch.Tensor, canvas: Canvas, model: Denoiser, draws: Draws):
    """x, noise and canvas cut to the draw `draws.choose` picks for each item."""
    predicted = model.last_prediction().float().clamp(-1.0, 1.0)[..., : canvas.width]
    batch = x.shape[0] // draws.count
    picked = torch.as_tensor(draws.choose(predicted.reshape(batch, draws.count, *predicted.shape[1:]))).long().cpu()
    if picked.shape != (batch,) or not bool(((picked >= 0) & (picked < draws.count)).all()):
        raise ValueError(f"a draw chooser must return one index in [0, {draws.count}) per item, got {picked!r}")
    index = (torch.arange(batch) * draws.count + picked).to(x.device)
    return x[index], noise[index], canvas.rows(index)


def _repaint(x: torch.Tensor, scheduler, t, t_prev, generator: torch.Generator) -> torch.Tensor:
    """RePaint (Lugmayr et al. 2022): go back up one step, q(x_t | x_t_prev), to denoise again."""
    ratio = alpha_bar(scheduler, t) / alpha_bar(scheduler, t_prev)
    fresh = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(device=x.device, dtype=x.dtype)
    return math.sqrt(ratio) * x + math.sqrt(1.0 - ratio) * fresh


@torch.no_grad()
def sample(
    unet,
    scheduler,
    *,
    batch_size: int = 1,
    width: int | None = None,
    num_inference_steps: int = 50,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    known: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    pull: torch.Tensor | None = None,
    start_noise: torch.Tensor | None = None,
    strength: float | None = None,
    repaint_jumps: int = 0,
    eta: float = 0.0,
    model: Denoiser | None = None,
    draws: Draws | None = None,
    progress: "bool | JobProgress | None" = True,
    clip_to: float | None = 1.0,
) -> torch.Tensor:
    """Generate (B, 1, H, width) images in [-1, 1] with `unet` and `scheduler`.

    known: (B|1, 1, H, width) clean image in [-1, 1]; mask: which of its pixels are known (True),
        as (width,) columns, (B, width) columns per item, or (B|1, 1, H|1, width). Known pixels
        are re-imposed after every step at the step's output noise level and equal `known`
        exactly in the result.
    pull: (width,) weights in [0, 1] for columns outside the mask: after every step they are moved
        this fraction of the way toward `known` at the step's noise level (a feathered mask edge:
        the column is regenerated, near what it was). Needs `known`.
    strength: in (0, 1]: start from `known` (all of it) noised to that fraction of the chain and
        run only the last `strength * num_inference_steps` steps (variations).
    start_noise: (B, 1, H, width) starting sample at the first timestep run (pure noise, or at
        the `strength` level, e.g. from a DDIM inversion); default: fresh seeded noise.
    repaint_jumps: RePaint resampling: after each step, re-noise one step and denoise again this
        many times, so generated and known pixels agree better. DDIM or DDPM only; costs
        (1 + jumps) UNet calls per step.
    width: any width; the UNet is fully convolutional. Widths that are not a multiple of its
        downsampling factor are padded with generated columns and cropped.
    model: what predicts each step (`denoiser(unet, scheduler, guide)`: steered, or read back
        after the last step); default the UNet itself.
    draws: the batch's rows are `draws.count` draws of each item until step `draws.at`, where one
        per item goes on (`Draws`): batch_size // draws.count images come back. DDIM or DDPM only.
    progress: a `JobProgress` (counts every UNet call, may stop the loop between them by raising
        `Cancelled`), True (a bar for this call alone) or False.
    clip_to: the result is clamped to [-clip_to, clip_to]; None for latents (not bounded).
    """
    _check_request(scheduler, num_inference_steps, batch_size, repaint_jumps, known, mask, strength)
    generator = make_generator(generator, seed)
    canvas = Canvas.prepare(unet, batch_size, width, known, mask, pull)
    # One noise tensor, drawn on the CPU: it starts the chain and noises the known pixels at
    # every level, so known pixels follow the same deterministic path DDIM would take.
    noise = torch.randn(canvas.shape, generator=generator, dtype=torch.float32).to(device=unet.device, dtype=unet.dtype)
    timesteps = _timesteps(scheduler, num_inference_steps, strength, unet.device)
    x = _start(canvas, noise, scheduler, timesteps[0], start_noise, strength)
    model = model or Denoiser(unet, scheduler)
    if draws is not None and (batch_size % draws.count or not is_stateless(scheduler)):
        raise ValueError(f"draws need whole items ({batch_size} rows, {draws.count} draws each) and a scheduler "
                         f"without per-row state (ddim or ddpm), not {scheduler_name(scheduler)}")
    weight = draws.count if draws is not None else 1  # progress counts a call on every draw as that many
    tracker = _own_bar(len(timesteps), repaint_jumps) if progress is True else (progress or None)
    # the noise re-derived from the clipped x0, else each step loses signal (docs/tonality.md)
    kwargs = {"eta": eta, "use_clipped_model_output": True} if scheduler_name(scheduler) == "ddim" else {}
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else None
        for jump in range(repaint_jumps + 1 if t_prev is not None else 1):
            if jump > 0:
                x = _repaint(x, scheduler, t, t_prev, generator)
            if tracker is not None:
                tracker.check()
            x = scheduler.step(model(x, t, i), t, x, generator=generator, **kwargs).prev_sample
            if tracker is not None:
                tracker.step(weight)
            x = canvas.impose(x, noise, alpha_bar(scheduler, t_prev))
        if draws is not None and i == draws.at and weight > 1:
            x, noise, canvas = _keep_chosen(x, noise, canvas, model, draws)
            weight = 1
    if progress is True:
        tracker.close()
    return canvas.finish(x, clip_to)


def _own_bar(steps: int, repaint_jumps: int) -> JobProgress:
    """A bar for one `sample()` call alone (progress=True)."""
    from .plan import unet_calls

    tracker = job_progress(True)
    tracker.begin(unet_calls(steps, repaint_jumps=repaint_jumps), slices=0)
    tracker.set_stage("sampling")
    return tracker
