#!/usr/bin/env python
"""Write one encoding per track of a folder of audio, for fine-tuning a conditional pipeline.

    python scripts/encode.py --encoder my-encoder --input ~/music --output enc.safetensors
    python scripts/finetune.py --pretrained my-conditional-model --data-dir ~/music --genre jazz --encoding enc.safetensors

The output is a .safetensors file whose keys are the tracks' names as `finetune.py --data-dir`
names them (`jazz/a.wav` under genre sub-folders, `a.wav` in a flat folder), each a vector of the
encoder's size (the pipeline's cross_attention_dim). Each track's encoding is the mean of its Mel
slices' encodings. An existing output is never overwritten. Files that can't be decoded are skipped
and counted. A user error (missing folder, no audio, an encoder of the wrong size) is one line on
stderr and exit status 2.

The encoder is a folder with config.json and diffusion_pytorch_model.safetensors (an
audiodiff.encoder.AudioEncoder; weights never read from a pickle). One with random weights,
`audiodiff.encoder.build_encoder(100).save_pretrained(FOLDER)`, gives distinct but meaningless
encodings: use it to try the plumbing, and bring a trained encoder for conditioning that means
something.
"""

import argparse

from audiodiff.cli import positive_float, positive_int, run
from audiodiff.encode import DEFAULT_BATCH_SIZE, encode_folder


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", required=True,
                   help="encoder folder: config.json + diffusion_pytorch_model.safetensors (an AudioEncoder)")
    p.add_argument("--input", required=True,
                   help="a folder of audio (genre sub-folders or flat, as finetune.py --data-dir takes) or one audio file")
    p.add_argument("--output", required=True,
                   help="the .safetensors file to write, keyed by track name; refused if it exists")
    p.add_argument("--mel", default=None,
                   help="the Mel config to make the encoder's images with: a pipeline folder (its mel/; a "
                        "conditional UNet there is checked against the encoder's size), a mel folder or a "
                        "mel_config.json (default: the one in the encoder's config.json)")
    p.add_argument("--seconds-per-slice", type=positive_float, default=None,
                   help="length of the audio slices that are encoded one by one and averaged per track "
                        "(default: one Mel image of the Mel config, e.g. 5.94 s for 256 columns at 22050 Hz, hop 512)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                   help=f"slices per encoder call; only memory and speed depend on it (default: {DEFAULT_BATCH_SIZE})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    result = encode_folder(args.encoder, args.input, args.output, mel_source=args.mel,
                           seconds_per_slice=args.seconds_per_slice, batch_size=args.batch_size,
                           progress=not args.no_progress)
    if result.skipped:
        examples = "; ".join(reason for _, reason in result.skipped[:3])
        print(f"skipped {len(result.skipped)} unreadable file(s): {examples}")
    print(f"wrote {result.tracks} encodings of {result.encoding_size} numbers ({result.slices} slices) to {result.output}")


if __name__ == "__main__":
    run(main)
