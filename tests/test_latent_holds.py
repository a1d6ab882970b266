"""The level and tempo holds on latent pipelines (issue 27): a Mel-image guide applied to the decoded
clean prediction and its change carried back to the new latent columns (sampling/latent_holds.py)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from audiodiff.pipeline import load_pipeline
from audiodiff.sampling.latent_holds import LatentCodec
from test_holds import SinkingUNet, _slice_level_errors  # test_holds' helpers (tests/ is on sys.path)


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline("tiny-latent")


def _brighter(images, step):
    """A Mel-image guide: every pixel 0.3 grey up (about 12 dB)."""
    return images + 0.3


def test_the_wrapped_guide_leaves_known_latent_columns_untouched(pipe):
    clean = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for carry in ("gradient", "delta", "direct"):
        out = LatentCodec(pipe, carry=carry).guide(_brighter, start=3)(clean, 0)
        assert out.shape == clean.shape
        assert torch.equal(out[..., :3], clean[..., :3])  # the known columns: as the model predicted them
        assert (out[..., 3:] - clean[..., 3:]).abs().mean() > 1e-3  # the new ones moved
    # every 2nd step: the others are left to the model (None: unchanged)
    assert LatentCodec(pipe, every=2).guide(_brighter, start=0)(clean, 1) is None
    # a guide that changes nothing carries nothing back ("gradient", "delta"); "direct" carries the VAE's round trip
    unchanged = lambda images, step: images
    for carry in ("gradient", "delta"):
        assert torch.equal(LatentCodec(pipe, carry=carry).guide(unchanged, start=0)(clean, 0), clean)
    assert not torch.allclose(LatentCodec(pipe, carry="direct").guide(unchanged, start=0)(clean, 0), clean)
    with pytest.raises(ValueError, match="carry must be one of gradient, delta, direct"):
        LatentCodec(pipe, carry="both")


def test_the_gradient_carry_moves_the_decoded_image_toward_the_guided_one(pipe):
    """The Mel guide sees the decoded prediction (Mel columns: 8 per latent column, the VAE's
    factor); the default carry's step brings the decoded latents nearer what it asked for."""
    seen = []

    def louder(images, step):
        seen.append(images.shape)
        return images + 0.2

    clean = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    codec = LatentCodec(pipe)
    assert codec.carry == "gradient"
    out = codec.guide(louder, start=0)(clean, 0)
    assert seen == [(1, 1, 64, 64)] and pipe.factor == 8
    guided = (pipe.decode(clean) + 0.2).clamp(-1, 1)
    assert (pipe.decode(out) - guided).abs().mean() < 0.98 * (pipe.decode(clean) - guided).abs().mean()


# ---- a stand-in VAE whose latents are the Mel image's 8x8 block means, and a sinking UNet --------
class BlockVAE(torch.nn.Module):
    """An exact codec for block-constant images: encode = the mean of each 8x8 block, decode = each
    latent repeated over its block. What the holds ask of a Mel image is exactly representable."""

    config = {"block_out_channels": [1, 1, 1, 1], "scaling_factor": 1.0, "latent_channels": 1}
    dtype = torch.float32

    def encode(self, images):
        mean = torch.nn.functional.avg_pool2d(images, 8)
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=mean))

    def decode(self, z):
        return SimpleNamespace(sample=z.repeat_interleave(8, dim=-2).repeat_interleave(8, dim=-1))


class SinkingLatentUNet(SinkingUNet):
    """test_holds' SinkingUNet on latents: the clean prediction is the mean of the first `k`
    (known) latent columns, and 0.15 grey (6 dB) less after them: unheld, a clip sinks."""

    def __init__(self, unet, scheduler, k):
        super().__init__(unet, scheduler, k)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # where the pipeline reads its device from


def test_the_level_hold_keeps_a_latent_clip_at_its_level(pipe):
    from audiodiff.latent import LatentAudioDiffusion
    from audiodiff.sampling.latent import generate_long_latent

    k = 3  # latent columns of the default overlap on tiny-latent (0.41 s)
    sinking = LatentAudioDiffusion(unet=SinkingLatentUNet(pipe.unet, pipe.scheduler, k), scheduler=pipe.scheduler,
                                   mel=pipe.mel, source="sinking", vqvae=BlockVAE())
    # seed 3: the first slice comes out at +0.9 grey, so there is room to sink (others start at -0.9, the floor)
    common = dict(num_inference_steps=10, seed=3, progress=False, target_lufs=None, tempo_hold=0.0, latent_holds=True)
    free_clip = generate_long_latent(sinking, 3.0, level_hold=0.0, **common)
    held_clip = generate_long_latent(sinking, 3.0, **common)  # the default level hold
    free, held = (_slice_level_errors(c, pipe.mel, k * 8) for c in (free_clip, held_clip))
    assert len(free) == len(held) >= 3
    # unheld, each slice is quieter than all before it (-9 to -25 dB); held, a few dB either way
    assert np.mean(free) < -10.0 and np.mean(np.abs(held)) < 0.3 * np.mean(np.abs(free))
    assert torch.equal(held_clip.slices[0], free_clip.slices[0])  # slice 0 has no clip to hold to


def test_pixel_setups_read_and_steer_as_they_are():
    """Without a codec (Mel-image pipelines) the holds read the samples and take the guide unchanged:
    the code path every pixel clip takes, byte for byte the one before latent holds."""
    from audiodiff.sampling.options import SamplingOptions, SamplingSetup

    pixel = load_pipeline("tiny")
    setup = SamplingSetup.prepare(pixel, SamplingOptions())
    image = torch.rand(1, 1, pixel.mel.y_res, 5)
    assert setup.readable(image) is image and setup.hold_factor == 1 and setup.hold_mel is pixel.mel
    assert setup.steering(_brighter, 3) is _brighter and setup.steering(None, 3) is None


def test_bpm_and_the_holds_on_a_latent_model_from_the_script(latent_folder, tmp_path):
    """--bpm works on a latent model end to end (it turns the holds on), --latent-holds turns them
    on, and the clip's JSON says which holds ran."""
    import soundfile as sf
    from test_latent import run_script

    _, folder = latent_folder()
    args = ["--model", str(folder), "--seconds", "3", "--steps", "2", "--no-progress", "--output-dir", str(tmp_path / "out")]
    done = run_script("generate.py", [*args, "--bpm", "100", "--name", "b"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sf.info(tmp_path / "out" / "b.wav").frames == 48000
    made = json.loads((tmp_path / "out" / "b.json").read_text())
    assert made["latent"] is True and made["holds"] == ["level", "tempo"] and "decoded" in made["holds_on"]
    assert made["bpm"] == 100.0 and made["level_hold"] == 2.0 and made["tempo_hold"] == 0.25 and "note" not in made
    done = run_script("generate.py", [*args, "--latent-holds", "--no-tempo-hold", "--name", "level"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    made = json.loads((tmp_path / "out" / "level.json").read_text())
    assert made["holds"] == ["level"] and made["tempo_hold"] == 0 and "bpm" not in made
    # a bpm for a continuation of given audio is refused in one line, as on Mel-image models
    sf.write(tmp_path / "given.wav", np.zeros(16000, dtype=np.float32), 16000)
    done = run_script("generate.py", [*args, "--init-audio", str(tmp_path / "given.wav"), "--bpm", "100",
                                      "--name", "c"], cwd=tmp_path)
    assert done.returncode == 2 and "keeps that audio's tempo" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_latent_edits_run_the_holds_when_asked():
    """A continuation holds A's beat (read off the given audio, recorded as bpm) and a loop its first
    slice's, through the VAE; without latent_holds the same edits run without them."""
    from audiodiff.sampling.latent_edits import continue_latent, make_loop_latent

    pipe = load_pipeline("tiny-latent")
    t = torch.arange(24000) / 16000
    given = 0.5 * torch.sin(2 * torch.pi * 330 * t) * (torch.sin(2 * torch.pi * 2 * t) > 0)  # 120 bpm pulses
    held = continue_latent(pipe, given, 2.0, num_inference_steps=2, progress=False, latent_holds=True)
    free = continue_latent(pipe, given, 2.0, num_inference_steps=2, progress=False)
    assert held.bpm is not None and free.bpm is None and held.audio.shape == free.audio.shape == (1, 56000)
    assert not torch.equal(held.audio, free.audio)
    loop = make_loop_latent(pipe, 3.0, num_inference_steps=2, progress=False, bpm=100.0)
    assert loop.bpm == [100.0] and loop.audio.shape == (1, 48000)


def test_the_latent_holds_benchmark_smoke_prints_a_row_per_setting(capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "latent_holds.py"
    spec = importlib.util.spec_from_file_location("latent_holds_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    benchmark.main(["--smoke", "--rows", "holds off", "holds, gradient, every step"])
    lines = capsys.readouterr().out.splitlines()
    off, held = (next(line for line in lines if line.startswith(name)) for name in ("holds off", "holds, gradient"))
    unet_off, vae_off = (float(v) for v in off.split()[-3:-1])
    unet_held, vae_held = (float(v) for v in held.split()[-3:-1])
    assert unet_held >= unet_off and vae_held > 10 * vae_off  # the holds decode every step; unheld, the clip once
