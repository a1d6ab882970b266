"""A spectrogram picture a musician reads: colour, seconds and Hz, joins and given audio marked.

`NAME.png` (audiodiff.clipfiles.spectrogram_png) is the model's own image, one pixel per Mel band
and STFT frame, grey, so that it turns back into audio exactly; a 64-band model's is 64 pixels
high. This module draws a *separate* picture of it for the eye, at the size it is shown:

- the image is resized (bilinear) to the plot area, so axes and labels are drawn at display
  resolution, not baked into a tiny image and scaled up with it;
- a perceptual colour map (matplotlib's "magma", as a 9-point table: dark = quiet, bright =
  loud; lightness rises evenly, so loudness reads the same in every colour and in greyscale);
- a time axis in seconds and a frequency axis in Hz: each row's frequency is its Mel band's
  centre, the centroid of that band's filter in `audiodiff.mel.filterbank` (the same filters
  the codec uses), so the labels follow the Mel spacing of the model;
- joins (`seam_seconds`) as thin dashed white lines, the user's own audio as a tinted band labelled
  "your audio".

numpy and PIL only (matplotlib is not a dependency).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .mel import MelConfig

DISPLAY_WIDTH = 480  # pixels of the whole picture: the width of a clip's column at 1280 pixels (two clips side by side)
DISPLAY_HEIGHT = 230
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP, MARGIN_RIGHT = 58, 30, 20, 12
FONT_PIXELS = 12
# matplotlib's magma at 0, 1/8, ..., 1 (from its published 256-entry table)
MAGMA = np.array([
    [0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122],
    [229, 80, 100], [251, 135, 97], [254, 194, 135], [252, 253, 191],
], dtype=np.float32)
GIVEN_TINT = np.array([80, 170, 255], dtype=np.float32)  # blue wash over the user's audio
GIVEN_TINT_ALPHA = 0.28
HZ_TICKS = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
TIME_TICK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600)  # seconds: round spacings, NAME.png's too
TICK_GAP_PIXELS = 70  # at least, between time labels of FONT_PIXELS ("120 s")


def colour_map(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> uint8 RGB (..., 3) on the magma scale."""
    position = np.clip(values, 0.0, 1.0) * (len(MAGMA) - 1)
    low = np.floor(position).astype(int).clip(0, len(MAGMA) - 2)
    frac = (position - low)[..., None]
    return (MAGMA[low] * (1 - frac) + MAGMA[low + 1] * frac).round().astype(np.uint8)


def band_centres_hz(mel: MelConfig) -> np.ndarray:
    """(n_mels,) centre frequency of each Mel band: the centroid of its filter."""
    from .mel import filterbank

    weights = filterbank(mel).cpu().double().numpy().T  # (n_freqs, n_mels)
    freqs = np.arange(weights.shape[0]) * mel.sample_rate / mel.n_fft
    return (freqs[:, None] * weights).sum(0) / np.maximum(weights.sum(0), 1e-12)


def _font(size: int = FONT_PIXELS):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one small bitmap font
        return ImageFont.load_default()


def time_ticks(seconds: float, pixels_per_second: float, min_gap_pixels: float) -> list[float]:
    """The times of a time axis's ticks over `seconds`: 0, step, 2 step, ... at the first round step
    (TIME_TICK_STEPS, else 1200 s) that leaves `min_gap_pixels` between labels at `pixels_per_second`.
    The one rule for this picture and for NAME.png's axis (`audiodiff.clipfiles.spectrogram_png`)."""
    step = next((step for step in TIME_TICK_STEPS if step * pixels_per_second >= min_gap_pixels), 1200)
    return [i * step for i in range(int(seconds / step + 1e-9) + 1)]


def _hz_label(hz: float) -> str:
    return f"{hz / 1000:g} kHz" if hz >= 1000 else f"{hz:g} Hz"


def render_spectrogram(
    image: np.ndarray,
    mel: MelConfig,
    samples: int,
    *,
    seam_seconds: Sequence[float] = (),
    given_seconds: Sequence[tuple[float, float]] = (),
    width: int = DISPLAY_WIDTH,
    height: int = DISPLAY_HEIGHT,
) -> Image.Image:
    """A Mel image (H, W) in [-1, 1], row 0 = lowest band, of a clip of `samples` samples -> an
    RGB picture `width` x `height` with axes, joins (`seam_seconds`) and the user's audio
    (`given_seconds`: (start, end) spans) marked."""
    image = np.asarray(image, dtype=np.float32).reshape(image.shape[-2], image.shape[-1])
    bands, columns = image.shape
    seconds = samples / mel.sample_rate
    plot_w, plot_h = width - MARGIN_LEFT - MARGIN_RIGHT, height - MARGIN_TOP - MARGIN_BOTTOM
    # columns beyond the clip's end (the last STFT frame's half window) are not shown
    shown_columns = max(1, min(columns, int(round(mel.seconds_to_columns(seconds))) + 1))
    level = (image[::-1, :shown_columns] + 1.0) / 2.0  # (H, W) in [0, 1], low frequencies at the bottom
    resized = np.asarray(Image.fromarray(level).resize((plot_w, plot_h), Image.BILINEAR))
    rgb = colour_map(resized).astype(np.float32)
    seconds_to_x = plot_w / max(seconds, 1e-9)
    for start, end in given_seconds:
        x0, x1 = (int(round(np.clip(t, 0, seconds) * seconds_to_x)) for t in (start, end))
        rgb[:, x0:x1] = rgb[:, x0:x1] * (1 - GIVEN_TINT_ALPHA) + GIVEN_TINT * GIVEN_TINT_ALPHA
    picture = Image.new("RGB", (width, height), "white")
    picture.paste(Image.fromarray(rgb.round().clip(0, 255).astype(np.uint8)), (MARGIN_LEFT, MARGIN_TOP))
    draw = ImageDraw.Draw(picture)
    font = _font()
    bottom = MARGIN_TOP + plot_h

    # time axis, seconds
    for t in time_ticks(seconds, seconds_to_x, TICK_GAP_PIXELS):
        x = MARGIN_LEFT + min(int(round(t * seconds_to_x)), plot_w - 1)
        draw.line([(x, bottom), (x, bottom + 4)], fill="black")
        label = f"{t:g} s"
        text_w = draw.textlength(label, font=font)
        draw.text((min(max(x - text_w / 2, 0), width - text_w), bottom + 6), label, fill="black", font=font)

    # frequency axis, Hz at the Mel bands' centres
    centres = band_centres_hz(mel)
    last_y = math.inf
    for hz in HZ_TICKS:
        if not centres[0] <= hz <= centres[-1]:
            continue
        row = float(np.interp(hz, centres, np.arange(bands)))  # fractional band, 0 = lowest
        y = MARGIN_TOP + plot_h - (row + 0.5) * plot_h / bands
        if last_y - y < FONT_PIXELS + 4:  # labels would overlap: low bands are close on the Mel scale
            continue
        last_y = y
        draw.line([(MARGIN_LEFT - 4, y), (MARGIN_LEFT, y)], fill="black")
        label = _hz_label(hz)
        text_w = draw.textlength(label, font=font)
        draw.text((MARGIN_LEFT - 6 - text_w, y - FONT_PIXELS / 2 - 1), label, fill="black", font=font)

    # joins: dashed white lines; the user's audio: labelled
    for t in seam_seconds:
        if 0 < t < seconds:
            x = MARGIN_LEFT + int(round(t * seconds_to_x))
            for y in range(MARGIN_TOP, bottom, 7):
                draw.line([(x, y), (x, min(y + 3, bottom))], fill="white", width=1)
    for start, end in given_seconds:
        x = MARGIN_LEFT + int(round(np.clip(start, 0, seconds) * seconds_to_x))
        draw.text((x + 4, 3), "your audio", fill=tuple(int(c) for c in GIVEN_TINT * 0.6), font=font)
    draw.rectangle([MARGIN_LEFT - 1, MARGIN_TOP - 1, MARGIN_LEFT + plot_w, bottom], outline="black")
    return picture


def clip_marks(record: dict) -> tuple[list[float], list[tuple[float, float]]]:
    """From a clip's JSON record -> (joins in seconds, the user's audio as (start, end) spans)."""
    seams = [float(s) for s in record.get("seam_seconds", [])]
    seconds = float(record["seconds"])
    edit = record.get("edit", "generate")
    if edit == "continue" and seams:
        return seams, [(0.0, seams[0])]
    if edit == "fill-gap" and len(seams) >= 2:
        return seams, [(0.0, seams[0]), (seams[-1], seconds)]
    return seams, []  # a variation is all new audio (shaped by the user's), a loop or a clip all generated
