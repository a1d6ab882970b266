"""Sampling on latent pipelines: the same loop, planner and slice loop as Mel-image pipelines,
run on the VAE's latents, then decoded through the VAE to a Mel image and the usual Mel -> audio.

The sampling wing sees a *view* of a latent pipeline (`latent_setup`): its UNet, its scheduler
without clipping (latents are not bounded to [-1, 1]: clipping the predicted clean latents, as
the pixel models' DDIM does, would flatten them), and a `LatentGrid` as its Mel config, so every
column count (slices, overlap, the join blend, the clip's length) is in latent columns, each
`factor` Mel columns (8 on the public models).

New clips (`generate_long_latent`): a first slice from noise, then continuation slices in latent
space; the stitched latents are decoded once (in slice-sized chunks) and the Mel image goes
through `finish_audio` as a pixel model's does. The edits of given audio are latent_edits.py's.

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
from ..metrics import DEFAULT_TARGET_LUFS
from .finish import DEFAULT_FADE_OUT_SECONDS, finish_audio
from .longclip import LongClip, columns_for_samples, extend_image, first_slice, slice_spans
from .options import SamplingOptions, SamplingSetup, sampling_options
from .plan import plan_extend
from .progress import JobProgress, job

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


def mel_spans(spans: list[tuple[int, int]], factor: int) -> list[tuple[int, int]]:
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
        first, _, _ = first_slice(setup, tracker)  # (B, C, h, slice_width) latents
        latents, starts, slices = extend_image(setup, first, plan.after_first(), blend_join=True, tracker=tracker)
    image = pipe.decode(latents)  # (B, 1, H, W * f) Mel image in [-1, 1]
    audio = finish_audio(image.to(pipe.device), pipe.mel, samples, fade_out_seconds=fade_out_seconds,
                         target_lufs=target_lufs)
    return LongClip.from_columns(
        image, audio, pipe.mel, slice_columns=mel_spans(slice_spans([0] + starts, slice_width, total_width), factor),
        slices=[first] + slices, seam_columns=[(s + k) * factor for s in starts], seams_before_seconds=seconds,
    )


def latents_of(pipe, image: torch.Tensor) -> torch.Tensor:
    """A Mel image (1, 1, H, W) -> its latents (1, C, h, ceil(W / f)): the image padded with its last
    column to a whole number of latent columns, encoded a slice at a time."""
    factor, chunk = pipe.factor, pipe.mel.x_res
    width = math.ceil(image.shape[-1] / factor) * factor
    image = torch.nn.functional.pad(image, (0, width - image.shape[-1], 0, 0), mode="replicate")
    return torch.cat([pipe.encode(image[..., s : s + chunk]).cpu() for s in range(0, width, chunk)], dim=-1)
