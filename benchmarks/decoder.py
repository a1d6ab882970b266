"""How near is the decoded audio to the music, with the learned start and without? (issue 23)

    python benchmarks/decoder.py [--genre jazz] [--music ../shared/music] [--seconds 30] [--picture decoder.png]

The bundled model's Mel image (16 kHz, n_fft 1024, hop 384, 64 bands) of each clip, decoded by
`images_to_audio` from the smooth NNLS spread (`inverter=None`) and from the learned inverter's
guess (the default, audiodiff/inverter.py), against the audio itself: the genre's held-out tracks of
the built-in set (the default split) and the recordings in `--music`, the first `--seconds` of each.
Columns, medians over the clips:
- magnitudes dB: the start's linear magnitudes against the music's, before any phase (RMS over
  bins of the dB difference, 60 dB down clipped, mean over frames);
- audio dB: the same for the decoded audio's STFT, levels matched;
- flatness, harmonic: metrics.tonality (the music's own on the first line of each set);
- key: metrics.key_consistency (every 5 s window's pitch classes against the clip's).
`--picture` writes linear-frequency spectrograms (0-5.5 kHz, 4 s from 10 s on) of one clip of each
set, as recorded and through both starts, one above the other: look at the partials. Ends with
one summary line of `name: value` pairs.
Measured (session 16, one thread): held-out jazz magnitudes 7.50 -> 4.65 dB, audio 6.67 -> 4.58 dB,
flatness 0.0022 -> 0.0014 (as rendered 0.0014); the three recordings 4.49 -> 4.14, 3.96 -> 3.65 dB,
0.0033 -> 0.0023 (as recorded 0.0031).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from audiodiff.audio import AUDIO_EXTENSIONS, load_audio, resample
from audiodiff.display import colour_map
from audiodiff.evaluate import SplitSettings, cut_clips, genre_clips
from audiodiff.mel import (
    MelConfig, _stft, audio_to_spectrogram, images_to_audio, images_to_power, mel_to_linear_power,
)
from audiodiff.inverter import inverter_for
from audiodiff.metrics import key_consistency, tonality
from audiodiff.pipeline import BUNDLED_DIR

DEFAULT_MUSIC = Path(__file__).resolve().parents[1].parent / "shared" / "music"
CLIP_DB = 60.0
STARTS = ("smooth", "learned")


def spectral_distance(reference: torch.Tensor, other: torch.Tensor) -> float:
    """RMS over bins of the dB difference of two power spectrograms (n_freqs, F), levels matched
    by their peaks, both clipped CLIP_DB below the reference's peak; the mean over frames."""
    other = other * (reference.max() / other.max().clamp_min(1e-30))
    floor = reference.max() * 10.0 ** (-CLIP_DB / 10.0)
    difference = 10.0 * torch.log10(reference.clamp_min(floor)) - 10.0 * torch.log10(other.clamp_min(floor))
    return float(difference.square().mean(dim=0).sqrt().mean())


def _key(audio: np.ndarray, rate: int) -> float:
    try:
        return key_consistency(audio, rate)
    except ValueError:  # shorter than two windows, or no pitch at all
        return float("nan")


def measure_clip(audio: torch.Tensor, mel: MelConfig) -> dict:
    """One clip (T,) at mel.sample_rate: the music's own measures and each start's."""
    audio = audio[: (audio.numel() // mel.hop_length) * mel.hop_length].float()
    image = audio_to_spectrogram(audio[None], mel)
    frames = image.shape[-1]
    power = _stft(audio[None], mel).abs().square()[0, :, :frames]
    flatness, harmonic = tonality(audio.numpy(), mel.sample_rate)
    row = {"music": {"flatness": flatness, "harmonic": harmonic, "key": _key(audio.numpy(), mel.sample_rate)}}
    starts = {"smooth": mel_to_linear_power(images_to_power(image, mel), mel)[0],
              "learned": inverter_for(mel).linear_power(image)[0]}
    for name, start in starts.items():
        decoded = images_to_audio(image, mel, inverter="auto" if name == "learned" else None)[0]
        flatness, harmonic = tonality(decoded.numpy(), mel.sample_rate)
        row[name] = {"magnitudes_db": spectral_distance(power, start),
                     "audio_db": spectral_distance(power, _stft(decoded[None], mel).abs().square()[0, :, :frames]),
                     "flatness": flatness, "harmonic": harmonic, "key": _key(decoded.numpy(), mel.sample_rate),
                     "audio": decoded}
    row["music"]["audio"] = audio
    return row


def summarise(rows: list[dict]) -> dict:
    """Medians over the clips, per start and measure (NaN where no clip has the measure)."""
    out = {}
    for start in ("music", *STARTS):
        for measure in ("magnitudes_db", "audio_db", "flatness", "harmonic", "key"):
            values = [r[start][measure] for r in rows if measure in r[start] and np.isfinite(r[start][measure])]
            if measure in rows[0][start]:
                out[f"{start}_{measure}"] = statistics.median(values) if values else float("nan")
    return out


def format_table(label: str, summary: dict, count: int) -> str:
    lines = [f"{label} ({count} clips){'magnitudes dB':>16}{'audio dB':>10}{'flatness':>10}{'harmonic':>10}{'key':>6}",
             f"{'  as recorded':<{len(label) + 11}}{'':>16}{'':>10}{summary['music_flatness']:>10.5f}"
             f"{summary['music_harmonic']:>10.3f}{summary['music_key']:>6.2f}"]
    for start in STARTS:
        lines.append(f"{f'  {start} start':<{len(label) + 11}}{summary[f'{start}_magnitudes_db']:>16.2f}"
                     f"{summary[f'{start}_audio_db']:>10.2f}{summary[f'{start}_flatness']:>10.5f}"
                     f"{summary[f'{start}_harmonic']:>10.3f}{summary[f'{start}_key']:>6.2f}")
    return "\n".join(lines)


def panel(audio: torch.Tensor, rate: int, title: str, start_s: float = 10.0, seconds: float = 4.0):
    """A linear-frequency spectrogram picture (0-5.5 kHz) of `seconds` of audio, titled."""
    from PIL import Image, ImageDraw

    part = audio[int(start_s * rate): int((start_s + seconds) * rate)]
    if part.numel() < rate:  # a short clip: its beginning
        part = audio[: int(seconds * rate)]
    magnitude = torch.stft(part.float(), 2048, 256, window=torch.hann_window(2048), return_complex=True).abs().numpy()
    top = int(5500 / (rate / 2048))
    level = np.clip(20 * np.log10(magnitude / magnitude.max() + 1e-8), -80, 0)[:top][::-1]
    picture = Image.fromarray(colour_map((level + 80) / 80).astype(np.uint8)).resize((600, 150), Image.LANCZOS)
    ImageDraw.Draw(picture).text((6, 4), f"{title} (0-5.5 kHz, {seconds:g} s)", fill=(255, 255, 255))
    return picture


def write_picture(path: Path, sets: list[tuple[str, dict]], rate: int) -> Path:
    """One panel per (set, start), stacked; refuses to replace a file."""
    from PIL import Image

    panels = [panel(row[start]["audio"], rate, f"{label}, {'as recorded' if start == 'music' else start + ' start'}")
              for label, row in sets for start in ("music", *STARTS)]
    sheet = Image.new("RGB", (600, 152 * len(panels)))
    for k, picture in enumerate(panels):
        sheet.paste(picture, (0, 152 * k))
    with open(path, "xb") as handle:  # never over a file
        sheet.quantize(colors=128).save(handle, format="PNG", optimize=True)
    return path


def music_clips(folder: Path, rate: int, seconds: float) -> list[tuple[str, torch.Tensor]]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    return [(p.name, load_audio(p, rate)[: int(seconds * rate)]) for p in files]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genre", default="jazz", help="a built-in genre whose held-out tracks to decode (default: jazz)")
    parser.add_argument("--music", type=Path, default=DEFAULT_MUSIC, help="a folder of recordings (default: ../shared/music)")
    parser.add_argument("--seconds", type=float, default=30.0, help="the first seconds of each clip (default: 30)")
    parser.add_argument("--picture", type=Path, default=None, help="write the spectrograms here (a new PNG file)")
    args = parser.parse_args(argv)
    if args.picture is not None and args.picture.exists():
        parser.error(f"{args.picture} already exists; name a new file")
    mel = MelConfig.from_pretrained(BUNDLED_DIR)
    if inverter_for(mel) is None:
        parser.error("this checkout has no learned inverter (audiodiff/bundled/inverter/)")
    target, _ = genre_clips(args.genre, mel, dataset="synthetic", split=SplitSettings())
    sets = [(f"held-out {args.genre}",
             [resample(c.audio.float(), c.sample_rate, mel.sample_rate) for c in cut_clips(target.clips, args.seconds)])]
    if args.music.is_dir():
        sets.append((args.music.name, [audio for _, audio in music_clips(args.music, mel.sample_rate, args.seconds)]))
    summary_pairs, firsts = [], []
    for label, clips in sets:
        rows = [measure_clip(audio, mel) for audio in clips]
        summary = summarise(rows)
        print(format_table(label, summary, len(rows)), flush=True)
        firsts.append((label, rows[0]))
        key = label.replace(" ", "_").replace("-", "_")
        summary_pairs += [f"{key}_{name}: {value:.5f}" for name, value in summary.items()]
    if args.picture is not None:
        print(f"picture: {write_picture(args.picture, firsts, mel.sample_rate)}")
    print(", ".join(summary_pairs))


if __name__ == "__main__":
    main()
