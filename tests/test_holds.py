"""What keeps a long clip together, on test_sample's tiny random-weight UNet (split from test_sample.py):
candidates, the level and tempo holds, the blended join."""

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from audiodiff.mel import audio_to_spectrogram
from audiodiff.sampling import longclip
from audiodiff.sampling.beat import TRACKER_LOW_BPM, read_beats
from audiodiff.sample import (
    SamplingSetup,
    level_chooser,
    sample,
    sample_slice,
    SamplingOptions,
    generate_long,
    beat_bpm,
    beat_columns_for,
    chain_guides,
    fold_beat,
    image_beat_columns,
    image_level_db,
    image_onset,
    level_guide,
    tempo_guide,
    overlap_columns,
)

from test_sample import MEL, STEPS, _known, pipe  # noqa: F401  pipe is test_sample's fixture (tests/ is on sys.path)


# ---- candidates: several versions of a slice, one finished -----------------------------------
def _candidate_setup(pipe, scheduler_cls, candidates=3, batch_size=2):
    options = SamplingOptions(num_inference_steps=STEPS, seed=5, candidates=candidates, batch_size=batch_size)
    return dataclasses.replace(SamplingSetup.prepare(pipe, options), scheduler=scheduler_cls())


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, DPMSolverMultistepScheduler])
def test_the_candidate_kept_is_the_one_that_ran_with_the_others(pipe, scheduler_cls):
    """A slice's candidates are all sampled to the last step together, then one per item is kept:
    exactly that candidate's row of the same sampling with every candidate kept. The chooser sees
    the clean images they last predicted."""
    width, k, seen = 64, 20, []
    known, mask = _known(2, width), torch.arange(width) < k

    def pick(candidates):
        seen.append(candidates.clone())
        return torch.tensor([2, 0])  # item 0 keeps its third candidate, item 1 its first

    kept = sample_slice(_candidate_setup(pipe, scheduler_cls), known, mask, chooser=pick)
    every = sample(pipe.unet, scheduler_cls(), batch_size=6, width=width, num_inference_steps=STEPS, seed=5,
                   known=known.repeat_interleave(3, dim=0), mask=mask, progress=False)
    assert kept.shape == (2, 1, MEL.y_res, width)
    assert torch.equal(kept[0], every[2]) and torch.equal(kept[1], every[3])
    assert len(seen) == 1 and seen[0].shape == (2, 3, 1, MEL.y_res, width)  # (items, candidates, 1, H, W)
    assert seen[0].min() >= -1 and seen[0].max() <= 1
    assert torch.equal(kept[..., :k], known[..., :k])
    assert not torch.allclose(seen[0][:, 0], seen[0][:, 1], atol=0.05)  # the candidates are different draws
    other = sample_slice(_candidate_setup(pipe, scheduler_cls), known, mask, chooser=lambda c: torch.tensor([1, 1]))
    assert not torch.allclose(other[0], kept[0], atol=0.05) and not torch.allclose(other[1], kept[1], atol=0.05)


def test_one_candidate_is_the_plain_loop(pipe):
    plain = generate_long(pipe, 1.5, overlap_seconds=0.2, num_inference_steps=STEPS, seed=3, candidates=1, progress=False)
    again = generate_long(pipe, 1.5, overlap_seconds=0.2, num_inference_steps=STEPS, seed=3, candidates=1, progress=False)
    chosen = generate_long(pipe, 1.5, overlap_seconds=0.2, num_inference_steps=STEPS, seed=3, candidates=3, progress=False)
    assert torch.equal(plain.audio, again.audio)
    assert not torch.equal(plain.slices[1], chosen.slices[1])
    assert chosen.audio.shape == plain.audio.shape


def test_image_level_is_loudness_weighted():
    """A band's power counts as BS.1770's K-weighting counts it: treble (+4 dB shelf) more than bass."""
    from audiodiff.sample import band_loudness_weights

    weights = 10 * torch.log10(band_loudness_weights(MEL))
    assert weights.shape == (MEL.y_res,) and bool((weights.diff() > -0.05).all())  # never less for a higher band
    assert 3.0 < float(weights[-1] - weights[MEL.y_res // 4]) < 6.0
    low, high = torch.full((1, 1, MEL.y_res, 8), -1.0), torch.full((1, 1, MEL.y_res, 8), -1.0)
    low[..., 2, :], high[..., -2, :] = 0.5, 0.5  # the same power in one low or one high band
    assert float(image_level_db(high, MEL) - image_level_db(low, MEL)) > 3.0


def test_level_chooser_picks_the_candidate_nearest_the_clip_level():
    grey = torch.full((2, 4, 1, MEL.y_res, 10), -1.0)  # 2 items, 4 candidates, silence (-80 dB)
    for c, db in enumerate([-10.0, -30.0, -20.0, -50.0]):  # new columns [3, 10) of candidate c at this level
        grey[:, c, ..., 3:] = (db + 80.0) / 80.0 * 2 - 1
    grey[:, :, ..., :3] = 1.0  # the known columns are loud: they must not count
    levels = image_level_db(grey[..., 3:], MEL)  # K-weighted: a constant offset for a flat spectrum
    offset = float(levels[0, 0] + 10.0)
    assert levels.shape == (2, 4) and torch.allclose(levels[0] - offset, torch.tensor([-10.0, -30.0, -20.0, -50.0]), atol=0.2)
    target = torch.tensor([-22.0, -45.0]) + offset
    choose = level_chooser(target, MEL, new_columns=(3, 10))
    assert choose(grey).tolist() == [2, 3]
    # early in the chain every prediction is blurred and quieter, the known columns as predicted
    # too (here by 12 dB); read against them, the choice is the same
    blurred = grey - 12.0 / 40.0
    assert level_chooser(target, MEL, new_columns=(3, 10))(blurred).tolist() == [0, 1]  # fooled
    context = image_level_db(grey[:, 0, ..., :3], MEL)  # the known columns as they are: 0 dB
    choose = level_chooser(target, MEL, new_columns=(3, 10), context_db=context)
    assert choose(blurred).tolist() == [2, 3]


def test_a_bad_choice_is_refused(pipe):
    known, mask = _known(1, 64), torch.arange(64) < 20
    setup = _candidate_setup(pipe, DDIMScheduler, candidates=2, batch_size=1)
    with pytest.raises(ValueError, match="one candidate index in"):
        sample_slice(setup, known, mask, chooser=lambda c: torch.tensor([2]))
    with pytest.raises(ValueError, match="need a chooser"):
        sample_slice(setup, known, mask)


# ---- the level hold: continued slices stay at the clip's level --------------------------------
def _slice_level_errors(clip, mel, k):
    """Level of each continued slice's new columns minus the level of the clip before them, dB."""
    return [float(image_level_db(clip.image[..., a + k:b], mel) - image_level_db(clip.image[..., :a + k], mel))
            for a, b in clip.slice_columns[1:]]


class SinkingUNet(torch.nn.Module):
    """A stand-in UNet that continues its context 6 dB quieter: its clean prediction is the
    context's mean grey over the first `k` (known) columns and 0.15 grey (6 dB) less after them,
    so a long clip sinks slice by slice unless something holds it."""

    def __init__(self, unet, scheduler, k):
        super().__init__()
        self.config, self.device, self.dtype = unet.config, unet.device, unet.dtype
        self.alphas, self.k = scheduler.alphas_cumprod, k

    def forward(self, sample, t):
        a = float(self.alphas[int(t)])
        context = (sample[..., : self.k] / math.sqrt(a)).mean(dim=(1, 2, 3), keepdim=True).clamp(-0.9, 0.9)
        clean = context.expand_as(sample).clone()
        clean[..., self.k :] -= 0.15
        return SimpleNamespace(sample=(sample - math.sqrt(a) * clean) / math.sqrt(1 - a))


def test_level_hold_keeps_each_continued_slice_at_the_clip_level(pipe):
    k = overlap_columns(0.2, MEL, MEL.x_res)
    sinking = SimpleNamespace(unet=SinkingUNet(pipe.unet, pipe.scheduler, k), scheduler=pipe.scheduler, mel=MEL)
    common = dict(overlap_seconds=0.2, num_inference_steps=STEPS, seed=2, progress=False, target_lufs=None)
    free_clip = generate_long(sinking, 3.0, level_hold=0, **common)
    held_clip = generate_long(sinking, 3.0, **common)  # the default holds
    free, held = _slice_level_errors(free_clip, MEL, k), _slice_level_errors(held_clip, MEL, k)
    assert len(free) == len(held) >= 8
    # unheld, each slice is quieter than all before it; held, a few dB off at most (this model
    # pulls every prediction 6 dB down again, a real one follows the level it is steered to)
    assert np.mean(free) < -20.0 and np.mean(np.abs(held)) < 0.2 * np.mean(np.abs(free))
    end = held_clip.image.shape[-1]
    assert image_level_db(free_clip.image[..., end - 20:], MEL) < image_level_db(free_clip.image[..., :20], MEL) - 20
    assert abs(float(image_level_db(held_clip.image[..., end - 20:], MEL) - image_level_db(held_clip.image[..., :20], MEL))) < 3
    assert torch.equal(held_clip.slices[0], free_clip.slices[0])  # slice 0 has no clip to hold to


def test_level_guide_moves_the_new_columns_from_zero_at_the_join():
    mel = dataclasses.replace(MEL, sample_rate=8000, hop_length=64)  # 125 columns per second: a ramp of 125
    clean = torch.full((1, 1, MEL.y_res, 300), -0.5)  # -60 dB everywhere
    guide = level_guide(torch.tensor([-50.0]), torch.tensor([-60.0]), mel, new_columns=(40, 300), strength=1.0)
    out = guide(clean, 0)
    shift = (out - clean)[0, 0, 0]  # grey units, per column
    assert torch.equal(shift[:41], torch.zeros(41))  # the known columns and the join itself: unchanged
    assert bool((shift[41:165] > 0).all()) and bool((shift[41:165].diff() > 0).all())  # a ramp up ...
    assert torch.allclose(shift[165:], torch.full((135,), 10.0 / 40.0))  # ... to the whole 10 dB (40 dB per grey unit)
    quieter = level_guide(torch.tensor([-70.0]), torch.tensor([-60.0]), mel, new_columns=(40, 300), strength=1.0)
    assert bool((quieter(clean, 0)[..., 165:] < clean[..., 165:]).all())


def test_candidates_and_the_level_hold_work_together_on_a_batch(pipe):
    clip = generate_long(pipe, 1.5, overlap_seconds=0.2, num_inference_steps=STEPS, seed=1, batch_size=2, candidates=3,
                         progress=False)
    assert clip.audio.shape == (2, int(1.5 * MEL.sample_rate)) and torch.isfinite(clip.audio).all()
    assert not torch.equal(clip.audio[0], clip.audio[1])


# ---- the tempo hold: continued slices stay on the clip's beat ---------------------------------
def _clicks(bpm, seconds, sample_rate):
    """Noise bursts (20 ms decay) on every beat: (T,) float32."""
    rng = np.random.default_rng(0)
    audio = np.zeros(int(seconds * sample_rate), np.float32)
    burst = (0.5 * rng.standard_normal(160) * np.exp(-np.arange(160) / 32)).astype(np.float32)
    for beat in np.arange(0.0, seconds, 60.0 / bpm):
        i = int(beat * sample_rate)
        audio[i : i + 160] += burst[: audio.size - i]
    return torch.from_numpy(audio)


def test_image_beat_columns_reads_the_beat_of_a_click_track():
    columns_per_second = MEL.sample_rate / MEL.hop_length  # 125
    images = audio_to_spectrogram(torch.stack([_clicks(120, 4.0, MEL.sample_rate), _clicks(96, 4.0, MEL.sample_rate)]), MEL)
    onset = image_onset(images, MEL)
    assert onset.shape == (2, images.shape[-1]) and float(onset[:, 0].abs().max()) == 0.0
    beats = image_beat_columns(images, MEL)
    expected = torch.tensor([60.0 / 120, 60.0 / 96]) * columns_per_second  # 62.5 and 78.1 columns
    assert torch.allclose(beats, expected, rtol=0.02), beats
    # longer than the context a slice can echo: halved (still on the beat grid)
    assert torch.allclose(fold_beat(beats, 50.0), beats / 2) and torch.equal(fold_beat(beats, 80.0), beats)
    assert beat_bpm(beats, MEL) == pytest.approx([120.0, 96.0], abs=2.0)
    assert beat_columns_for(120.0, MEL) == 62.5


def _rhythm(image, groups=8, window=11):
    """Band envelopes minus their moving average, as `tempo_guide` reads them: (B, G, W)."""
    bands = torch.tensor_split(torch.arange(image.shape[-2]), groups)
    envelope = torch.stack([image[:, 0, band].mean(dim=1) for band in bands], dim=1)
    trend = torch.nn.functional.avg_pool1d(torch.nn.functional.pad(envelope, (window // 2, window // 2), mode="replicate"),
                                           window, stride=1)
    return envelope - trend


def test_tempo_guide_echoes_the_beat_before_and_keeps_the_rhythm_s_spread():
    generator = torch.Generator().manual_seed(0)
    width, start, beat = 120, 40, 10
    columns = torch.arange(width)
    pulse = lambda period: (columns % period == 0).float()  # noqa: E731
    # the known columns pulse every 10 columns, the new ones every 13; a little noise everywhere
    envelope = torch.where(columns < start, pulse(beat), pulse(13)) * 0.6 - 0.5
    clean = envelope.view(1, 1, 1, -1).expand(1, 1, MEL.y_res, width) + 0.02 * torch.randn(1, 1, MEL.y_res, width,
                                                                                             generator=generator)
    out = tempo_guide(torch.tensor([float(beat)]), new_columns=(start, width), strength=1.0)(clean, 0)
    assert torch.equal(out[..., :start], clean[..., :start])  # the known columns: untouched
    before, after = _rhythm(clean), _rhythm(out)
    # the first beat of new columns is the beat before it, echoed
    first = np.corrcoef(after[0, :, start : start + beat].flatten(), before[0, :, start - beat : start].flatten())[0, 1]
    assert first > 0.95
    # half way between two pulse trains that don't line up, the rhythm's spread over the new
    # columns is still what it was: blending alone would average the onsets away
    half = _rhythm(tempo_guide(torch.tensor([float(beat)]), new_columns=(start, width), strength=0.5)(clean, 0))
    assert torch.allclose(half[..., start:].std(dim=-1), before[..., start:].std(dim=-1), rtol=0.1)
    # strength 0: nothing moves; chain_guides applies guides in turn and skips None
    still = tempo_guide(torch.tensor([float(beat)]), new_columns=(start, width), strength=0.0)(clean, 0)
    assert torch.allclose(still, clean, atol=1e-6)
    for few in ((start, start + 1), (width, width)):  # one new column or none: nothing to keep, nothing broken
        assert torch.equal(tempo_guide(torch.tensor([float(beat)]), new_columns=few)(clean, 0), clean)
    double = chain_guides(None, lambda c, s: c + 1, None, lambda c, s: c * 2)
    assert torch.equal(double(clean, 0), (clean + 1) * 2) and chain_guides(None) is None


def test_tempo_guide_can_echo_the_mean_of_several_beats_before():
    generator = torch.Generator().manual_seed(1)
    width, start, beat = 120, 40, 10
    columns = torch.arange(width)
    # four known beats, each its own pattern (a pulse moved by 0-3 columns); new columns: noise
    envelope = torch.where(columns < start, ((columns % beat) == (columns // beat) % 4).float() * 0.6, torch.zeros(width)) - 0.5
    clean = envelope.view(1, 1, 1, -1).expand(1, 1, MEL.y_res, width) + 0.02 * torch.randn(1, 1, MEL.y_res, width,
                                                                                             generator=generator)
    before = _rhythm(clean)[0]
    last, two = before[:, start - beat : start], 0.5 * (before[:, start - beat : start] + before[:, start - 2 * beat : start - beat])
    for echo_beats, echoed in ((1, last), (2, two)):
        after = _rhythm(tempo_guide(torch.tensor([float(beat)]), new_columns=(start, width), strength=1.0,
                                    echo_beats=echo_beats)(clean, 0))[0]
        assert np.corrcoef(after[:, start : start + beat].flatten(), echoed.flatten())[0, 1] > 0.9, echo_beats
    # a beat further back than the known columns is not echoed (the first column repeated is no beat)
    few = clean[..., start - 15 :]
    one = tempo_guide(torch.tensor([float(beat)]), new_columns=(15, few.shape[-1]), strength=1.0, echo_beats=1)(few, 0)
    assert torch.equal(tempo_guide(torch.tensor([float(beat)]), new_columns=(15, few.shape[-1]), strength=1.0,
                                   echo_beats=2)(few, 0), one)


def _beat_correlation(clip, k, beat):
    """Mean correlation of each continued slice's new rhythm with itself one beat earlier."""
    rhythm = _rhythm(clip.image)
    lag = int(round(beat))
    values = []
    for a, b in clip.slice_columns[1:]:
        now, before = rhythm[0, :, a + k : b], rhythm[0, :, a + k - lag : b - lag]
        values.append(np.corrcoef(now.flatten(), before.flatten())[0, 1])
    return float(np.mean(values))


def test_tempo_hold_keeps_continued_slices_on_the_first_slice_s_beat(pipe, monkeypatch):
    # the held clip's first slice is the free clip's, steered: none is drawn again (the redraws have their own test)
    monkeypatch.setattr(longclip, "MIN_FIRST_SLICE_CLARITY", 0.0)
    common = dict(overlap_seconds=0.2, num_inference_steps=STEPS, progress=False, target_lufs=None, level_hold=0,
                  quantize=0.0)  # the hold alone: the beats as sampled
    k = overlap_columns(0.2, MEL, MEL.x_res)
    gains = []
    for seed in range(3):
        free = generate_long(pipe, 3.0, seed=seed, tempo_hold=0, **common)
        held = generate_long(pipe, 3.0, seed=seed, **common)  # the default holds
        assert free.bpm is None and len(held.bpm) == 1
        # slice 0 sets the beat: read from it as first made (the free clip's), at a tracker's level,
        # then its last half is run again on that beat
        beat = read_beats(free.slices[0], MEL)
        assert held.bpm == beat_bpm(beat, MEL) and TRACKER_LOW_BPM <= held.bpm[0] < 2 * TRACKER_LOW_BPM
        assert not torch.equal(held.slices[0], free.slices[0])
        assert float((held.slices[0] - free.slices[0]).abs().mean()) < float((held.slices[0] - free.slices[1]).abs().mean())
        beat = float(fold_beat(beat, k)[0])
        gains.append(_beat_correlation(held, k, beat) - _beat_correlation(free, k, beat))
    assert min(gains) > 0.05, gains


def test_tempo_hold_is_checked_and_off_when_zero(pipe):
    for bad in (-0.1, 1.5, float("nan"), "0.2"):
        with pytest.raises(ValueError, match="tempo hold must be from 0 \\(off\\) to 1"):
            SamplingOptions(tempo_hold=bad)
    clip = generate_long(pipe, 1.5, overlap_seconds=0.2, num_inference_steps=STEPS, seed=1, batch_size=2, candidates=2,
                         progress=False)  # batch, candidates, level and tempo hold together
    assert clip.audio.shape == (2, int(1.5 * MEL.sample_rate)) and torch.isfinite(clip.audio).all()
    assert len(clip.bpm) == 2 and all(b > 0 for b in clip.bpm)


def test_a_bpm_steers_the_first_slice_onto_that_beat_and_is_kept(pipe):
    common = dict(overlap_seconds=0.2, num_inference_steps=STEPS, progress=False, target_lufs=None, level_hold=0)
    k = overlap_columns(0.2, MEL, MEL.x_res)
    beat = float(fold_beat(torch.tensor([beat_columns_for(100.0, MEL)]), k)[0])  # 75 columns, echoed as 18.75
    gains = []
    for seed in range(3):
        own = generate_long(pipe, 1.5, seed=seed, tempo_hold=0, **common)  # a first slice left as made
        told = generate_long(pipe, 1.5, seed=seed, bpm=100, **common)
        assert told.bpm == [100.0] and own.bpm != [100.0]
        rhythm_own, rhythm_told = _rhythm(own.slices[0]), _rhythm(told.slices[0])
        lag = int(round(beat))
        echo = [np.corrcoef(r[0, :, lag:].flatten(), r[0, :, :-lag].flatten())[0, 1] for r in (rhythm_own, rhythm_told)]
        gains.append(echo[1] - echo[0])
        assert not torch.equal(told.slices[0], own.slices[0])  # the first slice itself is steered
    assert min(gains) > 0.05, gains
    # with no overlap nothing is continued, but the first slice is still steered and the bpm kept
    assert generate_long(pipe, 1.5, overlap_seconds=0, num_inference_steps=STEPS, bpm=100, progress=False).bpm == [100.0]
    with pytest.raises(ValueError, match="bpm must be from 40 to 240, got 300"):
        SamplingOptions(bpm=300)
    with pytest.raises(ValueError, match="not with the tempo hold off"):
        SamplingOptions(bpm=120, tempo_hold=0)


# ---- the blended join: a slice's first new columns do not start with a jump -------------------
def test_pull_moves_free_columns_toward_the_known_image_and_nothing_else(pipe):
    generator_args = dict(num_inference_steps=STEPS, seed=3, progress=False)
    known = torch.full((1, 1, MEL.y_res, MEL.x_res), -0.4)
    mask = torch.zeros(MEL.x_res, dtype=torch.bool)
    mask[:20] = True
    free = sample(pipe.unet, pipe.scheduler, known=known, mask=mask, **generator_args)
    none = sample(pipe.unet, pipe.scheduler, known=known, mask=mask, pull=torch.zeros(MEL.x_res), **generator_args)
    assert torch.equal(free, none)  # a pull of 0 is no pull
    pull = torch.zeros(MEL.x_res)
    pull[20:30] = 0.9
    pulled = sample(pipe.unet, pipe.scheduler, known=known, mask=mask, pull=pull, **generator_args)
    assert torch.equal(pulled[..., :20], free[..., :20])  # known columns: exact
    near = lambda image: float((image[..., 20:30] - known[..., 20:30]).abs().mean())  # noqa: E731
    assert near(pulled) < 0.5 * near(free)
    with pytest.raises(ValueError, match="pull must be"):
        sample(pipe.unet, pipe.scheduler, known=known, mask=mask, pull=torch.full((MEL.x_res,), 1.5), **generator_args)


def test_a_new_clip_regenerates_the_tail_before_each_join(pipe):
    k = overlap_columns(0.2, MEL, MEL.x_res)  # 25 columns; the blend is 0.25 s, 31 columns, at most k // 2 = 12
    clip = generate_long(pipe, 2.0, overlap_seconds=0.2, num_inference_steps=STEPS, seed=0, progress=False,
                         target_lufs=None, quantize=0.0)  # the image as stitched: beats as sampled
    blended = min(int(round(0.25 * MEL.sample_rate / MEL.hop_length)), k // 2)
    assert blended == 12
    first, second = clip.slices[0], clip.slices[1]
    join = MEL.x_res  # where slice 1's new columns begin
    # the first slice is kept up to the blend; its last `blended` columns are slice 1's regenerated ones
    assert torch.equal(clip.image[..., : join - blended], first[..., : join - blended])
    assert torch.equal(clip.image[..., join - blended : join], second[..., k - blended : k])
    assert not torch.equal(clip.image[..., join - blended : join], first[..., join - blended :])
    # near what they were: closer to the first slice's columns than to unrelated ones
    tail = clip.image[..., join - blended : join]
    assert float((tail - first[..., join - blended :]).abs().mean()) < float((tail - first[..., :blended]).abs().mean())
