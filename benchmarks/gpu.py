"""The public 256 layout on a GPU, in one table: fine-tune throughput, peak memory, clip time.

    python benchmarks/gpu.py            # on a CUDA GPU, the audio-diffusion-256 preset (< 5 min)
    python benchmarks/gpu.py --smoke    # the same code on the CPU with the tiny preset (< 1 min)

Rows (random weights: the cost of the layout does not depend on them):
- fine-tune throughput (samples/s) at the default batch (8), in fp32 and in the precision
  `--mixed-precision auto` picks on this device (bf16 on compute capability 8.0+, fp16 with loss
  scaling before, full precision on a CPU): forward + backward + AdamW on one batch of Mel
  images in memory, under torch.autocast and, for fp16, a GradScaler (what accelerate does);
- peak GPU memory (torch.cuda.max_memory_allocated) of a training step: LoRA rank 8 + gradient
  checkpointing at batch 1 (the small-GPU recipe), and the full fine-tune at the default batch,
  both in the automatic precision; not measured on a CPU;
- wall time of a 30 s clip at 50 DDIM steps (audiodiff.sample.generate_long: inpainting
  continuation, one phase reconstruction), batch 1 and batch 8, in fp32 as scripts/generate.py runs.
`--smoke` shrinks the work (tiny preset, 2 timed steps, a 2 s clip at 2 steps, batch 2 instead of
8) but runs every row.
Ends with one line of `name: value` pairs.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import torch

warnings.filterwarnings("ignore")

from audiodiff.pipeline import build_preset  # noqa: E402
from audiodiff.sample import generate_long  # noqa: E402
from audiodiff.train import DEFAULT_BATCH_SIZE, add_lora, diffusion_loss, resolve_mixed_precision  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Plan:
    preset: str
    device: str
    warmup_steps: int
    timed_steps: int
    clip_seconds: float
    clip_steps: int
    clip_batch: int  # the larger batch of the clip rows


FULL = dict(preset="audio-diffusion-256", warmup_steps=3, timed_steps=10, clip_seconds=30.0, clip_steps=50, clip_batch=8)
SMOKE = dict(preset="tiny", warmup_steps=1, timed_steps=2, clip_seconds=2.0, clip_steps=2, clip_batch=2)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train_steps(plan: Plan, precision: str, batch_size: int, *, lora_rank: int = 0,
                gradient_checkpointing: bool = False) -> tuple[float, int | None]:
    """(samples per second, peak GPU bytes or None on a CPU) of fine-tune steps on one batch."""
    pipe = build_preset(plan.preset, seed=0)
    unet = pipe.unet.to(plan.device).train()
    if gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if lora_rank:
        add_lora(unet, lora_rank)
    trainable = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    scaler = torch.amp.GradScaler(plan.device, enabled=precision == "fp16")
    images = torch.rand(batch_size, 1, pipe.mel.y_res, pipe.mel.x_res, device=plan.device) * 2 - 1  # (B, 1, H, W)
    if plan.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = 0.0
    for step in range(plan.warmup_steps + plan.timed_steps):
        if step == plan.warmup_steps:
            _sync(plan.device)
            start = time.perf_counter()
        with torch.autocast(plan.device, dtype=DTYPES.get(precision, torch.float32), enabled=precision in DTYPES):
            loss, _, _ = diffusion_loss(unet, pipe.scheduler, images, torch.Generator().manual_seed(step))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    _sync(plan.device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if plan.device == "cuda" else None
    del unet, optimizer, images
    return plan.timed_steps * batch_size / seconds, peak


def clip_seconds(plan: Plan, batch_size: int) -> float:
    """Wall time of one long clip per batch item (fp32)."""
    pipe = build_preset(plan.preset, seed=0)
    pipe.unet.to(plan.device).eval()
    _sync(plan.device)
    start = time.perf_counter()
    with torch.no_grad():
        clip = generate_long(pipe, plan.clip_seconds, num_inference_steps=plan.clip_steps, scheduler="ddim",
                             batch_size=batch_size, seed=0, progress=False)
    _sync(plan.device)
    assert clip.audio.shape[0] == batch_size
    return time.perf_counter() - start


def _gib(value: int | None) -> str:
    return "n/a (CPU)" if value is None else f"{value / 2**30:.2f} GiB"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="run every row on the CPU with the tiny preset and a few steps (< 1 min), to check the code")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"the default batch of the throughput and full fine-tune rows (default: {DEFAULT_BATCH_SIZE})")
    args = parser.parse_args(argv)
    if args.smoke:
        plan = Plan(device="cpu", **SMOKE)
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run with --smoke for the CPU rehearsal of the code")
    else:
        plan = Plan(device="cuda", **FULL)
    auto = resolve_mixed_precision("auto", plan.device)
    started = time.perf_counter()
    fp32_rate, _ = train_steps(plan, "no", args.batch_size)
    auto_rate, full_peak = train_steps(plan, auto, args.batch_size)
    _, lora_peak = train_steps(plan, auto, 1, lora_rank=8, gradient_checkpointing=True)
    clip_1 = clip_seconds(plan, 1)
    clip_8 = clip_seconds(plan, plan.clip_batch)
    total = time.perf_counter() - started

    name = torch.cuda.get_device_name() if plan.device == "cuda" else "CPU"
    auto_name = {"no": "fp32"}.get(auto, auto)
    clip = f"{plan.clip_seconds:g} s clip, {plan.clip_steps} DDIM steps"
    rows = [
        (f"fine-tune throughput, fp32, batch {args.batch_size}", f"{fp32_rate:.2f} samples/s"),
        (f"fine-tune throughput, auto ({auto_name}), batch {args.batch_size}", f"{auto_rate:.2f} samples/s"),
        (f"peak memory, LoRA 8 + grad. checkpointing, batch 1, {auto_name}", _gib(lora_peak)),
        (f"peak memory, full fine-tune, batch {args.batch_size}, {auto_name}", _gib(full_peak)),
        (f"{clip}, batch 1 (fp32)", f"{clip_1:.1f} s"),
        (f"{clip}, batch {plan.clip_batch} (fp32)", f"{clip_8:.1f} s ({clip_8 / plan.clip_batch:.1f} s per clip)"),
    ]
    print(f"{plan.preset} on {name} ({'smoke run' if args.smoke else 'full run'}, {total:.0f} s)")
    print("| measure | value |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    summary = {"auto_precision": auto_name, "fp32_samples_per_s": round(fp32_rate, 2),
               "auto_samples_per_s": round(auto_rate, 2), "auto_speedup": f"{auto_rate / fp32_rate:.2f}x",
               "lora_peak_gib": None if lora_peak is None else round(lora_peak / 2**30, 2),
               "full_peak_gib": None if full_peak is None else round(full_peak / 2**30, 2),
               "clip_b1_s": round(clip_1, 1), f"clip_b{plan.clip_batch}_s": round(clip_8, 1), "total_s": round(total)}
    print(", ".join(f"{key}: {value}" for key, value in summary.items()))
    return summary


if __name__ == "__main__":
    main()
