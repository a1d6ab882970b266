"""Long clips (DESIGN section 5): a first slice from noise, then slices that continue it, each
starting with the last columns made so far as known columns; stitched in the image domain (the
known columns carry the level reference over: no loudness jumps at the joins) and decoded once
for the whole clip (no phase seam can exist). `generate_long` is the whole job; `extend_image`
is the slice loop every continuing job shares (new clips, loops, continuations, gap fills).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..mel import MelConfig
from ..metrics import DEFAULT_TARGET_LUFS
from .finish import DEFAULT_FADE_OUT_SECONDS, finish_audio
from . import loop
from .loop import Draws, denoiser
from .options import SamplingOptions, SamplingSetup, sampling_options
from .plan import Slice, SlicePlan, draw_calls, plan_extend, unet_calls
from .beat import (MAX_FIRST_SLICE_REDRAWS, MIN_FIRST_SLICE_CLARITY, first_slice_guide, pulse_clarity, read_beats,
                   steer_onto_beat)
from .progress import JobProgress, job
from .quantize import settle_beats
from .steering import (beat_bpm, beat_columns_for, chain_guides, fold_beat, image_beat_columns, image_level_db,
                       join_blend_columns, join_pull, level_guide, tempo_guide)
from .tonal import most_tonal, tonal_draws, tonal_level_chooser


@dataclass
class LongClip:
    """A generated clip: the stitched image, its audio, and where the slices join."""

    image: torch.Tensor  # (B, 1, H, W_total) in [-1, 1], before decoding
    audio: torch.Tensor  # (B, T), T = round(seconds * sample_rate) exactly
    sample_rate: int
    slice_starts_seconds: list[float] = field(default_factory=list)  # where each slice begins
    seam_seconds: list[float] = field(default_factory=list)  # where generated audio meets known audio
    slice_columns: list[tuple[int, int]] = field(default_factory=list)  # (start, end) column of each slice
    slices: list[torch.Tensor] = field(default_factory=list, repr=False)  # each slice as sampled (B, 1, H, w)
    known_columns: torch.Tensor | None = None  # (W_total,) bool: columns taken from given audio (edits)
    bpm: list[float] | None = None  # per item: the beat the tempo hold kept (None: not held)
    first_slice_redraws: list[int] | None = None  # per item: first slices drawn again for want of a clear pulse
    # per item, where its beats were settled on a grid (sampling.quantize): its own seams, and the
    # most any column moved, in seconds; None: not settled (every item's seams are `seam_seconds`)
    item_seam_seconds: list[list[float]] | None = None
    beats_moved_seconds: list[float] | None = None

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def seams_of(self, index: int) -> list[float]:
        """Item `index`'s seams in seconds: its own where its beats were settled, else the batch's."""
        return list(self.item_seam_seconds[index] if self.item_seam_seconds is not None else self.seam_seconds)

    @classmethod
    def from_columns(cls, image: torch.Tensor, audio: torch.Tensor, mel: MelConfig, *,
                     slice_columns: list[tuple[int, int]], slices: list[torch.Tensor], seam_columns=(),
                     seams_before_seconds: float = math.inf, seam_seconds=(),
                     known_columns: torch.Tensor | None = None, bpm: list[float] | None = None,
                     first_slice_redraws: list[int] | None = None) -> "LongClip":
        """A clip from where its slices lie in image columns ((start, end) each), turned into
        seconds here: seams at `seam_columns` (those before `seams_before_seconds`), then any
        `seam_seconds` given in seconds (joins that fall between columns)."""
        seams = [mel.columns_to_seconds(column) for column in seam_columns]
        return cls(
            image=image, audio=audio, sample_rate=mel.sample_rate,
            slice_starts_seconds=[mel.columns_to_seconds(start) for start, _ in slice_columns],
            seam_seconds=[s for s in seams if s < seams_before_seconds] + list(seam_seconds),
            slice_columns=list(slice_columns), slices=list(slices), known_columns=known_columns, bpm=bpm,
            first_slice_redraws=first_slice_redraws,
        )


def slice_spans(starts: list[int], slice_width: int, end: int) -> list[tuple[int, int]]:
    """(start, end) columns of slices of `slice_width` starting at `starts`, cut at column `end`."""
    return [(start, min(start + slice_width, end)) for start in starts]


def columns_for_samples(samples: int, mel: MelConfig) -> int:
    """Fewest image columns whose decoded audio, (W - 1) * hop_length samples, covers `samples`."""
    return max(2, math.ceil(samples / mel.hop_length) + 1)


def sample_slice(setup: SamplingSetup, known: torch.Tensor, mask: torch.Tensor, *, pull=None, guide=None,
                 chooser=None, draws: Draws | None = None, tracker: JobProgress | None = None) -> torch.Tensor:
    """One continued slice (B, 1, H, w), its `known` (B, 1, H, w) columns where `mask` (w,) says.
    With candidates, each item is sampled as that many versions together, all to the last step,
    and `chooser` picks one per item from the clean images they last predicted. With `draws` (and
    no candidates), each item starts as that many draws, one going on (`loop.Draws`)."""
    n = setup.options.candidates
    if n > 1 and chooser is None:
        raise ValueError("candidates need a chooser that picks one of them")
    batch, _, height, width = known.shape
    model = denoiser(setup.unet, setup.scheduler, guide)
    rows = n if n > 1 or draws is None else draws.count  # an item's versions are neighbouring rows
    images = loop.sample(
        setup.unet, setup.scheduler, batch_size=batch * rows, width=width, num_inference_steps=setup.steps,
        generator=setup.generator, known=known.repeat_interleave(rows, dim=0), mask=mask, pull=pull,
        repaint_jumps=setup.options.repaint_jumps, model=model, draws=None if n > 1 else draws,
        progress=tracker.weighted(n) if tracker else False,
        clip_to=setup.clip_to,
    )  # an item's candidates are neighbouring rows
    if n == 1:
        return images
    predicted = model.last_prediction().float().clamp(-1.0, 1.0)[..., :width].reshape(batch, n, 1, height, width)
    picked = torch.as_tensor(chooser(predicted))
    if picked.shape != (batch,) or not bool(((picked >= 0) & (picked < n)).all()):
        raise ValueError(f"a chooser must return one candidate index in [0, {n}) per item, got {picked!r}")
    return images[(torch.arange(batch) * n + picked.long().cpu()).to(images.device)]


def _known_columns(image: torch.Tensor, s: Slice, end_known, blend_columns: int):
    """A continued slice's known image and mask: the last `s.known` columns made so far (the last
    `blended` of them only pulled toward what they were), and the known end on a final slice."""
    batch, _, height, _ = image.shape
    known = torch.zeros(batch, 1, height, s.width, dtype=torch.float32)
    mask = torch.zeros(s.width, dtype=torch.bool)
    known[..., : s.known] = image[..., image.shape[-1] - s.known :].cpu()
    mask[: s.known] = True
    blended, pull = join_pull(mask, s.known, blend_columns)
    if s.final:
        tail = end_known.shape[-1]
        known[..., s.width - tail :] = end_known.cpu().float()
        mask[s.width - tail :] = True
    return known, mask, pull, blended


def _levels(setup: SamplingSetup, image: torch.Tensor, known: torch.Tensor, k: int):
    """(the level of the clip so far, of a slice's k known columns or None): on the Mel image, or
    for latents on the clip so far decoded once (its last k latent columns are the known ones)."""
    mel = setup.hold_mel
    if setup.codec is None:
        return image_level_db(image, mel), image_level_db(known[..., :k], mel) if k else None
    decoded = setup.readable(image)
    return image_level_db(decoded, mel), image_level_db(decoded[..., -k * setup.hold_factor :], mel) if k else None


def _steering(setup: SamplingSetup, image: torch.Tensor, known: torch.Tensor, s: Slice, tail: int, beat_columns):
    """A continued slice's guide (level and tempo holds) and candidate chooser. The holds work on
    Mel images: for latents, on the decoded prediction, in Mel columns (`setup.steering`)."""
    options, mel, k, f = setup.options, setup.hold_mel, s.known, setup.hold_factor
    new_end = s.width - tail if s.final else s.width
    chooser = guide = None
    hold = options.level_hold and k and not s.final  # a slice that leads into known audio follows that audio's level
    if options.candidates > 1 or hold:
        clip_db, context_db = _levels(setup, image, known, k)  # the clip so far, the known columns
    if options.candidates > 1:
        chooser = tonal_level_chooser(clip_db, mel, new_columns=(k, new_end), context_db=context_db)
    if hold:
        guide = level_guide(clip_db, context_db, mel, new_columns=(k * f, s.width * f), strength=options.level_hold)
    if options.tempo_hold and k:
        guide = chain_guides(guide, tempo_guide(beat_columns, new_columns=(k * f, new_end * f),
                                                strength=options.tempo_hold))
    return setup.steering(guide, k), chooser


def extend_image(setup: SamplingSetup, image: torch.Tensor, plan: SlicePlan, *, end_known: torch.Tensor | None = None,
                 beat_columns: torch.Tensor | None = None, blend_join: bool = False,
                 tracker: JobProgress | None = None) -> tuple[torch.Tensor, list[int], list[torch.Tensor]]:
    """Continue `image` (B, 1, H, W0) to `plan.total_width` columns, one slice of `plan` at a time.

    Every slice starts with the last `setup.overlap_columns` columns made so far as known columns;
    its new columns are appended. `end_known` (B|1, 1, H, We), when given, is known content the
    generated part must lead into (gap filling, loops): it becomes the last We columns of the
    result, and the last slice holds [overlap | the rest of the gap | end_known]. Returns the image
    (B, 1, H, total_width), the column where each new slice starts, and each slice as sampled.
    The options' holds and candidates steer each slice (`_steering`); the tempo hold keeps the beat
    `beat_columns` (B,), or `image`'s own (`image_beat_columns`), halved while longer than the overlap.
    blend_join: regenerate the last JOIN_BLEND_SECONDS (at most half) of each slice's known columns,
    pulled toward what they were (`join_pull`), and replace them in the image: for images that are
    all generated (the known columns may change).
    """
    tail = 0 if end_known is None else end_known.shape[-1]
    if tail and setup.overlap_columns + tail >= setup.slice_width:
        raise ValueError(f"overlap ({setup.overlap_columns} columns) plus the known end ({tail} columns) must be "
                         f"narrower than one slice ({setup.slice_width})")
    blend_columns = join_blend_columns(setup.mel) if blend_join else 0
    if setup.options.tempo_hold:  # in the columns of the Mel images the holds read
        beat = image_beat_columns(setup.readable(image), setup.hold_mel) if beat_columns is None else beat_columns
        beat_columns = fold_beat(beat, setup.overlap_columns * setup.hold_factor)
    starts: list[int] = []
    slices: list[torch.Tensor] = []
    for s in plan.slices:
        known, mask, pull, blended = _known_columns(image, s, end_known, blend_columns)
        if tracker is not None:
            tracker.next_slice()
        guide, chooser = _steering(setup, image, known, s, tail, beat_columns)
        draws = tonal_draws(setup, (s.known, s.width - tail if s.final else s.width))
        slice_image = sample_slice(setup, known, mask, pull=pull, guide=guide, chooser=chooser, draws=draws,
                                   tracker=tracker)
        starts.append(image.shape[-1] - s.known)
        slices.append(slice_image.cpu())
        image = torch.cat([image[..., : image.shape[-1] - blended],  # a blended tail is replaced
                           slice_image[..., s.known - blended : s.known + s.keep].to(image.device)], dim=-1)
    if tail and image.shape[-1] == plan.total_width - tail:  # nothing left to generate: the end is pasted as is
        image = torch.cat([image, end_known.expand(image.shape[0], -1, -1, -1).to(image)], dim=-1)
    return image[..., : plan.total_width], starts, slices


def _draw_first(setup: SamplingSetup, batch_size: int, guide, tracker: JobProgress | None) -> torch.Tensor:
    """`batch_size` first slices from the next noise of `setup.generator` -> (batch_size, 1, H,
    slice_width) on the CPU; with candidates, each the most tonal of that many, else of its draws
    (sampling.tonal)."""
    n, draws = setup.options.candidates, tonal_draws(setup)
    image = loop.sample(
        setup.unet, setup.scheduler, batch_size=batch_size * (draws.count if draws else n), width=setup.slice_width,
        num_inference_steps=setup.steps, generator=setup.generator, repaint_jumps=setup.options.repaint_jumps,
        model=denoiser(setup.unet, setup.scheduler, guide), draws=draws,
        progress=tracker.weighted(n) if tracker else False, clip_to=setup.clip_to,
    ).cpu()  # an item's candidates (draws) are neighbouring rows
    if n > 1:
        image = image.reshape(batch_size, n, *image.shape[1:])
        image = image[torch.arange(batch_size), most_tonal(image, setup.mel).cpu()]
    return image


def redraw_unclear(setup: SamplingSetup, image: torch.Tensor, tracker: JobProgress | None) -> tuple[torch.Tensor, list[int]]:
    """First slices (B, 1, H, W) whose pulse is unclear (clarity below MIN_FIRST_SLICE_CLARITY)
    drawn again, together, from the generator's next noise, at most MAX_FIRST_SLICE_REDRAWS
    times; each item keeps its clearest draw -> (image, redraws per item). Deterministic for a
    seed. The progress total grows by each redraw's calls when it is decided (`add_steps`)."""
    clarity = pulse_clarity(setup.readable(image), setup.hold_mel)
    redraws = [0] * image.shape[0]
    for _ in range(MAX_FIRST_SLICE_REDRAWS):
        doubtful = [i for i in range(image.shape[0]) if float(clarity[i]) < MIN_FIRST_SLICE_CLARITY]
        if not doubtful:
            break
        if tracker is not None:
            tracker.add_steps(unet_calls(setup.steps, repaint_jumps=setup.options.repaint_jumps,
                                         candidates=setup.options.candidates) + draw_calls(setup),
                              f"drawing the first slice again (no clear pulse in {len(doubtful)} of {image.shape[0]})")
        drawn = _draw_first(setup, len(doubtful), None, tracker)
        drawn_clarity = pulse_clarity(setup.readable(drawn), setup.hold_mel)
        for j, i in enumerate(doubtful):
            redraws[i] += 1
            if drawn_clarity[j] > clarity[i]:
                image[i], clarity[i] = drawn[j], drawn_clarity[j]
    return image, redraws


def first_slice(setup: SamplingSetup, tracker: JobProgress | None) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """A clip's first slice, from noise: (B, 1, H, slice_width) on the CPU, the beat (B,) in
    columns that the continued slices keep (None without the tempo hold), and how many times each
    item's first slice was drawn again. With candidates, each item's first slice is the most tonal
    of that many, else of its draws (`tonal.tonal_draws`). With `options.bpm` the beat is that tempo's and the first slice is steered onto
    it as it is made; else a slice without a clear pulse is drawn again (`redraw_unclear`), the
    beat is read from it (`beat.read_beats`) and the slice's last part is run again on it."""
    options, mel = setup.options, setup.hold_mel  # the beat is in the held Mel images' columns
    if tracker is not None:
        tracker.next_slice()
    guide = beat = None
    if options.bpm is not None:
        beat = torch.full((setup.batch_size,), beat_columns_for(options.bpm, mel))
        guide = first_slice_guide(setup, beat)
    image = _draw_first(setup, setup.batch_size, guide, tracker)
    redraws = [0] * setup.batch_size
    if setup.reads_beat:
        image, redraws = redraw_unclear(setup, image, tracker)
        if tracker is not None and any(redraws):
            tracker.set_stage("sampling")  # back from "drawing the first slice again"
        beat = read_beats(setup.readable(image), mel)
        image = steer_onto_beat(setup, image, beat, tracker)
    return image, beat, redraws


def generate_long(
    pipe,
    seconds: float,
    options: SamplingOptions | None = None,
    *,
    progress: "bool | JobProgress | None" = True,
    fade_out_seconds: float = DEFAULT_FADE_OUT_SECONDS,
    target_lufs: float | None = DEFAULT_TARGET_LUFS,
    **sampling,
) -> LongClip:
    """A clip of exactly `seconds` (round(seconds * sample_rate) samples) per batch item.

    pipe: anything with .unet, .scheduler, .mel (audiodiff.pipeline.AudioDiffusion).
    options: how to sample (`SamplingOptions`: scheduler "ddim" by default, its usual steps, an
        overlap of `default_overlap_seconds(mel)`, seed 0); keyword arguments named as its fields
        (`seed=3, num_inference_steps=20`) are laid over it.
    progress: True: one tqdm bar for the whole clip (slices x steps); a `JobProgress`: report to
        it (and stop when it says so); False: silent.
    A latent pipeline (one with a `vqvae`) is sampled in latent space (`latent.generate_long_latent`).
    """
    if getattr(pipe, "vqvae", None) is not None:
        from .latent import generate_long_latent

        return generate_long_latent(pipe, seconds, options, progress=progress, fade_out_seconds=fade_out_seconds,
                                    target_lufs=target_lufs, **sampling)
    options = sampling_options(options, sampling)
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    setup = SamplingSetup.prepare(pipe, options)
    mel, k, slice_width = setup.mel, setup.overlap_columns, setup.slice_width
    samples = int(round(seconds * mel.sample_rate))
    total_width = columns_for_samples(samples, mel)
    plan = plan_extend(setup, slice_width, total_width, first_width=slice_width)
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        first, beat, redraws = first_slice(setup, tracker)  # (B, 1, H, slice_width), (B,) or None, B ints
        image, starts, slices = extend_image(setup, first, plan.after_first(), beat_columns=beat, blend_join=True,
                                             tracker=tracker)
    seams = [s + k for s in starts]
    image, item_seams, moved = settle_beats(image, beat, mel, options.quantize, seams, seconds)
    audio = finish_audio(image.to(setup.unet.device), mel, samples, fade_out_seconds=fade_out_seconds,
                         target_lufs=target_lufs)
    clip = LongClip.from_columns(
        image, audio, mel, slice_columns=slice_spans([0] + starts, slice_width, total_width),
        slices=[first] + slices, seam_columns=seams, seams_before_seconds=seconds,
        bpm=None if beat is None else beat_bpm(beat, mel), first_slice_redraws=redraws if setup.reads_beat else None,
    )
    clip.item_seam_seconds, clip.beats_moved_seconds = item_seams, moved
    return clip
