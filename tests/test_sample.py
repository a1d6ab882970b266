"""The denoising loop, masked sampling and long clips, on a tiny random-weight UNet (CPU, seconds)."""

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel

from audiodiff.mel import MelConfig, images_to_audio
from audiodiff.metrics import loudness
from audiodiff.sampling import longclip, loop
from audiodiff.sampling.beat import MAX_FIRST_SLICE_REDRAWS, pulse_clarity
from audiodiff.sampling.options import FIRST_SLICE_RESTEER
from audiodiff.sample import (
    DEFAULT_PEAK_CEILING,
    Cancelled,
    JobProgress,
    LongClip,
    SamplingOptions,
    sampling_options,
    SamplingSetup,
    check_invertible,
    check_strength,
    default_overlap_seconds,
    extend_image,
    generate_long,
    make_scheduler,
    overlap_columns,
    plan_extend,
    sample,
)

# 32 mel bands x 64 frames at 8 kHz, hop 64: one slice is 0.51 s, so a few seconds is many slices.
MEL = MelConfig(x_res=64, y_res=32, sample_rate=8000, n_fft=256, hop_length=64, n_iter=4)
STEPS = 4


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=(MEL.y_res, MEL.x_res), in_channels=1, out_channels=1, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=4, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    ).eval()


@pytest.fixture(scope="module")
def pipe():
    return SimpleNamespace(unet=tiny_unet(), scheduler=DDPMScheduler(num_train_timesteps=1000), mel=MEL)


def long_clip(pipe, seconds, **kwargs) -> LongClip:
    kwargs.setdefault("overlap_seconds", 0.2)
    kwargs.setdefault("num_inference_steps", STEPS)
    return generate_long(pipe, seconds, progress=False, **kwargs)


# ---- long clips --------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [0.05, 0.3, MEL.slice_seconds, 1.0, 1.37, 2.5])
def test_exact_length_finite_and_unclipped(pipe, seconds):
    clip = long_clip(pipe, seconds)
    assert clip.audio.shape == (1, round(seconds * MEL.sample_rate))
    assert torch.isfinite(clip.audio).all()
    assert clip.audio.abs().max() <= DEFAULT_PEAK_CEILING + 1e-6
    assert clip.audio.abs().max() > 0.01  # not silence
    # the image is exactly as wide as the audio needs: (W - 1) * hop >= T > (W - 2) * hop
    width = clip.image.shape[-1]
    assert (width - 1) * MEL.hop_length >= clip.audio.shape[-1] > (width - 2) * MEL.hop_length
    assert clip.sample_rate == MEL.sample_rate


def test_overlap_columns_equal_previous_slice_before_decoding(pipe):
    clip = long_clip(pipe, 2.0, overlap_seconds=0.25, quantize=0.0)  # the image as stitched: beats as sampled
    k = overlap_columns(0.25, MEL, MEL.x_res)
    assert k == 31
    assert len(clip.slices) >= 4 and len(clip.slices) == len(clip.slice_columns)
    blended = k // 2  # a new clip's joins are blended over 0.25 s (31 columns here), at most half the overlap
    for previous, current in zip(clip.slices, clip.slices[1:]):
        assert torch.equal(current[..., : k - blended], previous[..., -k:-blended])
        assert not torch.equal(current[..., k - blended : k], previous[..., -blended:])  # regenerated
        assert not torch.equal(current[..., k:], previous[..., : MEL.x_res - k])  # the rest is new
    # the stitched image is made of the slices, each at its place, but for the tail that the next
    # slice regenerated
    for i, ((start, end), piece) in enumerate(zip(clip.slice_columns, clip.slices)):
        cut = end - start - (blended if i + 1 < len(clip.slices) else 0)
        assert torch.equal(clip.image[..., start : start + cut], piece[..., :cut])
    # seams sit where the generated columns of each slice begin
    assert clip.seam_seconds == pytest.approx([(s + k) * MEL.hop_length / MEL.sample_rate for s, _ in clip.slice_columns[1:]])


def test_phase_is_reconstructed_once_for_the_whole_clip(pipe):
    """Without normalisation and fade, the audio is the decoder's output for the whole stitched image."""
    clip = long_clip(pipe, 1.5, target_lufs=None, fade_out_seconds=0.0)
    whole = images_to_audio(clip.image, MEL)[..., : clip.audio.shape[-1]]
    # the scale is read after the fade-in (the first 400 samples): the decode's peak may lie in it
    scale = clip.audio[..., 400:].abs().max() / whole[..., 400:].abs().max()
    torch.testing.assert_close(clip.audio[..., 400:], whole[..., 400:] * scale, atol=1e-4, rtol=1e-3)


def test_loudness_normalised_once(pipe):
    clip = long_clip(pipe, 2.0)
    level = loudness(clip.audio[0], MEL.sample_rate)
    peak = float(clip.audio.abs().max())
    # either on target, or held back by the peak ceiling
    assert abs(level - (-16.0)) < 0.5 or peak == pytest.approx(DEFAULT_PEAK_CEILING, abs=1e-3)
    # faded out: the last samples are near zero
    assert clip.audio[0, -5:].abs().max() < 0.01


def test_same_seed_same_audio_other_seed_other_audio(pipe):
    a = long_clip(pipe, 1.2, seed=3)
    b = long_clip(pipe, 1.2, seed=3)
    c = long_clip(pipe, 1.2, seed=4)
    assert torch.equal(a.audio, b.audio) and torch.equal(a.image, b.image)
    assert not torch.equal(a.image, c.image)


def test_batch_of_clips(pipe):
    clip = long_clip(pipe, 1.2, batch_size=3, seed=1)
    assert clip.audio.shape == (3, round(1.2 * MEL.sample_rate))
    assert clip.image.shape[0] == 3
    assert not torch.equal(clip.image[0], clip.image[1])
    for previous, current in zip(clip.slices, clip.slices[1:]):
        k = overlap_columns(0.2, MEL, MEL.x_res)
        blended = k // 2  # the joins' blended tail is regenerated
        assert torch.equal(current[..., : k - blended], previous[..., -k:-blended])


class ConsistentDDIM(DDIMScheduler):
    """diffusers' DDIM stepping along the noise re-derived from the clipped clean image."""

    def step(self, *args, **kwargs):
        return super().step(*args, **{**kwargs, "use_clipped_model_output": True})


@pytest.mark.parametrize("name", ["ddim", "ddpm", "dpm", None])
def test_scheduler_swap(pipe, name):
    clip = long_clip(pipe, 1.0, scheduler=name, seed=0)
    assert clip.audio.shape == (1, 8000) and torch.isfinite(clip.audio).all()
    # Our loop against diffusers' own AudioDiffusionPipeline, two steps, same UNet, same seed and
    # scheduler: the same image, pixel for pixel (the pipeline returns 8-bit images, so ours is
    # rounded the way it rounds). Its noise comes from the same CPU generator, which also feeds
    # the scheduler's steps (DDPM's variance noise), as ours does.
    from diffusers.pipelines.deprecated import AudioDiffusionPipeline
    from diffusers.pipelines.deprecated.audio_diffusion import Mel

    ours = sample(pipe.unet, make_scheduler(name, pipe.scheduler), num_inference_steps=2,
                  generator=torch.Generator().manual_seed(0), progress=False)  # (1, 1, H, W)
    mel = Mel(x_res=MEL.x_res, y_res=MEL.y_res, sample_rate=MEL.sample_rate, n_fft=MEL.n_fft,
              hop_length=MEL.hop_length, top_db=MEL.top_db, n_iter=MEL.n_iter)
    scheduler = make_scheduler(name, pipe.scheduler)
    if isinstance(scheduler, DDIMScheduler):  # ours steps consistently under clipping (docs/tonality.md)
        scheduler = ConsistentDDIM.from_config(scheduler.config)
    reference = AudioDiffusionPipeline(vqvae=None, unet=pipe.unet, mel=mel, scheduler=scheduler)
    reference.set_progress_bar_config(disable=True)
    images, _ = reference(batch_size=1, steps=2, generator=torch.Generator().manual_seed(0), return_dict=False)
    theirs = torch.from_numpy(np.array(images[0]))  # (H, W) uint8
    ours_grey = ((ours[0, 0] / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    assert torch.equal(ours_grey, theirs)
    other_seed = sample(pipe.unet, make_scheduler(name, pipe.scheduler), num_inference_steps=2, seed=1, progress=False)
    assert not torch.equal(((other_seed[0, 0] / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8), theirs)


def test_make_scheduler_keeps_the_noise_schedule():
    base = DDPMScheduler(num_train_timesteps=1000, beta_start=2e-4, beta_end=0.03)
    for name, cls in (("ddim", DDIMScheduler), ("ddpm", DDPMScheduler), ("dpm", DPMSolverMultistepScheduler)):
        scheduler = make_scheduler(name, base)
        assert isinstance(scheduler, cls)
        torch.testing.assert_close(scheduler.alphas_cumprod, base.alphas_cumprod)
    assert make_scheduler("dpm", base).config.algorithm_type == "dpmsolver++"
    own = make_scheduler(None, base)
    assert type(own) is DDPMScheduler and own is not base
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("euler", base)


def test_bad_arguments_raise_clear_errors(pipe):
    with pytest.raises(ValueError, match="shorter than one slice"):
        long_clip(pipe, 2.0, overlap_seconds=MEL.slice_seconds)
    with pytest.raises(ValueError, match="positive"):
        long_clip(pipe, 0.0)
    with pytest.raises(ValueError, match="at least 1"):
        sample(pipe.unet, DDIMScheduler(), num_inference_steps=0, progress=False)
    with pytest.raises(ValueError, match="ddim or ddpm"):
        sample(pipe.unet, DPMSolverMultistepScheduler(), num_inference_steps=2, repaint_jumps=1, progress=False)


# ---- the masked loop ---------------------------------------------------------------------------
def _known(batch, width, seed=7):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, MEL.y_res, width, generator=generator) * 2 - 1


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler])
def test_arbitrary_known_columns_are_kept_exactly(pipe, scheduler_cls):
    width = 70  # not a multiple of the UNet's downsampling factor: padded, then cropped
    known = _known(2, width)
    mask = torch.zeros(2, width, dtype=torch.bool)  # per item, scattered, not a prefix
    mask[0, [0, 5, 6, 7, 40, 69]] = True
    mask[1, 20:35] = True
    out = sample(pipe.unet, scheduler_cls(), batch_size=2, width=width, num_inference_steps=STEPS, seed=0,
                 known=known, mask=mask, progress=False)
    assert out.shape == (2, 1, MEL.y_res, width)
    full = mask[:, None, None, :].expand_as(out)
    assert torch.equal(out[full], known[full])
    assert not torch.allclose(out[~full], known[~full], atol=0.1)


def test_pixel_mask_and_shared_known_image(pipe):
    known = _known(1, 64)
    mask = torch.rand(1, 1, MEL.y_res, 64, generator=torch.Generator().manual_seed(1)) > 0.5
    out = sample(pipe.unet, DDIMScheduler(), batch_size=3, width=64, num_inference_steps=STEPS, seed=0,
                 known=known, mask=mask, progress=False)
    full = mask.expand_as(out)
    assert torch.equal(out[full], known.expand_as(out)[full])


class RecordingUNet(torch.nn.Module):
    """Wraps a UNet and keeps every input it is called with."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.inputs, self.timesteps = unet, [], []
        self.config, self.device, self.dtype = unet.config, unet.device, unet.dtype

    def forward(self, x, t):
        self.inputs.append(x.clone())
        self.timesteps.append(int(t))
        return self.unet(x, t)


def test_known_columns_enter_each_step_at_its_own_noise_level(pipe):
    """No one-step lag: the UNet sees the known columns noised to the timestep it is asked about."""
    scheduler = DDIMScheduler()
    unet = RecordingUNet(pipe.unet)
    known, k, seed = _known(1, 64), 20, 5
    mask = torch.arange(64) < k
    sample(unet, scheduler, width=64, num_inference_steps=5, seed=seed, known=known, mask=mask, progress=False)
    noise = torch.randn((1, 1, MEL.y_res, 64), generator=torch.Generator().manual_seed(seed))
    assert len(unet.inputs) == 5
    for x, t in zip(unet.inputs, unet.timesteps):
        alpha_bar = float(scheduler.alphas_cumprod[t])
        expected = math.sqrt(alpha_bar) * known + math.sqrt(1 - alpha_bar) * noise
        torch.testing.assert_close(x[..., :k], expected[..., :k], atol=1e-5, rtol=0)


def test_repaint_resampling(pipe):
    unet = RecordingUNet(pipe.unet)
    known = _known(1, 64)
    mask = torch.arange(64) >= 40
    out = sample(unet, DDIMScheduler(), width=64, num_inference_steps=3, seed=0, known=known, mask=mask,
                 repaint_jumps=2, progress=False)
    assert len(unet.inputs) == 3 * 3 - 2  # (1 + jumps) calls per step, none extra on the last
    assert torch.equal(out[..., 40:], known[..., 40:])
    plain = sample(pipe.unet, DDIMScheduler(), width=64, num_inference_steps=3, seed=0, known=known, mask=mask, progress=False)
    assert not torch.equal(out, plain)


def test_strength_keeps_more_of_the_known_image_when_low(pipe):
    known = _known(1, 64)
    distances = []
    for strength in (0.25, 1.0):
        out = sample(pipe.unet, DDIMScheduler(), width=64, num_inference_steps=8, seed=0, known=known,
                     strength=strength, progress=False)
        distances.append(float((out - known).abs().mean()))
    assert distances[0] < distances[1]


def test_wide_unmasked_sampling_any_width(pipe):
    out = sample(pipe.unet, DDIMScheduler(), width=150, num_inference_steps=2, seed=0, progress=False)
    assert out.shape == (1, 1, MEL.y_res, 150) and out.abs().max() <= 1


def test_gap_fill_hook_keeps_both_ends(pipe):
    """extend_image with a known end (issue 7's gap fill and loop): starts with A, ends with B."""
    start, end = _known(1, 64, seed=1), _known(1, 10, seed=2)
    options = SamplingOptions(num_inference_steps=2, level_hold=0.0, tempo_hold=0.0)
    setup = dataclasses.replace(SamplingSetup.prepare(pipe, options), scheduler=DDIMScheduler(), overlap_columns=12)
    for total in (90, 200):
        plan = plan_extend(setup, start.shape[-1], total, tail=end.shape[-1])
        image, starts, slices = extend_image(setup, start, plan, end_known=end)
        assert image.shape[-1] == total
        assert torch.equal(image[..., :64], start) and torch.equal(image[..., -10:], end)
        assert torch.equal(slices[-1][..., -10:], end)  # B was known while the last slice was sampled


# ---- one progress count for the whole job, and stopping --------------------------------------
class CountingUNet(torch.nn.Module):
    """The tiny UNet, counting its calls and the images it was called on (rows)."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.calls, self.rows = unet, 0, 0
        self.config, self.device, self.dtype = unet.config, unet.device, unet.dtype

    def forward(self, sample, *args, **kwargs):
        self.calls += 1
        self.rows += sample.shape[0]
        return self.unet(sample, *args, **kwargs)


@pytest.mark.parametrize("repaint_jumps,candidates,draws", [(0, 1, 1), (1, 1, 1), (0, 1, 3), (1, 1, 3), (0, 3, 1),
                                                          (1, 3, 1)])
def test_progress_counts_every_unet_call_against_slices_times_steps(pipe, repaint_jumps, candidates, draws):
    from audiodiff.sampling.tonal import draw_step

    counting = CountingUNet(pipe.unet)
    seen = []
    progress = JobProgress(on_update=lambda p: seen.append((p.done_steps, p.total_steps, p.description())))
    clip = generate_long(SimpleNamespace(unet=counting, scheduler=pipe.scheduler, mel=MEL), 2.5, overlap_seconds=0.2,
                         num_inference_steps=STEPS, progress=progress, repaint_jumps=repaint_jumps,
                         candidates=candidates, draws=draws)
    slices = len(clip.slice_starts_seconds)
    assert slices == 8  # 314 columns: a 64-column slice, then 7 that add 64 - 25 overlap columns each
    per_slice = STEPS + repaint_jumps * (STEPS - 1)
    # a slice's candidates (the first slice's too: sampling.tonal) are denoised together: a call on
    # all of them counts as `candidates` calls, as many images as the UNet denoised; without
    # candidates, each slice's draws (--draws) are denoised together until draw_step
    done = draw_step(STEPS) + 1
    drawn = (draws - 1) * (done + repaint_jumps * min(done, STEPS - 1))
    shared = (candidates - 1) * per_slice if candidates > 1 else drawn
    # the first slice's last half is run again on the beat read from it (sampling.beat), no RePaint
    resteer = STEPS - round(STEPS * (1 - FIRST_SLICE_RESTEER))
    # the plan's total is known before the first step; it is revised only upward, by one first
    # slice's calls each time a first slice without a clear pulse is drawn again, and says so then
    rounds = max(clip.first_slice_redraws)  # each round draws the doubtful first slices again, together
    planned = slices * per_slice + slices * shared + resteer
    totals = [total for _, total, _ in seen]
    assert totals[0] == planned and totals == sorted(totals)
    assert sorted(set(totals)) == [planned + r * (per_slice + shared) for r in range(rounds + 1)]
    revised = [text for (_, before, _), (_, after, text) in zip(seen, seen[1:]) if after != before]
    assert len(revised) == rounds and all(t.startswith("drawing the first slice again (no clear pulse in 1 of 1)")
                                          for t in revised)
    assert counting.calls == (slices + rounds) * per_slice + resteer
    assert progress.done_steps == counting.rows == totals[-1]
    assert [done for done, _, _ in seen if done] == sorted(done for done, _, _ in seen if done)  # never goes back
    described = [text for _, _, text in seen]
    assert f"sampling slice 1 of {slices}" in described and f"sampling slice {slices} of {slices}" in described
    assert described[-1] == "decoding the audio"


def test_a_first_slice_without_a_clear_pulse_is_drawn_again_and_the_clearest_kept(pipe, monkeypatch):
    setup = lambda: SamplingSetup.prepare(pipe, sampling_options(None, dict(seed=5, batch_size=3, num_inference_steps=STEPS,
                                                                            overlap_seconds=0.2)))
    plain = setup()
    draws = [longclip._draw_first(plain, 3, None, None) for _ in range(1 + MAX_FIRST_SLICE_REDRAWS)]  # the same noise in turn
    clarity = torch.stack([pulse_clarity(d, MEL) for d in draws])  # (draws, B)
    monkeypatch.setattr(longclip, "MIN_FIRST_SLICE_CLARITY", 1.01)  # no pulse is clear enough: every redraw is made
    first = setup()
    image, redraws = longclip.redraw_unclear(first, longclip._draw_first(first, 3, None, None), None)
    assert redraws == [MAX_FIRST_SLICE_REDRAWS] * 3
    best = clarity.argmax(dim=0)  # each item keeps its clearest draw, deterministically for the seed
    assert torch.equal(image, torch.stack([draws[int(b)][i] for i, b in enumerate(best)]))
    # a clip records its redraws; with --bpm nothing is read or redrawn (the slice is steered onto the tempo)
    assert long_clip(pipe, 1.0, batch_size=2).first_slice_redraws == [MAX_FIRST_SLICE_REDRAWS] * 2
    assert long_clip(pipe, 1.0, bpm=120).first_slice_redraws is None
    monkeypatch.setattr(longclip, "MIN_FIRST_SLICE_CLARITY", 0.0)  # every pulse is clear: nothing drawn again
    second = setup()
    assert longclip.redraw_unclear(second, draws[0].clone(), None)[1] == [0, 0, 0]
    assert torch.equal(long_clip(pipe, 1.0, seed=5).image, long_clip(pipe, 1.0, seed=5).image)


def test_should_stop_ends_the_job_between_two_unet_calls(pipe):
    from audiodiff.sampling.options import DEFAULT_DRAWS
    from audiodiff.sampling.tonal import draw_step

    counting = CountingUNet(pipe.unet)
    progress = JobProgress(should_stop=lambda: counting.calls >= 5)
    with pytest.raises(Cancelled):
        generate_long(SimpleNamespace(unet=counting, scheduler=pipe.scheduler, mel=MEL), 30.0, overlap_seconds=0.2,
                      num_inference_steps=STEPS, progress=progress)
    assert counting.calls == 5  # not one UNet call after the stop
    resteer = STEPS - round(STEPS * (1 - FIRST_SLICE_RESTEER))  # the first slice run again on its beat
    drawn = (DEFAULT_DRAWS - 1) * (draw_step(STEPS) + 1)  # each slice's other draws until they are chosen
    # the whole 30 s job (3751 columns: 1 + 95 slices) counted up front, and the first slice drawn
    # again (no clear pulse) counted when that was decided, before its first call
    redrawing = progress.stage.startswith("drawing the first slice again")
    assert progress.total_steps == 96 * (STEPS + drawn) + resteer + (STEPS + drawn) * redrawing


def test_draws_go_on_as_the_chosen_row_would_have_alone(pipe):
    """A slice's draws are its rows until `at`; the chosen one then goes on as it would have (DDIM,
    deterministic after its first noise)."""
    unet, scheduler = pipe.unet, DDIMScheduler.from_config(pipe.scheduler.config)
    seen = []

    def choose(predicted):
        seen.append(tuple(predicted.shape))
        return torch.tensor([2, 0])

    progress = JobProgress()
    progress.begin(1000, slices=1)
    drawn = loop.sample(unet, scheduler, batch_size=6, width=24, num_inference_steps=6, seed=5, progress=progress,
                        draws=loop.Draws(count=3, at=1, choose=choose))
    alone = loop.sample(unet, scheduler, batch_size=6, width=24, num_inference_steps=6, seed=5, progress=False)
    assert seen == [(2, 3, 1, MEL.y_res, 24)]  # chosen once, from each item's three predictions
    assert drawn.shape == (2, 1, MEL.y_res, 24)
    assert torch.allclose(drawn, alone[[2, 3]], atol=1e-5)  # item 0's draw 2 and item 1's draw 0
    assert progress.done_steps == 6 + loop.Draws(3, 1, choose).extra_calls(6) == 6 + 2 * 2
    with pytest.raises(ValueError, match="draws need whole items"):
        loop.sample(unet, scheduler, batch_size=4, width=24, num_inference_steps=6, seed=5, progress=False,
                    draws=loop.Draws(count=3, at=1, choose=choose))


# ---- the sampling options: checked once, resolved against the pipeline once ------------------
BAD_OPTIONS = [
    (dict(scheduler="euler"), "unknown scheduler 'euler'"),
    (dict(num_inference_steps=0), "steps must be at least 1, got 0"),
    (dict(batch_size=0), "batch size must be at least 1, got 0"),
    (dict(repaint_jumps=-1), "repaint jumps must be from 0 to 20, got -1"),
    (dict(repaint_jumps=21), "repaint jumps must be from 0 to 20, got 21"),
    (dict(overlap_seconds=-0.5), r"overlap must be >= 0 seconds, got -0.5"),
    (dict(overlap_seconds=float("nan")), "overlap must be >= 0 seconds, got nan"),
    (dict(candidates=0), "candidates must be a whole number from 1 to 16, got 0"),
    (dict(candidates=17), "candidates must be a whole number from 1 to 16, got 17"),
    (dict(draws=0), "draws must be a whole number from 1 to 16, got 0"),
    (dict(level_hold=-1), "level hold must be from 0 \\(off\\) to 4, got -1"),
    (dict(level_hold=float("nan")), "level hold must be from 0 \\(off\\) to 4, got nan"),
]


@pytest.mark.parametrize("bad, message", BAD_OPTIONS)
def test_each_bad_sampling_option_is_refused_when_made_before_any_unet_call(pipe, bad, message):
    with pytest.raises(ValueError, match=message):
        SamplingOptions(**bad)
    counting = CountingUNet(pipe.unet)
    with pytest.raises(ValueError, match=message):  # the keyword entry point builds the same options
        generate_long(SimpleNamespace(unet=counting, scheduler=pipe.scheduler, mel=MEL), 1.0, progress=False, **bad)
    assert counting.calls == 0


def test_sampling_options_resolve_defaults_and_pipeline_limits_once(pipe):
    options = SamplingOptions()
    resolved = options.resolve(pipe)
    assert (resolved.scheduler, resolved.num_inference_steps) == ("ddim", 50)
    assert resolved.overlap_seconds == default_overlap_seconds(MEL) == pytest.approx(0.4 * MEL.slice_seconds, abs=1e-3)
    assert resolved.resolve(pipe) == resolved and options.num_inference_steps is None  # frozen; resolving is idempotent
    assert SamplingOptions(scheduler=None).resolve(pipe).num_inference_steps == 1000  # the pipeline's own: DDPM
    assert SamplingOptions(scheduler="DPM++").resolve(pipe) == SamplingOptions(scheduler="dpm", num_inference_steps=25,
                                                                               overlap_seconds=resolved.overlap_seconds)
    assert SamplingOptions(num_inference_steps=7, overlap_seconds=0.1).resolve(pipe).num_inference_steps == 7
    for bad, message in [(dict(overlap_seconds=MEL.slice_seconds), r"overlap \(0.51\d* s\) must be shorter than one slice"),
                         (dict(num_inference_steps=2000), "2000 steps are more than the 1000 noise levels")]:
        with pytest.raises(ValueError, match=message):
            SamplingOptions(**bad).resolve(pipe)
    wrong_height = SimpleNamespace(unet=pipe.unet, scheduler=pipe.scheduler, mel=MelConfig(x_res=64, y_res=16))
    with pytest.raises(ValueError, match="rows high but the Mel config has 16 mel bands"):
        SamplingOptions().resolve(wrong_height)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.seed = 3


def test_strength_and_inversion_checks():
    assert check_strength(1.0) == 1.0 and check_strength(0.01) == 0.01
    for bad in (0.0, 1.5, -1.0, None):
        with pytest.raises(ValueError, match=r"strength must be in \(0, 1\]"):
            check_strength(bad)
    with pytest.raises(KeyError, match="strength"):  # raised as the caller's own error type
        check_strength(2.0, KeyError)
    check_invertible("ddim")
    with pytest.raises(ValueError, match="need --scheduler ddim, not dpm"):
        check_invertible("dpm")


def test_options_and_keywords_are_the_same_request(pipe):
    options = SamplingOptions(seed=3, num_inference_steps=2, overlap_seconds=0.2, batch_size=2)
    by_options = generate_long(pipe, 0.8, options, progress=False)
    by_keywords = generate_long(pipe, 0.8, seed=3, num_inference_steps=2, overlap_seconds=0.2, batch_size=2, progress=False)
    over = generate_long(pipe, 0.8, options, seed=4, progress=False)  # a keyword laid over the options
    assert torch.equal(by_options.audio, by_keywords.audio) and by_options.audio.shape[0] == 2
    assert not torch.equal(over.audio, by_options.audio)
    with pytest.raises(TypeError, match="seeds"):
        generate_long(pipe, 0.8, seeds=3, progress=False)


def test_long_clip_from_columns_turns_columns_into_seconds_once():
    spc = MEL.hop_length / MEL.sample_rate
    image, audio = torch.zeros(1, 1, MEL.y_res, 100), torch.zeros(1, 6000)
    clip = LongClip.from_columns(image, audio, MEL, slice_columns=[(0, 64), (40, 100)], slices=[image, image],
                                 seam_columns=[52, 120], seams_before_seconds=0.75, seam_seconds=[0.7])
    assert clip.sample_rate == MEL.sample_rate and clip.seconds == 0.75
    assert clip.slice_starts_seconds == [0.0, 40 * spc] and clip.slice_columns == [(0, 64), (40, 100)]
    assert clip.seam_seconds == [52 * spc, 0.7]  # column 120 (0.96 s) lies past the clip's end


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_a_steered_prediction_is_what_the_scheduler_then_sees(kind):
    """A guide's clean image goes back into the model output the scheduler steps with, for each
    prediction type: the output's own clean prediction is exactly the steered image."""
    from audiodiff.sampling.schedulers import model_output_for, predicted_clean

    scheduler = DDIMScheduler(prediction_type=kind)
    generator = torch.Generator().manual_seed(0)
    x, clean = torch.randn(2, 1, 8, 8, generator=generator), torch.rand(2, 1, 8, 8, generator=generator) * 2 - 1
    for t in (999, 500, 20):
        assert torch.allclose(predicted_clean(scheduler, model_output_for(scheduler, clean, x, t), x, t), clean, atol=1e-4)


class GaussianDenoiser(torch.nn.Module):
    """The exact denoiser of pixels drawn from N(mean, 0.3^2), with means up to 1.5: beyond the
    data range, so the clean image it predicts must be clipped at most steps, as a real model's is."""

    def __init__(self, scheduler, mean, variance=0.09):
        super().__init__()
        self.scheduler, self.mean, self.variance = scheduler, mean, variance
        self.config = SimpleNamespace(sample_size=(mean.shape[-2], mean.shape[-1]), in_channels=1,
                                      down_block_types=("DownBlock2D",))
        self.device, self.dtype = torch.device("cpu"), torch.float32

    def forward(self, x, t):
        a = float(self.scheduler.alphas_cumprod[int(t)])
        clean = (math.sqrt(a) * self.variance * x + (1 - a) * self.mean) / (a * self.variance + 1 - a)
        return SimpleNamespace(sample=(x - math.sqrt(a) * clean) / math.sqrt(1 - a))


def test_ddim_with_clipping_gives_the_same_image_at_any_step_count():
    """The step defect of issue 23: diffusers' DDIM clipped x0 but stepped along the unclipped
    noise, so each step lost part of the clipped signal and the loss grew with the step count
    (on this denoiser the mean fell from 0.18 at 20 steps to 0.03 at 200)."""
    mean = torch.linspace(-1.0, 1.5, 16 * 16).view(1, 1, 16, 16)
    results = []
    for steps in (20, 200):
        scheduler = DDIMScheduler(clip_sample=True)
        results.append(sample(GaussianDenoiser(scheduler, mean), scheduler, num_inference_steps=steps, seed=0, progress=False))
    assert abs(float(results[0].mean() - results[1].mean())) < 0.02
    assert float(results[1].mean()) > 0.15
    assert float((results[0] - results[1]).abs().mean()) < 0.05


def test_a_model_that_outputs_nan_raises_instead_of_making_silence():
    from audiodiff.pipeline import GenerationError

    broken = tiny_unet()
    broken.forward = lambda x, t, **kwargs: SimpleNamespace(sample=torch.full_like(x, float("nan")))
    with pytest.raises(GenerationError, match="NaN or infinite values"):
        sample(broken, make_scheduler("ddim", DDPMScheduler(num_train_timesteps=1000)), width=MEL.x_res,
               num_inference_steps=2, progress=False)


def test_options_are_resolved_once_per_pipeline(pipe):
    resolved = SamplingOptions(seed=1).resolve(pipe)
    assert resolved.num_inference_steps == 50 and resolved.overlap_seconds is not None
    assert resolved.resolve(pipe) is resolved  # the face's resolution is the job's
    other = SimpleNamespace(unet=tiny_unet(1), scheduler=DDPMScheduler(num_train_timesteps=10), mel=MEL)
    with pytest.raises(ValueError, match="more than the 10 noise levels"):
        resolved.resolve(other)  # another pipeline is checked anew
    changed = sampling_options(resolved, {"num_inference_steps": 2000})
    assert changed.resolved_for is None
    with pytest.raises(ValueError, match="more than the 1000 noise levels"):
        changed.resolve(pipe)  # changed options are checked anew
