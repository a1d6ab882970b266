"""Sampling on latent pipelines: the same loop, planner and slice loop as Mel-image pipelines,
run on the VAE's latents, then decoded through the VAE to a Mel image and the usual Mel -> audio.

The sampling wing sees a *view* of a latent pipeline (`latent_setup`): its UNet, its scheduler
without clipping (latents are not bounded to [-1, 1]: clipping the predicted clean latents, as
the pixel models' DDIM does, would flatten them), and a `LatentGrid` as its Mel config, so every
column count (slices, overlap, the join blend, the clip's length) is in latent columns, each
`factor` Mel columns (8 on the public models).

- new clips (`generate_long_latent`): first slice from noise, then continuation slices in latent
  space; the stitched latents are decoded once (in slice-sized chunks) and the Mel image goes
  through `finish_audio` as a pixel model's does;
- continuation of given audio (`continue_latent`): the Mel columns of the given audio are encoded
  (the posterior's mean, so the same audio gives the same latents), and the latent columns made
  wholly of known Mel columns are the known columns the first new slice continues;
- variations (`vary_latent`): the given audio's latents are resampled slice by slice, from noise
  at `strength` or from their DDIM inversion (encode -> invert -> sample back -> decode).

The level and tempo holds read loudness and onsets off Mel images; in latent space they have
nothing to read, so they are switched off for latent pipelines (`without_holds`) and the clip's
JSON says so. Candidates (chosen by level) and --bpm (kept by the tempo hold) are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..latent import LatentGrid
from .edits import EditError, Timeline, _crossfade_samples, _decode_span, check_audio
from .finish import DEFAULT_FADE_OUT_SECONDS, finish_audio, peak_protect
from .inversion import INVERSION_CALLS_PER_STEP, _resample_slices, image_of, invert, inversion_scheduler
from .longclip import LongClip, columns_for_samples, extend_image, first_slice, slice_spans
from .options import (DEFAULT_STRENGTH, SamplingOptions, SamplingSetup, check_invertible, check_strength,
                      sampling_options)
from .plan import plan_cover, plan_extend, unet_calls
from .progress import JobProgress, job
from .schedulers import scheduler_name
from ..metrics import DEFAULT_TARGET_LUFS

HOLDS_OFF_NOTE = ("the level and tempo holds work on Mel images and are off for latent models "
                  "(they sample VAE latents, which have no loudness or onsets to hold)")


@dataclass(frozen=True)
class LatentView:
    """What the sampling wing samples a latent pipeline with: .unet, .scheduler and .mel (the grid)."""

    unet: Any
    scheduler: Any
    mel: LatentGrid


def unclipped(scheduler):
    """The same scheduler without clipping the predicted clean sample (latents are not in [-1, 1])."""
    if not scheduler.config.get("clip_sample", False):
        return scheduler
    return type(scheduler).from_config(scheduler.config, clip_sample=False)


def without_holds(options: SamplingOptions, error: type[ValueError] = ValueError) -> tuple[SamplingOptions, str | None]:
    """The options with the level and tempo holds off -> (options, the note to record, or None when
    they were off already). A bpm or candidates, which need them, are refused."""
    if options.bpm is not None:
        raise error("--bpm is kept by the tempo hold, which works on Mel images; latent models don't have it yet")
    if options.candidates > 1:
        raise error("--candidates are chosen by loudness on Mel images; latent models don't have them yet")
    if not (options.level_hold or options.tempo_hold):
        return options, None
    return replace(options, level_hold=0.0, tempo_hold=0.0, resolved_for=None), HOLDS_OFF_NOTE


def latent_view(pipe) -> LatentView:
    """`pipe` as the sampling wing sees it."""
    return LatentView(unet=pipe.unet, scheduler=unclipped(pipe.scheduler), mel=pipe.grid)


def latent_setup(pipe, options: SamplingOptions, error: type[ValueError] = ValueError) -> SamplingSetup:
    """A job's SamplingSetup in latent columns, samples never clamped."""
    options, _ = without_holds(options, error)
    try:
        setup = SamplingSetup.prepare(latent_view(pipe), options)
    except ValueError as exc:
        raise error(str(exc)) from exc
    return replace(setup, clip_to=None)


def _mel_spans(spans: list[tuple[int, int]], factor: int) -> list[tuple[int, int]]:
    return [(start * factor, end * factor) for start, end in spans]


def generate_long_latent(pipe, seconds: float, options: SamplingOptions | None = None, *,
                         progress: "bool | JobProgress | None" = True, fade_out_seconds: float = DEFAULT_FADE_OUT_SECONDS,
                         target_lufs: float | None = DEFAULT_TARGET_LUFS, **sampling) -> LongClip:
    """`generate_long` for a latent pipeline: a clip of exactly `seconds` per batch item, made in
    latent space and decoded through the VAE."""
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    setup = latent_setup(pipe, sampling_options(options, sampling))
    grid, k, slice_width, factor = setup.mel, setup.overlap_columns, setup.slice_width, pipe.factor
    samples = int(round(seconds * grid.sample_rate))
    total_width = columns_for_samples(samples, grid)  # latent columns: decoded, (W * f - 1) * hop >= samples
    plan = plan_extend(setup, slice_width, total_width, first_width=slice_width)
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        first, _ = first_slice(setup, tracker)  # (B, C, h, slice_width) latents
        latents, starts, slices = extend_image(setup, first, plan.after_first(), blend_join=True, tracker=tracker)
    image = pipe.decode(latents)  # (B, 1, H, W * f) Mel image in [-1, 1]
    audio = finish_audio(image.to(pipe.device), pipe.mel, samples, fade_out_seconds=fade_out_seconds,
                         target_lufs=target_lufs)
    return LongClip.from_columns(
        image, audio, pipe.mel, slice_columns=_mel_spans(slice_spans([0] + starts, slice_width, total_width), factor),
        slices=[first] + slices, seam_columns=[(s + k) * factor for s in starts], seams_before_seconds=seconds,
    )


def continue_latent(pipe, audio: torch.Tensor, seconds: float, options: SamplingOptions | None = None, *,
                    progress: "bool | JobProgress" = True, **sampling) -> LongClip:
    """`edits.continue_audio` for a latent pipeline: the given audio (T,) unchanged, then `seconds`
    of new audio continuing it, (B, T + round(seconds * sample_rate))."""
    if not seconds > 0:
        raise EditError(f"seconds to add must be positive, got {seconds}")
    setup = latent_setup(pipe, sampling_options(options, sampling), EditError)
    setup = replace(setup, overlap_columns=max(setup.overlap_columns, 1))
    mel, factor = pipe.mel, pipe.factor
    audio = check_audio(audio, mel, "the audio to continue")
    timeline = Timeline(pieces=[(0, audio)], total=audio.numel() + int(round(seconds * mel.sample_rate)))
    image, known, reference = timeline.image(mel)  # (1, 1, H, W) Mel image, (W,) known columns
    known_latent = int(torch.nonzero(~known).flatten()[0]) // factor  # latent columns made only of known Mel columns
    if known_latent < 1:
        raise EditError(f"the audio to continue must hold at least one latent column of this model "
                        f"({factor * mel.hop_length / mel.sample_rate:.3f} s of whole STFT windows)")
    context = min(known_latent, setup.slice_width)  # only the last slice's worth is encoded: it is all a slice sees
    start = known_latent - context
    prefix = pipe.encode(image[..., start * factor : known_latent * factor]).cpu()  # (1, C, h, context)
    total_latent = math.ceil(image.shape[-1] / factor)
    plan = plan_extend(setup, context, context + total_latent - known_latent)
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        made, starts, slices = extend_image(setup, prefix.expand(setup.batch_size, -1, -1, -1).contiguous(), plan,
                                            tracker=tracker)
    decoded = pipe.decode(made)  # Mel columns [start * f, total_latent * f)
    given = image[..., : known_latent * factor].expand(setup.batch_size, -1, -1, -1)
    result = torch.cat([given, decoded[..., context * factor :]], dim=-1)[..., : image.shape[-1]]  # (B, 1, H, W)
    crossfade = _crossfade_samples(mel, audio.numel())
    gap_start = audio.numel()
    new, new_start = _decode_span(result, mel, gap_start - crossfade, timeline.total, math.sqrt(reference))
    out = peak_protect(timeline.splice(new, new_start, crossfade), ceiling=1.0)
    spans = slice_spans([start + s for s in starts], setup.slice_width, total_latent)
    return LongClip.from_columns(result, out, mel, slice_columns=_mel_spans(spans, factor), slices=slices,
                                 seam_seconds=[gap_start / mel.sample_rate], known_columns=known)


def latents_of(pipe, image: torch.Tensor) -> torch.Tensor:
    """A Mel image (1, 1, H, W) -> its latents (1, C, h, ceil(W / f)): the image padded with its last
    column to a whole number of latent columns, encoded a slice at a time."""
    factor, chunk = pipe.factor, pipe.mel.x_res
    width = math.ceil(image.shape[-1] / factor) * factor
    image = torch.nn.functional.pad(image, (0, width - image.shape[-1], 0, 0), mode="replicate")
    return torch.cat([pipe.encode(image[..., s : s + chunk]).cpu() for s in range(0, width, chunk)], dim=-1)


def vary_latent(pipe, audio: torch.Tensor, strength: float = DEFAULT_STRENGTH, options: SamplingOptions | None = None, *,
                invert_audio: bool = False, eta: float | None = None, progress: "bool | JobProgress" = True,
                **sampling) -> LongClip:
    """`inversion.vary` for a latent pipeline: the given audio's latents resampled slice by slice,
    from noise at `strength` (SDEdit) or (invert_audio) from their DDIM inversion, then decoded.
    With invert_audio and eta 0 it gives back the VAE's own reconstruction of the audio's Mel
    image, up to the inversion's error."""
    from .inversion import INVERTED_VARIATION_ETA, _clip_from_image

    check_strength(strength, EditError)
    setup = latent_setup(pipe, sampling_options(options, sampling), EditError)
    setup = replace(setup, overlap_columns=max(setup.overlap_columns, 1))
    audio = check_audio(audio, pipe.mel, "the audio to vary")
    image, reference = image_of(audio, pipe.mel)
    latents = latents_of(pipe, image)
    if invert_audio:
        check_invertible(scheduler_name(setup.scheduler), EditError)
        eta = INVERTED_VARIATION_ETA if eta is None else eta
        setup = replace(setup, scheduler=inversion_scheduler(setup.base_scheduler))
    per_step = 1 + (INVERSION_CALLS_PER_STEP if invert_audio else 0)
    plan = plan_cover(setup, latents.shape[-1], unet_calls(setup.steps, strength=strength) * per_step)
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        def inverted(start: int, end: int) -> torch.Tensor:
            z = invert(setup.unet, setup.base_scheduler, latents[..., start:end], num_inference_steps=setup.steps,
                       strength=strength, progress=tracker, keep_padding=True)
            return z.expand(setup.batch_size, -1, -1, -1)

        made, starts, slices = _resample_slices(setup, plan, latents, setup.batch_size, strength,
                                                inverted if invert_audio else None, eta or 0.0, tracker)
    mel_image = pipe.decode(made)[..., : image.shape[-1]]
    mel_setup = replace(setup, mel=pipe.mel, slice_width=setup.slice_width * pipe.factor,
                        overlap_columns=setup.overlap_columns * pipe.factor)
    return _clip_from_image(mel_setup, mel_image, audio.numel(), math.sqrt(reference),
                            [s * pipe.factor for s in starts], slices)
