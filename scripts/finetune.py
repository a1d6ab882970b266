#!/usr/bin/env python
"""Fine-tune a pretrained audio-diffusion pipeline on one genre.

    python scripts/finetune.py --genre jazz
    python scripts/finetune.py --genre jazz --dataset synthetic --pretrained tiny --max-steps 20
    python scripts/finetune.py --genre jazz --data-dir ~/music        # DIR/jazz/*.wav, *.flac, *.mp3 ...
    python scripts/finetune.py --pretrained my-conditional-model --encoding enc.safetensors   # one per track
    python scripts/finetune.py --resume latest                        # continue a killed run
    accelerate launch --multi_gpu --num_processes 2 scripts/finetune.py ...   # several GPUs
    accelerate launch --config_file configs/accelerate/one-machine-multi-gpu.yaml scripts/finetune.py ...
    torchrun --nproc_per_node 2 scripts/finetune.py --device cpu ...          # several CPU processes
"""

import argparse
import os

from audiodiff import train
from audiodiff.cli import non_negative_int, positive_float, positive_int, run


def _data_flags(p: argparse.ArgumentParser) -> None:
    data = p.add_argument_group("data")
    data.add_argument("--genre", default="jazz",
                      help="genre to fine-tune on, matched case-insensitively against the dataset's labels or the "
                           "sub-folder names of --data-dir; 'all' trains on every genre; an unknown genre lists "
                           "those present (default: jazz)")
    data.add_argument("--dataset", default=None,
                      help=f"hub dataset id, or 'synthetic' for the built-in offline genre set "
                           f"(default: {train.DEFAULT_DATASET}, or 'synthetic' when the hub can't be reached)")
    data.add_argument("--data-dir", default=None,
                      help="a folder of your own audio instead of --dataset: DIR/<genre>/<files>, any format "
                           "soundfile reads (wav, flac, ogg, mp3, aiff); broken files are skipped and counted")
    data.add_argument("--split", default="train", help="dataset split (default: train)")
    data.add_argument("--genre-column", default="genre", help="dataset column holding the genre label (default: genre)")
    data.add_argument("--audio-column", default="audio", help="dataset column holding the audio (default: audio)")
    data.add_argument("--recording-column", default=None,
                      help="dataset column naming the recording (song) each row belongs to: validation holds out "
                           "whole recordings, never part of one (default: song_id when the dataset has it, else "
                           "each row is a recording; in a --data-dir each file is one). With fewer than 10 "
                           "recordings the last part of each is held out instead; the run folder's "
                           "validation_split.json lists exactly what was held out")
    data.add_argument("--streaming", action="store_true",
                      help="stream the hub dataset instead of keeping the chosen genre's audio locally")
    data.add_argument("--num-workers", type=non_negative_int, default=2,
                      help="data-loading worker processes (decode, resample, slice, Mel) (default: 2)")


def _output_flags(p: argparse.ArgumentParser) -> None:
    """Where a run is written, how it logs, and resuming."""
    out = p.add_argument_group("output")
    out.add_argument("--output-dir", default="runs",
                     help="where runs go; each run gets a new folder <genre>-<time>; a file, or a folder you can't "
                          "write to, is refused before any work (default: runs)")
    out.add_argument("--run-name", default=None,
                     help="name of the run folder inside --output-dir: a plain name, no '/', not starting with '.' "
                          "(a suffix is added if it exists)")
    out.add_argument("--resume", default=None,
                     help="'latest' (newest run under --output-dir), a run folder or a checkpoint folder; "
                          "the run continues with its saved configuration; a checkpoint holding pickle files "
                          "(written by older versions) is refused, since loading pickle can run code")
    out.add_argument("--checkpoint-every", type=positive_int, default=500, help="steps between checkpoints (default: 500)")
    out.add_argument("--keep-checkpoints", type=positive_int, default=3, help="checkpoints kept (default: 3)")
    out.add_argument("--validate-every", type=positive_int, default=100,
                     help="steps between validation losses on the held-out tracks (default: 100)")
    out.add_argument("--sample-every", type=positive_int, default=500,
                     help="steps between audio samples logged to TensorBoard (default: 500)")
    out.add_argument("--push-to-hub", action="store_true", help="upload the result to the hub (needs --hub-model-id)")
    out.add_argument("--hub-model-id", default=None, help="hub repository for --push-to-hub, e.g. you/jazz-diffusion")
    out.add_argument("--device", choices=["auto", "cpu"], default="auto",
                     help="auto: CUDA when available, else CPU (default: auto)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _data_flags(p)
    model = p.add_argument_group("model")
    model.add_argument("--pretrained", default=None,
                       help="pipeline to start from: a hub id, a pipeline folder, 'bundled' (the small model shipped "
                            "in the package), or a preset with random weights (tiny, small, compact, compact-4s, "
                            "compact-4s-hop512, audio-diffusion-256) (default: "
                            "teticio/audio-diffusion-instrumental-hiphop-256, or 'bundled' when the hub can't be "
                            "reached)")
    model.add_argument("--lora-rank", type=non_negative_int, default=0,
                       help="train LoRA adapters of this rank instead of all weights (small GPUs, small data); "
                            "0 = full fine-tune (default: 0)")
    model.add_argument("--gradient-checkpointing", action="store_true",
                       help="recompute activations in the backward pass: less GPU memory, ~30%% slower")
    model.add_argument("--prediction-type", choices=["epsilon", "v_prediction"], default=None,
                       help="what the UNet learns to predict: the noise or the velocity (v, steadier clean-image "
                            "estimates at high noise). Only for a preset trained from scratch; a pretrained model "
                            "keeps its own (default: the model's own; presets: epsilon)")
    model.add_argument("--no-ema", action="store_true", help="save the raw weights instead of their moving average")
    model.add_argument("--encoding", default=None,
                       help="conditional pipelines (a UNet2DConditionModel): one encoding per track, a .safetensors "
                            "file whose keys are the tracks' names (as validation_split.json spells them), or a .npy "
                            "(or one-tensor .safetensors) of shape (tracks, D) in the order of the tracks' sorted "
                            "names, or (D,) for every track; never a pickle. A missing track or another size than "
                            "the model's cross_attention_dim is refused before training")
    model.add_argument("--train-vae", action="store_true",
                       help="latent pipelines: a run that fine-tunes the VAE (vqvae/) on the genre instead of the UNet, "
                            "checkpointed and resumable as any run; it prints and records the VAE's round trip on "
                            "held-out slices before and after, and saves the pipeline with the new VAE and the UNet "
                            "unchanged: fine-tune the UNet from that run folder next (--pretrained RUN)")
    model.add_argument("--vae-lr", type=float, default=None,
                       help="learning rate of a --train-vae run (default: 1e-05: the VAE is already trained)")
    model.add_argument("--cond-dropout", type=float, default=None,
                       help="conditional pipelines: the share of training slices whose encoding is replaced by the "
                            "null (all-zero) one that generate.py's --guidance-scale contrasts with, so that "
                            "classifier-free guidance works on the result; in [0, 1) (default: 0.1)")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--max-steps", type=positive_int, default=None, help="optimiser steps (overrides --epochs)")
    opt.add_argument("--epochs", type=positive_int, default=None,
                     help=f"passes over the training tracks, one random slice per track each (default: "
                          f"{train.DEFAULT_EPOCHS}; on the bundled offline fallback {train.FALLBACK_MAX_STEPS} steps instead)")
    opt.add_argument("--batch-size", type=positive_int, default=train.DEFAULT_BATCH_SIZE,
                     help=f"slices per batch and process (default: {train.DEFAULT_BATCH_SIZE})")
    opt.add_argument("--grad-accum", type=positive_int, default=1,
                     help="batches accumulated per optimiser step (default: 1)")
    opt.add_argument("--lr", type=positive_float, default=None,
                     help=f"peak learning rate (default: {train.DEFAULT_LR:g}, {train.DEFAULT_LORA_LR:g} with LoRA, "
                          f"{train.FALLBACK_LR:g} on the bundled offline fallback)")
    opt.add_argument("--warmup-steps", type=non_negative_int, default=train.DEFAULT_WARMUP_STEPS,
                     help=f"linear warm-up before the cosine decay (default: {train.DEFAULT_WARMUP_STEPS})")
    opt.add_argument("--snr-gamma", type=positive_float, default=None,
                     help="weight each timestep's loss by min(SNR, GAMMA) over its SNR (min-SNR weighting, 5 is "
                          "usual): less effort on nearly clean images, faster training from scratch (default: uniform)")
    opt.add_argument("--mixed-precision", choices=list(train.MIXED_PRECISIONS), default="auto",
                     help="auto: bf16 on GPUs that support it natively (A100, RTX 30xx and newer), fp16 with loss "
                          "scaling on older GPUs, full precision on the CPU; no: full precision everywhere; "
                          "fp16 or bf16: force one. The choice is recorded in training_config.json and the model "
                          "card (default: auto)")
    opt.add_argument("--seed", type=non_negative_int, default=0,
                     help=f"seed for data order, slices, noise: 0 to {train.MAX_SEED} (default: 0)")

    _output_flags(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    config = train.FinetuneConfig.from_flags(vars(args))  # every flag but --resume is a field
    result = train.finetune(config, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:  # one line, from the main process only
        print(result.run_dir)


if __name__ == "__main__":
    run(main)
