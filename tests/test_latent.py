"""Latent (VAE) and conditional pipelines: loading folders laid out like the hub's, refusing parts
that don't fit, saving what diffusers loads; generation, conditioning and inversion through the VAE."""

import dataclasses
import json
import pathlib
import time

import numpy as np
import pytest
import torch
from diffusers.pipelines.deprecated import AudioDiffusionPipeline

from audiodiff.latent import LatentAudioDiffusion
from audiodiff.pipeline import PipelineError, load_pipeline, save_pipeline


def assert_same_weights(a, b):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key].cpu(), state_b[key].cpu()), key


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# ---- loading ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["tiny-latent", "tiny-conditional-latent"])
@pytest.mark.parametrize("mel_entry", [("diffusers", "Mel"), ("audio_diffusion", "Mel"), ("audiodiffusion.mel", "Mel")])
def test_folders_laid_out_like_the_hubs_load(latent_folder, preset, mel_entry):
    pipe, folder = latent_folder(preset, mel_entry=mel_entry)
    assert (folder / "vqvae" / "diffusion_pytorch_model.bin").is_file()
    assert not list(folder.rglob("*.safetensors"))
    loaded = load_pipeline(folder)
    assert isinstance(loaded, LatentAudioDiffusion) and loaded.mel == pipe.mel
    assert type(loaded.unet).__name__ == type(pipe.unet).__name__
    assert_same_weights(pipe.unet, loaded.unet)
    assert_same_weights(pipe.vqvae, loaded.vqvae)  # the VAE's pre-0.14 attention names were renamed
    assert loaded.factor == 8 and loaded.grid.x_res == 8 and loaded.scaling_factor == pytest.approx(0.18215)
    assert not loaded.unet.training and not loaded.vqvae.training


def test_saved_latent_pipeline_loads_in_diffusers_and_decodes_alike(tmp_path):
    pipe = load_pipeline("tiny-latent")
    folder = save_pipeline(pipe, tmp_path / "saved")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["vqvae"] == ["diffusers", "AutoencoderKL"] and index["mel"] == ["diffusers", "Mel"]
    assert (folder / "vqvae" / "diffusion_pytorch_model.safetensors").is_file()
    theirs = AudioDiffusionPipeline.from_pretrained(folder)
    assert_same_weights(pipe.vqvae, theirs.vqvae)
    assert_same_weights(pipe.unet, theirs.unet)
    output = theirs(steps=2, generator=torch.Generator().manual_seed(0), return_dict=False)  # runs end to end
    assert output[0][0].size == (64, 64)
    # the same latents decode to the same Mel image: ours, and the reference's 1/scaling then decode
    latents = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = theirs.vqvae.decode(latents / theirs.vqvae.config.scaling_factor).sample.clamp(-1, 1)
    assert torch.allclose(pipe.decode(latents), reference, atol=1e-6)
    again = load_pipeline(folder)
    assert isinstance(again, LatentAudioDiffusion)
    assert_same_weights(pipe.vqvae, again.vqvae)


def test_conditional_latent_pipeline_saves_and_loads_in_diffusers(tmp_path):
    pipe = load_pipeline("tiny-conditional-latent")
    folder = save_pipeline(pipe, tmp_path / "saved")
    assert json.loads((folder / "model_index.json").read_text())["unet"] == ["diffusers", "UNet2DConditionModel"]
    theirs = AudioDiffusionPipeline.from_pretrained(folder)
    assert type(theirs.unet).__name__ == "UNet2DConditionModel"
    assert_same_weights(pipe.unet, theirs.unet)
    assert_same_weights(pipe.unet, load_pipeline(folder).unet)


@pytest.mark.parametrize("part,changes,message", [
    ("mel/mel_config.json", {"x_res": 68}, r"downsamples 8x, but the Mel image .* is 64x68: x_res and y_res must be multiples of 8"),
    ("unet/config.json", {"sample_size": 16}, r"sample_size 16, but the VAE turns the 64x64 Mel image into 8x8 latents"),
    ("unet/config.json", {"in_channels": 4}, r"in_channels 4, but the VAE makes latents of latent_channels 1"),
    ("vqvae/config.json", {"latent_channels": 4}, r"in_channels 1, but the VAE makes latents of latent_channels 4"),
    ("vqvae/config.json", {"block_out_channels": [8, 8, 8], "down_block_types": ["DownEncoderBlock2D"] * 3,
                           "up_block_types": ["UpDecoderBlock2D"] * 3}, r"into 16x16 latents \(4x smaller\)"),
    ("vqvae/config.json", {"out_channels": 3}, r"out_channels 3; a Mel image has one channel"),
    ("vqvae/config.json", {"layers_per_block": 10**6}, r"layers_per_block 1000000"),
    ("vqvae/config.json", {"scaling_factor": -1}, r"scaling_factor -1"),
    ("unet/config.json", {"cross_attention_dim": 0}, r"cross_attention_dim 0"),
])
def test_parts_that_do_not_fit_are_refused_in_one_line_before_building(latent_folder, part, changes, message):
    preset = "tiny-conditional-latent" if "cross_attention_dim" in changes else "tiny-latent"
    _, folder = latent_folder(preset)
    edit_json(folder / part, **changes)
    started = time.perf_counter()
    with pytest.raises(PipelineError, match=message) as error:
        load_pipeline(folder)
    assert time.perf_counter() - started < 2 and "\n" not in str(error.value)


class Touch:
    """Unpickling this calls Path.touch(marker): proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_vae_bin_goes_through_the_weights_only_loader(latent_folder, tmp_path):
    _, folder = latent_folder()
    weights = folder / "vqvae" / "diffusion_pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    marker = tmp_path / "payload-ran"
    state["encoder.conv_in.extra"] = Touch(marker)
    torch.save(state, weights)
    with pytest.raises(PipelineError, match="refusing to load"):
        load_pipeline(folder)
    assert not marker.exists()
    torch.save({"encoder.conv_in.weight": torch.full((8, 1, 3, 3), float("nan"))}, weights)
    with pytest.raises(PipelineError, match="VAE weights hold NaN"):
        load_pipeline(folder)


def test_latent_presets_build_the_public_layouts_without_allocating():
    from audiodiff import pipeline
    from audiodiff.latent_presets import LATENT_PRESETS, build_latent_preset

    assert set(pipeline.LATENT_PRESETS) == set(LATENT_PRESETS)  # the names load_pipeline knows without importing them
    with torch.device("meta"):
        pipe = build_latent_preset("latent-256")
        conditional = build_latent_preset("conditional-latent-512")
    assert pipe.grid.x_res == 32 and pipe.unet.config.sample_size == 32 and pipe.vqvae.config.latent_channels == 1
    assert tuple(pipe.vqvae.config.block_out_channels) == (128, 256, 512, 512)
    assert conditional.unet.config.cross_attention_dim == 100 and conditional.unet.config.sample_size == 64
    assert round(sum(p.numel() for p in pipe.unet.parameters()) / 1e6, 1) == 113.7


# ---- generation on latents ---------------------------------------------------------------------------
REPO = pathlib.Path(__file__).resolve().parents[1]


def run_script(script, args, cwd):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_generate_script_writes_exactly_10_seconds_from_a_latent_folder(latent_folder, tmp_path):
    import soundfile as sf

    _, folder = latent_folder()  # laid out like the hub's: .bin weights, legacy mel entry
    done = run_script("generate.py", ["--model", str(folder), "--seconds", "10", "--steps", "2", "--no-progress",
                                      "--output-dir", str(tmp_path / "out"), "--name", "clip"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    wav = tmp_path / "out" / "clip.wav"
    assert sf.info(wav).frames == 160000 and sf.info(wav).samplerate == 16000
    made = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert made["latent"] is True and made["level_hold"] == 0 and made["tempo_hold"] == 0 and made["holds"] == []
    assert "--latent-holds" in made["note"] and "note: the level and tempo holds" in done.stdout + done.stderr


def test_latent_clips_are_seeded_and_made_in_latent_columns():
    from audiodiff.sampling.latent import generate_long_latent

    pipe = load_pipeline("tiny-latent")
    a = generate_long_latent(pipe, 3.0, num_inference_steps=2, seed=5, progress=False)
    b = generate_long_latent(pipe, 3.0, num_inference_steps=2, seed=5, progress=False)
    c = generate_long_latent(pipe, 3.0, num_inference_steps=2, seed=6, progress=False)
    assert torch.equal(a.audio, b.audio) and not torch.equal(a.audio, c.audio)
    assert a.audio.shape == (1, 48000) and a.image.shape[:3] == (1, 1, 64) and a.image.shape[-1] % 8 == 0
    from audiodiff.sample import generate_long

    assert torch.equal(generate_long(pipe, 3.0, num_inference_steps=2, seed=5, progress=False).audio, a.audio)
    assert a.slices[0].shape == (1, 1, 8, 8)  # sampled as 8x8 latents, decoded to 64-row Mel images
    assert all(start % 8 == 0 and end % 8 == 0 for start, end in a.slice_columns)
    # each next slice starts with the overlap's latent columns: 0.41 s = 3 latent columns of 8 Mel columns
    assert [end - start for start, end in a.slice_columns][:2] == [64, 64] and a.slice_columns[1][0] == 40


def test_latent_continuation_keeps_the_given_audio(tmp_path):
    from audiodiff.sampling.latent_edits import continue_latent

    pipe = load_pipeline("tiny-latent")
    t = torch.arange(24000) / 16000
    given = 0.5 * torch.sin(2 * torch.pi * 330 * t)
    clip = continue_latent(pipe, given, 2.0, num_inference_steps=2, progress=False)
    assert clip.audio.shape == (1, 24000 + 32000)
    ratio = clip.audio[0, :22000] / given[:22000]  # before the crossfade into the new part
    scale = ratio[given[:22000].abs() > 0.1]
    assert torch.allclose(scale, scale[0], rtol=1e-4)  # unchanged, up to the clip's one peak protection
    # the known columns of the Mel image are the given audio's own; new slices start on latent columns
    assert clip.known_columns is not None and all(start % 8 == 0 for start, _ in clip.slice_columns)


@pytest.mark.parametrize("request_, message", [
    ({"candidates": 2}, "--candidates are chosen by loudness"),
])
def test_latent_models_refuse_what_they_cannot_do_yet_in_one_line(latent_folder, tmp_path, request_, message):
    from audiodiff.generate import generate
    from audiodiff.pipeline import GenerationError

    _, folder = latent_folder()
    with pytest.raises(GenerationError, match=message) as error:
        generate(str(folder), 2.0, output_dir=tmp_path / "out", progress=False, log=None, steps=2, **request_)
    assert "\n" not in str(error.value) and not list((tmp_path / "out").glob("*.wav"))


# ---- conditional models ---------------------------------------------------------------------------
def test_conditional_model_generates_from_an_encoding_file_as_a_user_runs_it(latent_folder, tmp_path):
    import numpy as np
    import soundfile as sf

    _, folder = latent_folder("tiny-conditional-latent")
    np.save(tmp_path / "enc.npy", np.linspace(-1, 1, 8, dtype=np.float32))
    args = ["--model", str(folder), "--seconds", "3", "--steps", "2", "--no-progress", "--output-dir", str(tmp_path / "out")]
    done = run_script("generate.py", [*args, "--encoding", str(tmp_path / "enc.npy"), "--name", "c"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sf.info(tmp_path / "out" / "c.wav").frames == 48000
    made = json.loads((tmp_path / "out" / "c.json").read_text())
    assert made["encoding"] == "enc.npy" and made["guidance_scale"] == 1.0
    # an encoding of the wrong size, or none, is refused in one line before any sampling
    np.save(tmp_path / "short.npy", np.zeros(5, dtype=np.float32))
    for extra, message in ((["--encoding", str(tmp_path / "short.npy")], "shape (1, 5), but this model reads "
                                                                           "encodings of 8 numbers"),
                           ([], "is a conditional model: give it an encoding of 8 numbers")):
        done = run_script("generate.py", [*args, *extra, "--name", "bad"], cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "out" / "bad.wav").exists()


def test_encoding_files_are_read_without_pickle_and_checked(tmp_path):
    import numpy as np
    import safetensors.torch

    from audiodiff.conditioning import load_encoding
    from audiodiff.pipeline import GenerationError

    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(GenerationError, match="can't read the encoding pickled.npy as a plain array"):
        load_encoding(tmp_path / "pickled.npy", 8, 1)
    safetensors.torch.save_file({"encodings": torch.ones(2, 1, 8)}, tmp_path / "two.safetensors")
    assert load_encoding(tmp_path / "two.safetensors", 8, 2).shape == (2, 8)  # the reference's (B, 1, D)
    with pytest.raises(GenerationError, match="2 encodings for 3 clip"):
        load_encoding(tmp_path / "two.safetensors", 8, 3)
    safetensors.torch.save_file({"a": torch.ones(8), "b": torch.ones(8)}, tmp_path / "many.safetensors")
    with pytest.raises(GenerationError, match="holds 2 tensors"):
        load_encoding(tmp_path / "many.safetensors", 8, 1)
    np.save(tmp_path / "nan.npy", np.full(8, np.nan, dtype=np.float32))
    with pytest.raises(GenerationError, match="NaN"):
        load_encoding(tmp_path / "nan.npy", 8, 1)


def test_conditioned_unet_passes_the_encoding_and_applies_guidance():
    from audiodiff.conditioning import ConditionedUNet, condition
    from audiodiff.pipeline import GenerationError
    from audiodiff.sampling.latent import generate_long_latent

    pipe = load_pipeline("tiny-conditional-latent")
    encodings = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    x, t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor(500)
    with torch.no_grad():
        cond = pipe.unet(x, t, encoder_hidden_states=encodings[:, None]).sample
        null = pipe.unet(x, t, encoder_hidden_states=torch.zeros(2, 1, 8)).sample
        assert torch.allclose(ConditionedUNet(pipe.unet, encodings)(x, t).sample, cond, atol=1e-6)
        guided = ConditionedUNet(pipe.unet, encodings, guidance_scale=3.0)(x, t).sample
        assert torch.allclose(guided, null + 3.0 * (cond - null), atol=1e-5)
        assert torch.allclose(ConditionedUNet(pipe.unet, encodings, 0.0)(x, t).sample, null, atol=1e-6)
    # each clip of a batch gets its own encoding: another second encoding changes only the second clip
    clips = {}
    for name, enc in (("a", encodings), ("b", torch.cat([encodings[:1], 5 * encodings[1:]]))):
        p = dataclasses.replace(pipe, unet=ConditionedUNet(pipe.unet, enc))
        clips[name] = generate_long_latent(p, 1.5, num_inference_steps=2, batch_size=2, progress=False).audio
    assert torch.equal(clips["a"][0], clips["b"][0]) and not torch.allclose(clips["a"][1], clips["b"][1])
    with pytest.raises(GenerationError, match="not a conditional model"):
        condition(load_pipeline("tiny-latent"), "enc.npy", 1.0, 1)


def _tones(sample_rate, seconds=1.5):
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return [0.5 * torch.sin(2 * torch.pi * f * t) * (1 + 0.5 * torch.sin(2 * torch.pi * r * t))
            for f, r in ((220, 2), (330, 3), (440, 1), (880, 3))]


def test_continuation_and_inverted_variation_from_the_script(latent_folder, tmp_path):
    import soundfile as sf

    _, folder = latent_folder()
    sf.write(tmp_path / "given.wav", _tones(16000)[0].numpy(), 16000)
    base = ["--model", str(folder), "--steps", "2", "--no-progress", "--output-dir", str(tmp_path / "out"),
            "--init-audio", str(tmp_path / "given.wav")]
    done = run_script("generate.py", [*base, "--seconds", "2", "--name", "more"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sf.info(tmp_path / "out" / "more.wav").frames == 24000 + 32000
    done = run_script("generate.py", [*base, "--strength", "0.5", "--invert", "--name", "vary"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sf.info(tmp_path / "out" / "vary.wav").frames == 24000
    assert json.loads((tmp_path / "out" / "vary.json").read_text())["invert"] is True


def test_loops_gap_fills_and_interpolation_on_a_latent_model(latent_folder, tmp_path):
    import soundfile as sf

    from audiodiff.generate import generate

    _, folder = latent_folder()
    a, b = _tones(16000, seconds=1.5)[:2]
    sf.write(tmp_path / "a.wav", a.numpy(), 16000)
    sf.write(tmp_path / "b.wav", b.numpy(), 16000)
    out = tmp_path / "out"
    common = dict(output_dir=out, progress=False, log=None, steps=2)
    loop = generate(str(folder), 2.5, loop=True, name="loop", **common)
    assert sf.info(loop[0]).frames == 40000 and json.loads(loop[2].read_text())["loop"] is True
    gap = generate(str(folder), 1.0, fill_gap=(tmp_path / "a.wav", tmp_path / "b.wav"), name="gap", **common)
    filled, _ = sf.read(gap[0], dtype="float32")
    assert filled.shape == (24000 + 16000 + 24000,)
    # A and B are kept, up to one scale for the whole clip (peak protection) and the crossfades into the gap
    for made, given in ((filled[:22000], a.numpy()[:22000]), (filled[-22000:], b.numpy()[-22000:])):
        loud = abs(given) > 0.1
        kept = made[loud] / given[loud]
        assert abs(kept - kept[0]).max() < 1e-3 * abs(kept[0]) + 1e-3
    between = generate(str(folder), None, interpolate=(tmp_path / "a.wav", tmp_path / "b.wav"), alphas=[0.0, 1.0],
                       name="between", **common)
    assert len(between) == 6 and sf.info(between[0]).frames == 24000


# ---- fine-tuning a latent model (the VAE frozen) ------------------------------------------------------
def test_finetune_trains_a_latent_model_and_saves_what_diffusers_loads(latent_folder, tmp_path):
    from diffusers.pipelines.deprecated import AudioDiffusionPipeline

    from audiodiff import train
    from test_train import make_music_dir

    base, folder = latent_folder()  # laid out like the hub's
    config = train.FinetuneConfig(genre="jazz", pretrained=str(folder), data_dir=str(make_music_dir(tmp_path / "music")),
                                  output_dir=str(tmp_path / "runs"), max_steps=4, batch_size=2, checkpoint_every=2,
                                  validate_every=2, sample_every=2, num_workers=0, warmup_steps=1, lr=1e-3, device="cpu",
                                  validation_fraction=0.25)
    result = train.finetune(config, progress=False)
    assert result.steps == 4 and all(torch.isfinite(torch.tensor(result.losses)))
    ours = load_pipeline(result.run_dir)
    assert isinstance(ours, LatentAudioDiffusion)
    assert_same_weights(base.vqvae, ours.vqvae)  # frozen: the VAE comes back as it went in
    assert any(not torch.equal(a, b) for a, b in zip(base.unet.parameters(), ours.unet.parameters()))
    theirs = AudioDiffusionPipeline.from_pretrained(result.run_dir)
    assert type(theirs.vqvae).__name__ == "AutoencoderKL"
    assert_same_weights(ours.unet, theirs.unet)
    assert list((result.run_dir / "logs").rglob("events.out.tfevents*"))  # samples logged (decoded through the VAE)


def _latent_finetune_config(folder, tmp_path, **changes):
    from audiodiff import train
    from test_train import make_music_dir

    music = tmp_path / "music"
    if not music.exists():
        make_music_dir(music)
    values = dict(genre="jazz", pretrained=str(folder), data_dir=str(music), output_dir=str(tmp_path / "runs"),
                  max_steps=6, batch_size=2, checkpoint_every=6, validate_every=3, sample_every=100, num_workers=0,
                  warmup_steps=1, lr=1e-3, device="cpu", validation_fraction=0.25)
    return train.FinetuneConfig(**{**values, **changes})


def test_latents_are_cached_once_so_no_epoch_calls_the_vae(latent_folder, tmp_path, monkeypatch):
    from audiodiff import train

    _, folder = latent_folder()
    calls, per_step = [], []
    encode = LatentAudioDiffusion.encode
    monkeypatch.setattr(LatentAudioDiffusion, "encode", lambda self, images: calls.append(images.shape[0]) or encode(self, images))
    run_step = train.TrainLoop.run_step

    def counted_step(loop, images, epoch):
        before = len(calls)
        run_step(loop, images, epoch)
        per_step.append((epoch, len(calls) - before))
    monkeypatch.setattr(train.TrainLoop, "run_step", counted_step)
    result = train.finetune(_latent_finetune_config(folder, tmp_path), progress=False)
    # 4 training tracks, batch 2: 2 steps an epoch, 3 epochs; not one VAE call in any of them
    assert [epoch for epoch, _ in per_step] == [0, 0, 1, 1, 2, 2]
    assert all(count == 0 for _, count in per_step)
    record = json.loads((result.run_dir / "training_config.json").read_text())["model_inputs"]
    # before the loop: the grid's slices in batches of 2 (the cache) and the validation slices once
    assert len(calls) == record["cache_vae_calls"] + 1 and sum(calls[:-1]) == record["cached_slices"] >= 4
    assert record["scaling_factor"] == 0.18215 and record["scaling_factor_used"] == "config"
    assert 0 < record["scaling_factor_measured"] < 1e4
    assert 0.05 < record["vae_round_trip_error"] < 2  # a random VAE gives the Mel image back badly
    assert all(torch.isfinite(torch.tensor(result.losses))) and result.losses[-1] < 2
    card = (result.run_dir / "README.md").read_text()
    assert "latent scaling factor | 0.18215 (the VAE config's, used)" in card


def test_the_cache_holds_the_latents_of_its_grid_slices_and_draws_each_before_repeating():
    from audiodiff.data import load_genre
    from audiodiff.data.loader import SliceDataset, _cut
    from audiodiff.latent_cache import CachedSlices, encode_grid, grid_starts
    from audiodiff.mel import audio_to_images

    pipe = load_pipeline("tiny-latent")
    mel = pipe.mel
    energy = np.zeros(200)
    three = 128 * mel.hop_length + mel.slice_samples  # room for three slices, one after the other, on whole hops
    assert grid_starts(three, energy, mel) == [0, 64 * mel.hop_length, 128 * mel.hop_length]
    assert grid_starts(three - 1, energy, mel) == [0, 64 * mel.hop_length] and grid_starts(100, energy, mel) == [0]
    assert grid_starts(three, energy, mel, limit=2) == [0, 128 * mel.hop_length]
    quiet = np.full(200, -200.0)
    quiet[64] = 0.0  # only the second slice is loud: it alone is kept
    assert grid_starts(three, quiet, mel) == [64 * mel.hop_length]
    genre = load_genre("jazz", mel, dataset="synthetic", synthetic_clips_per_genre=2, synthetic_seconds=4.0, progress=False)
    dataset = SliceDataset(genre.tracks, mel)
    inputs, calls = encode_grid(pipe, dataset, [0, 1], limit=None, batch_size=3)
    item = dataset.prepared(1)
    where = grid_starts(item.audio.numel(), item.slice_energy_db, mel)
    assert inputs[1].shape == (len(where), 1, 8, 8) and calls == -(-(inputs[0].shape[0] + len(where)) // 3)
    direct = pipe.encode(audio_to_images(_cut(item, where[-1], mel)[None], mel))
    assert torch.allclose(inputs[1][-1], direct[0], atol=1e-5)
    cached = CachedSlices(inputs, seed=3)
    drawn = [cached[(1, epoch)][0] for epoch in range(len(where))]
    assert all(any(torch.equal(x, y) for y in drawn) for x in inputs[1])  # every position once per len(where) epochs


def _jazz_track_names(music, mel):
    from audiodiff.data import load_genre

    return sorted({track.name for track in load_genre("jazz", mel, data_dir=str(music), progress=False).tracks})


def test_conditional_finetune_reads_one_encoding_per_track_and_drops_some_for_guidance(latent_folder, tmp_path, monkeypatch):
    import safetensors.torch

    from audiodiff import train
    from audiodiff.conditioning import condition
    from audiodiff.sampling.latent import generate_long_latent

    base, folder = latent_folder("tiny-conditional-latent")
    config = _latent_finetune_config(folder, tmp_path, max_steps=8, cond_dropout=0.5)
    names = _jazz_track_names(tmp_path / "music", base.mel)
    dim = base.unet.config.cross_attention_dim
    encodings = {name: torch.full((dim,), 1.0 + k) for k, name in enumerate(names)}
    safetensors.torch.save_file(encodings, tmp_path / "enc.safetensors")
    seen = []
    unet_class = type(base.unet)
    forward = unet_class.forward
    monkeypatch.setattr(unet_class, "forward", lambda self, sample, t, encoder_hidden_states=None, **kw:
                        (self.training and seen.append(encoder_hidden_states))  # training steps only
                        or forward(self, sample, t, encoder_hidden_states, **kw))
    result = train.finetune(dataclasses.replace(config, encoding=str(tmp_path / "enc.safetensors")), progress=False)
    assert result.steps == 8 and all(torch.isfinite(torch.tensor(result.losses)))
    assert len(seen) == 8 and all(e is not None and e.shape == (2, 1, dim) for e in seen)
    given = torch.cat([e[:, 0] for e in seen])  # (16, D)
    assert {float(row[0]) for row in given} <= {0.0, *(1.0 + k for k in range(len(names)))}
    dropped = (given.abs().sum(dim=1) == 0).float().mean()
    assert 0.1 < dropped < 0.9  # dropout 0.5 to the null encoding; the rest are the tracks' own
    record = json.loads((result.run_dir / "training_config.json").read_text())
    assert record["encoding"].endswith("enc.safetensors") and record["model_inputs"]["cond_dropout"] == 0.5
    assert "conditional latent audio-diffusion pipeline" in (result.run_dir / "README.md").read_text()
    assert "conditioning dropout | 0.5" in (result.run_dir / "README.md").read_text()
    theirs = AudioDiffusionPipeline.from_pretrained(result.run_dir)
    assert type(theirs.unet).__name__ == "UNet2DConditionModel"
    assert_same_weights(load_pipeline(result.run_dir).unet, theirs.unet)
    np.save(tmp_path / "one.npy", encodings[names[0]].numpy())
    ours = condition(load_pipeline(result.run_dir), tmp_path / "one.npy", 3.0, 1)  # guided, on a track's encoding
    clip = generate_long_latent(ours, 1.5, num_inference_steps=2, progress=False)
    assert clip.audio.shape == (1, 24000) and torch.isfinite(clip.audio).all()


@pytest.mark.parametrize("preset, flags, message", [
    ("tiny-conditional-latent", [], r"is a conditional pipeline: fine-tuning it needs an encoding of 8 numbers per track"),
    ("tiny-conditional-latent", ["--encoding", "{tmp}/two.npy"], r"two.npy holds 2 encodings for 4 tracks"),
    ("tiny-conditional-latent", ["--encoding", "{tmp}/wide.npy"], r"reads 8 finite numbers per track"),
    ("tiny-conditional-latent", ["--encoding", "{tmp}/named.safetensors"], r"no encoding for 3 of the 4 tracks"),
    ("tiny-latent", ["--cond-dropout", "0.2"], r"is not a conditional model: --encoding and --cond-dropout"),
    ("tiny-latent", ["--train-vae", "--lora-rank", "2"], r"--train-vae runs in one process, on all the VAE's weights"),
])
def test_finetune_refuses_encodings_that_do_not_fit_in_one_line(latent_folder, tmp_path, preset, flags, message):
    import re

    import safetensors.torch

    from test_train import make_music_dir

    _, folder = latent_folder(preset)
    np.save(tmp_path / "two.npy", np.zeros((2, 8), dtype=np.float32))
    np.save(tmp_path / "wide.npy", np.zeros((5, 9), dtype=np.float32))
    safetensors.torch.save_file({"jazz/jazz0.wav": torch.zeros(8), "other": torch.zeros(8)}, tmp_path / "named.safetensors")
    music = make_music_dir(tmp_path / "music")
    done = run_script("finetune.py", ["--pretrained", str(folder), "--data-dir", str(music), "--genre", "jazz",
                                      "--output-dir", str(tmp_path / "runs"), "--device", "cpu", "--num-workers", "0",
                                      *[flag.format(tmp=tmp_path) for flag in flags]], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after the data check's progress, when the tracks were needed
    assert last.startswith("error: ") and re.search(message, last) and done.stderr.count("error") == 1, done.stderr
    assert not list((tmp_path / "runs").glob("*/*"))  # refused before a run was written


def test_finetune_script_trains_a_conditional_folder_on_one_encoding_for_every_track(latent_folder, tmp_path):
    from test_train import make_music_dir

    _, folder = latent_folder("tiny-conditional-latent")  # laid out like the hub's
    np.save(tmp_path / "one.npy", np.linspace(-1, 1, 8, dtype=np.float32))
    done = run_script("finetune.py", ["--pretrained", str(folder), "--data-dir", str(make_music_dir(tmp_path / "music")),
                                      "--genre", "jazz", "--output-dir", str(tmp_path / "runs"), "--device", "cpu",
                                      "--num-workers", "0", "--max-steps", "2", "--batch-size", "2",
                                      "--encoding", str(tmp_path / "one.npy")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_dir = pathlib.Path(done.stdout.strip().splitlines()[-1])
    saved = json.loads((run_dir / "training_config.json").read_text())
    assert saved["cond_dropout"] is None and saved["model_inputs"]["cond_dropout"] == 0.1  # the default
    assert type(load_pipeline(run_dir).unet).__name__ == "UNet2DConditionModel"


def test_a_conditional_latent_run_resumes_exactly_on_its_cached_slices(latent_folder, tmp_path):
    import safetensors.torch

    from audiodiff import train
    from test_train import killed_copy

    base, folder = latent_folder("tiny-conditional-latent")
    config = _latent_finetune_config(folder, tmp_path, checkpoint_every=3, cond_dropout=0.3)
    names = _jazz_track_names(tmp_path / "music", base.mel)
    safetensors.torch.save_file({name: torch.randn(8) for name in names}, tmp_path / "enc.safetensors")
    config = dataclasses.replace(config, encoding=str(tmp_path / "enc.safetensors"))
    full = train.finetune(dataclasses.replace(config, run_name="full"), progress=False)
    killed = killed_copy(full.run_dir, "step-000006")  # killed after step 3: the cache is built again
    resumed = train.finetune(config, resume=str(killed), progress=False)
    assert resumed.steps == 6
    np.testing.assert_allclose(resumed.losses, full.losses[3:], rtol=1e-5, atol=1e-7)
    assert_same_weights(load_pipeline(full.run_dir).unet, load_pipeline(killed).unet)


def test_train_vae_is_a_run_that_lowers_the_round_trip_checkpoints_and_resumes(latent_folder, tmp_path):
    from audiodiff import train
    from audiodiff.vae_training import ROUND_TRIP_FILE
    from test_train import killed_copy

    base, folder = latent_folder()
    config = _latent_finetune_config(folder, tmp_path, train_vae=True, vae_lr=3e-3, checkpoint_every=3)
    full = train.finetune(dataclasses.replace(config, run_name="full"), progress=False)
    assert full.steps == 6 and all(torch.isfinite(torch.tensor(full.losses)))
    record = json.loads((full.run_dir / ROUND_TRIP_FILE).read_text())
    assert record["vae_round_trip_after"] < 0.9 * record["vae_round_trip_before"]  # a random VAE learns quickly
    assert "it paid" in (full.run_dir / "README.md").read_text()
    ours = load_pipeline(full.run_dir)
    assert_same_weights(base.unet, ours.unet)  # the UNet as it came: it is fine-tuned next, on the new latents
    assert any(not torch.equal(a, b) for a, b in zip(base.vqvae.parameters(), ours.vqvae.parameters()))
    killed = killed_copy(full.run_dir, "step-000006")
    (killed / ROUND_TRIP_FILE).unlink()
    resumed = train.finetune(config, resume=str(killed), progress=False)
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-5, atol=1e-7)
    assert_same_weights(ours.vqvae, load_pipeline(killed).vqvae)
    assert json.loads((killed / ROUND_TRIP_FILE).read_text()) == record
