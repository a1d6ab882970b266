"""The beat a new clip is held to, read from its first slice, and the first slice steered onto it
(issue 28; docs/sampling-defaults.md has the measurements).

The tempo hold keeps every continued slice on one beat period; which period is chosen here:
- at the metrical level a beat tracker calls the tempo: read periods are folded by octaves into
  [TRACKER_LOW_BPM, 2 * TRACKER_LOW_BPM). Held at 62-80 bpm, a clip's onsets keep that period,
  but librosa's tracker hears 100-180 bpm in it and reads it unsteadily (8-19 % spread);
- read by two methods that must agree: our onset autocorrelation on the image and librosa's tempo
  estimator on the decoded slice. When they disagree (after folding), the image is read again
  with the prior narrowed around librosa's reading: the period ours has nearest the pulse librosa
  hears, still placed to a fraction of a column;
- the first slice is then steered onto it: the last FIRST_SLICE_RESTEER of its chain is run again
  from itself (SDEdit) with the tempo guide echoing its own first beat, as `--bpm` does, so its
  first seconds agree with the rest of the clip.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..mel import MelConfig
from . import loop
from .finish import decode_audio
from .loop import denoiser
from .options import FIRST_SLICE_RESTEER, SamplingSetup
from .progress import JobProgress
from .steering import beat_columns_for, fold_beat, image_onset, tempo_guide

TRACKER_LOW_BPM = 85.0  # the held beat lies in [85, 170) bpm: the range trackers call the tempo of these genres
BEAT_AGREEMENT = 0.04  # the two readings agree within 4 % (issue 28's first-window limit)
MIN_SECONDS_TO_AGREE = 1.0  # librosa reads slices of at least 1 s (the tempo measures' shortest window)
NARROW_PRIOR_OCTAVES = 0.1  # the second reading's prior: about +-7 % around librosa's tempo
# A first slice whose onset autocorrelation peaks below this has no clear pulse: it is drawn
# again from the next noise (at most MAX_FIRST_SLICE_REDRAWS times, the clearest draw kept)
# rather than lock a doubtful beat. docs/sampling-defaults.md has the measurements.
MIN_FIRST_SLICE_CLARITY = 0.22  # synthetic slices without a pulse read 0.09-0.21, with a beat 0.31-0.74
MAX_FIRST_SLICE_REDRAWS = 2


def tracker_level(bpm: float, low: float = TRACKER_LOW_BPM) -> float:
    """`bpm` doubled or halved into [low, 2 * low)."""
    if not (math.isfinite(bpm) and bpm > 0):
        raise ValueError(f"a tempo must be positive, got {bpm}")
    while bpm < low:
        bpm *= 2.0
    while bpm >= 2.0 * low:
        bpm /= 2.0
    return bpm


def agree(bpm_a: float, bpm_b: float, tolerance: float = BEAT_AGREEMENT) -> bool:
    """Whether two tempi at the tracker's level lie within `tolerance` of each other."""
    return abs(math.log2(bpm_a / bpm_b)) <= math.log2(1.0 + tolerance)


def read_beat(onset: np.ndarray, audio: np.ndarray, mel: MelConfig) -> float:
    """One slice's beat in bpm at the tracker's level: onset (W,) its image's onset envelope,
    audio (T,) the slice decoded at mel.sample_rate."""
    from ..metrics import librosa_tempo_windows, tempo_and_clarity

    frames_per_second = mel.pixels_per_second
    ours = tracker_level(2.0 ** tempo_and_clarity(onset, frames_per_second)[0])
    seconds = audio.size / mel.sample_rate
    if seconds < MIN_SECONDS_TO_AGREE:  # a few beats at most: ours alone
        return ours
    theirs = float(librosa_tempo_windows(audio, mel.sample_rate, window_seconds=seconds)[0])
    if not math.isfinite(theirs) or agree(ours, tracker_level(theirs)):
        return ours
    near = tempo_and_clarity(onset, frames_per_second, center_bpm=tracker_level(theirs),
                             width_octaves=NARROW_PRIOR_OCTAVES)[0]
    return tracker_level(2.0 ** near)


def pulse_clarity(images: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """How clear the pulse of each image (B, 1, H, W) is -> (B,): its onset envelope's
    autocorrelation peak, 0..1 (`metrics.tempo_and_clarity`)."""
    from ..metrics import tempo_and_clarity

    onsets = image_onset(images.cpu().float(), mel).reshape(-1, images.shape[-1]).numpy().astype(np.float64)
    return torch.tensor([tempo_and_clarity(onset, mel.pixels_per_second)[1] for onset in onsets])


def read_beats(images: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """The beat of each first slice (B, 1, H, W) in columns -> (B,) float."""
    images = images.cpu().float()
    onsets = image_onset(images, mel).reshape(-1, images.shape[-1]).numpy().astype(np.float64)
    audio = decode_audio(images, mel).numpy()
    return torch.tensor([beat_columns_for(read_beat(onset, clip, mel), mel) for onset, clip in zip(onsets, audio)],
                        dtype=torch.float32)


def read_given_beat(image: torch.Tensor, audio: torch.Tensor, mel: MelConfig) -> float:
    """The beat of audio a user gives (T,) at mel.sample_rate, in bpm at the tracker's level, read
    as a new clip's first slice is (`read_beat`): on `image` (1, 1, H, W), the columns whose STFT
    windows lie inside that audio, and on the audio itself (no decoding: it is given)."""
    onset = image_onset(image.cpu().float(), mel).reshape(-1).numpy().astype(np.float64)
    return read_beat(onset, torch.as_tensor(audio).float().reshape(-1).numpy(), mel)


def first_slice_guide(setup: SamplingSetup, beat: torch.Tensor):
    """The tempo guide for a first slice held on `beat` (B,) columns: from its second beat on, each
    new column echoes the one a beat earlier (folded to what a continued slice can echo). Columns
    are the held Mel images' (for latents, the decoded ones': `setup.steering`)."""
    f = setup.hold_factor
    echo = fold_beat(beat, (setup.overlap_columns or setup.slice_width // 2) * f)
    start = min(int(math.ceil(float(echo.max()))), setup.slice_width * f)
    guide = tempo_guide(echo, new_columns=(start, setup.slice_width * f), strength=setup.options.tempo_hold)
    return setup.steering(guide, start // f)


def steer_onto_beat(setup: SamplingSetup, image: torch.Tensor, beat: torch.Tensor,
                    tracker: JobProgress | None) -> torch.Tensor:
    """The first slice (B, 1, H, W) with the last FIRST_SLICE_RESTEER of its chain run again from
    itself, held on `beat` (B,) columns."""
    return loop.sample(
        setup.unet, setup.scheduler, batch_size=setup.batch_size, width=image.shape[-1],
        num_inference_steps=setup.steps, generator=setup.generator, known=image, strength=FIRST_SLICE_RESTEER,
        model=denoiser(setup.unet, setup.scheduler, first_slice_guide(setup, beat)), progress=tracker or False,
        clip_to=setup.clip_to,
    ).cpu()
