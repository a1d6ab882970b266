"""FinetuneConfig: everything a fine-tuning run needs, saved with the run (training_config.json) so
that it can be resumed and reproduced; the defaults behind its fields, with the data-budget
arithmetic; and how scripts/finetune.py's flags spell them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .objective import PREDICTION_TYPES

DEFAULT_DATASET = "lewtun/music_genres"

# ---- defaults, with the data-budget arithmetic behind them ------------------------------------
# The course's Jazz subset of lewtun/music_genres has 306 tracks of ~30 s. 10 % are held out
# (whole songs, by song_id) for validation -> ~275 training tracks. Each epoch draws one random 5.9 s
# slice per track, so at batch 8 one epoch is 275 / 8 = 34 optimiser steps (34 / N on N processes,
# each taking its own batch of its share), and 20 epochs = ~690 steps: every
# track is seen 20 times at 20 different offsets (a 30 s track holds ~5 distinct slices, so each
# region ~4 times) -- enough to move a pretrained model toward the genre, not enough to memorise.
DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 8  # fits the 256 model in ~10 GB at fp16; small GPUs use batch 1 + --grad-accum 8
# A pretrained model needs small steps: 5e-5 is half the from-scratch rate of the public
# checkpoints (1e-4), enough to adapt in a few hundred steps without wiping what it knows. LoRA
# trains only small low-rank adapters starting at zero, which need a 10x larger rate.
DEFAULT_LR = 5e-5
DEFAULT_LORA_LR = 5e-4
DEFAULT_WARMUP_STEPS = 50  # ~1.5 epochs: AdamW's moment estimates settle before full-size steps
# EMA with warm-up: the decay grows as 1 - (1 + step)^-0.75 toward 0.9999, so a short fine-tune
# (~0.995 at step 1000) averages over its own recent steps rather than staying at the base model.
DEFAULT_EMA_MAX_DECAY = 0.9999
DEFAULT_EMA_POWER = 0.75
# Step s draws its noise from a torch generator seeded with seed * 1_000_003 + s, which must fit in
# 64 bits; 32-bit seeds (numpy's classic range) keep that true for any number of steps.
MAX_SEED = 2**32 - 1


MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")


# Flags of scripts/finetune.py spelled otherwise than their field: flag -> (field, the field's value).
FLAG_SPELLINGS = {
    "genre": ("genre", lambda genre: None if genre is not None and genre.lower() == "all" else genre),
    "no_ema": ("ema", lambda no_ema: not no_ema),
    "device": ("device", lambda device: None if device == "auto" else device),
}


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything a fine-tuning run needs; saved with the run so that it can be resumed and reproduced."""

    genre: str | None = "jazz"
    pretrained: str | None = None  # hub id, pipeline folder or preset name; None -> the course's model
    dataset: str | None = None  # hub dataset id or "synthetic"; None with no data_dir -> the course's dataset
    data_dir: str | None = None
    split: str = "train"
    genre_column: str = "genre"
    audio_column: str = "audio"
    recording_column: str | None = None  # None: song_id when the dataset has it (the split never divides a recording)
    streaming: bool = False
    synthetic_clips_per_genre: int = 32  # size of the built-in set (--dataset synthetic)
    synthetic_seconds: float = 30.0
    output_dir: str = "runs"
    run_name: str | None = None
    max_steps: int | None = None  # overrides epochs
    epochs: int | None = None  # None -> DEFAULT_EPOCHS (or FALLBACK_MAX_STEPS on the bundled model)
    batch_size: int = DEFAULT_BATCH_SIZE
    grad_accum: int = 1
    lr: float | None = None  # None -> DEFAULT_LR, or DEFAULT_LORA_LR with LoRA
    warmup_steps: int = DEFAULT_WARMUP_STEPS
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    ema: bool = True
    ema_max_decay: float = DEFAULT_EMA_MAX_DECAY
    mixed_precision: str = "auto"  # auto | no | fp16 | bf16 (auto: resolve_mixed_precision)
    gradient_checkpointing: bool = False
    lora_rank: int = 0  # 0 = full fine-tune
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    validate_every: int = 100
    sample_every: int = 500
    sample_steps: int = 50
    validation_fraction: float = 0.1
    num_workers: int = 2
    prediction_type: str | None = None  # None: the model's own; epsilon | v_prediction (see diffusion_loss)
    snr_gamma: float | None = None  # min-SNR loss weighting (Hang et al. 2023); None: uniform over timesteps
    push_to_hub: bool = False
    hub_model_id: str | None = None
    device: str | None = None  # None = automatic (CUDA when available); "cpu" forces the CPU
    encoding: str | None = None  # conditional pipelines: one encoding per track (conditioning.read_track_encodings)
    cond_dropout: float | None = None  # conditional: None -> latent_cache.DEFAULT_COND_DROPOUT (0.1)
    train_vae: bool = False  # a run that fine-tunes the VAE of a latent pipeline instead (vae_training.py)
    vae_lr: float | None = None  # None -> vae_training.DEFAULT_VAE_LR

    def __post_init__(self):
        positive = ("batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints", "validate_every",
                    "sample_every", "sample_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "epochs"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.lr is not None and not (0 < self.lr < 1):
            raise ValueError(f"lr must be between 0 and 1, got {self.lr}")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise ValueError(f"mixed-precision must be auto, no, fp16 or bf16, got {self.mixed_precision!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation fraction must be in [0, 1), got {self.validation_fraction}")
        if self.lora_rank < 0 or self.warmup_steps < 0 or self.num_workers < 0:
            raise ValueError("lora-rank, warmup-steps and num-workers must not be negative")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction-type must be one of {', '.join(PREDICTION_TYPES[1:])}, got {self.prediction_type!r}")
        if self.snr_gamma is not None and not (0 < self.snr_gamma <= 1000):
            raise ValueError(f"snr-gamma must be in (0, 1000], got {self.snr_gamma}")
        if self.vae_lr is not None and not (0 < self.vae_lr < 1):
            raise ValueError(f"vae-lr must be between 0 and 1, got {self.vae_lr}")
        if self.cond_dropout is not None and not 0 <= self.cond_dropout < 1:
            raise ValueError(f"cond-dropout must be in [0, 1), got {self.cond_dropout}")
        if self.dataset is not None and self.data_dir is not None:
            raise ValueError("give either --dataset or --data-dir, not both")
        if self.recording_column is not None and (self.data_dir is not None or str(self.dataset).lower() == "synthetic"):
            raise ValueError("--recording-column applies to datasets with columns; in a --data-dir each file, "
                             "in the built-in set each clip, is one recording")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push-to-hub needs --hub-model-id USER/NAME")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED} (2**32 - 1), got {self.seed}")
        name = self.run_name
        if name is not None and (Path(name).name != name or name in ("", ".", "..") or name.startswith(".")):
            raise ValueError(f"--run-name must be a plain folder name (no '/', not absolute, not starting with '.'), "
                             f"got {name!r}; use --output-dir for where runs go")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return DEFAULT_LORA_LR if self.lora_rank else DEFAULT_LR

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FinetuneConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_flags(cls, flags: dict) -> "FinetuneConfig":
        """The configuration that scripts/finetune.py's flags ask for (`vars(args)`): a flag is the
        field of its name (dashes as underscores), except for the spellings in FLAG_SPELLINGS
        (--genre all: every genre, --no-ema, --device auto: automatic). Flags that are not fields
        (--resume) are left to the caller; a field without a flag keeps its default."""
        values = dict(flags)
        for flag, (name, spell) in FLAG_SPELLINGS.items():
            if flag in values:
                values[name] = spell(values.pop(flag))
        return cls.from_dict(values)
