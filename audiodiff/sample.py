"""Sampling: one explicit denoising loop, masked (inpainting) sampling, and long clips.

Everything that generates goes through `sample`, one short loop in diffusers' style (UNet call,
`scheduler.step`). A mask of *known* pixels (usually whole columns, i.e. moments in time) turns
it into inpainting: after every scheduler step to timestep t_prev the known pixels are
overwritten with the known clean image noised to t_prev, so the generated pixels are always
denoised next to known pixels at the *same* noise level. (The reference pipeline pastes them at
the level of the step's input, one step behind; after its last step the known part is still
noisy.) After the last step the known pixels equal the clean known image exactly. Any mask
works: a prefix (continuation), both ends (gap filling), the start of a clip at its end
(loops), so the edits of issue 7 are this loop with other masks or other starting noise.

Long clips (DESIGN section 5), `generate_long`:
1. slice 0 is sampled from noise;
2. each next slice's first K columns (K = overlap seconds * sample_rate / hop_length) are the
   previous slice's last K columns, known to the masked loop; the rest is generated;
3. the slices are stitched in the *image* domain (the known columns are the previous slice's
   pixels, so the level reference carries over: no loudness jumps at the joins) and the phase is
   reconstructed once for the whole clip (no phase seam can exist);
4. the audio is trimmed to exactly `seconds`, faded out, and its loudness normalised once
   (BS.1770, `audiodiff.metrics.normalize_loudness`).

Determinism: every random tensor (initial noise, DDPM step noise, RePaint noise) is drawn on the
CPU from one seeded `torch.Generator`, so a seed gives the same noise on every device and the
same bytes on the same device.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from .mel import MelConfig, images_to_audio, images_to_db
from .metrics import DEFAULT_PEAK_CEILING, DEFAULT_TARGET_LUFS, MAX_BPM, MIN_BPM, normalize_loudness  # noqa: F401 - re-exported

SCHEDULERS = ("ddim", "ddpm", "dpm")
DEFAULT_SCHEDULER = "ddim"
# 50 DDIM steps is the reference pipeline's default and where DDIM's output stops changing
# audibly on the public 256 models; DDPM needs its full 1000. DPM-Solver++ is not the default
# for long clips: on the previous (hop-512, 4.10 s) bundled model (4 clips of 30 s, 2 s overlap) 20 DPM steps left
# some first slices as noise and the continued level swung by -16..+63 LU/min, where 50 DDIM
# steps drifted -1.5 LU/min (tempo spread 18 % vs 13 %, seam 1.67 vs 1.19).
DEFAULT_STEPS_BY_SCHEDULER = {"ddim": 50, "dpm": 25, "ddpm": 1000}
# Overlap between consecutive slices of a long clip, in seconds: 1.5 s of context for each next
# slice (62 columns of the bundled model, three beats at 120 bpm), chosen by the tempo measure.
# On the bundled 4.03 s model fine-tuned on jazz by the README's command (DDIM 50, 4 clips of 30 s,
# seeds 0-3; benchmarks/long_clip.py's measures):
#   overlap   tempo spread (median)   drift LU/min (mean, signed)   seam   key   slices   time per clip
#   0.5 s     25.9 %                  -1.88          1.14   0.92    9       22.8 s
#   1.0 s     20.7 %                  -1.49          1.24   0.93   10       28.4 s
#   1.5 s     18.0 %                  -0.88          1.21   0.90   12       30.0 s   <- default
#   2.0 s     19.9 %                  -0.44          1.21   0.90   14       34.7 s
# More context holds the level (the drift shrinks with every step) and, up to 1.5 s, the tempo;
# 2 s costs 16 % more time for no steadier tempo. On the previous (hop-512) 4.10 s model 1 s and
# 2 s gave 11.5 / 12.7 %, and on a tiny UNet (1.02 s slices) every measure got worse with more
# overlap: models with short slices get at most 40 % of a slice. The reference notebook's 2 s is
# a flag away (--overlap 2).
DEFAULT_OVERLAP_SECONDS = 1.5
MAX_DEFAULT_OVERLAP_FRACTION = 0.4
# Candidates (opt-in, --candidates N): each continued slice is sampled N times at once and the
# one whose new columns' level (mean Mel power) lies closest to the level of the whole clip so far
# is kept. Why: a slice sees nothing of the clip before its 1.5 s of context, so the level it comes
# out at is the model's draw around the context's level (new columns vs the clip so far: 1.0-1.4 dB
# mean size per slice on the bundled model fine-tuned on jazz), and the draws add up from slice
# to slice; choosing against the clip's level, not the context's, pulls each slice back. Measured
# there (DDIM 50, 30 s clips, seeds 0-3):
#   candidates   chosen after       level error per slice   |drift| LU/min   seam   x real time
#   1            -                  1.43 dB                 3.20             1.21   1.0x
#   3            the last step      0.63 dB                 1.42             1.01   2.6x
#   3            half the steps     0.91 dB                 2.43             1.02   1.8x
#   3            a fifth            -                       6.04 (8 clips)   1.11   1.4x
# Choosing before the end does not hold up: on seeds 4-7 half the steps gave 1.05 dB against
# 1.00 unchosen (|drift| 5.1 vs 3.3), and a fifth chose worse than chance. Early in the chain
# the predicted image is blurred (its level reads up to 15 dB off; read against the prediction of
# the known columns, as `level_chooser` does, the offset cancels but the ranking of candidates a
# dB or two apart does not survive the steps still to come). So candidates are finished before
# one is chosen (extend_image chooses after the last step), which costs N times the UNet calls of each
# continued slice: too slow to be the default at the 2x-real-time bar, worth it for a clip you keep.
DEFAULT_CANDIDATES = 1
# The level hold (on by default; --no-level-hold): why continued slices drift, and the fix. A slice
# sees only its 1.5 s of context, so the level of its new columns is the model's draw around the
# context's level, nothing holds it to the clip's, and the draws add up: on the bundled model
# fine-tuned on jazz the new columns of a continued slice differ from the clip so far by 1.0-1.4 dB
# (mean size), and 30 s clips drift like a random walk (+4.6, -5.1, -1.0, -2.1 LU/min). The model
# lacks the clip's level, so the sampler gives it: at every step, the new columns of the model's
# predicted clean image are moved (in dB, which is linear in grey) toward the level of the whole
# clip so far, by DEFAULT_LEVEL_HOLD times the difference, weighted from 0 at the join to 1 after
# LEVEL_HOLD_RAMP_SECONDS (the join stays continuous); the model then builds the detail of its next
# steps at that level. The level of a prediction is read against the prediction of the known columns,
# which cancels the blur of early predictions (their level reads up to 15 dB low), and weighted
# band by band as BS.1770 weights loudness (`image_level_db`). Measured (DDIM 50, 8 clips of 30 s,
# seeds 0-7; level error: new columns vs the clip so far, mean size over 88 slices):
#   level hold                                level error   |drift| LU/min   seam   tempo %   x real time
#   none                                      1.2 dB        3.22             1.14   17.4      1.0x
#   0.5, first 60 % of the steps, plain power 1.07 dB       2.84             1.13   17.9      1.0x
#   1.0, first 90 % of the steps, plain power 0.81 dB       2.65             1.11   23.0      1.0x
#   2.0, every step, plain power              0.20 dB       0.96             1.13   19.1      1.0x
#   2.0, every step, K-weighted (default)     0.20 dB       0.33             1.13   19.5      1.0x
# and on seeds 8-15: none 2.11, plain power 1.19, K-weighted 0.44 LU/min (seam 1.18, 1.28, 1.28).
# Real built-in jazz drifts 1.0. Held only in the early steps, the level drifts back: the last steps
# decide it; held in plain Mel power, the image's level stayed put (+-0.5 dB/min) but the loudness
# still moved with the balance of bass and treble. A clip keeps one level throughout, as the genre's
# music does; a crescendo longer than a slice is what it gives up.
DEFAULT_LEVEL_HOLD = 2.0
MAX_LEVEL_HOLD = 4.0
LEVEL_HOLD_RAMP_SECONDS = 1.0
# The tempo hold (on by default; --no-tempo-hold): why long clips wandered in tempo, and the fix.
# A single generated slice has a weak pulse: its onset envelope's autocorrelation peak (pulse
# clarity) is 0.22 on the bundled model fine-tuned on jazz, against 0.47 for the built-in jazz the
# model learned from (through the codec), and no sampler setting changed it (DDIM 50/200, eta 1,
# DPM-Solver++ 25: 0.22-0.23). A slice continued from 1.5 s of such context picks its own metre,
# so the 5 s windows of a 30 s clip read 85, 125, 93 bpm: a tempo spread of 18-20 %. The model
# lacks a steady beat, so the sampler gives it one, as the level hold gives it a level: the clip's
# beat period is read once, from the onset envelope of everything made before the first continued
# slice (`image_beat_columns`: the first slice, or the audio an edit continues), and at every step
# the rhythmic part of each new column's envelope (8 band groups; the envelope minus its moving
# average over one beat) is blended DEFAULT_TEMPO_HOLD of the way toward the envelope one beat
# earlier, then scaled back to the spread it had (`tempo_guide`). The first beat of new columns
# echoes the known context, so the clip keeps the context's phase too. Measured (DDIM 50, 30 s
# clips; realism (seeds 0-3): Frechet distance of the long clips' 4 s windows to held-out jazz over the
# distance between two halves of it, 1.0 = as close as jazz is to itself):
#   tempo hold                            tempo %, seeds 0-3 / 4-7   pulse clarity   realism   seam
#   none                                  19.5 / 19.7                0.21            1.81      1.20 / 1.05
#   0.1                                   17.5 / -                   -               -         1.21
#   0.25 (default)                        0.7 / 1.7                  0.41-0.42       1.82      1.20 / 1.14
#   0.5                                   0.6 / -                    0.57            2.56      1.10
#   0.5, spread not restored              0.7 / -                    0.52            4.31      1.13
#   0.5, first half of the steps only     19.8 / -                   -               -         1.21
# (real built-in jazz: 0.2 %). Without restoring the spread, blending two envelopes a beat apart
# averages the onsets away (onset strength fell 2.5 standard deviations below jazz's); stronger
# holds over-regularise (clarity above jazz's, realism worse); held only early, the last steps
# undo it. 0.25 is the weakest hold that locks the tempo and leaves realism where it was.
DEFAULT_TEMPO_HOLD = 0.25
# a bpm is for what the model makes from nothing (new clips, loops); given audio keeps its own tempo
BPM_ONLY_FOR_NEW_MUSIC = "sets the tempo of a new clip or loop; an edit of your audio keeps that audio's tempo"
MAX_TEMPO_HOLD = 1.0
TEMPO_HOLD_BAND_GROUPS = 8
# The blended join (new clips): the spike at the joins, and the fix. Measured on the held clips of
# the bundled model fine-tuned on jazz, the seam score is 1.17-1.22 at the joins but 0.86-0.98 a
# tenth of a second before them: the first new columns tend to start with an onset, where the
# masked sampler meets columns it may not change. So the last JOIN_BLEND_SECONDS of the known
# columns are not held fixed but pulled toward what they were, by JOIN_BLEND_PULL of the way after
# every step at their far end, falling to nothing at the join (a feathered mask edge), and the
# previous slice's tail is replaced by the blended one. Measured (DDIM 50, 30 s clips, both holds;
# clip realism as in DEFAULT_TEMPO_HOLD's table):
#   blended join          seam, seeds 0-3 / 4-7   |drift| LU/min   tempo %       clip realism
#   none                  1.20 / 1.14             0.35 / 0.16      0.7 / 1.7     1.82 / 1.87
#   0.14 s (6 columns)    1.10 / 1.06             0.49 / 0.16      0.7 / 1.7     -
#   0.24 s (10 columns)   1.05 / 1.03             0.66 / 0.34      0.8 / 1.7     1.84 / 1.87
# The score 0.24 s before the joins, where the blend begins, stays where it was (0.985 / 1.144
# against 0.978 / 1.142): the spike is smoothed, not moved. Only new clips blend: an edit's known
# columns are the user's audio, and a loop's may be its own start.
JOIN_BLEND_SECONDS = 0.25
JOIN_BLEND_PULL = 0.8
MAX_CANDIDATES = 16
MAX_REPAINT_JUMPS = 20  # RePaint used 10; each jump is one more UNet call per step (issue 25: 1e8 was accepted)
DEFAULT_FADE_OUT_SECONDS = 0.5
FADE_IN_SECONDS = 0.005  # removes a click if the first sample is far from zero


# ---- schedulers ------------------------------------------------------------------------------
def _scheduler_classes() -> dict:
    """diffusers' scheduler classes by short name (imported on first use: diffusers takes seconds
    to import, and `scripts/generate.py --help` should not wait for it)."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    return {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "dpm": DPMSolverMultistepScheduler}


def make_scheduler(name: str | None, base_scheduler):
    """A fresh scheduler of kind `name` ("ddim", "ddpm", "dpm" or None: the base's own kind),
    built from `base_scheduler`'s config, so it shares the noise schedule (betas) the UNet was
    trained with. Never the same object: set_timesteps mutates a scheduler."""
    config = base_scheduler.config
    if name is None:
        return type(base_scheduler).from_config(config)
    key = scheduler_key(name)
    if key == "dpm":
        return _scheduler_classes()["dpm"].from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    return _scheduler_classes()[key].from_config(config)


def scheduler_key(name: str) -> str:
    """A scheduler name as a user may write it ("DDIM", "dpm++") -> one of SCHEDULERS."""
    key = name.lower() if isinstance(name, str) else name
    if key in ("ddim", "ddpm"):
        return key
    if key in ("dpm", "dpm++", "dpmsolver++"):
        return "dpm"
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def scheduler_name(scheduler) -> str:
    """Short name of a scheduler instance ("ddim", "ddpm", "dpm") or its class name."""
    for name, cls in _scheduler_classes().items():
        if isinstance(scheduler, cls):
            return name
    return type(scheduler).__name__


def default_steps(scheduler) -> int:
    """The usual step count of a scheduler (an instance, or a name of SCHEDULERS)."""
    return DEFAULT_STEPS_BY_SCHEDULER.get(scheduler if isinstance(scheduler, str) else scheduler_name(scheduler), 50)


# ---- the sampling options --------------------------------------------------------------------
def check_strength(strength: float | None, error: type[ValueError] = ValueError) -> float:
    """A variation's strength must be in (0, 1]: the fraction of the chain that is run again."""
    if strength is None or not 0.0 < strength <= 1.0:
        raise error(f"strength must be in (0, 1], got {strength}")
    return strength


def check_invertible(scheduler: str, error: type[ValueError] = ValueError) -> None:
    """DDIM inversion (variations with --invert, interpolation) needs the ddim scheduler."""
    if scheduler != "ddim":
        raise error(f"inversion is DDIM's: --invert and --interpolate need --scheduler ddim, not {scheduler}")


def _check_counts(num_inference_steps: int | None, batch_size: int, repaint_jumps: int) -> None:
    if num_inference_steps is not None and num_inference_steps < 1:
        raise ValueError(f"steps must be at least 1, got {num_inference_steps}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if not 0 <= repaint_jumps <= MAX_REPAINT_JUMPS:
        raise ValueError(f"repaint jumps must be from 0 to {MAX_REPAINT_JUMPS}, got {repaint_jumps}")


def _check_candidates(candidates: int, choose=None, choose_after: int | None = None,
                      num_inference_steps: int | None = None) -> None:
    if not isinstance(candidates, int) or isinstance(candidates, bool) or not 1 <= candidates <= MAX_CANDIDATES:
        raise ValueError(f"candidates must be a whole number from 1 to {MAX_CANDIDATES}, got {candidates!r}")
    if candidates > 1 and choose is None and choose_after is not None:
        raise ValueError("candidates need a `choose` function that picks one of them")
    if candidates > 1 and num_inference_steps is not None and not 1 <= choose_after <= num_inference_steps:
        raise ValueError(f"choose_after must be a step from 1 to {num_inference_steps}, got {choose_after}")


def _check_overlap_seconds(overlap_seconds: float) -> None:
    if not overlap_seconds >= 0:
        raise ValueError(f"overlap must be >= 0 seconds, got {overlap_seconds}")


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
    candidates: versions of every continued slice sampled together, of which the one closest to
        the clip's level is kept (see DEFAULT_CANDIDATES); 1 (the default): no choice.
    level_hold: how strongly each continued slice is held at the clip's level while it is sampled
        (DEFAULT_LEVEL_HOLD, 2: why); 0: the level is the model's draw.
    tempo_hold: how strongly each continued slice is kept on the clip's beat (DEFAULT_TEMPO_HOLD,
        0.25: why); 0: each slice's metre is the model's draw.
    bpm: the tempo of a new clip or loop, MIN_BPM to MAX_BPM: its first slice is steered onto it
        too; None: the first slice's own beat. Needs the tempo hold.
    """

    scheduler: str | None = DEFAULT_SCHEDULER
    num_inference_steps: int | None = None
    overlap_seconds: float | None = None
    seed: int | None = 0
    generator: torch.Generator | None = None
    batch_size: int = 1
    repaint_jumps: int = 0
    candidates: int = DEFAULT_CANDIDATES
    level_hold: float = DEFAULT_LEVEL_HOLD
    tempo_hold: float = DEFAULT_TEMPO_HOLD
    bpm: float | None = None

    def __post_init__(self):
        if self.scheduler is not None:
            object.__setattr__(self, "scheduler", scheduler_key(self.scheduler))
        _check_counts(self.num_inference_steps, self.batch_size, self.repaint_jumps)
        _check_candidates(self.candidates)
        if not (isinstance(self.level_hold, (int, float)) and 0 <= self.level_hold <= MAX_LEVEL_HOLD):
            raise ValueError(f"level hold must be from 0 (off) to {MAX_LEVEL_HOLD:g}, got {self.level_hold!r}")
        if not (isinstance(self.tempo_hold, (int, float)) and 0 <= self.tempo_hold <= MAX_TEMPO_HOLD):
            raise ValueError(f"tempo hold must be from 0 (off) to {MAX_TEMPO_HOLD:g}, got {self.tempo_hold!r}")
        if self.bpm is not None:
            if not (isinstance(self.bpm, (int, float)) and not isinstance(self.bpm, bool) and MIN_BPM <= self.bpm <= MAX_BPM):
                raise ValueError(f"bpm must be from {MIN_BPM:g} to {MAX_BPM:g}, got {self.bpm!r}")
            if not self.tempo_hold:
                raise ValueError("a bpm is kept by the tempo hold: not with the tempo hold off (--no-tempo-hold)")
        if self.overlap_seconds is not None:
            _check_overlap_seconds(self.overlap_seconds)
        if self.generator is not None:
            _check_generator(self.generator)

    def resolve(self, pipe) -> "SamplingOptions":
        """These options with the defaults filled in for `pipe` (steps, overlap), checked against
        it: the UNet's image height, steps within its noise levels, an overlap shorter than a slice."""
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
        return replace(self, num_inference_steps=steps, overlap_seconds=overlap)


def sampling_options(options: SamplingOptions | None = None, keywords: dict | None = None) -> SamplingOptions:
    """`options` (default: SamplingOptions()) with keyword arguments, fields of SamplingOptions,
    laid over it: the keyword entry points (`generate_long(pipe, 5, seed=3)`) build their options here."""
    options = SamplingOptions() if options is None else options
    return replace(options, **keywords) if keywords else options


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

    @classmethod
    def prepare(cls, pipe, options: SamplingOptions) -> "SamplingSetup":
        options = options.resolve(pipe)
        unet, base_scheduler, mel = pipeline_parts(pipe)
        _, slice_width = sample_shape(unet)
        return cls(unet=unet, base_scheduler=base_scheduler, mel=mel,
                   scheduler=make_scheduler(options.scheduler, base_scheduler), options=options,
                   slice_width=slice_width, overlap_columns=overlap_columns(options.overlap_seconds, mel, slice_width),
                   generator=make_generator(options.generator, options.seed))

    @property
    def steps(self) -> int:
        return self.options.num_inference_steps

    @property
    def batch_size(self) -> int:
        return self.options.batch_size

    @property
    def repaint_jumps(self) -> int:
        return self.options.repaint_jumps

    @property
    def candidates(self) -> int:
        return self.options.candidates

    def continued_slice_calls(self) -> int:
        """UNet calls (as `JobProgress` counts them) of one continued slice."""
        return unet_calls(self.steps, repaint_jumps=self.repaint_jumps, candidates=self.candidates,
                          choose_after=self.steps)


# ---- progress and stopping -----------------------------------------------------------------
class Cancelled(Exception):
    """The job was stopped (its `should_stop` said so) between two denoising steps."""


class JobProgress:
    """One count of a whole job's UNet calls against a total computed before the first one.

    The function that runs a job (`generate_long`, the edits) knows how many slices it will
    sample and how many UNet calls each costs, and calls `begin(total_steps, slices)` once;
    `sample` and `invert` call `step()` after every UNet call; the slice loops call
    `next_slice(what)`. So a 30 s clip is one count from 0 to slices x steps, not one bar per
    slice, and a stop is noticed within one UNet call.

    bar: show a tqdm bar on stderr (the command line). on_update(progress): called at every
    change (the app draws its own bar from `done_steps`, `total_steps`, `description()`).
    should_stop(): checked before every UNet call and before decoding; True raises `Cancelled`.
    """

    def __init__(self, *, bar: bool = False, on_update: Callable[["JobProgress"], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        self.show_bar = bar
        self.on_update = on_update
        self.should_stop = should_stop
        self.total_steps = 0
        self.done_steps = 0
        self.slices = 0
        self.slice_index = 0  # 1-based once the first slice starts
        self.stage = "starting"
        self.started = time.monotonic()
        self._bar = None

    def begin(self, total_steps: int, slices: int) -> None:
        self.total_steps, self.slices = int(total_steps), int(slices)
        self.done_steps, self.slice_index, self.started = 0, 0, time.monotonic()
        if self.show_bar and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total_steps, unit="step", dynamic_ncols=True)
        self._changed()

    def next_slice(self, what: str = "sampling") -> None:
        self.slice_index += 1
        self.stage = what
        self._changed()

    def set_stage(self, what: str) -> None:
        self.stage = what
        self._changed()

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("stopped")

    def step(self, count: int = 1) -> None:
        self.done_steps += count
        self.total_steps = max(self.total_steps, self.done_steps)  # never past 100 %
        if self._bar is not None:
            self._bar.total = self.total_steps
            self._bar.update(count)
        self._changed(moved=True)

    def seconds_left(self) -> float | None:
        """Time left at the rate so far (None before the first step)."""
        if self.done_steps == 0:
            return None
        rate = (time.monotonic() - self.started) / self.done_steps
        return rate * (self.total_steps - self.done_steps)

    def description(self) -> str:
        """e.g. "sampling slice 3 of 6", "decoding the audio"."""
        if self.slices and self.slice_index and self.stage in ("sampling", "inverting"):
            return f"{self.stage} slice {min(self.slice_index, self.slices)} of {self.slices}"
        return self.stage

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _changed(self, moved: bool = False) -> None:
        if self._bar is not None and not moved:  # a new slice or stage: shown at once, even between refreshes
            self._bar.set_description_str(self.description(), refresh=True)
        if self.on_update is not None:
            self.on_update(self)


def job_progress(progress: "bool | JobProgress | None") -> JobProgress | None:
    """A library function's `progress` argument -> the JobProgress to report to: the caller's
    own, a new one with a tqdm bar for True, or None (False/None: report nothing)."""
    if isinstance(progress, JobProgress):
        return progress
    return JobProgress(bar=True) if progress else None


def decoding(tracker: JobProgress | None) -> None:
    """Last chance to stop before the (long) decode; then say that it is decoding."""
    if tracker is not None:
        tracker.check()
        tracker.set_stage("decoding the audio")


def unet_calls(num_inference_steps: int, *, strength: float | None = None, repaint_jumps: int = 0,
               candidates: int = 1, choose_after: int = 0) -> int:
    """UNet calls of one `sample()`: the steps it runs, plus RePaint's extra calls (none after the
    last step); a call on `candidates` versions of an item, in its first `choose_after` steps,
    counts as that many (it costs that much)."""
    steps = num_inference_steps
    if strength is not None:
        steps -= strength_start_index(num_inference_steps, strength)
    calls = steps + repaint_jumps * (steps - 1)
    if candidates > 1:
        shared = min(choose_after, steps)
        calls += (candidates - 1) * (shared + repaint_jumps * min(shared, steps - 1))
    return calls


# ---- helpers ---------------------------------------------------------------------------------
def _check_generator(generator: torch.Generator) -> None:
    if generator.device.type != "cpu":
        raise ValueError("pass a CPU torch.Generator: noise is drawn on the CPU so a seed gives the same noise on every device")


def make_generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator:
    """The generator to draw every random tensor from: `generator` (on the CPU), else one seeded with `seed`."""
    if generator is not None:
        _check_generator(generator)
        return generator
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    return torch.Generator("cpu").manual_seed(int(seed))


def sample_shape(unet) -> tuple[int, int]:
    """(height, width) of the images the UNet was trained on."""
    size = unet.config.sample_size
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])


def downsampling_factor(unet) -> int:
    """Image sizes must be multiples of this: 2 ** (number of downsampling blocks)."""
    return 2 ** (len(unet.config.down_block_types) - 1)


def _alpha_bar(scheduler, timestep) -> float:
    """Cumulative alpha at `timestep` (None: the clean end of the chain, alpha_bar = 1)."""
    if timestep is None:
        return 1.0
    return float(scheduler.alphas_cumprod[int(timestep)])


def _noised(known: torch.Tensor, noise: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """q(x_t | x_0): sqrt(a) x0 + sqrt(1 - a) eps (the same formula as scheduler.add_noise)."""
    return math.sqrt(alpha_bar) * known + math.sqrt(1.0 - alpha_bar) * noise


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


def _is_stateless(scheduler) -> bool:
    """DDIM and DDPM steps depend only on (t, sample): a step can be redone (RePaint)."""
    return scheduler_name(scheduler) in ("ddim", "ddpm")


# ---- the denoising loop ----------------------------------------------------------------------
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
    start_noise: torch.Tensor | None = None,
    strength: float | None = None,
    repaint_jumps: int = 0,
    progress: "bool | JobProgress | None" = True,
    eta: float = 0.0,
    candidates: int = 1,
    choose: Callable[[torch.Tensor], torch.Tensor] | None = None,
    choose_after: int = 0,
    guide: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    pull: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generate (B, 1, H, width) images in [-1, 1] with `unet` and `scheduler`.

    known: (B|1, 1, H, width) clean image in [-1, 1]; mask: which of its pixels are known
        (True), as (width,) columns, (B, width) columns per item, or (B|1, 1, H|1, width).
        Known pixels are re-imposed after every step at the step's output noise level and
        equal `known` exactly in the result.
    strength: in (0, 1]: start from `known` (all of it) noised to that fraction of the chain
        and run only the last `strength * num_inference_steps` steps (variations).
    start_noise: (B, 1, H, width) starting sample at the first timestep run (pure noise, or at
        the `strength` level, e.g. from a DDIM inversion); default: fresh seeded noise.
    repaint_jumps: RePaint resampling (Lugmayr et al. 2022): after each step, re-noise one step
        and denoise again this many times, so generated and known pixels agree better. Needs a
        stateless scheduler (DDIM or DDPM); costs (1 + jumps) UNet calls per step.
    width: any width; the UNet is fully convolutional. Widths that are not a multiple of its
        downsampling factor are padded with generated columns and cropped.
    progress: a `JobProgress` (counts every UNet call, may stop the loop between them by raising
        `Cancelled`), True (a bar for this call alone) or False.
    candidates, choose, choose_after: sample `candidates` versions of every item together for the
        first `choose_after` steps, then keep one per item: `choose` gets their predicted clean
        images (B, candidates, 1, H, width) in [-1, 1] (the model's prediction everywhere, known
        pixels included: a prediction early in the chain is blurred, and the known pixels
        as predicted show by how much) and returns the
        index of the one to finish for each item, (B,). The others are dropped, so the rest of
        the chain costs what one would. Not with `start_noise` or `strength`.
    guide: called with each step's predicted clean image (rows, 1, H, padded width), float, and
        the step's index; what it returns (or None: unchanged) is what the step is taken towards
        (the model output is rewritten to predict it). `level_guide` holds a slice's level.
    pull: (width,) weights in [0, 1] for columns outside the mask: after every step they are moved
        this fraction of the way toward `known` at the step's noise level (a feathered mask edge:
        the column is regenerated, near what it was). Needs `known`.
    """
    _check_counts(num_inference_steps, batch_size, repaint_jumps)
    _check_candidates(candidates, choose, choose_after, num_inference_steps)
    if candidates > 1 and (start_noise is not None or strength is not None):
        raise ValueError("candidates start from fresh noise: not with start_noise or strength")
    if repaint_jumps and not _is_stateless(scheduler):
        raise ValueError(f"repaint_jumps needs a scheduler whose steps can be redone (ddim or ddpm), not {scheduler_name(scheduler)}")
    if strength is not None:
        check_strength(strength)
    if (mask is not None or strength is not None) and known is None:
        raise ValueError("a mask or a strength needs the known image (`known`)")
    height, sample_width = sample_shape(unet)
    width = int(width or sample_width)
    device, dtype = unet.device, unet.dtype
    generator = make_generator(generator, seed)

    # Pad to a multiple of the UNet's downsampling factor; the padding is generated, then cropped.
    factor = downsampling_factor(unet)
    padded_width = math.ceil(width / factor) * factor
    pad = padded_width - width
    rows = batch_size * candidates  # an item's candidates are neighbouring rows
    shape = (rows, unet.config.in_channels, height, padded_width)

    if known is not None:
        known = torch.as_tensor(known).to(device=device, dtype=torch.float32)
        if known.dim() != 4 or known.shape[-2:] != (height, width) or known.shape[0] not in (1, batch_size):
            raise ValueError(f"known image must be (B or 1, 1, {height}, {width}), got {tuple(known.shape)}")
        known_exact = torch.nn.functional.pad(known.expand(batch_size, -1, -1, -1), (0, pad))  # float32
        known_exact = known_exact.repeat_interleave(candidates, dim=0)
        known = known_exact.to(dtype)
        if mask is None:
            mask_full = torch.zeros(shape, dtype=torch.bool, device=device)
        else:
            mask_full = torch.nn.functional.pad(_expand_mask(mask, batch_size, height, width).to(device), (0, pad), value=False)
            mask_full = mask_full.repeat_interleave(candidates, dim=0)
        if not mask_full.any():
            mask_full = None
    else:
        mask_full = None

    # One noise tensor, drawn on the CPU: it starts the chain and noises the known pixels at
    # every level, so known pixels follow the same deterministic path DDIM would take.
    noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)

    set_timesteps(scheduler, num_inference_steps, device)
    timesteps = scheduler.timesteps
    start_index = 0
    if strength is not None:
        start_index = strength_start_index(num_inference_steps, strength)
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start_index * getattr(scheduler, "order", 1))
    timesteps = timesteps[start_index:]

    if start_noise is not None:
        start_noise = torch.as_tensor(start_noise).to(device=device, dtype=dtype)
        if start_noise.shape == shape:  # padded too (an inversion of the padded image: `invert(keep_padding=True)`)
            x = start_noise
        elif start_noise.shape == (batch_size, shape[1], height, width):
            x = torch.cat([start_noise, noise[..., width:]], dim=-1)
        else:
            raise ValueError(f"start_noise must have shape {(batch_size, shape[1], height, width)}, got {tuple(start_noise.shape)}")
    elif strength is not None:
        x = _noised(known, noise, _alpha_bar(scheduler, timesteps[0]))
    else:
        x = noise * scheduler.init_noise_sigma
    if mask_full is not None:
        x = torch.where(mask_full, _noised(known, noise, _alpha_bar(scheduler, timesteps[0])), x)
    pull_full = None
    if pull is not None:
        pull = torch.as_tensor(pull, dtype=torch.float32)
        if known is None or pull.shape != (width,) or not bool(((pull >= 0) & (pull <= 1)).all()):
            raise ValueError(f"pull must be ({width},) weights in [0, 1], with the known image")
        pull_full = torch.nn.functional.pad(pull, (0, pad)).view(1, 1, 1, -1).to(device, dtype)

    is_ddim = scheduler_name(scheduler) == "ddim"

    own_progress = progress is True
    tracker = job_progress(progress)
    if own_progress:
        tracker.begin(unet_calls(len(timesteps), repaint_jumps=repaint_jumps, candidates=candidates,
                                 choose_after=choose_after), slices=0)
        tracker.set_stage("sampling")
    weight = candidates  # progress counts a UNet call on all of an item's candidates as that many calls
    model_output = None
    step_index = 0

    def denoise(x: torch.Tensor, t) -> torch.Tensor:
        nonlocal model_output
        if tracker is not None:
            tracker.check()
        model_input = scheduler.scale_model_input(x, t)
        model_output = unet(model_input, t).sample  # (B, 1, H, W)
        if guide is not None:
            clean = _predicted_clean(scheduler, model_output, x, t)
            steered = guide(clean.float(), step_index)
            if steered is not None:
                model_output = _model_output_for(scheduler, steered.to(clean), x, t)
        # the noise re-derived from the clipped x0, else each step loses signal (docs/tonality.md)
        kwargs = {"eta": eta, "use_clipped_model_output": True} if is_ddim else {}
        out = scheduler.step(model_output, t, x, generator=generator, **kwargs).prev_sample
        if tracker is not None:
            tracker.step(weight)
        return out

    for i in range(len(timesteps)):
        step_index = i
        t = timesteps[i]
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else None
        for jump in range(repaint_jumps + 1 if t_prev is not None else 1):
            if jump > 0:
                # RePaint: go back up one step, q(x_t | x_t_prev), and denoise again.
                ratio = _alpha_bar(scheduler, t) / _alpha_bar(scheduler, t_prev)
                fresh = torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)
                x = math.sqrt(ratio) * x + math.sqrt(1.0 - ratio) * fresh
            x_in = x
            x = denoise(x, t)
            if mask_full is not None or pull_full is not None:
                # the known pixels at the level of this step's *output* (t_prev): no lag
                target = _noised(known, noise, _alpha_bar(scheduler, t_prev))
                if pull_full is not None:
                    x = x + pull_full * (target - x)
                if mask_full is not None:
                    x = torch.where(mask_full, target, x)
        if candidates > 1 and i + 1 == choose_after:
            clean = _predicted_clean(scheduler, model_output, x_in, t).float().clamp(-1.0, 1.0)
            picked = torch.as_tensor(choose(clean[..., :width].reshape(batch_size, candidates, *clean.shape[1:3], width)))
            if picked.shape != (batch_size,) or not bool(((picked >= 0) & (picked < candidates)).all()):
                raise ValueError(f"choose must return one candidate index in [0, {candidates}) per item, got {picked!r}")
            kept = torch.arange(batch_size) * candidates + picked.long().cpu()
            x, noise = x[kept.to(x.device)], noise[kept.to(noise.device)]
            if mask_full is not None:
                mask_full, known, known_exact = (v[kept.to(v.device)] for v in (mask_full, known, known_exact))
            _keep_rows(scheduler, kept, rows)
            shape, weight = (batch_size, *shape[1:]), 1
    if own_progress:
        tracker.close()
    if not torch.isfinite(x).all():  # decoded, it would be silence written as a clip (issue 25)
        from .pipeline import GenerationError

        raise GenerationError("the model produced NaN or infinite values (broken weights, or an overflow in half "
                              "precision: try --device cpu); no clip was written")
    x = x.float().clamp(-1.0, 1.0)
    if mask_full is not None:
        x = torch.where(mask_full, known_exact, x)  # exactly the clean known image, in float32
    return x[..., :width]


def _predicted_clean(scheduler, model_output: torch.Tensor, x: torch.Tensor, t) -> torch.Tensor:
    """The clean image the model predicts from `x` at timestep `t` (its x0 estimate)."""
    alpha_bar = _alpha_bar(scheduler, t)
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    if kind == "sample":
        return model_output
    if kind == "v_prediction":
        return math.sqrt(alpha_bar) * x - math.sqrt(1.0 - alpha_bar) * model_output
    return (x - math.sqrt(1.0 - alpha_bar) * model_output) / math.sqrt(alpha_bar)


def _model_output_for(scheduler, clean: torch.Tensor, x: torch.Tensor, t) -> torch.Tensor:
    """The model output that predicts `clean` from `x` at timestep `t` (`_predicted_clean` inverted)."""
    alpha_bar = _alpha_bar(scheduler, t)
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    if kind == "sample":
        return clean
    if kind == "v_prediction":
        return (math.sqrt(alpha_bar) * x - clean) / math.sqrt(1.0 - alpha_bar)
    return (x - math.sqrt(alpha_bar) * clean) / math.sqrt(1.0 - alpha_bar)


def _keep_rows(scheduler, kept: torch.Tensor, rows: int) -> None:
    """Drop the candidates not kept from a multistep scheduler's memory of earlier model outputs
    (DPM-Solver++); DDIM and DDPM steps remember nothing."""
    for name in ("model_outputs", "timestep_list"):
        history = getattr(scheduler, name, None)
        if isinstance(history, list):
            setattr(scheduler, name, [v[kept.to(v.device)] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == rows
                                      else v for v in history])
    last = getattr(scheduler, "last_sample", None)
    if torch.is_tensor(last) and last.dim() > 0 and last.shape[0] == rows:
        scheduler.last_sample = last[kept.to(last.device)]


def strength_start_index(num_inference_steps: int, strength: float) -> int:
    """Index of the first timestep run at `strength`: the last strength * steps steps are run."""
    return min(int(round(num_inference_steps * (1.0 - strength))), num_inference_steps - 1)


def set_timesteps(scheduler, num_inference_steps: int, device) -> None:
    if _accepts_device(scheduler):
        scheduler.set_timesteps(num_inference_steps, device=device)
    else:
        scheduler.set_timesteps(num_inference_steps)


def _accepts_device(scheduler) -> bool:
    import inspect

    return "device" in inspect.signature(scheduler.set_timesteps).parameters


# ---- long clips ------------------------------------------------------------------------------
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

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    @classmethod
    def from_columns(cls, image: torch.Tensor, audio: torch.Tensor, mel: MelConfig, *,
                     slice_columns: list[tuple[int, int]], slices: list[torch.Tensor], seam_columns=(),
                     seams_before_seconds: float = math.inf, seam_seconds=(),
                     known_columns: torch.Tensor | None = None, bpm: list[float] | None = None) -> "LongClip":
        """A clip from where its slices lie in image columns ((start, end) each), turned into
        seconds here: seams at `seam_columns` (those before `seams_before_seconds`), then any
        `seam_seconds` given in seconds (joins that fall between columns)."""
        seconds_per_column = mel.hop_length / mel.sample_rate
        seams = [column * seconds_per_column for column in seam_columns]
        return cls(
            image=image, audio=audio, sample_rate=mel.sample_rate,
            slice_starts_seconds=[start * seconds_per_column for start, _ in slice_columns],
            seam_seconds=[s for s in seams if s < seams_before_seconds] + list(seam_seconds),
            slice_columns=list(slice_columns), slices=list(slices), known_columns=known_columns, bpm=bpm,
        )


def slice_spans(starts: list[int], slice_width: int, end: int) -> list[tuple[int, int]]:
    """(start, end) columns of slices of `slice_width` starting at `starts`, cut at column `end`."""
    return [(start, min(start + slice_width, end)) for start in starts]


def pipeline_parts(pipe) -> tuple[Any, Any, MelConfig]:
    try:
        return pipe.unet, pipe.scheduler, pipe.mel
    except AttributeError as exc:
        raise TypeError("expected a pipeline with .unet, .scheduler and .mel (audiodiff.pipeline.AudioDiffusion)") from exc


def columns_for_samples(samples: int, mel: MelConfig) -> int:
    """Fewest image columns whose decoded audio, (W - 1) * hop_length samples, covers `samples`."""
    return max(2, math.ceil(samples / mel.hop_length) + 1)


def default_overlap_seconds(mel: MelConfig) -> float:
    """DEFAULT_OVERLAP_SECONDS (1.5 s), or 40 % of a slice for models whose slices are shorter."""
    return min(DEFAULT_OVERLAP_SECONDS, round(MAX_DEFAULT_OVERLAP_FRACTION * mel.slice_seconds, 3))


def overlap_columns(overlap_seconds: float, mel: MelConfig, slice_width: int) -> int:
    """K, the known columns each continued slice starts with; must leave new columns to make."""
    _check_overlap_seconds(overlap_seconds)
    k = int(round(overlap_seconds * mel.sample_rate / mel.hop_length))
    if k >= slice_width:
        raise ValueError(
            f"overlap ({overlap_seconds:g} s) must be shorter than one slice of this model ({mel.slice_seconds:.2f} s): "
            f"it is {k} columns, a slice {slice_width}"
        )
    return k


def extend_plan(start_width: int, total_width: int, *, overlap_columns: int, slice_width: int, tail: int = 0
                ) -> list[tuple[int, int, int, bool]]:
    """The slices `extend_image` samples to continue an image of `start_width` columns to
    `total_width`, the last `tail` of them known -> [(known columns k, slice width, columns kept,
    final)]. Pure arithmetic, so a job can count its UNet calls before the first one."""
    gap_end = total_width - tail  # columns [gap_end, total_width) are the known end
    made = start_width
    plan = []
    while made < gap_end:
        k = min(overlap_columns, made)
        remaining = gap_end - made
        final = bool(tail) and k + remaining + tail <= slice_width
        if final:
            width, keep = k + remaining + tail, remaining + tail
        else:
            width = slice_width
            # with a known end ahead, stop early enough that the last slice still fits it
            keep = min(slice_width - k, remaining + k + tail - slice_width) if tail else slice_width - k
        plan.append((k, width, keep, final))
        made += keep
    return plan


def extend_image(
    unet,
    scheduler,
    image: torch.Tensor,
    total_width: int,
    *,
    overlap_columns: int,
    num_inference_steps: int,
    generator: torch.Generator,
    repaint_jumps: int = 0,
    progress: "bool | JobProgress | None" = True,
    end_known: torch.Tensor | None = None,
    candidates: int = 1,
    mel: MelConfig | None = None,
    level_hold: float = 0.0,
    tempo_hold: float = 0.0,
    beat_columns: torch.Tensor | None = None,
    blend_join: bool = False,
) -> tuple[torch.Tensor, list[int], list[torch.Tensor]]:
    """Continue `image` (B, 1, H, W0) to `total_width` columns, one slice at a time.

    Every slice is sampled at the UNet's training width and starts with the last
    `overlap_columns` columns made so far as known columns; its new columns are appended.
    `end_known` (B|1, 1, H, We), when given, is known content the generated part must lead into
    (gap filling, loops): it becomes the last We columns of the result, and the last slice holds
    [overlap | the rest of the gap | end_known]. Returns the image (B, 1, H, total_width), the
    column where each new slice starts, and each slice as sampled (B, 1, H, width), before it
    was cut into the image. The slices are `extend_plan`'s.
    candidates: sample each slice as this many candidates, all to the last step, and keep the one
    whose new columns' level is closest to the image made so far (`level_chooser`); needs the
    Mel config `mel` (its dB scale).
    level_hold: hold each slice's new columns at the level of the image made so far, this strong
    (`level_guide`; 0: off); not the last slice before `end_known`. Needs `mel` too.
    tempo_hold: keep every slice's new columns on the beat of `image` as given, this strong
    (`tempo_guide`; 0: off); the beat period is `beat_columns` (B,) in columns, or read from
    `image` (`image_beat_columns`), halved while longer than the overlap (`fold_beat`). Needs `mel` too.
    blend_join: regenerate the last JOIN_BLEND_SECONDS (at most half) of each slice's known columns,
    pulled toward what they were (`sample`'s `pull`), and replace them in the image: for images
    that are all generated (the known columns may change). Needs `mel`.
    """
    _, slice_width = sample_shape(unet)
    batch, _, height, _ = image.shape
    tail = 0 if end_known is None else end_known.shape[-1]
    gap_end = total_width - tail  # columns [gap_end, total_width) are end_known
    if tail and overlap_columns + tail >= slice_width:
        raise ValueError(f"overlap ({overlap_columns} columns) plus the known end ({tail} columns) must be narrower "
                         f"than one slice ({slice_width})")
    plan = extend_plan(image.shape[-1], total_width, overlap_columns=overlap_columns, slice_width=slice_width, tail=tail)
    own_progress = progress is True
    tracker = job_progress(progress)
    if (candidates > 1 or level_hold or tempo_hold or blend_join) and mel is None:
        raise ValueError("choosing among candidates, holding the level or tempo and blending joins need the Mel config (mel=)")
    blend_columns = int(round(JOIN_BLEND_SECONDS * mel.pixels_per_second)) if blend_join else 0
    if tempo_hold:
        beat_columns = fold_beat(image_beat_columns(image, mel) if beat_columns is None else beat_columns, overlap_columns)
    if own_progress:
        tracker.begin(len(plan) * unet_calls(num_inference_steps, repaint_jumps=repaint_jumps, candidates=candidates,
                                             choose_after=num_inference_steps), len(plan))
    starts: list[int] = []
    slices: list[torch.Tensor] = []
    for k, width, keep, final in plan:
        known = torch.zeros(batch, 1, height, width, dtype=torch.float32)
        mask = torch.zeros(width, dtype=torch.bool)
        known[..., :k] = image[..., image.shape[-1] - k :].cpu()
        mask[:k] = True
        blended = min(blend_columns, k // 2)
        pull = None
        if blended > 0:  # the known columns' tail is regenerated, pulled toward what it was
            mask[k - blended : k] = False
            pull = torch.zeros(width)
            pull[k - blended : k] = JOIN_BLEND_PULL * torch.linspace(1.0, 0.0, blended + 2)[1:-1]
        if final:
            known[..., width - tail :] = end_known.cpu().float()
            mask[width - tail :] = True
        if tracker is not None:
            tracker.next_slice()
        chooser = guide = None
        hold = level_hold and k and not final  # a slice that leads into known audio follows that audio's level
        if candidates > 1 or hold:
            clip_db = image_level_db(image, mel)  # the clip so far
            context_db = image_level_db(known[..., :k], mel) if k else None
        if candidates > 1:
            chooser = level_chooser(clip_db, mel, new_columns=(k, width - tail if final else width), context_db=context_db)
        if hold:
            guide = level_guide(clip_db, context_db, mel, new_columns=(k, width), strength=level_hold)
        if tempo_hold and k:
            guide = chain_guides(guide, tempo_guide(beat_columns, new_columns=(k, width - tail if final else width),
                                                    strength=tempo_hold))
        slice_image = sample(
            unet, scheduler, batch_size=batch, width=width, num_inference_steps=num_inference_steps,
            generator=generator, known=known, mask=mask, repaint_jumps=repaint_jumps, progress=tracker or False,
            candidates=candidates, choose=chooser, choose_after=num_inference_steps, guide=guide, pull=pull,
        )  # (B, 1, H, width)
        starts.append(image.shape[-1] - k)
        slices.append(slice_image.cpu())
        image = torch.cat([image[..., : image.shape[-1] - blended],  # a blended tail is replaced
                           slice_image[..., k - blended : k + keep].to(image.device)], dim=-1)
    if own_progress:
        tracker.close()
    if tail and image.shape[-1] == gap_end:  # nothing left to generate: the end is pasted as is
        image = torch.cat([image, end_known.expand(batch, -1, -1, -1).to(image)], dim=-1)
    return image[..., :total_width], starts, slices


def image_level_db(images: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """Loudness-weighted level of each image of (..., 1, H, W) in dB -> (...): the mean over all
    its pixels of Mel power weighted by BS.1770's K-weighting at each band (`band_loudness_weights`),
    on the images' 0 dB grey scale. Differences between two levels are differences in loudness
    (without BS.1770's gating)."""
    db = images_to_db(images.reshape(-1, *images.shape[-3:]).float(), mel)  # (N, H, W)
    weights = band_loudness_weights(mel).to(db.device).view(1, -1, 1)
    level = 10.0 * torch.log10((torch.pow(10.0, db / 10.0) * weights).mean(dim=(-2, -1)).clamp_min(1e-12))
    return level.reshape(images.shape[:-3])


@functools.lru_cache(maxsize=8)
def band_loudness_weights(mel: MelConfig) -> torch.Tensor:
    """(n_mels,) power gain of BS.1770's K-weighting filters (the ones torchaudio's loudness uses:
    a +4 dB shelf above ~1.5 kHz, a high-pass at 38 Hz) averaged over each Mel band's filter."""
    import torchaudio.functional as AF

    from .mel import filterbank

    impulse = torch.zeros(1, mel.n_fft)
    impulse[0, 0] = 1.0
    weighted = AF.treble_biquad(impulse, mel.sample_rate, 4.0, 1500.0, 1 / math.sqrt(2))
    weighted = AF.highpass_biquad(weighted, mel.sample_rate, 38.0, 0.5)
    gain = torch.fft.rfft(weighted[0]).abs() ** 2  # (n_fft // 2 + 1,)
    bank = filterbank(mel)  # (n_mels, n_freqs)
    bank = bank.to_dense() if bank.is_sparse else bank
    return (bank @ gain) / bank.sum(dim=1).clamp_min(1e-12)


def level_chooser(target_db: torch.Tensor, mel: MelConfig, new_columns: tuple[int, int],
                  context_db: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A `choose` for `sample`: of each item's candidates (B, N, 1, H, W), the one whose new
    columns [start, end) will have the level closest to `target_db` (B,) -> indices (B,).

    With `context_db` (B,), the level of the known columns [0, start) as they are, a candidate's
    level is read relative to its own prediction of those columns: context_db + (predicted new -
    predicted known). A prediction made early in the chain is blurred, and blurring lowers the
    mean power of an image by several dB; read as it is, it made the choice prefer the quietest
    candidates (30 s clips sank -3 to -9 LU/min), while the difference cancels it."""
    start, end = new_columns

    def choose(candidates: torch.Tensor) -> torch.Tensor:
        levels = image_level_db(candidates[..., start:end], mel)  # (B, N)
        if context_db is not None and start > 0:
            levels = context_db.to(levels).view(-1, 1) + levels - image_level_db(candidates[..., :start], mel)
        return (levels - target_db.to(levels).view(-1, 1)).abs().argmin(dim=1)

    return choose


def level_guide(target_db: torch.Tensor, context_db: torch.Tensor, mel: MelConfig, new_columns: tuple[int, int],
                strength: float = DEFAULT_LEVEL_HOLD) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """A `guide` for `sample` that holds a continued slice at the clip's level (DEFAULT_LEVEL_HOLD
    says why): each step's predicted clean image (B, 1, H, W) gets its new columns [start, end)
    moved by `strength` times (target_db - their level) dB, weighted from 0 at `start` to 1
    LEVEL_HOLD_RAMP_SECONDS later (or halfway to `end`, if sooner). target_db (B,): the level of the clip so far; context_db (B,):
    the level of the known columns [0, start) as they are (a prediction's level is read against its
    own prediction of them)."""
    start, end = new_columns
    # over at most half the new columns (models with short slices)
    ramp_columns = max(1, min(int(round(LEVEL_HOLD_RAMP_SECONDS * mel.pixels_per_second)), (end - start) // 2))
    db_per_grey_unit = mel.top_db / 2.0  # images span [-1, 1] for top_db dB

    def guide(clean: torch.Tensor, step: int) -> torch.Tensor:
        c = clean.clamp(-1.0, 1.0)
        per_item = clean.shape[0] // target_db.numel()  # an item's candidates are neighbouring rows
        target, context = (v.to(c).view(-1).repeat_interleave(per_item) for v in (target_db, context_db))
        level = context + image_level_db(c[..., start:end], mel) - image_level_db(c[..., :start], mel)
        shift = strength * (target - level) / db_per_grey_unit  # (rows,) grey units
        columns = torch.arange(clean.shape[-1], device=clean.device)
        weight = ((columns - start).float() / ramp_columns).clamp(0.0, 1.0) * (columns < end)
        return clean + shift.view(-1, 1, 1, 1) * weight.view(1, 1, 1, -1)

    return guide


def chain_guides(*guides: Callable[[torch.Tensor, int], torch.Tensor] | None) -> Callable[[torch.Tensor, int], torch.Tensor] | None:
    """One `guide` for `sample` that applies `guides` in turn (None ones skipped); None if none."""
    chain = [g for g in guides if g is not None]
    if len(chain) <= 1:
        return chain[0] if chain else None

    def guide(clean: torch.Tensor, step: int) -> torch.Tensor:
        for g in chain:
            steered = g(clean, step)
            clean = clean if steered is None else steered
        return clean

    return guide


def image_onset(images: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """Onset envelope of images (..., 1, H, W) -> (..., W): the mean over Mel bands of each
    column's rise in dB over the column before (librosa's onset strength, on the image itself);
    column 0 reads 0."""
    db = images_to_db(images.reshape(-1, *images.shape[-3:]).float(), mel)  # (N, H, W)
    rise = torch.relu(db[..., 1:] - db[..., :-1]).mean(dim=-2)
    return torch.nn.functional.pad(rise, (1, 0)).reshape(*images.shape[:-3], images.shape[-1])


def image_beat_columns(images: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """The beat period of each image (B, 1, H, W) in columns (float) -> (B,): the onset
    autocorrelation's peak with the prior around 120 bpm that the tempo measure uses
    (`metrics.tempo_and_clarity`)."""
    import numpy as np

    from .metrics import tempo_and_clarity

    periods = []
    for onset in image_onset(images.cpu(), mel).reshape(-1, images.shape[-1]):
        log2_bpm, _ = tempo_and_clarity(onset.numpy().astype(np.float64), mel.pixels_per_second)
        periods.append(beat_columns_for(2.0**log2_bpm, mel))
    return torch.tensor(periods, dtype=torch.float32)


def beat_columns_for(bpm: float, mel: MelConfig) -> float:
    """One beat at `bpm` in image columns."""
    return 60.0 * mel.pixels_per_second / bpm


def beat_bpm(beat_columns: torch.Tensor, mel: MelConfig) -> list[float]:
    """Beat periods (B,) in columns as tempi in bpm, to 0.1."""
    return [round(60.0 * mel.pixels_per_second / float(b), 1) for b in beat_columns]


def fold_beat(beat_columns: torch.Tensor, max_columns: float) -> torch.Tensor:
    """Each beat period (B,) halved while it is longer than `max_columns` (the known columns a
    slice can echo): half a beat is still on the beat's grid."""
    folded = beat_columns.clone().float()
    for i in range(folded.numel()):
        while folded[i] > max_columns and folded[i] >= 4.0:
            folded[i] /= 2.0
    return folded


def _delayed(envelope: torch.Tensor, delay: torch.Tensor) -> torch.Tensor:
    """envelope (R, G, W) delayed by `delay` (R,) columns, fractional ones interpolated linearly:
    out[..., t] = envelope[..., t - delay] (the first column repeated before the start)."""
    rows, groups, width = envelope.shape
    position = (torch.arange(width, device=envelope.device, dtype=torch.float32).view(1, 1, width)
                - delay.to(envelope.device, torch.float32).view(-1, 1, 1)).clamp(0.0, width - 1.0)
    low = position.floor().long()
    frac = (position - low).to(envelope.dtype)
    high = (low + 1).clamp(max=width - 1)
    return (envelope.gather(-1, low.expand(rows, groups, width)) * (1.0 - frac)
            + envelope.gather(-1, high.expand(rows, groups, width)) * frac)


def tempo_guide(beat_columns: torch.Tensor, new_columns: tuple[int, int], strength: float = DEFAULT_TEMPO_HOLD,
                groups: int = TEMPO_HOLD_BAND_GROUPS) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """A `guide` for `sample` that keeps a continued slice on the clip's beat (DEFAULT_TEMPO_HOLD
    says why). beat_columns (B,): each item's beat period in columns, at most the known columns
    [0, start), so the first beat of new columns echoes them. Each step's predicted clean image
    (rows, 1, H, W) is split into `groups` bands of Mel rows; each band's envelope (its mean grey
    per column) minus its moving average over one beat is the rhythm; over the new columns
    [start, end) the rhythm is blended `strength` of the way toward itself one beat earlier,
    scaled back to the spread it had there, and the change is added to every row of the band."""
    start, end = new_columns

    def guide(clean: torch.Tensor, step: int) -> torch.Tensor:
        if min(end, clean.shape[-1]) - start < 2:  # no rhythm to keep in fewer than two new columns
            return clean
        c = clean.clamp(-1.0, 1.0)
        rows, _, height, width = c.shape
        beats = beat_columns.to(c.device).float().repeat_interleave(rows // beat_columns.numel())  # (rows,)
        bands = torch.tensor_split(torch.arange(height, device=c.device), min(groups, height))
        envelope = torch.stack([c[:, 0, band].mean(dim=1) for band in bands], dim=1)  # (rows, G, W)
        trend = torch.empty_like(envelope)
        for r in range(rows):  # moving average over one beat (odd window, edges repeated)
            window = int(round(float(beats[r]))) // 2 * 2 + 1
            padded = torch.nn.functional.pad(envelope[r : r + 1], (window // 2, window // 2), mode="replicate")
            trend[r] = torch.nn.functional.avg_pool1d(padded, window, stride=1)[0]
        rhythm = envelope - trend
        blended = (1.0 - strength) * rhythm + strength * _delayed(rhythm, beats)
        spread = rhythm[..., start:end].std(dim=-1, keepdim=True)
        blended = blended * (spread / blended[..., start:end].std(dim=-1, keepdim=True).clamp_min(1e-6))
        columns = torch.arange(width, device=c.device)
        change = (blended - rhythm) * ((columns >= start) & (columns < end)).to(c.dtype)
        sizes = torch.tensor([len(band) for band in bands], device=c.device)
        return clean + change.repeat_interleave(sizes, dim=1).unsqueeze(1).to(clean.dtype)

    return guide


def _fade(audio: torch.Tensor, sample_rate: int, fade_out_seconds: float) -> torch.Tensor:
    """Raised-cosine fade-out (at most a quarter of the clip) and a 5 ms fade-in: (B, T)."""
    length = audio.shape[-1]
    out = audio.clone()
    fade_out = min(int(round(fade_out_seconds * sample_rate)), length // 4)
    if fade_out > 1:
        ramp = 0.5 * (1 + torch.cos(torch.linspace(0, math.pi, fade_out, device=audio.device)))
        out[..., length - fade_out :] *= ramp
    fade_in = min(int(round(FADE_IN_SECONDS * sample_rate)), length // 4)
    if fade_in > 1:
        out[..., :fade_in] *= torch.linspace(0, 1, fade_in, device=audio.device)
    return out


def finish_audio(
    image: torch.Tensor,
    mel: MelConfig,
    samples: int,
    *,
    fade_out_seconds: float = DEFAULT_FADE_OUT_SECONDS,
    target_lufs: float | None = DEFAULT_TARGET_LUFS,
    peak_ceiling: float = DEFAULT_PEAK_CEILING,
) -> torch.Tensor:
    """Decode a whole stitched image (B, 1, H, W) once, trim to `samples`, fade, normalise -> (B, T)."""
    audio = images_to_audio(image, mel)  # (B, (W - 1) * hop): one phase reconstruction for all of it
    if audio.shape[-1] < samples:
        raise ValueError(f"image of {image.shape[-1]} columns decodes to {audio.shape[-1]} samples, fewer than {samples}")
    audio = torch.nan_to_num(audio[..., :samples].float().cpu())
    audio = _fade(audio, mel.sample_rate, fade_out_seconds)
    if target_lufs is not None:
        audio = normalize_loudness(audio, mel.sample_rate, target_lufs, peak_ceiling)
    else:
        audio = peak_protect(audio, peak_ceiling)
    return audio


def peak_protect(audio: torch.Tensor, ceiling: float = DEFAULT_PEAK_CEILING) -> torch.Tensor:
    """Scale each item of (B, T) down (never up) so that its peak is at most `ceiling`."""
    peak = audio.abs().amax(dim=-1, keepdim=True).clamp_min(1e-9)
    return audio * torch.clamp(ceiling / peak, max=1.0)


def first_slice(setup: SamplingSetup, progress: "bool | JobProgress | None") -> tuple[torch.Tensor, torch.Tensor | None]:
    """A clip's first slice, from noise: (B, 1, H, slice_width) on the CPU, and the beat (B,) in
    columns that the continued slices keep, None without the tempo hold. With `options.bpm` the
    beat is that tempo's and the first slice is steered onto it as well (`tempo_guide` from its
    second beat on, echoing the first); else it is the first slice's own (`image_beat_columns`)."""
    options, mel = setup.options, setup.mel
    guide = beat = None
    if options.bpm is not None:
        beat = torch.full((setup.batch_size,), beat_columns_for(options.bpm, mel))
        echo = fold_beat(beat, setup.overlap_columns or setup.slice_width // 2)  # the lag continued slices echo
        guide = tempo_guide(echo, new_columns=(min(int(math.ceil(float(echo.max()))), setup.slice_width), setup.slice_width),
                            strength=options.tempo_hold)
    image = sample(
        setup.unet, setup.scheduler, batch_size=setup.batch_size, width=setup.slice_width,
        num_inference_steps=setup.steps, generator=setup.generator, repaint_jumps=setup.repaint_jumps,
        progress=progress, guide=guide,
    ).cpu()
    if beat is None and options.tempo_hold and setup.overlap_columns:
        beat = image_beat_columns(image, mel)
    return image, beat


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
    """
    options = sampling_options(options, sampling)
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    setup = SamplingSetup.prepare(pipe, options)
    unet, mel, k, slice_width = setup.unet, setup.mel, setup.overlap_columns, setup.slice_width
    samples = int(round(seconds * mel.sample_rate))
    total_width = columns_for_samples(samples, mel)
    tracker = job_progress(progress)
    if tracker is not None:
        continued = len(extend_plan(slice_width, total_width, overlap_columns=k, slice_width=slice_width))
        tracker.begin(unet_calls(setup.steps, repaint_jumps=setup.repaint_jumps) + continued * setup.continued_slice_calls(),
                      1 + continued)
        tracker.next_slice()
    try:
        image, beat_columns = first_slice(setup, tracker or False)  # (B, 1, H, slice_width), (B,) or None
        slice0 = image
        image, starts, slices = extend_image(
            unet, setup.scheduler, image, total_width, overlap_columns=k, num_inference_steps=setup.steps,
            generator=setup.generator, repaint_jumps=setup.repaint_jumps, progress=tracker or False,
            candidates=setup.candidates, mel=mel, level_hold=setup.options.level_hold,
            tempo_hold=setup.options.tempo_hold, beat_columns=beat_columns, blend_join=True,
        )
        image = image[..., :total_width]
        decoding(tracker)
        audio = finish_audio(image.to(unet.device), mel, samples, fade_out_seconds=fade_out_seconds,
                             target_lufs=target_lufs)
    finally:
        if tracker is not None and tracker is not progress:
            tracker.close()
    return LongClip.from_columns(
        image, audio, mel, slice_columns=slice_spans([0] + starts, slice_width, total_width),
        slices=[slice0] + slices, seam_columns=[s + k for s in starts], seams_before_seconds=seconds,
        bpm=None if beat_columns is None else beat_bpm(beat_columns, mel),
    )
