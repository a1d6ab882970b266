"""What a finished run tells others: its model card (README.md, beside the pipeline it describes)
and, with --push-to-hub, the upload of its pipeline folder to the Hugging Face hub."""

from __future__ import annotations

from pathlib import Path

from . import checkpoint as checkpoint_io
from .finetune_config import DEFAULT_EMA_POWER, FinetuneConfig
from .runs import CHECKPOINTS, CONFIG_FILE, SPLIT_FILE


def write_model_card(run_dir: Path, config: FinetuneConfig, pipe, pretrained: str, data, n_train: int, n_val: int,
                     steps: int, losses: list[float], fallback: str | None = None,
                     mixed_precision_used: str | None = None, split: str | None = None,
                     model_inputs: dict | None = None) -> Path:
    mel = pipe.mel
    precision = mixed_precision_used or config.mixed_precision
    if config.mixed_precision == "auto" and mixed_precision_used:
        precision += " (chosen by --mixed-precision auto)"
    final_loss = f"{sum(losses[-20:]) / len(losses[-20:]):.4f}" if losses else "n/a"
    card = f"""---
library_name: diffusers
tags: [audio-diffusion, audiodiff, music, {(data.genre or 'music').lower()}]
---
# {run_dir.name}

An {_kind(pipe)} fine-tuned with
[audiodiff](https://github.com/) on **{data.genre or 'all genres'}**.

| | |
|---|---|
| base model | `{pretrained}` |
| genre | {data.genre or 'all'} |
| data | {data.description}: {n_train} training tracks, {n_val} held out ({sum(data.skipped.values())} files skipped) |
| validation | {split or 'n/a'}; exactly what: `{SPLIT_FILE}` |
| steps | {steps} (batch {config.batch_size} x accumulation {config.grad_accum}) |
| learning rate | {config.learning_rate:g}, {config.warmup_steps} warm-up steps, cosine decay; AdamW, weight decay {config.weight_decay:g} |
| EMA | {'yes (max decay %g, warm-up power %g)' % (config.ema_max_decay, DEFAULT_EMA_POWER) if config.ema else 'no'} |
| LoRA | {('rank %d, merged into the weights' % config.lora_rank) if config.lora_rank else 'no (full fine-tune)'} |
| mixed precision | {precision} |
| seed | {config.seed} |
| final training loss (mean of the last 20 steps) | {final_loss} |
| Mel | {mel.x_res}x{mel.y_res}, {mel.sample_rate} Hz, n_fft {mel.n_fft}, hop {mel.hop_length}, top_db {mel.top_db} (the base model's, unchanged) |
{_inputs_rows(model_inputs)}
{('> Note: ' + fallback + chr(10)) if fallback else ''}
The full configuration is in `{CONFIG_FILE}`; TensorBoard logs in `logs/`.

## Generate

```bash
python scripts/generate.py --model {run_dir} --seconds 30
```

It also loads in diffusers: `AudioDiffusionPipeline.from_pretrained("{run_dir}")`
(`from diffusers.pipelines.deprecated import AudioDiffusionPipeline`).
"""
    path = run_dir / "README.md"
    path.write_text(card)
    return path


def _kind(pipe) -> str:
    """What the pipeline is, in words: Mel-image or latent, unconditional or conditioned on an encoding."""
    conditional = type(pipe.unet).__name__ == "UNet2DConditionModel"
    if getattr(pipe, "vqvae", None) is None:
        return f"{'conditional' if conditional else 'unconditional'} audio-diffusion pipeline (Mel-spectrogram UNet)"
    return (f"{'conditional' if conditional else 'unconditional'} latent audio-diffusion pipeline (a UNet on the latents "
            f"of a frozen AutoencoderKL{', conditioned on an encoding per clip' if conditional else ''})")


def _inputs_rows(record: dict | None) -> str:
    """Rows for a latent or conditional run: the cached slices, the scaling factor, the dropout."""
    if not record:
        return ""
    rows = f"| cached model inputs | {record['cached_slices']} slices, {record['cache_vae_calls']} VAE encoder calls, once |\n"
    if "scaling_factor" in record:
        rows += (f"| latent scaling factor | {record['scaling_factor']:g} (the VAE config's, used), "
                 f"{record['scaling_factor_measured']:.4g} measured on this data (1 / std) |\n")
    if record.get("vae_round_trip_error") is not None:
        rows += (f"| VAE round trip | {record['vae_round_trip_error']:.4f} mean absolute error on the [-1, 1] Mel image "
                 "(a batch of training slices; the VAE is frozen) |\n")
    if record.get("cond_dropout") is not None:
        rows += f"| conditioning dropout | {record['cond_dropout']:g} (to the null encoding) |\n"
    return rows


def push_to_hub(run_dir: Path, repo_id: str, api=None) -> str:
    """Upload the pipeline folder (not its checkpoints) to the hub; returns the repo URL."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(run_dir), ignore_patterns=[f"{CHECKPOINTS}/*", ".tmp*", checkpoint_io.LOCK_FILE],
                      commit_message=f"Upload {run_dir.name} (audiodiff fine-tune)")
    return f"https://huggingface.co/{repo_id}"
