"""The spectrogram the app shows (audiodiff.display): colour, axes at display size, joins and the
user's audio marked, and NAME.png itself left as it is."""

import json

import numpy as np
import pytest
import torch

from audiodiff.display import (
    DISPLAY_HEIGHT,
    DISPLAY_WIDTH,
    MARGIN_LEFT,
    MARGIN_RIGHT,
    MARGIN_TOP,
    band_centres_hz,
    clip_marks,
    colour_map,
    render_spectrogram,
)
from audiodiff.mel import MelConfig, audio_to_spectrogram

MEL = MelConfig(x_res=64, y_res=64, sample_rate=16000, n_fft=1024, hop_length=256)


def test_colour_map_is_dark_to_bright_and_not_grey():
    colours = colour_map(np.linspace(0, 1, 9)).astype(int)
    lightness = colours.sum(1)
    assert (np.diff(lightness) > 0).all()  # louder is brighter, all the way
    assert colours[0].sum() < 30 and colours[-1].sum() > 650
    assert (colours[3:6].max(1) - colours[3:6].min(1) > 40).all()  # a colour, not a grey


def test_band_centres_follow_the_mel_filters():
    centres = band_centres_hz(MEL)
    assert centres.shape == (64,)
    assert (np.diff(centres) > 0).all()
    assert 20 < centres[0] < 100 and 6000 < centres[-1] < MEL.sample_rate / 2
    # Slaney's Mel scale: linear below 1 kHz (even spacing), logarithmic above (widening)
    low, high = np.diff(centres[:10]), np.diff(centres[-10:])
    assert low.max() / low.min() < 1.1 and high.min() > 3 * low.max()


def test_render_marks_time_frequency_joins_and_the_users_audio():
    seconds = 3.0
    t = torch.arange(int(seconds * MEL.sample_rate)) / MEL.sample_rate
    audio = 0.5 * torch.sin(2 * torch.pi * 440 * t) * (t > 1.0)  # silence, then a 440 Hz tone
    image = audio_to_spectrogram(audio, MEL)[0, 0].numpy()  # (64, W) in [-1, 1]
    samples = audio.numel()
    plain = np.asarray(render_spectrogram(image, MEL, samples)).astype(int)
    marked = np.asarray(render_spectrogram(image, MEL, samples, seam_seconds=[1.5],
                                           given_seconds=[(0.0, 1.5)])).astype(int)
    assert plain.shape == marked.shape == (DISPLAY_HEIGHT, DISPLAY_WIDTH, 3)
    plot_w = DISPLAY_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    x_of = lambda s: MARGIN_LEFT + int(round(s * plot_w / seconds))
    # the tone's row is bright after 1 s, dark before; rows are at display resolution
    centres = band_centres_hz(MEL)
    row = int(np.argmin(abs(centres - 440)))
    plot_h = DISPLAY_HEIGHT - MARGIN_TOP - 30
    y = int(MARGIN_TOP + plot_h - (row + 0.5) * plot_h / MEL.y_res)
    assert plain[y, x_of(2.5)].sum() > 500 and plain[y, x_of(0.5)].sum() < 100
    # the join: a white line at 1.5 s; the user's audio: tinted blue up to it, nothing after
    column = marked[MARGIN_TOP:MARGIN_TOP + plot_h, x_of(1.5)]
    assert (column.min(1) > 240).mean() > 0.4  # dashed, white
    before, after = slice(x_of(0.2), x_of(1.3)), slice(x_of(1.7), x_of(2.8))
    tint = marked[MARGIN_TOP + 5:MARGIN_TOP + plot_h - 5] - plain[MARGIN_TOP + 5:MARGIN_TOP + plot_h - 5]
    assert tint[:, before, 2].mean() > 15 and abs(tint[:, after]).max() == 0
    # axes: dark text left of and under the plot (labels drawn at this size, not scaled up)
    assert (plain[MARGIN_TOP:MARGIN_TOP + plot_h, :MARGIN_LEFT - 8].sum(2) < 300).any()
    assert (plain[MARGIN_TOP + plot_h + 6:, MARGIN_LEFT:].sum(2) < 300).any()


@pytest.mark.parametrize("record, marks", [
    ({"edit": "generate", "seconds": 10, "seam_seconds": [0.6, 1.2]}, ([0.6, 1.2], [])),
    ({"edit": "continue", "seconds": 6, "seam_seconds": [4.0]}, ([4.0], [(0.0, 4.0)])),
    ({"edit": "fill-gap", "seconds": 9, "seam_seconds": [3.0, 5.0]}, ([3.0, 5.0], [(0.0, 3.0), (5.0, 9.0)])),
    ({"edit": "vary", "seconds": 4, "seam_seconds": [], "strength": 0.5}, ([], [])),
])
def test_clip_marks_from_the_json(record, marks):
    assert clip_marks(record) == marks


def test_the_app_view_leaves_name_png_as_it_is(tmp_path):
    pytest.importorskip("gradio")
    from audiodiff.app import spectrogram_view
    from audiodiff.generate import png_to_image, spectrogram_png

    image = torch.rand(1, 64, 100) * 2 - 1
    png = spectrogram_png(image, MEL, 99 * MEL.hop_length, tmp_path / "clip.png")
    record = tmp_path / "clip.json"
    record.write_text(json.dumps({"edit": "continue", "seconds": 1.58, "seam_seconds": [0.5]}))
    before = png.read_bytes()
    view = spectrogram_view(png, record)
    assert view.size == (DISPLAY_WIDTH, DISPLAY_HEIGHT)
    assert png.read_bytes() == before
    back, _, _ = png_to_image(png)
    assert torch.allclose(back[0], image, atol=1 / 127.5)  # still the model's image, pixel for pixel
