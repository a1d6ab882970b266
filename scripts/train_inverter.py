#!/usr/bin/env python
"""Train the learned Mel inverter shipped in audiodiff/bundled/inverter/ (audiodiff/inverter.py).

    python scripts/train_inverter.py                          # the recipe -> runs/inverter/
    python scripts/train_inverter.py --out runs/inverter-2    # somewhere else (never an existing folder)
    python scripts/train_inverter.py --install-from runs/inverter   # copy a trained one into the package

The recipe (audiodiff/inverter_training.py) renders 48 clips of 30 s per genre of the built-in set
at set seed 1 (no model's data), and trains ~6 min on one CPU thread. It learns the bundled model's
Mel image (16 kHz, n_fft 1024, hop 384, 64 bands); clips of other Mel images decode as before.
"""

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from audiodiff.cli import positive_int, run
from audiodiff.inverter import INVERTER_DIR, MelInverter
from audiodiff.inverter_training import InverterRecipe, train_inverter
from audiodiff.pipeline import BUNDLED_DIR
from audiodiff.mel import MelConfig
from audiodiff.staging import staging_folder


def install(source: Path, target: Path = INVERTER_DIR) -> Path:
    """Copy a trained inverter (checked by loading it) into the package, replacing the shipped one."""
    MelInverter.load(source)
    staging = staging_folder(target)  # this process's own: two installs never share one
    shutil.copytree(source, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def main():
    recipe = InverterRecipe()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/inverter", help="a new folder for the trained inverter (default: runs/inverter)")
    p.add_argument("--clips-per-genre", type=positive_int, default=recipe.clips_per_genre,
                   help=f"30 s clips of the built-in set per genre to learn from (default: {recipe.clips_per_genre})")
    p.add_argument("--steps", type=positive_int, default=recipe.steps,
                   help=f"optimiser steps of {recipe.batch_size} columns, at least 3 (default: {recipe.steps})")
    p.add_argument("--install-from", default=None,
                   help="skip training; copy this trained inverter into audiodiff/bundled/inverter/")
    args = p.parse_args()
    if args.install_from:
        if not Path(args.install_from, "model.safetensors").is_file():
            raise FileNotFoundError(f"{args.install_from} holds no trained inverter (model.safetensors)")
        print(install(Path(args.install_from)))
        return
    out = Path(args.out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose a new --out (nothing is overwritten)")
    recipe = dataclasses.replace(recipe, clips_per_genre=args.clips_per_genre, steps=args.steps)
    model, summary = train_inverter(MelConfig.from_pretrained(BUNDLED_DIR), recipe)
    staging = staging_folder(out)  # this process's own: two trainings into one --out never share one
    model.save(staging)
    (staging / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    try:
        staging.rename(out)  # fails rather than replace a folder filled meanwhile
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise FileExistsError(f"{out} was made by someone else while this one trained; nothing was written") from None
    print(json.dumps(summary))
    print(out)


if __name__ == "__main__":
    run(main)
