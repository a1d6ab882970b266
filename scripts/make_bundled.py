#!/usr/bin/env python
"""Rebuild the bundled base model shipped in audiodiff/bundled/base/.

    python scripts/make_bundled.py                 # pre-train from scratch (see audiodiff/bundle.py: RECIPE)
    python scripts/make_bundled.py --resume latest  # continue an interrupted build
    python scripts/make_bundled.py --install-from runs/bundled/base   # only copy a finished run into the package

The recipe (the "compact-4s" preset on all genres of the built-in set, batch 16: 2400 steps on
64x128 images, then 1200 on the final 64x168 ones) is fixed so that anyone can rebuild it, on a
CPU or a GPU; see audiodiff/bundle.py for why two stages and what they cost.
"""

import argparse
import dataclasses

from audiodiff import bundle
from audiodiff.cli import positive_int, run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resume", default=None, choices=["latest"],
                   help="'latest': continue an interrupted build (a finished stage is kept, the stage in "
                        "progress continues from its newest checkpoint)")
    p.add_argument("--max-steps", type=positive_int, default=bundle.RECIPE.max_steps,
                   help=f"optimiser steps of the second (final) stage (default: {bundle.RECIPE.max_steps}, the recipe)")
    p.add_argument("--output-dir", default=bundle.RECIPE.output_dir,
                   help=f"where the training run goes (default: {bundle.RECIPE.output_dir})")
    p.add_argument("--install-from", default=None, help="skip training; install this finished run's pipeline")
    args = p.parse_args()
    if args.install_from:
        print(bundle.install(args.install_from))
        return
    config = dataclasses.replace(bundle.RECIPE, max_steps=args.max_steps, output_dir=args.output_dir)
    print(bundle.make_bundled(config, resume=args.resume == "latest"))


if __name__ == "__main__":
    run(main)
