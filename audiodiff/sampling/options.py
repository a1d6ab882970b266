"""The sampling options: every knob of a job in one frozen dataclass, checked when made and
resolved against the loaded pipeline once (`SamplingSetup.prepare`).

Each default keeps one line of reason here; the measurements behind them are in
docs/sampling-defaults.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..mel import MelConfig
from .autoguide import DEFAULT_BASE_GUIDANCE, check_base_guidance, guided_unet
from .quantize import DEFAULT_QUANTIZE, check_quantize
from ..metrics import MAX_BPM, MIN_BPM
from .schedulers import DEFAULT_SCHEDULER, default_steps, is_stateless, make_scheduler, scheduler_key

# 1.5 s of context for each next slice (three beats at 120 bpm), chosen by the tempo measure;
# models with short slices get at most 40 % of a slice (more overlap made their clips worse)
DEFAULT_OVERLAP_SECONDS = 1.5
MAX_DEFAULT_OVERLAP_FRACTION = 0.4
# 1: no choice; N candidates hold the level better and are more tonal but cost N times the UNet calls of a slice
DEFAULT_CANDIDATES = 1
MAX_CANDIDATES = 16
# 1: no draws. --draws 3 starts each slice as 3 draws of which the most tonal goes on after a tenth of
# its steps (sampling.tonal): 30 s clips' flatness 0.0028 -> 0.0023-0.0024 for ~1.2x the UNet calls,
# but the clips move away from the genre (genre ratio 0.62 -> 0.92; docs/sampling-defaults.md), so
# it is not the default
DEFAULT_DRAWS = 1
# 2, every step, loudness-weighted: the weakest hold that stops a long clip's level drifting
DEFAULT_LEVEL_HOLD = 2.0
MAX_LEVEL_HOLD = 4.0
# 0.25: the weakest tempo hold that locks a long clip's tempo and leaves its realism where it was
DEFAULT_TEMPO_HOLD = 0.25
MAX_TEMPO_HOLD = 1.0
# the share of a new clip's first slice's chain run again on the beat read from it (sampling.beat)
FIRST_SLICE_RESTEER = 0.5
MAX_REPAINT_JUMPS = 20  # RePaint used 10; each jump is one more UNet call per step (issue 25: 1e8 was accepted)
# a variation reruns half the chain: it keeps the original's outline and redraws its detail
DEFAULT_STRENGTH = 0.5
# a bpm is for what the model makes from nothing (new clips, loops); given audio keeps its own tempo
BPM_ONLY_FOR_NEW_MUSIC = "sets the tempo of a new clip or loop; an edit of your audio keeps that audio's tempo"


def check_bpm_use(bpm: float | None, new_music: bool, what: str = "a bpm", error: type[ValueError] = ValueError) -> None:
    """The one bpm rule: a bpm only for a job that makes new music (new clips, loops)."""
    if bpm is not None and not new_music:
        raise error(f"{what} {BPM_ONLY_FOR_NEW_MUSIC}")


# ---- checks, each raised as the caller's own error type when it asks ---------------------------
def check_strength(strength: float | None, error: type[ValueError] = ValueError) -> float:
    """A variation's strength must be in (0, 1]: the fraction of the chain that is run again."""
    if strength is None or not 0.0 < strength <= 1.0:
        raise error(f"strength must be in (0, 1], got {strength}")
    return strength


def check_invertible(scheduler: str, error: type[ValueError] = ValueError) -> None:
    """DDIM inversion (variations with --invert, interpolation) needs the ddim scheduler."""
    if scheduler != "ddim":
        raise error(f"inversion is DDIM's: --invert and --interpolate need --scheduler ddim, not {scheduler}")


def check_counts(num_inference_steps: int | None, batch_size: int, repaint_jumps: int) -> None:
    if num_inference_steps is not None and num_inference_steps < 1:
        raise ValueError(f"steps must be at least 1, got {num_inference_steps}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if not 0 <= repaint_jumps <= MAX_REPAINT_JUMPS:
        raise ValueError(f"repaint jumps must be from 0 to {MAX_REPAINT_JUMPS}, got {repaint_jumps}")


def check_candidates(candidates: int, what: str = "candidates") -> None:
    if not isinstance(candidates, int) or isinstance(candidates, bool) or not 1 <= candidates <= MAX_CANDIDATES:
        raise ValueError(f"{what} must be a whole number from 1 to {MAX_CANDIDATES}, got {candidates!r}")


def _check_overlap_seconds(overlap_seconds: float) -> None:
    if not overlap_seconds >= 0:
        raise ValueError(f"overlap must be >= 0 seconds, got {overlap_seconds}")


def _check_holds(level_hold: float, tempo_hold: float, bpm: float | None) -> None:
    if not (isinstance(level_hold, (int, float)) and 0 <= level_hold <= MAX_LEVEL_HOLD):
        raise ValueError(f"level hold must be from 0 (off) to {MAX_LEVEL_HOLD:g}, got {level_hold!r}")
    if not (isinstance(tempo_hold, (int, float)) and 0 <= tempo_hold <= MAX_TEMPO_HOLD):
        raise ValueError(f"tempo hold must be from 0 (off) to {MAX_TEMPO_HOLD:g}, got {tempo_hold!r}")
    if bpm is not None:
        if not (isinstance(bpm, (int, float)) and not isinstance(bpm, bool) and MIN_BPM <= bpm <= MAX_BPM):
            raise ValueError(f"bpm must be from {MIN_BPM:g} to {MAX_BPM:g}, got {bpm!r}")
        if not tempo_hold:
            raise ValueError("a bpm is kept by the tempo hold: not with the tempo hold off (--no-tempo-hold)")


def check_generator(generator: torch.Generator) -> None:
    if generator.device.type != "cpu":
        raise ValueError("pass a CPU torch.Generator: noise is drawn on the CPU so a seed gives the same noise on every device")


def make_generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator:
    """The generator to draw every random tensor from: `generator` (on the CPU), else one seeded with `seed`."""
    if generator is not None:
        check_generator(generator)
        return generator
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    return torch.Generator("cpu").manual_seed(int(seed))


# ---- what the pipeline says ------------------------------------------------------------------
def pipeline_parts(pipe) -> tuple[Any, Any, MelConfig]:
    try:
        return pipe.unet, pipe.scheduler, pipe.mel
    except AttributeError as exc:
        raise TypeError("expected a pipeline with .unet, .scheduler and .mel (audiodiff.pipeline.AudioDiffusion)") from exc


def sample_shape(unet) -> tuple[int, int]:
    """(height, width) of the images the UNet was trained on."""
    size = unet.config.sample_size
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])


def downsampling_factor(unet) -> int:
    """Image sizes must be multiples of this: 2 ** (number of downsampling blocks)."""
    return 2 ** (len(unet.config.down_block_types) - 1)


def default_overlap_seconds(mel: MelConfig) -> float:
    """DEFAULT_OVERLAP_SECONDS (1.5 s), or 40 % of a slice for models whose slices are shorter."""
    return min(DEFAULT_OVERLAP_SECONDS, round(MAX_DEFAULT_OVERLAP_FRACTION * mel.slice_seconds, 3))


def overlap_columns(overlap_seconds: float, mel: MelConfig, slice_width: int) -> int:
    """K, the known columns each continued slice starts with; must leave new columns to make."""
    _check_overlap_seconds(overlap_seconds)
    k = int(round(mel.seconds_to_columns(overlap_seconds)))
    if k >= slice_width:
        raise ValueError(
            f"overlap ({overlap_seconds:g} s) must be shorter than one slice of this model ({mel.slice_seconds:.2f} s): "
            f"it is {k} columns, a slice {slice_width}"
        )
    return k


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample a clip or an edit, checked when made; None means the pipeline's default,
    filled in by `resolve(pipe)`. `generate_long` and every edit of `audiodiff.edits` take one.

    scheduler: "ddim", "ddpm", "dpm" (aliases such as "dpm++" are stored as these), or None for
        the pipeline's own kind.
    num_inference_steps: steps per slice; None: the scheduler's usual count (DEFAULT_STEPS_BY_SCHEDULER).
    overlap_seconds: of the previous slice each next slice continues from; None:
        `default_overlap_seconds(mel)` (1.5 s on the public and bundled models).
    seed, generator: the noise; a CPU torch.Generator when given (it wins over the seed), else
        one seeded with `seed` (None: a random seed).
    batch_size: clips at once. repaint_jumps: RePaint resampling per step (ddim and ddpm only).
    candidates: versions of every slice sampled together, of which the most tonal one near the
        clip's level is kept (`sampling.tonal`; see DEFAULT_CANDIDATES); 1 (the default): no choice.
    draws: each slice starts as this many draws, of which the most tonal goes on after a tenth of
        its steps (DEFAULT_DRAWS, 1: why); 1: no choice. Not used with candidates.
    level_hold: how strongly each continued slice is held at the clip's level while it is sampled
        (DEFAULT_LEVEL_HOLD, 2: why); 0: the level is the model's draw.
    tempo_hold: how strongly each continued slice is kept on the clip's beat (DEFAULT_TEMPO_HOLD,
        0.25: why); 0: each slice's metre is the model's draw.
    bpm: the tempo of a new clip or loop, MIN_BPM to MAX_BPM: its first slice is steered onto it
        too; None: the first slice's own beat. Needs the tempo hold.
    base_guidance: how far a fine-tuned run is guided away from the model it was fine-tuned from
        (`sampling.autoguide`, DEFAULT_BASE_GUIDANCE 1.5: why); 1: off. Only where the pipeline
        has its base attached (`pipeline.attach_base`); otherwise it changes nothing.
    quantize: how far a new clip's beats are settled onto an even grid of its held beat after
        sampling (`sampling.quantize`, DEFAULT_QUANTIZE 1: onto it; why there), 0 to 1; 0: as sampled.
        Only new clips with a held beat (the tempo hold on) on Mel-image models; loops, edits and
        latent models are left as sampled.
    latent_holds: on latent pipelines, run the holds (on the decoded prediction, every step: a VAE
        decode with its backward pass and two more decodes per step, sampling.latent_holds); off by
        default there (a bpm turns them on). Mel-image pipelines ignore it.
    """

    scheduler: str | None = DEFAULT_SCHEDULER
    num_inference_steps: int | None = None
    overlap_seconds: float | None = None
    seed: int | None = 0
    generator: torch.Generator | None = None
    batch_size: int = 1
    repaint_jumps: int = 0
    candidates: int = DEFAULT_CANDIDATES
    draws: int = DEFAULT_DRAWS
    level_hold: float = DEFAULT_LEVEL_HOLD
    tempo_hold: float = DEFAULT_TEMPO_HOLD
    bpm: float | None = None
    base_guidance: float = DEFAULT_BASE_GUIDANCE
    latent_holds: bool = False
    quantize: float = DEFAULT_QUANTIZE
    # id() of the pipeline `resolve` filled these in for: resolving for it again is a no-op, so a
    # face that resolves early (to refuse bad input before loading weights or to write the JSON)
    # and the job that samples share one resolution
    resolved_for: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.scheduler is not None:
            object.__setattr__(self, "scheduler", scheduler_key(self.scheduler))
        check_counts(self.num_inference_steps, self.batch_size, self.repaint_jumps)
        check_candidates(self.candidates)
        check_candidates(self.draws, "draws")
        _check_holds(self.level_hold, self.tempo_hold, self.bpm)
        check_base_guidance(self.base_guidance)
        check_quantize(self.quantize)
        if self.overlap_seconds is not None:
            _check_overlap_seconds(self.overlap_seconds)
        if self.generator is not None:
            check_generator(self.generator)

    def resolve(self, pipe) -> "SamplingOptions":
        """These options with the defaults filled in for `pipe` (steps, overlap), checked against
        it: the UNet's image height, steps within its noise levels, an overlap shorter than a slice.
        Options already resolved for `pipe` come back as they are."""
        if self.resolved_for == id(pipe):
            return self
        unet, base_scheduler, mel = pipeline_parts(pipe)
        height, slice_width = sample_shape(unet)
        if height != mel.y_res:
            raise ValueError(f"the UNet makes images {height} rows high but the Mel config has {mel.y_res} mel bands")
        steps = self.num_inference_steps or default_steps(self.scheduler or base_scheduler)
        noise_levels = base_scheduler.config.num_train_timesteps
        if steps > noise_levels:  # diffusers refuses more for ddim and ddpm, but only once sampling starts; dpm ran
            raise ValueError(f"{steps} steps are more than the {noise_levels} noise levels this model was trained "
                             f"with; use at most --steps {noise_levels}")
        overlap = default_overlap_seconds(mel) if self.overlap_seconds is None else self.overlap_seconds
        overlap_columns(overlap, mel, slice_width)  # shorter than one slice
        return replace(self, num_inference_steps=steps, overlap_seconds=overlap, resolved_for=id(pipe))


def sampling_options(options: SamplingOptions | None = None, keywords: dict | None = None) -> SamplingOptions:
    """`options` (default: SamplingOptions()) with keyword arguments, fields of SamplingOptions,
    laid over it: the keyword entry points (`generate_long(pipe, 5, seed=3)`) build their options here."""
    options = SamplingOptions() if options is None else options
    return replace(options, **keywords, resolved_for=None) if keywords else options  # changed: resolved anew


@dataclass(frozen=True)
class SamplingSetup:
    """What one job samples with: the pipeline's parts, its options resolved, a fresh scheduler
    (set_timesteps mutates one) and the seeded generator every random tensor is drawn from."""

    unet: Any
    base_scheduler: Any
    mel: MelConfig
    scheduler: Any
    options: SamplingOptions  # resolved: no None left but the scheduler (None: the pipeline's own kind)
    slice_width: int  # columns of the images the UNet was trained on
    overlap_columns: int  # K, the known columns each continued slice starts with
    generator: torch.Generator
    clip_to: float | None = 1.0  # what samples are clamped to: Mel images [-1, 1]; None for latents
    # latents only: what the holds read and steer the samples through (sampling.latent_holds.LatentCodec)
    codec: Any = None

    @classmethod
    def prepare(cls, pipe, options: SamplingOptions) -> "SamplingSetup":
        options = options.resolve(pipe)
        unet, base_scheduler, mel = pipeline_parts(pipe)
        _, slice_width = sample_shape(unet)
        unet = guided_unet(unet, getattr(pipe, "base_unet", None), options.base_guidance, base_scheduler)
        return cls(unet=unet, base_scheduler=base_scheduler, mel=mel,
                   scheduler=make_scheduler(options.scheduler, base_scheduler), options=options,
                   slice_width=slice_width, overlap_columns=overlap_columns(options.overlap_seconds, mel, slice_width),
                   generator=make_generator(options.generator, options.seed))

    @property
    def steps(self) -> int:
        return self.options.num_inference_steps

    @property
    def reads_beat(self) -> bool:
        """A new clip's beat is read from its first slice (and the slice steered onto it): the
        tempo hold is on, no --bpm is given, and slices overlap (sampling.beat)."""
        return bool(self.options.tempo_hold) and self.options.bpm is None and self.overlap_columns > 0

    @property
    def batch_size(self) -> int:
        return self.options.batch_size

    # ---- what the holds read: Mel images (for latents, decoded: sampling.latent_holds) ----------
    @property
    def hold_mel(self) -> MelConfig:
        """The Mel config of the images the holds read: the samples' own, or the decoded latents'."""
        return self.mel if self.codec is None else self.codec.mel

    @property
    def hold_factor(self) -> int:
        """Mel-image columns the holds read per sampled column (1, or the VAE's factor)."""
        return 1 if self.codec is None else self.codec.factor

    def readable(self, samples: torch.Tensor) -> torch.Tensor:
        """Samples as the holds read them: Mel images as they are, latents decoded."""
        return samples if self.codec is None else self.codec.decode(samples)

    def steering(self, guide, start: int):
        """A guide on the Mel images the holds read, as the loop applies it to the samples: as it is,
        or for latents on the decoded clean prediction, the change carried back to latent columns
        [start, ...) (`latent_holds.LatentCodec.guide`)."""
        return guide if self.codec is None or guide is None else self.codec.guide(guide, start)

    @property
    def draws(self) -> int:
        """The draws each slice starts as (`sampling.tonal.tonal_draws`): the option's, but 1 with
        candidates (chosen at the end instead), on latents (no Mel image to read its tonality on)
        and with a scheduler that keeps per-row state (dpm)."""
        options = self.options
        if options.candidates > 1 or self.clip_to is None or not is_stateless(self.scheduler):
            return 1
        return options.draws

    @property
    def height(self) -> int:
        return self.mel.y_res
