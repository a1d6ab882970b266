"""The bundled base model: how it is made, reproducibly, and installed into the package.

`python scripts/make_bundled.py` pre-trains the "compact-4s" preset (1.99 M parameters, 64x168 Mel
images of 4.03 s at 16 kHz, hop 384) on every genre of the built-in synthetic set, in two stages
(below), and writes the EMA weights to audiodiff/bundled/base/, where `load_pipeline("bundled")`
finds them. It is what the scripts fall back to when the course's hub model can't be reached
(DESIGN section 6).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from .mel import MelConfig
from .pipeline import BUNDLED_DIR, MODEL_INDEX, load_pipeline, save_pipeline
from .presets import PRESETS, with_mel
from .train import FinetuneConfig, finetune, list_checkpoints

# The recipe, in two stages (presets.py says why these Mel images and this UNet).
# Stage 1, COARSE: the UNet on 64x128 images of 4.10 s (hop 512, 32 ms frames), from scratch.
# Data budget: 4 genres x 64 clips x 30 s = 2 h 8 min of audio, ~7 distinct 4.1 s regions per
# clip (1,792 in all). 10 % of the clips are held out for validation, so each epoch draws one
# slice from each of 230 clips at a random offset: at batch 16 an epoch is ~14.4 steps and 2,400
# steps = 167 epochs; every clip is seen at 167 offsets, each region ~24 times (the 1.02 s
# model's 900 steps saw each of its regions ~2 times), for a model that must now also learn what
# a bar sounds like. A batch-16 step is ~2.0 s on one quiet CPU thread: 2,400 steps ~80 min.
# Stage 2, RECIPE: the same weights on the final 64x168 images of 4.03 s (hop 384, 24 ms frames;
# `with_mel`), 1,200 more steps at a lower peak rate (3e-4, 50 warm-up steps). Why not train the
# final image from scratch: hop 512 with 64 bands is a lossy codec (Griffin-Lim at 2x overlap):
# real jazz sent through it alone lies at 1.63 on the realism scale (FD to the real clips over
# FD between two halves of the genre), against 0.29 at hop 384 (benchmarks: issue 15), so the
# final model must make hop-384 images; but its steps cost ~1.4x (168 columns, 672 attention
# tokens against 512), and the coarse stage teaches the same sounds (same bands, same rate:
# only the time axis is stretched by 4/3) at 70 % of the price. The warm start begins at the
# coarse model's loss (~0.03), where a random start begins at ~1.
# Cost: ~80 + ~55 min alone on the 2-core CPU, one thread; both stages on one H200: 311 s (session 9).
# The shipped model was made by this recipe as written on one H200 (session 9, docs/bundled-model.md);
# the CPU-trained model before it ran stage 1 in two resumed pieces. Rerunning the recipe gives a
# model of the same recipe, not the same bytes.
# Same recipe on either device: full precision everywhere.
# A model trained from scratch can take a 10x larger learning rate than a fine-tune (5e-4 vs
# 5e-5) at this size; 100 warm-up steps (6 epochs) let AdamW's moments settle first.
# The objective is v-prediction (issue 23): the same compact UNet trained 400 steps on built-in jazz
# made single images of flatness 0.0042/0.0038/0.0039 at 20/50/200 DDIM steps predicting the
# velocity, against 0.0209/0.0201/0.0184 predicting the noise (mean level -0.04 against -0.21: the
# noise model's clean-image estimates overshoot at high noise, and every step clamps them). The
# built-in set is played on sampled instruments since then (synthetic.py).
COARSE = FinetuneConfig(
    genre=None, pretrained="compact-4s-hop512", prediction_type="v_prediction", dataset="synthetic", synthetic_clips_per_genre=64,
    synthetic_seconds=30.0, max_steps=2400, batch_size=16, lr=5e-4, warmup_steps=100, checkpoint_every=100,
    keep_checkpoints=2, validate_every=100, sample_every=600, sample_steps=50, num_workers=0, seed=0,
    output_dir="runs/bundled", run_name="coarse", mixed_precision="no",  # full precision on a GPU too
)
RETIMED = "retimed"  # stage 1's weights on stage 2's image, under the recipe's output_dir
RECIPE = dataclasses.replace(COARSE, pretrained=RETIMED, max_steps=1200, lr=3e-4, warmup_steps=50, run_name="base")


def _stage(config: FinetuneConfig, resume: bool, progress: bool) -> Path:
    """Train one stage; with `resume`, skip it when its run folder holds a finished pipeline and
    continue it from its newest checkpoint when it holds one."""
    run_dir = Path(config.output_dir) / config.run_name
    if resume and (run_dir / MODEL_INDEX).is_file():
        return run_dir
    if resume and list_checkpoints(run_dir):
        return finetune(config, resume=str(run_dir), progress=progress).run_dir
    return finetune(config, progress=progress).run_dir


def make_bundled(config: FinetuneConfig = RECIPE, resume: bool = False, target: Path = BUNDLED_DIR,
                 progress: bool = True, coarse: FinetuneConfig | None = None,
                 mel: MelConfig = PRESETS["compact-4s"].mel) -> Path:
    """Train (or continue, `resume`) both stages and install the result at `target`. Returns `target`.

    `config` is stage 2, trained on `mel`'s images; stage 1 is `coarse`, by default COARSE in the
    same output folder."""
    coarse = coarse or dataclasses.replace(COARSE, output_dir=config.output_dir)
    if resume and not (Path(coarse.output_dir) / coarse.run_name).is_dir():
        # a typo'd --output-dir must not start a build of hours (issue 25)
        raise ValueError(f"nothing to resume in {coarse.output_dir}: no build was started there "
                         "(leave out --resume to start one)")
    coarse_dir = _stage(coarse, resume, progress)
    retimed = Path(config.output_dir) / RETIMED
    if not (resume and (retimed / MODEL_INDEX).is_file()):
        shutil.rmtree(retimed, ignore_errors=True)
        save_pipeline(with_mel(load_pipeline(coarse_dir), mel), retimed)
    result = _stage(dataclasses.replace(config, pretrained=str(retimed)), resume, progress)
    return install(result, target)


def install(run_dir: str | Path, target: Path = BUNDLED_DIR) -> Path:
    """Copy a trained pipeline (weights, scheduler, Mel config, model card) into the package."""
    pipe = load_pipeline(run_dir)
    pipe.source = "bundled"
    staging = target.parent / f".{target.name}.new"
    shutil.rmtree(staging, ignore_errors=True)
    save_pipeline(pipe, staging)
    card = Path(run_dir) / "README.md"
    if card.is_file():
        shutil.copy(card, staging / "README.md")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
