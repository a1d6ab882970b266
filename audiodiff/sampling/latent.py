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

The level and tempo holds read loudness and onsets off Mel images, which latents don't have: on a
latent pipeline they work on the decoded clean prediction of each step, their change carried back
to the latents (latent_holds.py). That costs VAE passes on every step, several times the UNet's on
the public models, so they are off unless asked for (`latent_holds`, --latent-holds, or a bpm,
which the tempo hold keeps) and the clip's JSON says which ran. Candidates (chosen by level among
finished latents) are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..latent import LatentGrid
from ..metrics import DEFAULT_TARGET_LUFS
from .finish import DEFAULT_FADE_OUT_SECONDS, finish_audio
from .latent_holds import DEFAULT_CARRY, DEFAULT_EVERY, LatentCodec
from .longclip import LongClip, columns_for_samples, extend_image, first_slice, slice_spans
from .steering import beat_bpm
from .options import SamplingOptions, SamplingSetup, sampling_options
from .plan import plan_extend
from .progress import JobProgress, job

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


HOLDS_OFF_NOTE = ("the level and tempo holds are off for latent models unless asked for (--latent-holds, or a "
                  "--bpm): they decode the prediction through the VAE on every step, which costs more than the UNet")


def latent_options(options: SamplingOptions, error: type[ValueError] = ValueError) -> tuple[SamplingOptions, str | None]:
    """The options a latent pipeline samples with -> (options, the note to record, or None):
    candidates, chosen by loudness among finished Mel images, are refused; the holds are switched
    off unless asked for (`options.latent_holds`, or a bpm, which the tempo hold keeps)."""
    if options.candidates > 1:
        raise error("--candidates are chosen by loudness on Mel images; latent models don't have them yet")
    if options.latent_holds or options.bpm is not None or not (options.level_hold or options.tempo_hold):
        return options, None
    return replace(options, level_hold=0.0, tempo_hold=0.0, resolved_for=None), HOLDS_OFF_NOTE


def holds_record(options: SamplingOptions) -> dict:
    """What a latent clip's JSON says of its holds (`options` as `latent_options` left them): which
    ran, and how."""
    ran = [name for name, strength in (("level", options.level_hold), ("tempo", options.tempo_hold)) if strength]
    if not ran:
        return {"holds": []}
    return {"holds": ran, "holds_on": f"the decoded clean prediction, every {DEFAULT_EVERY} step(s); the change "
                                      f"carried back to the new latent columns ({DEFAULT_CARRY})"}


def latent_view(pipe) -> LatentView:
    """`pipe` as the sampling wing sees it."""
    return LatentView(unet=pipe.unet, scheduler=unclipped(pipe.scheduler), mel=pipe.grid)


def latent_setup(pipe, options: SamplingOptions, error: type[ValueError] = ValueError) -> SamplingSetup:
    """A job's SamplingSetup in latent columns, samples never clamped, the holds through the VAE."""
    options, _ = latent_options(options, error)
    try:
        setup = SamplingSetup.prepare(latent_view(pipe), options)
    except ValueError as exc:
        raise error(str(exc)) from exc
    return replace(setup, clip_to=None, codec=LatentCodec(pipe))  # the holds read and steer through the VAE


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
        first, beat, redraws = first_slice(setup, tracker)  # (B, C, h, slice_width) latents, beat in Mel columns
        latents, starts, slices = extend_image(setup, first, plan.after_first(), beat_columns=beat, blend_join=True,
                                               tracker=tracker)
    image = pipe.decode(latents)  # (B, 1, H, W * f) Mel image in [-1, 1]
    audio = finish_audio(image.to(pipe.device), pipe.mel, samples, fade_out_seconds=fade_out_seconds,
                         target_lufs=target_lufs)
    return LongClip.from_columns(
        image, audio, pipe.mel, slice_columns=mel_spans(slice_spans([0] + starts, slice_width, total_width), factor),
        slices=[first] + slices, seam_columns=[(s + k) * factor for s in starts], seams_before_seconds=seconds,
        bpm=None if beat is None else beat_bpm(beat, pipe.mel), first_slice_redraws=redraws if setup.reads_beat else None,
    )


def latents_of(pipe, image: torch.Tensor) -> torch.Tensor:
    """A Mel image (1, 1, H, W) -> its latents (1, C, h, ceil(W / f)): the image padded with its last
    column to a whole number of latent columns, encoded a slice at a time."""
    factor, chunk = pipe.factor, pipe.mel.x_res
    width = math.ceil(image.shape[-1] / factor) * factor
    image = torch.nn.functional.pad(image, (0, width - image.shape[-1], 0, 0), mode="replicate")
    return torch.cat([pipe.encode(image[..., s : s + chunk]).cpu() for s in range(0, width, chunk)], dim=-1)
