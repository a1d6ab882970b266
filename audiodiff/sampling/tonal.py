"""Candidates chosen by tonality (issue 23): of N finished versions of a slice, keep the most
tonal one whose level is still near the clip's.

Why: the model's images vary a lot in how tonal they are. On the bundled model fine-tuned on jazz,
24 single images (seeds 300-500) read 0.0015-0.0084 spectral flatness (median 0.0030), and the
clip's tonality is the draw of each of its slices. The flatness of an image's Mel power over its
bands (`image_flatness`, read on the image, no decoding) ranks images as the audio's flatness does
(Spearman 0.88 on those 24), so the least flat of N finished candidates is, most of the time, the
most tonal audio: a choice that needs nothing but the N versions `--candidates` already samples.

The level still matters (the reason candidates exist, docs/sampling-defaults.md): a continued
slice's candidates whose level lies within LEVEL_SLACK_DB of the nearest one's are all good
enough, and of those the most tonal is kept. A first slice has no level to keep: its most tonal
candidate is kept.

Draws (`--draws`, `tonal_draws`) make the same choice for a fraction of the cost: each slice starts
as DEFAULT_DRAWS draws, and after DRAW_CHOICE_FRACTION of its steps the one whose predicted clean
image is least flat (in the new columns) goes on alone; the others cost a tenth of a slice each.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..mel import MelConfig, images_to_db
from .loop import Draws
from .options import SamplingSetup
from .steering import image_level_db

DRAW_CHOICE_FRACTION = 0.1  # draws are chosen after a tenth of the steps: their predicted images already rank
# as the finished ones do (Spearman 0.73 after 3 of 50 steps, 0.76 after 10, 0.87 finished; 32 images), and
# the best of 3 chosen there is as tonal as the best of 3 finished (median flatness 0.0020 against 0.0030 unchosen)
LEVEL_SLACK_DB = 1.0  # candidates this close to the best level are equally good for the level hold
LOUD_COLUMN_DB = -50.0  # columns whose loudest band is below this (on the 0 dB image scale) are left out


def image_flatness(images: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """How flat (noise-like) each image of (..., 1, H, W) is -> (...): the median over its loud
    columns of the Mel power's geometric over arithmetic mean across bands (1: white noise;
    lower: more tonal). An image without a loud column reads 1."""
    db = images_to_db(images.reshape(-1, *images.shape[-3:]).float(), mel)  # (N, H, W)
    power = torch.pow(10.0, db / 10.0)
    flatness = torch.exp(torch.log(power.clamp_min(1e-12)).mean(dim=-2)) / power.mean(dim=-2).clamp_min(1e-12)  # (N, W)
    loud = db.amax(dim=-2) > LOUD_COLUMN_DB
    values = [f[m].median() if bool(m.any()) else f.new_tensor(1.0) for f, m in zip(flatness, loud)]
    return torch.stack(values).reshape(images.shape[:-3])


def most_tonal(candidates: torch.Tensor, mel: MelConfig, columns: tuple[int, int] | None = None,
               eligible: torch.Tensor | None = None) -> torch.Tensor:
    """Of each item's candidates (B, N, 1, H, W), the index (B,) of the least flat in `columns`
    [start, end) (all of them: None), among those `eligible` (B, N) bool (all: None)."""
    start, end = columns or (0, candidates.shape[-1])
    flatness = image_flatness(candidates[..., start:end], mel)  # (B, N)
    if eligible is not None:
        flatness = torch.where(eligible.to(flatness.device), flatness, torch.full_like(flatness, float("inf")))
    return flatness.argmin(dim=1)


def tonal_level_chooser(target_db: torch.Tensor, mel: MelConfig, new_columns: tuple[int, int],
                        context_db: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """How a continued slice's candidates (B, N, 1, H, W) are chosen: the levels of their new
    columns read as `steering.level_chooser` reads them; of those within LEVEL_SLACK_DB of the
    nearest to `target_db` (B,), the most tonal -> indices (B,)."""
    start, end = new_columns

    def choose(candidates: torch.Tensor) -> torch.Tensor:
        levels = image_level_db(candidates[..., start:end], mel)  # (B, N)
        if context_db is not None and start > 0:
            levels = context_db.to(levels).view(-1, 1) + levels - image_level_db(candidates[..., :start], mel)
        error = (levels - target_db.to(levels).view(-1, 1)).abs()
        eligible = error <= error.min(dim=1, keepdim=True).values + LEVEL_SLACK_DB
        return most_tonal(candidates, mel, (start, end), eligible)

    return choose


def draw_step(steps: int) -> int:
    """The step index after which a slice's draws are chosen: after a tenth of the steps (5 of 50)."""
    return min(steps - 1, max(0, round(DRAW_CHOICE_FRACTION * steps) - 1))


def tonal_draws(setup: SamplingSetup, columns: tuple[int, int] | None = None) -> Draws | None:
    """The draws a slice of `setup` starts as, the most tonal in `columns` (a continued slice's new
    columns; None: all) going on: None when the setup draws once (`SamplingSetup.draws`)."""
    count, mel = setup.draws, setup.mel
    if count <= 1:
        return None
    return Draws(count=count, at=draw_step(setup.steps), choose=lambda predicted: most_tonal(predicted, mel, columns))
