"""Candidates chosen by tonality (audiodiff.sampling.tonal)."""

import torch

from audiodiff.mel import MelConfig
from audiodiff.sampling.tonal import LEVEL_SLACK_DB, image_flatness, most_tonal, tonal_level_chooser

MEL = MelConfig(x_res=16, y_res=32, sample_rate=8000, n_fft=512, hop_length=128)


def grey(db: float, shape=(1, 32, 16)) -> torch.Tensor:
    """An image at `db` (0 dB scale) everywhere."""
    return torch.full(shape, (db + MEL.top_db) / MEL.top_db * 2 - 1)


def tonal(db: float, bands=(5, 12)) -> torch.Tensor:
    """Silence but for a few loud bands (harmonic lines) at `db`."""
    image = grey(-MEL.top_db)
    for band in bands:
        image[:, band, :] = grey(db)[:, band, :]
    return image


def test_flatness_reads_noise_as_flat_and_lines_as_tonal():
    noise, lines = grey(-10.0), tonal(-10.0)
    values = image_flatness(torch.stack([noise, lines]), MEL)
    assert values.shape == (2,)
    assert abs(float(values[0]) - 1.0) < 1e-4  # equal power in every band: flat
    assert float(values[1]) < 0.01
    assert float(image_flatness(grey(-MEL.top_db), MEL)) == 1.0  # nothing loud: reads flat, never chosen for tonality


def test_most_tonal_picks_the_least_flat_candidate_of_each_item():
    candidates = torch.stack([torch.stack([grey(-10.0), tonal(-10.0), grey(-20.0)]),
                              torch.stack([tonal(-10.0, bands=range(0, 32, 2)), grey(-5.0), tonal(-10.0)])])  # (2, 3, 1, H, W)
    assert most_tonal(candidates, MEL).tolist() == [1, 2]
    only_noise = torch.tensor([[True, False, True], [True, True, False]])
    assert most_tonal(candidates, MEL, eligible=only_noise).tolist() == [0, 0]


def test_tonal_level_chooser_keeps_the_level_first():
    from audiodiff.sampling.steering import image_level_db

    noise, lines = grey(-10.0), tonal(-10.0, bands=range(0, 32, 3))
    noise_db, lines_db = (float(image_level_db(x, MEL)) for x in (noise, lines))
    assert noise_db - lines_db > 2 * LEVEL_SLACK_DB  # fewer loud bands: a lower level
    candidates = torch.stack([noise, lines]).unsqueeze(0)  # (1, 2, 1, H, W)
    # lines as near the clip's level as the noise is (within the slack): the tonal one is kept
    target = torch.tensor([lines_db + 0.4 * LEVEL_SLACK_DB])
    assert tonal_level_chooser(target, MEL, new_columns=(0, 16))(candidates).tolist() == [1]
    # lines too far from the level: the level wins
    assert tonal_level_chooser(torch.tensor([noise_db]), MEL, new_columns=(0, 16))(candidates).tolist() == [0]
