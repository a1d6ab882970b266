#!/usr/bin/env python
"""A page in the browser to generate clips, listen to them and compare them.

    pip install -e ".[app]"
    python scripts/app.py                              # latest run under runs/, else the hub model
    python scripts/app.py --model runs/jazz-... --port 7861

Open the address it prints (http://127.0.0.1:7860 by default). The model is loaded once; each
click writes NAME.wav, NAME.png and NAME.json into the visitor's own folder under --output-dir, as scripts/generate.py does,
never overwriting. The page is served to this machine only unless --host or --share say otherwise.
"""

import argparse
import sys

from audiodiff.cli import EXIT_USER_ERROR, positive_int, run


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None,
                   help="pipeline to generate with: a pipeline folder (e.g. a run under runs/), 'bundled' (the "
                        "small model shipped in the package), a preset with random weights (tiny, small, compact, "
                        "compact-4s, compact-4s-hop512, audio-diffusion-256) or a hub id (default: the most recent "
                        "fine-tuned run under runs/, else teticio/audio-diffusion-instrumental-hiphop-256, or "
                        "'bundled' when the hub can't be reached)")
    p.add_argument("--port", type=positive_int, default=7860, help="port to serve the page on (default: 7860)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind to; 0.0.0.0 serves every network interface, so other machines can "
                        "open the page (default: 127.0.0.1, this machine only)")
    p.add_argument("--share", action="store_true",
                   help="also create a temporary public gradio.live link (needs the internet; anyone with "
                        "the link can use the page)")
    p.add_argument("--output-dir", default="samples/app", help="folder for the clips; each visitor's go into a folder of their own, named by a random token "
                        "(default: samples/app)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N (default: auto)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        from audiodiff.app import launch_app
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    launch_app(args.model, host=args.host, port=args.port, share=args.share, output_dir=args.output_dir,
               device=args.device)


if __name__ == "__main__":
    run(main)
