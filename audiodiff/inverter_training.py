"""How the learned Mel inverter (inverter.py) is made: `python scripts/train_inverter.py`.

The recipe: the built-in set drawn at set seed 1 (clip seeds from 2^20 on, so no model's data,
which is drawn at set seed 0, and no held-out track is among them), 48 clips of 30 s per genre, all
four genres, 16 kHz. Each clip becomes one Mel image (the bundled model's: n_fft 1024, hop 384, 64
bands, one 0 dB reference per clip, as generated clips are decoded) and its linear power spectrum
in dB against the same reference: ~240,000 columns. The network learns the spectrum from each
column and its four neighbours, as a correction to the smooth spread, by the mean absolute error in
dB (both sides clipped 100 dB down), AdamW at 1e-3 with a one-cycle schedule, batches of 512
columns, 6,000 steps. Cost (session 16, one CPU thread): 38 s to render, 194 s to train.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from .inverter import FLOOR_DB, MelInverter, columns, smooth_db
from .mel import MelConfig, _stft, audio_to_spectrogram, mel_power
from .synthetic import GENRES, render, synthetic_clips

INVERTER_SET_SEED = 1  # the built-in set's seed for the inverter's clips: never a model's (0)
WARMUP_SHARE = 0.05  # of the steps, rising to the peak rate (at least two steps: a short run's schedule)
MIN_STEPS = 3  # the one-cycle schedule needs a step up and a step down


@dataclass(frozen=True)
class InverterRecipe:
    clips_per_genre: int = 48
    seconds: float = 30.0
    steps: int = 6000
    batch_size: int = 512
    lr: float = 1e-3
    context: int = 2
    width: int = 640
    seed: int = 0


def clip_columns(audio: torch.Tensor, mel: MelConfig, context: int) -> tuple[torch.Tensor, ...]:
    """One clip (T,) -> its columns' features (F, n_mels * (2 context + 1)), smooth spread in dB
    (F, n_freqs) and the recording's linear power in dB (F, n_freqs), all against one 0 dB."""
    audio = audio[: (audio.numel() // mel.hop_length) * mel.hop_length].float()[None]
    image = audio_to_spectrogram(audio, mel)  # (1, 1, n_mels, F)
    frames = image.shape[-1]
    reference = mel_power(audio, mel).amax()
    power = _stft(audio, mel).abs().square()[0, :, :frames] / reference
    target = (10.0 * torch.log10(power.clamp_min(1e-30))).clamp_min(-FLOOR_DB)
    return columns(image, mel, context)[0], smooth_db(image, mel)[0].T, target.T


def training_columns(mel: MelConfig, recipe: InverterRecipe, progress: bool = True) -> tuple[torch.Tensor, ...]:
    """Every column of the recipe's clips: (features, smooth, target), each (N, ...)."""
    from tqdm.auto import tqdm

    clips = synthetic_clips(recipe.clips_per_genre, recipe.seconds, GENRES, seed=INVERTER_SET_SEED)
    parts = [clip_columns(torch.from_numpy(render(c.genre, c.seed, c.seconds, mel.sample_rate)), mel, recipe.context)
             for c in tqdm(clips, desc="rendering", unit="clip", disable=not progress)]
    return tuple(torch.cat(group) for group in zip(*parts))


def train_inverter(mel: MelConfig, recipe: InverterRecipe = InverterRecipe(), progress: bool = True,
                   data: tuple[torch.Tensor, ...] | None = None) -> tuple[MelInverter, dict]:
    """Train an inverter for `mel` by the recipe -> (model, a summary of what it cost and reached)."""
    from tqdm.auto import tqdm

    if recipe.steps < MIN_STEPS:
        raise ValueError(f"the inverter needs at least {MIN_STEPS} training steps (a warm-up and a decay), got {recipe.steps}")
    started = time.monotonic()
    torch.manual_seed(recipe.seed)
    features, smooth, target = data if data is not None else training_columns(mel, recipe, progress)
    rendered = time.monotonic() - started
    model = MelInverter(mel.to_dict(), recipe.context, recipe.width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=recipe.steps,
                                                   pct_start=max(WARMUP_SHARE, 2 / recipe.steps))
    generator = torch.Generator().manual_seed(recipe.seed)
    losses = []
    bar = tqdm(range(recipe.steps), desc="training the inverter", unit="step", disable=not progress)
    for _ in bar:
        batch = torch.randint(0, features.shape[0], (recipe.batch_size,), generator=generator)
        guess = model.predict(features[batch], smooth[batch]).clamp_min(-FLOOR_DB)
        loss = (guess - target[batch]).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss))
        if len(losses) % 100 == 0:
            bar.set_postfix(loss_db=f"{sum(losses[-100:]) / 100:.2f}")
    smooth_error = float((smooth[:100_000].clamp_min(-FLOOR_DB) - target[:100_000]).abs().mean())
    summary = {"recipe": asdict(recipe), "columns": int(features.shape[0]), "render_seconds": round(rendered, 1),
               "train_seconds": round(time.monotonic() - started - rendered, 1),
               "final_loss_db": round(sum(losses[-200:]) / max(1, len(losses[-200:])), 3),
               "smooth_spread_error_db": round(smooth_error, 3)}
    return model.eval(), summary
