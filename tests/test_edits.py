"""Edits (audiodiff.edits): continuation, gap filling, loops, inversion, variations, interpolation,
and each flag of scripts/generate.py as a user runs it.

The bundled base model (2 M parameters, 64 x 168 images at 16 kHz, 4.03 s slices) is the tiny
model here: inversion needs a model that has learnt something (a random UNet's noise
predictions diverge without clipping), and it ships with the package, so no test downloads it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff import edits
from audiodiff.audio import write_wav
from audiodiff.generate import GenerationError, generate
from audiodiff.pipeline import load_pipeline
from audiodiff.sample import sample
from audiodiff.synthetic import render

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "generate.py"
STEPS = 8


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline("bundled")


def clip(genre: str, seed: int, seconds: float, sample_rate: int = 16000) -> torch.Tensor:
    return torch.as_tensor(render(genre, seed, seconds, sample_rate), dtype=torch.float32)


def mean_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


# ---- continuation ----------------------------------------------------------------------------
def test_continuation_keeps_the_given_columns_and_samples(pipe):
    audio = 0.5 * clip("jazz", 1, 2.0)  # headroom: the output is only turned down if the new part would clip
    made = edits.continue_audio(pipe, audio, 1.5, num_inference_steps=STEPS, progress=False, batch_size=2)
    mel = pipe.mel
    image, known, _ = edits.Timeline(pieces=[(0, audio)], total=audio.numel() + 24000).image(mel)
    # every column whose STFT window lies inside the given audio is kept, exactly, before decoding
    assert known.sum() == 1 + (audio.numel() - mel.n_fft // 2) // mel.hop_length
    assert torch.equal(made.image[..., known], image[..., known].expand(2, -1, -1, -1))
    assert torch.equal(made.known_columns, known)
    # exact length; the given samples come back unchanged up to the crossfade before the join
    assert made.audio.shape == (2, audio.numel() + 24000)
    crossfade = int(edits.CROSSFADE_SECONDS * mel.sample_rate)
    assert torch.equal(made.audio[:, : audio.numel() - crossfade], audio[: audio.numel() - crossfade].expand(2, -1))
    assert made.seam_seconds == [2.0]
    # the new part is new (not silence) and at the given audio's level (within 6 dB)
    new = made.audio[:, audio.numel() :]
    level = lambda x: 20 * np.log10(float(x.pow(2).mean().sqrt()))
    assert abs(level(new[0]) - level(audio)) < 6
    assert not torch.equal(made.image[0], made.image[1])  # batch items differ


def test_continuation_is_deterministic_for_a_seed(pipe):
    audio = clip("rock", 3, 1.5)
    kwargs = dict(num_inference_steps=4, progress=False)
    first = edits.continue_audio(pipe, audio, 1.0, seed=7, **kwargs)
    again = edits.continue_audio(pipe, audio, 1.0, seed=7, **kwargs)
    other = edits.continue_audio(pipe, audio, 1.0, seed=8, **kwargs)
    assert torch.equal(first.audio, again.audio)
    assert not torch.equal(first.audio, other.audio)


# ---- gap filling -----------------------------------------------------------------------------
def test_gap_fill_starts_with_a_ends_with_b_and_has_the_requested_length(pipe):
    a, b = 0.5 * clip("jazz", 1, 1.6), 0.5 * clip("classical", 2, 1.3)
    made = edits.fill_gap(pipe, a, b, 2.25, num_inference_steps=STEPS, progress=False)
    mel = pipe.mel
    gap = int(round(2.25 * mel.sample_rate))
    assert made.audio.shape == (1, a.numel() + gap + b.numel())
    timeline = edits.Timeline(pieces=[(0, a), (a.numel() + gap, b)], total=a.numel() + gap + b.numel())
    image, known, _ = timeline.image(mel)
    generated = torch.nonzero(~known).flatten()
    first, last = int(generated[0]), int(generated[-1]) + 1
    assert first > 0 and last < image.shape[-1] and (~known[first:last]).all()  # one gap, known on both sides
    assert torch.equal(made.image[..., :first], image[..., :first])  # starts with A
    assert torch.equal(made.image[..., last:], image[..., last:])  # ends with B
    assert made.image.shape == image.shape
    crossfade = int(edits.CROSSFADE_SECONDS * mel.sample_rate)
    assert torch.equal(made.audio[0, : a.numel() - crossfade], a[: a.numel() - crossfade])
    assert torch.equal(made.audio[0, a.numel() + gap + crossfade :], b[crossfade:])
    assert made.seam_seconds == pytest.approx([1.6, 1.6 + 2.25])
    # the gap is music, not the timeline's silence
    middle = made.audio[0, a.numel() + crossfade : a.numel() + gap - crossfade]
    assert float(middle.pow(2).mean().sqrt()) > 0.1 * float(a.pow(2).mean().sqrt())


# ---- loops -----------------------------------------------------------------------------------
def test_loop_end_leads_into_its_start(pipe):
    made = edits.make_loop(pipe, 2.5, num_inference_steps=STEPS, progress=False, batch_size=2, seed=1)
    mel = pipe.mel
    samples = int(round(2.5 * mel.sample_rate))
    assert made.audio.shape == (2, samples)
    loop_width = int(round(samples / mel.hop_length))
    end = made.image.shape[-1] - loop_width
    assert end >= 1
    # the columns after the loop's end are its first columns: the end was generated to lead into them
    assert torch.equal(made.image[..., loop_width:], made.image[..., :end])
    # on repeat, the step across the wrap is no bigger than the steps inside the loop
    for item in made.audio:
        steps_inside = item.diff().abs()
        wrap = (item[0] - item[-1]).abs()
        assert wrap <= torch.quantile(steps_inside, 0.999)


def test_periodic_resample_keeps_a_periodic_signal_periodic():
    t = torch.arange(1000, dtype=torch.float64)
    period = (torch.sin(2 * torch.pi * 3 * t / 1000) + 0.5 * torch.cos(2 * torch.pi * 7 * t / 1000)).float().unsqueeze(0)
    out = edits.periodic_resample(period, 1003)
    u = torch.arange(1003, dtype=torch.float64)
    expected = (torch.sin(2 * torch.pi * 3 * u / 1003) + 0.5 * torch.cos(2 * torch.pi * 7 * u / 1003)).float()
    assert out.shape == (1, 1003)
    assert torch.allclose(out[0], expected, atol=1e-4)
    assert torch.equal(edits.periodic_resample(period, 1000), period)


def test_a_loop_keeps_a_bpm_and_edits_of_given_audio_refuse_one(pipe):
    made = edits.make_loop(pipe, 2.5, num_inference_steps=STEPS, progress=False, seed=1, bpm=90)
    assert made.bpm == [90.0]
    own = edits.make_loop(pipe, 2.5, num_inference_steps=STEPS, progress=False, seed=1)
    assert own.bpm is not None and own.bpm != [90.0] and not torch.equal(own.audio, made.audio)
    with pytest.raises(edits.EditError, match="keeps that audio's tempo"):
        edits.continue_audio(pipe, clip("jazz", 1, 1.0), 1.0, num_inference_steps=STEPS, progress=False, bpm=90)


def clicks(bpm: float, seconds: float, rate: int = 16000) -> torch.Tensor:
    """20 ms noise bursts on every beat."""
    rng = np.random.default_rng(0)
    burst = rng.standard_normal(int(0.02 * rate)) * np.hanning(int(0.02 * rate))
    audio = np.zeros(int(seconds * rate))
    for start in np.arange(0.05, seconds - 0.03, 60.0 / bpm):
        audio[int(start * rate) : int(start * rate) + burst.size] += 0.5 * burst
    return torch.from_numpy(audio).float()


@pytest.mark.parametrize("bpm, heard", [(96.0, 96.0), (64.0, 128.0)])  # 64: our estimator alone holds 64
def test_given_audio_is_held_at_the_beat_a_tracker_hears_and_the_json_says_which(pipe, tmp_path, bpm, heard):
    made = edits.continue_audio(pipe, clicks(bpm, 4.0), 0.5, num_inference_steps=2, progress=False, batch_size=2)
    assert made.bpm is not None and len(made.bpm) == 2
    assert all(b == pytest.approx(heard, rel=0.04) for b in made.bpm), made.bpm
    # a gap fill holds the beat of the audio before the gap, whatever the audio after it
    filled = edits.fill_gap(pipe, clicks(bpm, 4.0), clicks(150.0, 1.5), 0.5, num_inference_steps=2, progress=False)
    assert filled.bpm[0] == pytest.approx(heard, rel=0.04), filled.bpm
    free = edits.continue_audio(pipe, clicks(bpm, 4.0), 0.5, num_inference_steps=2, progress=False, tempo_hold=0.0)
    assert free.bpm is None
    wav = write_wav(tmp_path / "clicks.wav", clicks(bpm, 4.0), 16000)
    paths = generate("bundled", 0.5, init_audio=wav, steps=2, output_dir=tmp_path / "out", progress=False, log=None)
    record = json.loads(paths[2].read_text())
    assert record["edit"] == "continue" and record["bpm"] == pytest.approx(heard, rel=0.04)


def test_a_loop_too_short_for_the_model_is_a_clear_error(pipe):
    with pytest.raises(edits.EditError, match="at least"):
        edits.make_loop(pipe, 0.2, num_inference_steps=2, progress=False)


# ---- inversion, variations, interpolation ----------------------------------------------------
def test_inversion_then_sampling_reproduces_the_input(pipe):
    from audiodiff.mel import audio_to_images

    image = audio_to_images(clip("jazz", 5, 1.0), pipe.mel)  # (1, 1, 64, 64)
    scheduler = edits.inversion_scheduler(pipe.scheduler)
    latents = edits.invert(pipe.unet, pipe.scheduler, image, num_inference_steps=20)
    # a full inversion lands near the noise level, far from the image's own spread (0.39); where
    # depends on the model's ODE, not on the inversion's accuracy: the exact (converged) inversion
    # of the v-prediction bundled model lands at 0.79, one refinement at 0.74
    assert 0.6 < float(latents.std()) < 1.3 and float(latents.std()) > 1.5 * float(image.std())
    back = sample(pipe.unet, scheduler, known=image, strength=1.0, start_noise=latents,
                  num_inference_steps=20, progress=False, seed=0)
    fresh = sample(pipe.unet, scheduler, num_inference_steps=20, progress=False, seed=0)
    assert mean_error(back, image) < 0.1
    assert mean_error(back, image) < 0.4 * mean_error(fresh, image)
    # a partial inversion (strength 0.5) reproduces it too
    half = edits.invert(pipe.unet, pipe.scheduler, image, num_inference_steps=20, strength=0.5)
    back = sample(pipe.unet, scheduler, known=image, strength=0.5, start_noise=half, num_inference_steps=20,
                  progress=False, seed=0)
    assert mean_error(back, image) < 0.06


def test_inverted_variation_stays_closer_to_the_original(pipe):
    audio = clip("jazz", 1, 2.0)
    image, _ = edits.image_of(audio, pipe.mel)
    kwargs = dict(num_inference_steps=10, progress=False, batch_size=2, seed=3)
    noised = edits.vary(pipe, audio, 0.5, **kwargs)
    inverted = edits.vary(pipe, audio, 0.5, invert_audio=True, **kwargs)
    assert noised.audio.shape == inverted.audio.shape == (2, audio.numel())
    assert mean_error(inverted.image, image) < mean_error(noised.image, image)
    assert not torch.equal(inverted.image[0], inverted.image[1])  # variations, not copies
    again = edits.vary(pipe, audio, 0.5, invert_audio=True, **kwargs)
    assert torch.equal(again.audio, inverted.audio)
    # more strength, further from the original
    stronger = edits.vary(pipe, audio, 0.9, **kwargs)
    assert mean_error(stronger.image, image) > mean_error(noised.image, image)


def test_interpolation_ends_are_the_two_clips(pipe):
    a, b = clip("classical", 1, 1.8), clip("rock", 2, 2.2)  # sustained strings and a band: far apart
    walk = edits.interpolate(pipe, a, b, [0.0, 0.5, 1.0], num_inference_steps=30, progress=False)  # 10 on the 1.02 s model
    samples = a.numel()  # the shorter one
    assert walk.audio.shape == (3, samples)
    image_a, _ = edits.image_of(a, pipe.mel)
    image_b, _ = edits.image_of(b[:samples], pipe.mel)
    to_a = [mean_error(item, image_a[0]) for item in walk.image]
    to_b = [mean_error(item, image_b[0]) for item in walk.image]
    assert to_a[0] < 0.1 and to_b[2] < 0.15  # each end reproduces its clip
    assert to_a[0] < 0.5 * to_a[2] and to_b[2] < 0.5 * to_b[0]  # ... and not the other one
    assert to_a[0] < to_a[1] < to_a[2] and to_b[2] < to_b[1] < to_b[0]  # the middle lies between
    # alpha 0 is exactly the reconstruction of A alone (eta 0: the same path)
    alone = edits.interpolate(pipe, a, b, [0.0], num_inference_steps=30, progress=False)
    assert torch.allclose(alone.image[0], walk.image[0], atol=1e-4)


def test_slerp_and_slice_plan():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    assert torch.equal(edits.slerp(a, b, 0.0), a) and torch.equal(edits.slerp(a, b, 1.0), b)
    mid = edits.slerp(a, b, 0.5)
    # slerp keeps the norm of unit-variance noise roughly (a linear mix would shrink it by ~sqrt(2))
    assert float(mid.flatten(1).norm(dim=1).mean()) > 0.9 * float(a.flatten(1).norm(dim=1).mean())
    plan = [(s.start, s.end, s.known) for s in edits.cover_slices(150, 64, 20)]
    assert plan[0] == (0, 64, 0) and plan[-1][1] == 150
    assert all(end - start == 64 for start, end, _ in plan)
    covered = set()
    for start, end, made in plan:
        assert made >= (20 if start else 0)
        assert set(range(start, start + made)) <= covered  # known columns were made before
        covered |= set(range(start, end))
    assert covered == set(range(150))
    assert [(s.start, s.end, s.known) for s in edits.cover_slices(40, 64, 20)] == [(0, 40, 0)]


def test_bad_audio_is_a_clear_error(pipe):
    with pytest.raises(edits.EditError, match="silent"):
        edits.continue_audio(pipe, torch.zeros(16000), 1.0, num_inference_steps=2, progress=False)
    with pytest.raises(edits.EditError, match="too short"):
        edits.continue_audio(pipe, clip("jazz", 1, 1.0)[:100], 1.0, num_inference_steps=2, progress=False)
    with pytest.raises(edits.EditError, match="NaN"):
        edits.vary(pipe, torch.full((16000,), float("nan")), 0.5, num_inference_steps=2, progress=False)
    with pytest.raises(edits.EditError, match="ddim"):
        edits.vary(pipe, clip("jazz", 1, 1.0), 0.5, invert_audio=True, scheduler="dpm", num_inference_steps=2,
                   progress=False)


def test_continuing_a_faded_out_file_says_so(tmp_path):
    from audiodiff.generate import ends_quietly

    audio = clip("jazz", 1, 2.0)
    faded = audio.clone()
    faded[-8000:] *= torch.linspace(1, 0, 8000) ** 4
    assert ends_quietly(faded, 16000) and not ends_quietly(audio, 16000)
    wav = write_wav(tmp_path / "faded.wav", faded, 16000)
    messages = []
    generate("bundled", 0.5, init_audio=wav, steps=2, output_dir=tmp_path / "out", progress=False,
             log=messages.append)
    assert any("fade-out" in m for m in messages)


@pytest.mark.parametrize("bad, message", [
    (dict(batch_size=0), "batch size must be at least 1"),
    (dict(overlap_seconds=-1.0), "overlap must be >= 0 seconds"),
    (dict(overlap_seconds=5.0), r"overlap \(5 s\) must be shorter than one slice"),
    (dict(num_inference_steps=2000), "2000 steps are more than the 1000 noise levels"),
    (dict(scheduler="euler"), "unknown scheduler"),
])
def test_every_edit_refuses_bad_sampling_options_before_the_unet_works(pipe, bad, message):
    """The options are checked once, in one place, and each edit reports them as an EditError."""
    calls = []
    # images denoised per UNet call (a continued slice's candidates are denoised together)
    hook = pipe.unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    a, b = clip("jazz", 0, 1.0), clip("rock", 1, 1.0)
    try:
        for run in (lambda: edits.continue_audio(pipe, a, 1.0, progress=False, **bad),
                    lambda: edits.fill_gap(pipe, a, b, 1.0, progress=False, **bad),
                    lambda: edits.make_loop(pipe, 3.0, progress=False, **bad),
                    lambda: edits.vary(pipe, a, 0.5, progress=False, **bad)):
            with pytest.raises(edits.EditError, match=message):
                run()
        if "scheduler" not in bad and "batch_size" not in bad:  # interpolation is always DDIM, one item per alpha
            with pytest.raises(edits.EditError, match=message):
                edits.interpolate(pipe, a, b, (0.5,), progress=False, **bad)
        with pytest.raises(edits.EditError, match="strength must be in"):
            edits.vary(pipe, a, 0.0, progress=False)
    finally:
        hook.remove()
    assert calls == []


def test_generate_rejects_edits_that_mean_nothing(tmp_path):
    wav = write_wav(tmp_path / "a.wav", clip("jazz", 1, 1.0), 16000)
    cases = [
        (dict(init_audio=wav, loop=True), "can't be combined"),
        (dict(strength=0.5), "variation of --init-audio"),
        (dict(init_audio=wav, strength=1.5), "strength must be"),
        (dict(init_audio=tmp_path / "missing.wav"), "not found"),
        (dict(interpolate=(wav, wav), scheduler="dpm"), "ddim"),
        (dict(alphas=(0.5,)), "--interpolate"),
        (dict(interpolate=(wav, wav), alphas=(2.0,)), "between 0 and 1"),
    ]
    for kwargs, message in cases:
        with pytest.raises(GenerationError, match=message):
            generate("bundled", output_dir=tmp_path / "out", progress=False, log=None, **kwargs)
    assert not (tmp_path / "out").exists()


# ---- each flag as a user runs it ---------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    # different rates and formats on purpose: the script resamples to the model's 16 kHz
    a = write_wav(folder / "a.wav", render("jazz", 1, 1.5, 22050), 22050)
    b = folder / "b.flac"
    sf.write(b, render("rock", 2, 1.2, 44100), 44100)
    return a, b


FLAG_CASES = {
    "continue": (["--init-audio", "{a}", "--seconds", "1.25"], 1.5 + 1.25),
    "vary": (["--init-audio", "{a}", "--strength", "0.4"], 1.5),
    "invert": (["--init-audio", "{a}", "--strength", "0.4", "--invert"], 1.5),
    "interpolate": (["--interpolate", "{a}", "{b}", "--alpha", "0", "0.5"], 1.2),
    "loop": (["--loop", "--seconds", "5"], 5.0),  # at least a slice (4.03 s) and a bit
    "fill-gap": (["--fill-gap", "{a}", "{b}", "--seconds", "0.75"], 1.5 + 0.75 + 1.2),
}


@pytest.mark.parametrize("case", list(FLAG_CASES))
def test_each_edit_flag_from_the_command_line(case, inputs, tmp_path):
    a, b = inputs
    flags, seconds = FLAG_CASES[case]
    flags = [f.format(a=a, b=b) for f in flags]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))  # this checkout's library
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "bundled", "--steps", "3", "--no-progress", "--output-dir", str(out),
         *flags], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    wavs = sorted(out.glob("*.wav"))
    assert len(wavs) == (2 if case == "interpolate" else 1)
    for wav in wavs:
        info = sf.info(wav)
        assert info.samplerate == 16000 and info.frames == int(round(seconds * 16000))
        record = json.loads(wav.with_suffix(".json").read_text())
        assert record["edit"] == ("vary" if case == "invert" else case)
        assert wav.with_suffix(".png").is_file()
    if case == "invert":
        assert record["invert"] is True and record["strength"] == 0.4
    if case == "interpolate":
        assert [json.loads(w.with_suffix(".json").read_text())["alpha"] for w in wavs] == [0.0, 0.5]


def test_an_edit_mistake_is_one_line_from_the_command_line(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))  # this checkout's library
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "bundled", "--init-audio", "nope.wav", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: audio file not found: nope.wav"


# ---- one progress count for every edit -------------------------------------------------------
@pytest.mark.parametrize("kind", ["continue", "fill_gap", "loop", "vary", "vary_inverted", "interpolate"])
def test_each_edit_counts_its_unet_calls_against_a_total_known_up_front(pipe, kind):
    """The total (slices x steps, inversions included) is set before the first UNet call (raised
    only for a loop's first slice drawn again) and the count ends exactly on it."""
    from audiodiff.sample import JobProgress

    calls = []
    # images denoised per UNet call (a continued slice's candidates are denoised together)
    hook = pipe.unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    totals_before_first_call = []
    progress = JobProgress(on_update=lambda p: totals_before_first_call.append(p.total_steps) if not calls else None)
    a, b = clip("jazz", 0, 2.0), clip("rock", 1, 2.0)
    common = dict(num_inference_steps=3, progress=progress)
    try:
        if kind == "continue":
            edits.continue_audio(pipe, a, 3.0, **common)
        elif kind == "fill_gap":
            edits.fill_gap(pipe, a, b, 2.0, **common)
        elif kind == "loop":
            redraws = edits.make_loop(pipe, 3.0, **common).first_slice_redraws
        elif kind.startswith("vary"):
            edits.vary(pipe, clip("jazz", 0, 6.0), 0.7, invert_audio=kind == "vary_inverted", scheduler="ddim", **common)
        else:
            edits.interpolate(pipe, a, b, (0.5,), **common)
    finally:
        hook.remove()
    assert progress.slices >= 1
    # a loop's first slice drawn again for want of a clear pulse (sampling.longclip.redraw_unclear)
    # raises the total when that is decided, by one first slice (3 calls) a round
    rounds = max(redraws) if kind == "loop" else 0
    assert progress.done_steps == sum(calls) == progress.total_steps == totals_before_first_call[-1] + 3 * rounds
