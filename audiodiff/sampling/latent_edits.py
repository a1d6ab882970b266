"""The edits of given audio on latent pipelines: continuation and gap filling, loops, variations
(with DDIM inversion) and interpolation, each the Mel-image edit (edits.py, inversion.py) run on
the VAE's latents (latent.py says how the sampling wing sees them).

Given audio enters latent space through the VAE's encoder, the posterior's mean (the same audio
always gives the same latents); a latent column is known only when all of its `factor` Mel
columns are. What is made leaves through the VAE's decoder as a Mel image, and from there the
audio is made exactly as for Mel-image models: the given audio spliced back unchanged, crossfaded
into the new part; one period of a loop decoded with its own ends around it.

Inversion runs on the latents, with the conditioned UNet when the model is conditional, so that
encode -> invert -> sample back (eta 0) -> decode gives back the VAE's own round trip of the audio
(tests/test_latent.py measures it); diffusers' `encode()` inverts the Mel image, without the VAE
or the encoding.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import torch

from ..metrics import DEFAULT_TARGET_LUFS
from .beat import read_given_beat
from .edits import LOOP_OVERLAP_SECONDS, EditError, Timeline, _end_columns, check_audio, loop_audio, spliced_audio
from .finish import set_level
from .inversion import (INVERSION_CALLS_PER_STEP, _clip_from_image, _resample_slices, image_of, invert,
                        inversion_scheduler, resample, slerp)
from .latent import latent_setup, latents_of, mel_spans
from .longclip import LongClip, extend_image, first_slice, slice_spans
from .options import (DEFAULT_STRENGTH, SamplingOptions, SamplingSetup, check_bpm_use, check_strength,
                      default_overlap_seconds, sampling_options)
from .plan import plan_cover, plan_extend, unet_calls
from .progress import JobProgress, job
from .steering import beat_bpm, beat_columns_for


def _setup(pipe, options: SamplingOptions | None, sampling: dict, most_overlap_seconds: float | None = None,
           new_music: bool = False) -> SamplingSetup:
    """An edit's setup in latent columns (as edits.prepare: at least one known column, a bpm only
    for edits that make `new_music`)."""
    options = sampling_options(options, sampling)
    check_bpm_use(options.bpm, new_music, error=EditError)
    if options.overlap_seconds is None and most_overlap_seconds is not None:
        options = replace(options, overlap_seconds=min(most_overlap_seconds, default_overlap_seconds(pipe.mel)))
    setup = latent_setup(pipe, options, EditError)
    return replace(setup, overlap_columns=max(setup.overlap_columns, 1))


# ---- continuation and gap filling -------------------------------------------------------------
def _fill(pipe, setup: SamplingSetup, timeline: Timeline, progress) -> LongClip:
    """Generate, in latent space, the gap of a timeline with one given piece at its start and
    optionally one at its end (edits._fill's job)."""
    mel, factor, batch = pipe.mel, pipe.factor, setup.batch_size
    image, known, reference = timeline.image(mel)  # (1, 1, H, W) Mel image, (W,) known columns
    width = image.shape[-1]
    unknown = torch.nonzero(~known).flatten()
    g0, g1 = int(unknown[0]), int(unknown[-1]) + 1  # generated Mel columns [g0, g1)
    k0, k1 = g0 // factor, math.ceil(g1 / factor)  # latent columns wholly known before / after the gap
    if k0 < 1:
        raise EditError(f"the given audio must hold at least one latent column of this model "
                        f"({factor * mel.hop_length / mel.sample_rate:.3f} s of whole STFT windows) before the gap")
    context = min(k0, setup.slice_width)  # only the last slice's worth is encoded: it is all a slice sees
    start = k0 - context
    prefix = pipe.encode(image[..., start * factor : k0 * factor]).cpu()  # (1, C, h, context)
    end_known, tail, gen_end = None, 0, math.ceil(width / factor)
    if g1 < width and width // factor - k1 >= 1:  # audio after the gap with at least one whole latent column
        tail = _end_columns(setup, width // factor - k1)
        end_known, gen_end = pipe.encode(image[..., k1 * factor : (k1 + tail) * factor]).cpu(), k1
    plan = plan_extend(setup, context, context + gen_end - k0 + tail, tail=tail)
    beat = None
    if setup.options.tempo_hold:  # A's beat, in Mel columns, read as edits._fill reads it
        beat = torch.full((batch,), beat_columns_for(read_given_beat(image[..., :g0], timeline.pieces[0][1], mel), mel))
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        made, starts, slices = extend_image(setup, prefix.expand(batch, -1, -1, -1).contiguous(), plan,
                                            end_known=end_known, beat_columns=beat, tracker=tracker)
    new = pipe.decode(made)[..., context * factor : (context + gen_end - k0) * factor]  # Mel columns [k0 f, gen_end f)
    result = torch.cat([image[..., : k0 * factor].expand(batch, -1, -1, -1), new,
                        image[..., gen_end * factor :].expand(batch, -1, -1, -1)], dim=-1)[..., :width]

    audio, seams = spliced_audio(timeline, result, mel, reference)  # as edits._fill
    spans = slice_spans([start + s for s in starts], setup.slice_width, gen_end + tail)
    return LongClip.from_columns(result, audio, mel, slice_columns=mel_spans(spans, factor), slices=slices,
                                 seam_seconds=seams, known_columns=known, bpm=None if beat is None else beat_bpm(beat, mel))


def continue_latent(pipe, audio: torch.Tensor, seconds: float, options: SamplingOptions | None = None, *,
                    progress: "bool | JobProgress" = True, **sampling) -> LongClip:
    """`edits.continue_audio` for a latent pipeline: the given audio (T,) unchanged, then `seconds`
    of new audio continuing it, (B, T + round(seconds * sample_rate))."""
    if not seconds > 0:
        raise EditError(f"seconds to add must be positive, got {seconds}")
    setup = _setup(pipe, options, sampling)
    audio = check_audio(audio, pipe.mel, "the audio to continue")
    added = int(round(seconds * pipe.mel.sample_rate))
    return _fill(pipe, setup, Timeline(pieces=[(0, audio)], total=audio.numel() + added), progress)


def fill_gap_latent(pipe, audio_a: torch.Tensor, audio_b: torch.Tensor, seconds: float,
                    options: SamplingOptions | None = None, *, progress: "bool | JobProgress" = True,
                    **sampling) -> LongClip:
    """`edits.fill_gap` for a latent pipeline: A, `seconds` of new audio leading into B, B."""
    if not seconds > 0:
        raise EditError(f"the gap must be positive, got {seconds} s")
    setup = _setup(pipe, options, sampling)
    audio_a = check_audio(audio_a, pipe.mel, "audio A (before the gap)")
    audio_b = check_audio(audio_b, pipe.mel, "audio B (after the gap)")
    gap = int(round(seconds * pipe.mel.sample_rate))
    timeline = Timeline(pieces=[(0, audio_a), (audio_a.numel() + gap, audio_b)],
                        total=audio_a.numel() + gap + audio_b.numel())
    return _fill(pipe, setup, timeline, progress)


# ---- loops -----------------------------------------------------------------------------------
def make_loop_latent(pipe, seconds: float, options: SamplingOptions | None = None, *,
                     progress: "bool | JobProgress" = True, target_lufs: float | None = DEFAULT_TARGET_LUFS,
                     **sampling) -> LongClip:
    """`edits.make_loop` for a latent pipeline: exactly round(seconds * sample_rate) samples that
    repeat seamlessly. The period is a whole number of latent columns (`factor` Mel columns
    each), resampled to the exact length as edits.make_loop resamples a whole number of Mel columns."""
    setup = _setup(pipe, options, sampling, most_overlap_seconds=LOOP_OVERLAP_SECONDS, new_music=True)
    grid, mel, factor, k = setup.mel, pipe.mel, pipe.factor, setup.overlap_columns
    samples = int(round(seconds * mel.sample_rate)) if seconds > 0 else 0
    loop_width = int(round(samples / grid.hop_length))  # one period in latent columns
    end = _end_columns(setup, k)
    if loop_width < end + k + 1:
        raise EditError(f"a loop must be at least {grid.columns_to_seconds(end + k + 1):.2f} s with this model and "
                        "overlap; ask for more --seconds or a smaller --overlap")
    prefix_width = min(setup.slice_width, loop_width - k)
    plan = plan_extend(setup, prefix_width, loop_width + end, tail=end, first_width=setup.slice_width)
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        first, beat, redraws = first_slice(setup, tracker)  # the beat (B,) in Mel columns, or None
        made, starts, slices = extend_image(setup, first[..., :prefix_width], plan.after_first(),
                                            end_known=first[..., :end], beat_columns=beat, tracker=tracker)
    image = pipe.decode(made)  # the period and a copy of its first `end` latent columns after it
    audio = set_level(loop_audio(image[..., : loop_width * factor], mel, samples), mel.sample_rate, target_lufs)
    spans = [(0, prefix_width)] + slice_spans(starts, setup.slice_width, loop_width + end)
    return LongClip.from_columns(image, audio, mel, slice_columns=mel_spans(spans, factor), slices=[first] + slices,
                                 seam_columns=[(s + k) * factor for s in starts if s + k < loop_width],
                                 seam_seconds=[samples / mel.sample_rate], bpm=None if beat is None else beat_bpm(beat, mel),
                                 first_slice_redraws=redraws if setup.reads_beat else None)


# ---- variations and interpolation ------------------------------------------------------------------
def _decoded_clip(pipe, setup: SamplingSetup, made: torch.Tensor, width: int, samples: int, gain, starts,
                  slices) -> LongClip:
    """Resampled latents -> the clip, its Mel image cropped to the given audio's `width` columns."""
    factor = pipe.factor
    mel_setup = replace(setup, mel=pipe.mel, slice_width=setup.slice_width * factor,
                        overlap_columns=setup.overlap_columns * factor)
    return _clip_from_image(mel_setup, pipe.decode(made)[..., :width], samples, gain, [s * factor for s in starts],
                            slices)


def vary_latent(pipe, audio: torch.Tensor, strength: float = DEFAULT_STRENGTH, options: SamplingOptions | None = None, *,
                invert_audio: bool = False, eta: float | None = None, progress: "bool | JobProgress" = True,
                **sampling) -> LongClip:
    """`inversion.vary` for a latent pipeline: the given audio's latents resampled slice by slice,
    from noise at `strength` (SDEdit) or (invert_audio) from their DDIM inversion, then decoded.
    With invert_audio and eta 0 it gives back the VAE's own round trip of the audio's Mel image,
    up to the inversion's error."""
    check_strength(strength, EditError)
    setup = _setup(pipe, options, sampling)
    audio = check_audio(audio, pipe.mel, "the audio to vary")
    image, reference = image_of(audio, pipe.mel)
    setup, made, starts, slices = resample(setup, latents_of(pipe, image), strength, invert_audio, eta, progress)
    return _decoded_clip(pipe, setup, made, image.shape[-1], audio.numel(), math.sqrt(reference), starts, slices)


def interpolate_latent(pipe, audio_a: torch.Tensor, audio_b: torch.Tensor, alphas: Sequence[float] = (0.5,),
                       options: SamplingOptions | None = None, *, progress: "bool | JobProgress" = True,
                       **sampling) -> LongClip:
    """`inversion.interpolate` for a latent pipeline: A's and B's latents inverted, one clip per
    alpha sampled (DDIM, eta 0) from the slerp of the two, then decoded."""
    alphas = [float(a) for a in alphas]
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise EditError(f"interpolation alphas must be between 0 and 1, got {alphas}")
    setup = _setup(pipe, options, dict(sampling, scheduler="ddim", seed=0, generator=None))
    setup = replace(setup, scheduler=inversion_scheduler(setup.base_scheduler))
    audio_a = check_audio(audio_a, pipe.mel, "audio A")
    audio_b = check_audio(audio_b, pipe.mel, "audio B")
    samples = min(audio_a.numel(), audio_b.numel())
    (image_a, reference_a), (image_b, reference_b) = (image_of(x[:samples], pipe.mel) for x in (audio_a, audio_b))
    latents_a, latents_b = latents_of(pipe, image_a), latents_of(pipe, image_b)
    plan = plan_cover(setup, latents_a.shape[-1], (2 * INVERSION_CALLS_PER_STEP + 1) * unet_calls(setup.steps))
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        def latents(start: int, end: int) -> torch.Tensor:
            a, b = (invert(setup.unet, setup.base_scheduler, z[..., start:end], num_inference_steps=setup.steps,
                           progress=tracker, keep_padding=True) for z in (latents_a, latents_b))
            return torch.cat([slerp(a, b, alpha) for alpha in alphas])

        made, starts, slices = _resample_slices(setup, plan, latents_a, len(alphas), 1.0, latents, 0.0, tracker)
    gains = [math.sqrt(reference_a) ** (1 - a) * math.sqrt(reference_b) ** a for a in alphas]
    return _decoded_clip(pipe, setup, made, image_a.shape[-1], samples, gains, starts, slices)
