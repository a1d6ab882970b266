"""Loading and saving pipelines: diffusers compatibility both ways, safe weights, presets, hub, runs."""

import json
import os
import pathlib
import shutil
import time

import pytest
import safetensors.torch
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
from diffusers.pipelines.deprecated import AudioDiffusionPipeline
from diffusers.pipelines.deprecated.audio_diffusion import Mel

from audiodiff import pipeline as pl
from audiodiff.mel import MelConfig
from audiodiff.pipeline import (
    PRESETS,
    AudioDiffusion,
    PipelineError,
    build_preset,
    latest_run,
    load_pipeline,
    save_pipeline,
)

ODD_MEL = MelConfig(x_res=64, y_res=32, sample_rate=12000, n_fft=1024, hop_length=384, top_db=60, n_iter=16)


def assert_same_weights(unet_a, unet_b):
    state_a, state_b = unet_a.state_dict(), unet_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key].cpu(), state_b[key].cpu()), key


def saved_tiny(tmp_path, name="pipe", seed=0, mel=None):
    pipe = build_preset("tiny", seed=seed, mel=mel)
    return pipe, save_pipeline(pipe, tmp_path / name)


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# ---- diffusers compatibility ---------------------------------------------------------------------
def test_saved_pipeline_loads_in_diffusers(tmp_path):
    pipe, folder = saved_tiny(tmp_path, mel=ODD_MEL)
    assert sorted(p.name for p in folder.iterdir()) == ["mel", "model_index.json", "scheduler", "unet"]
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(folder.rglob("*.bin"))
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "AudioDiffusionPipeline"
    assert index["mel"] == ["diffusers", "Mel"] and index["vqvae"] == [None, None]
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == ["diffusers", "DDPMScheduler"]

    theirs = AudioDiffusionPipeline.from_pretrained(folder)
    assert theirs.vqvae is None and isinstance(theirs.scheduler, DDPMScheduler)
    assert_same_weights(pipe.unet, theirs.unet)
    mel = theirs.mel
    assert (mel.x_res, mel.y_res, mel.sr, mel.n_fft, mel.hop_length, mel.top_db, mel.n_iter) == (
        64, 32, 12000, 1024, 384, 60, 16)
    # the noise shape diffusers' pipeline samples is (1, 1, *sample_size): our Mel image's; same outputs
    assert tuple(theirs.unet.config.sample_size) == (mel.y_res, mel.x_res)
    sample = torch.randn(1, 1, mel.y_res, mel.x_res)
    with torch.no_grad():
        torch.testing.assert_close(theirs.unet(sample, 10).sample, pipe.unet(sample, 10).sample, rtol=0, atol=1e-5)


def test_pipeline_saved_by_diffusers_loads(tmp_path):
    unet = UNet2DModel(
        sample_size=32, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
        norm_num_groups=4, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    )
    scheduler = DDIMScheduler(num_train_timesteps=500, beta_end=0.03)
    theirs = AudioDiffusionPipeline(vqvae=None, unet=unet, mel=Mel(x_res=32, y_res=32, sample_rate=16000), scheduler=scheduler)
    theirs.save_pretrained(tmp_path / "theirs")

    ours = load_pipeline(tmp_path / "theirs")
    assert isinstance(ours, AudioDiffusion) and ours.source == str(tmp_path / "theirs")
    assert_same_weights(unet, ours.unet)
    assert ours.mel == MelConfig(x_res=32, y_res=32, sample_rate=16000)
    assert isinstance(ours.scheduler, DDIMScheduler)
    assert ours.scheduler.config.num_train_timesteps == 500 and ours.scheduler.config.beta_end == 0.03
    assert not ours.unet.training


@pytest.mark.parametrize("entry", [["audio_diffusion", "Mel"], ["audiodiffusion.mel", "Mel"], ["diffusers", "Mel"]])
def test_legacy_mel_entry_accepted(tmp_path, entry):
    pipe, folder = saved_tiny(tmp_path)
    edit_json(folder / "model_index.json", mel=entry)
    loaded = load_pipeline(folder)
    assert loaded.mel == pipe.mel
    assert_same_weights(pipe.unet, loaded.unet)


@pytest.mark.parametrize("scheduler_class", [DDIMScheduler, DPMSolverMultistepScheduler])
def test_scheduler_class_preserved(tmp_path, scheduler_class):
    pipe = build_preset("tiny")
    pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
    folder = save_pipeline(pipe, tmp_path / "pipe")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["scheduler"] == ["diffusers", scheduler_class.__name__]
    loaded = load_pipeline(folder)
    assert type(loaded.scheduler) is scheduler_class
    assert torch.equal(loaded.scheduler.betas, pipe.scheduler.betas)
    assert type(AudioDiffusionPipeline.from_pretrained(folder).scheduler) is scheduler_class


def test_mel_config_round_trips(tmp_path):
    pipe, folder = saved_tiny(tmp_path, mel=ODD_MEL)
    loaded = load_pipeline(folder)
    assert loaded.mel == ODD_MEL and loaded.mel != PRESETS["tiny"].mel
    # the UNet follows the non-square image: sample_size is (height, width)
    assert tuple(loaded.unet.config.sample_size) == (32, 64)


def test_ema_unet_override_and_fp32_safetensors(tmp_path):
    pipe = build_preset("tiny", seed=0)
    ema = build_preset("tiny", seed=1).unet.to(torch.bfloat16)
    folder = save_pipeline(pipe, tmp_path / "pipe", unet=ema)
    stored = safetensors.torch.load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(t.dtype == torch.float32 for t in stored.values())
    loaded = load_pipeline(folder)
    assert_same_weights(ema.float(), loaded.unet)
    assert not torch.equal(next(iter(loaded.unet.parameters())), next(iter(pipe.unet.parameters())))


# ---- weights: safetensors, .bin through the weights-only unpickler -------------------------------
def to_bin(folder, state=None):
    unet_dir = folder / "unet"
    state = state if state is not None else safetensors.torch.load_file(unet_dir / "diffusion_pytorch_model.safetensors")
    (unet_dir / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(state, unet_dir / "diffusion_pytorch_model.bin")
    return unet_dir / "diffusion_pytorch_model.bin"


def test_bin_weights_load(tmp_path):
    pipe, folder = saved_tiny(tmp_path)
    to_bin(folder)
    assert_same_weights(pipe.unet, load_pipeline(folder).unet)


def test_bin_with_pre_014_attention_names_loads(tmp_path):
    # the public 2022 checkpoints name attention weights query/key/value/proj_attn
    pipe, folder = saved_tiny(tmp_path)
    renames = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    old_state = {}
    for key, value in pipe.unet.state_dict().items():
        for new, old in renames.items():
            if ".attentions." in key and f".{new}." in key:
                key = key.replace(f".{new}.", f".{old}.")
        old_state[key] = value
    assert any(".proj_attn." in key for key in old_state)
    to_bin(folder, old_state)
    assert_same_weights(pipe.unet, load_pipeline(folder).unet)


class Touch:
    """Unpickling this calls Path.touch(marker): proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


class System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("payload", ["touch", "os.system", "custom class"])
def test_malicious_bin_refused_and_not_run(tmp_path, payload):
    pipe, folder = saved_tiny(tmp_path)
    state = dict(pipe.unet.state_dict())
    marker = tmp_path / "payload-ran"
    state["conv_in.weight_extra"] = {
        "touch": Touch(marker),
        "os.system": System(f"touch {marker}"),
        "custom class": MelConfig(),  # harmless, but not a tensor: still refused
    }[payload]
    weights = to_bin(folder, state)
    with pytest.raises(PipelineError, match="refusing to load"):
        load_pipeline(folder)
    assert not marker.exists()
    if payload == "touch":  # the payload is real: a full unpickle runs it
        torch.load(weights, weights_only=False)
        assert marker.exists()


def test_bin_with_non_tensor_values_refused(tmp_path):
    _, folder = saved_tiny(tmp_path)
    to_bin(folder, {"conv_in.weight": [1, 2, 3]})
    with pytest.raises(PipelineError, match="named tensors"):
        load_pipeline(folder)


def test_weights_that_do_not_match_config_refused(tmp_path):
    _, folder = saved_tiny(tmp_path)
    small_state = {k: v for k, v in build_preset("tiny").unet.state_dict().items() if not k.startswith("mid_block")}
    safetensors.torch.save_file(small_state, folder / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(PipelineError, match="does not match"):
        load_pipeline(folder)


# ---- refused pipelines ----------------------------------------------------------------------------
def test_a_vae_that_does_not_fit_is_refused_before_any_weights(tmp_path):
    # latent pipelines load (tests/test_latent.py); an AutoencoderKL for RGB images is refused in one line
    _, folder = saved_tiny(tmp_path)
    edit_json(folder / "model_index.json", vqvae=["diffusers", "AutoencoderKL"])
    (folder / "vqvae").mkdir()
    (folder / "vqvae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(PipelineError, match="vqvae/config.json has in_channels 3; a Mel image has one channel") as error:
        load_pipeline(folder)
    assert "\n" not in str(error.value)
    edit_json(folder / "model_index.json", vqvae=["diffusers", "VQModel"])
    with pytest.raises(PipelineError, match="VQModel in vqvae/; latent pipelines need an AutoencoderKL"):
        load_pipeline(folder)


@pytest.mark.parametrize("where,changes,message", [
    ("model_index", {"unet": ["diffusers", "UNet3DConditionModel"]}, "UNet3DConditionModel, not a UNet2DModel"),
    ("unet_config", {"num_class_embeds": 10}, "can't drive .UNet2DModel with num_class_embeds"),
    ("unet_config", {"_class_name": "UNet2DConditionModel", "class_embed_type": "timestep"},
     "conditioned through class_embed_type"),
    ("unet_config", {"_class_name": "UNet2DConditionModel", "cross_attention_dim": [8, 8]}, "cross_attention_dim"),
])
def test_unets_that_are_not_driven_by_an_encoding_are_refused(tmp_path, where, changes, message):
    _, folder = saved_tiny(tmp_path)
    edit_json(folder / ("model_index.json" if where == "model_index" else "unet/config.json"), **changes)
    with pytest.raises(PipelineError, match=message) as error:
        load_pipeline(folder)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("changes,message", [
    ({"attention_head_dim": 0}, "attention_head_dim 0"),  # a ZeroDivisionError while building the UNet
    ({"attention_head_dim": 1000}, "attention_head_dim 1000"),
    ({"layers_per_block": 100000}, "layers_per_block 100000"),  # hung while building the UNet
    ({"layers_per_block": 0}, "layers_per_block 0"),
    ({"block_out_channels": [16] * 100, "down_block_types": ["DownBlock2D"] * 100,
      "up_block_types": ["UpBlock2D"] * 100}, "block_out_channels"),
    ({"block_out_channels": [16, 32, 10**9]}, "block_out_channels"),
    ({"down_block_types": ["DownBlock2D"] * 2}, "down_block_types"),
    ({"norm_num_groups": 7}, "norm_num_groups 7"),
    # images of another size than the Mel config's: was fine-tuned and saved, then refused by generate
    ({"sample_size": 64}, "sample_size 64.*32x32"),
    ({"sample_size": [32, 64]}, "sample_size"),
    ({"sample_size": None}, "sample_size None"),
])
def test_unusable_unet_config_refused_in_one_line_before_building(tmp_path, changes, message):
    _, folder = saved_tiny(tmp_path)
    edit_json(folder / "unet" / "config.json", **changes)
    started = time.perf_counter()
    with pytest.raises(PipelineError, match=message) as error:
        load_pipeline(folder)
    assert time.perf_counter() - started < 2 and "\n" not in str(error.value)


def test_unet_config_checked_against_a_non_square_mel(tmp_path):
    _, folder = saved_tiny(tmp_path, mel=ODD_MEL)  # 64 wide, 32 high: sample_size [32, 64]
    assert tuple(load_pipeline(folder).unet.config.sample_size) == (32, 64)
    edit_json(folder / "unet" / "config.json", sample_size=[64, 32])  # transposed
    with pytest.raises(PipelineError, match=r"sample_size \[64, 32\].*expected sample_size \[32, 64\]"):
        load_pipeline(folder)
    edit_json(folder / "mel" / "mel_config.json", x_res=66)  # not a multiple of the UNet's downsampling
    edit_json(folder / "unet" / "config.json", sample_size=[32, 66])
    with pytest.raises(PipelineError, match="multiples of 4"):
        load_pipeline(folder)


def test_missing_mel_refused(tmp_path):
    _, folder = saved_tiny(tmp_path)
    shutil.rmtree(folder / "mel")
    with pytest.raises(PipelineError, match="no Mel component"):
        load_pipeline(folder)


def test_unknown_scheduler_and_missing_index_refused(tmp_path):
    _, folder = saved_tiny(tmp_path)
    edit_json(folder / "scheduler" / "scheduler_config.json", _class_name="os")
    with pytest.raises(PipelineError, match="not a diffusers scheduler"):
        load_pipeline(folder)
    (folder / "model_index.json").unlink()
    with pytest.raises(PipelineError, match="interrupted save"):
        load_pipeline(folder)


# ---- presets ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tiny", "small"])
def test_preset_shapes(name):
    pipe = build_preset(name)
    assert pipe.source == name and pipe.mel == PRESETS[name].mel
    sample = torch.randn(1, 1, pipe.mel.y_res, pipe.mel.x_res)
    with torch.no_grad():
        out = pipe.unet(sample, torch.tensor([900])).sample
    assert out.shape == sample.shape and torch.isfinite(out).all()
    scheduler = pipe.scheduler
    assert isinstance(scheduler, DDPMScheduler) and scheduler.config.num_train_timesteps == 1000
    assert scheduler.config.beta_schedule == "linear"
    assert (scheduler.config.beta_start, scheduler.config.beta_end) == (1e-4, 0.02)


def test_preset_parameter_counts():
    assert 0.2e6 < build_preset("tiny").num_parameters < 0.4e6
    assert 3e6 < build_preset("small").num_parameters < 6e6
    with torch.device("meta"):
        big = build_preset("audio-diffusion-256")
    assert round(big.num_parameters / 1e6, 1) == 113.7
    config = big.unet.config
    assert config.sample_size == 256 and config.layers_per_block == 2
    assert tuple(config.block_out_channels) == (128, 128, 256, 256, 512, 512)
    assert tuple(config.down_block_types) == ("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D")
    assert tuple(config.up_block_types) == ("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4
    assert big.mel == MelConfig()


def test_preset_deterministic_by_seed_and_keeps_global_rng():
    before = torch.get_rng_state()
    a, b, c = build_preset("tiny", seed=3), build_preset("tiny", seed=3), build_preset("tiny", seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    assert_same_weights(a.unet, b.unet)
    assert not torch.equal(a.unet.conv_in.weight, c.unet.conv_in.weight)


def test_preset_errors():
    with pytest.raises(ValueError, match="tiny, small, compact, compact-4s, compact-4s-hop512, audio-diffusion-256"):
        build_preset("huge")
    with pytest.raises(PipelineError, match="multiples of 4"):
        build_preset("tiny", mel=MelConfig(x_res=30, y_res=32))
    with pytest.raises(PipelineError, match=r"not a pipeline folder, a preset \(bundled, tiny, small, compact"):
        load_pipeline("huge")


def test_load_pipeline_preset_and_device():
    pipe = load_pipeline("tiny", device="cpu")
    assert pipe.source == "tiny" and pipe.device == torch.device("cpu")
    assert_same_weights(pipe.unet, build_preset("tiny").unet)
    assert pipe.to(dtype=torch.float64) is pipe and pipe.dtype == torch.float64


# ---- atomic saves -----------------------------------------------------------------------------------
def test_save_refuses_to_overwrite(tmp_path):
    first, folder = saved_tiny(tmp_path, seed=0)
    second = build_preset("tiny", seed=1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_pipeline(second, folder)
    assert_same_weights(first.unet, load_pipeline(folder).unet)
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "state.pt").write_bytes(b"keep me")
    save_pipeline(second, folder, overwrite=True)
    assert_same_weights(second.unet, load_pipeline(folder).unet)
    assert (folder / "checkpoints" / "state.pt").read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_save_into_run_folder_keeps_its_contents(tmp_path):
    run = tmp_path / "runs" / "jazz-20250101-120000"
    (run / "checkpoints").mkdir(parents=True)
    (run / "logs").mkdir()
    (run / "run_config.json").write_text("{}")
    pipe = build_preset("tiny")
    save_pipeline(pipe, run)
    assert {p.name for p in run.iterdir()} == {"checkpoints", "logs", "run_config.json", *pl.PIPELINE_ENTRIES} - {"vqvae"}
    assert_same_weights(pipe.unet, load_pipeline(run).unet)


def crash(*args, **kwargs):
    raise KeyboardInterrupt("killed mid-save")


@pytest.mark.parametrize("when", ["writing weights", "writing the index"])
def test_crash_mid_save_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, when):
    pipe, old = build_preset("tiny"), build_preset("tiny", seed=1)
    fresh, existing = tmp_path / "fresh", tmp_path / "existing"
    save_pipeline(old, existing)
    if when == "writing weights":
        real_save = safetensors.torch.save_file

        def half_write(tensors, filename, metadata=None):
            real_save(dict(list(tensors.items())[:3]), filename, metadata=metadata)
            crash()

        monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    else:
        monkeypatch.setattr(pl, "_write_model_index", crash)
    with pytest.raises(KeyboardInterrupt):
        save_pipeline(pipe, fresh)
    assert not fresh.exists()  # the pipeline was to arrive by one rename
    with pytest.raises(KeyboardInterrupt):
        save_pipeline(pipe, existing, overwrite=True)
    if when == "writing weights":  # still in the hidden staging folder: the old pipeline is intact
        assert_same_weights(old.unet, load_pipeline(existing).unet)
        assert latest_run(tmp_path) == existing
    else:  # components swapped, index not written: the folder no longer looks complete
        assert not (existing / "model_index.json").exists()
        with pytest.raises(PipelineError, match="interrupted save"):
            load_pipeline(existing)
        assert latest_run(tmp_path) is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    save_pipeline(pipe, existing, overwrite=True)  # a later save completes it
    assert_same_weights(pipe.unet, load_pipeline(existing).unet)


def test_next_save_cleans_what_a_killed_save_left(tmp_path):
    pipe = build_preset("tiny")
    folder = tmp_path / "pipe"
    child = os.fork()
    if child == 0:  # a save killed just before its last rename: like SIGKILL, no clean-up code runs
        try:
            pl._write_model_index = lambda *args: os._exit(9)
            save_pipeline(pipe, folder)
        finally:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 9
    left = [p for p in tmp_path.iterdir() if ".saving-" in p.name]
    assert len(left) == 1 and (left[0] / "unet").is_dir() and not folder.exists()
    # staging folders that may still be in use stay: a running save (this process), another host's,
    # a recent one named by an older version, a dead save into another folder (not this save's business)
    live = pl.staging_folder(folder)
    other_host = tmp_path / f".pipe.saving-12345678-{'0' * 8 if pl._host_tag() != '0' * 8 else '1' * 8}-{child}"
    legacy_recent, legacy_old = tmp_path / ".pipe.saving-abcdef12", tmp_path / ".pipe.saving-0123abcd"
    other_folder = pl.staging_folder(tmp_path / "other", pid=child)
    for path in (live, other_host, legacy_recent, legacy_old, other_folder):
        path.mkdir()
    os.utime(legacy_old, (0, 0))
    save_pipeline(pipe, folder)
    remaining = sorted(p.name for p in tmp_path.iterdir() if ".saving-" in p.name)
    assert remaining == sorted(p.name for p in (live, other_host, legacy_recent, other_folder))
    assert_same_weights(pipe.unet, load_pipeline(folder).unet)


# ---- latest_run -------------------------------------------------------------------------------------
def test_latest_run_picks_newest_complete(tmp_path):
    runs = tmp_path / "runs"
    assert latest_run(runs) is None
    pipe = build_preset("tiny")
    now = time.time()
    for name, age in [("jazz-20250101-000000", 300), ("rock-20250102-000000", 200), ("genre/classical-1", 100)]:
        save_pipeline(pipe, runs / name)
        os.utime(runs / name / "model_index.json", (now - age, now - age))
    assert latest_run(runs) == runs / "genre" / "classical-1"

    newest_incomplete = runs / "blues-20250103-000000"  # a run in progress: no index yet
    (newest_incomplete / "unet").mkdir(parents=True)
    truncated = runs / "pop-20250104-000000"  # an index that is not valid JSON
    truncated.mkdir()
    (truncated / "model_index.json").write_text('{"_class_name": "Audio')
    hidden = runs / ".jazz.saving-1234"  # a save in progress
    save_pipeline(pipe, hidden)
    too_deep = runs / "jazz-20250101-000000" / "checkpoints" / "checkpoint-10"  # three levels down
    save_pipeline(pipe, too_deep)
    assert latest_run(runs) == runs / "genre" / "classical-1"

    os.utime(runs / "rock-20250102-000000" / "model_index.json", (now, now))
    assert latest_run(str(runs)) == runs / "rock-20250102-000000"


def test_saved_weights_are_readable_like_any_other_file(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        folder = save_pipeline(build_preset("tiny"), tmp_path / "pipe")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((folder / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mode)
    assert mode == 0o644, oct(mode)


def test_with_mel_moves_the_weights_onto_another_image_and_refuses_sizes_it_cannot_halve():
    from audiodiff.pipeline import with_mel

    pipe = build_preset("tiny", seed=3)
    wider = MelConfig(x_res=48, y_res=32, sample_rate=16000, n_fft=2048, hop_length=384)
    moved = with_mel(pipe, wider)
    assert moved.mel == wider and tuple(moved.unet.config.sample_size) == (32, 48)
    assert_same_weights(pipe.unet, moved.unet)
    with torch.no_grad():  # the UNet runs on the new image size
        out = moved.unet(torch.zeros(1, 1, 32, 48), 10).sample
    assert out.shape == (1, 1, 32, 48)
    with pytest.raises(PipelineError, match="multiples of 4"):
        with_mel(pipe, MelConfig(x_res=50, y_res=32, sample_rate=16000, n_fft=2048, hop_length=384))


def test_nan_or_inf_weights_are_refused_at_load_and_by_the_generate_script(tmp_path):
    """A broken model would only ever make silence, written as a clip with exit 0 (issue 25)."""
    import subprocess
    import sys

    from safetensors.torch import load_file, save_file

    _, folder = saved_tiny(tmp_path)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    name = sorted(state)[3]
    state[name] = state[name].clone().fill_(float("nan"))
    save_file(state, weights)
    with pytest.raises(PipelineError, match=f"NaN or infinite values \\({name}\\)"):
        load_pipeline(folder)
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "scripts" / "generate.py"), "--model", str(folder), "--seconds", "1",
                           "--output-dir", str(tmp_path / "out"), "--no-progress"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2 and "NaN" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("changes,message", [
    ({"num_train_timesteps": 10**10}, "num_train_timesteps must be an integer from 1 to 100000"),
    ({"num_train_timesteps": "abc"}, "num_train_timesteps"),
    ({"beta_start": 5}, "beta_start must be a number between 0 and 1"),
    ({"beta_schedule": "evil"}, "beta_schedule must be one of"),
])
def test_hostile_scheduler_numbers_are_refused_in_one_line(tmp_path, changes, message):
    _, folder = saved_tiny(tmp_path)
    edit_json(folder / "scheduler" / "scheduler_config.json", **changes)
    start = time.perf_counter()
    with pytest.raises(PipelineError, match=message):
        load_pipeline(folder)
    assert time.perf_counter() - start < 2.0


def test_hostile_mel_numbers_in_a_pipeline_folder_are_one_line(tmp_path):
    _, folder = saved_tiny(tmp_path)
    edit_json(folder / "mel" / "mel_config.json", n_iter=10**9)
    with pytest.raises((PipelineError, ValueError), match="n_iter must be an integer from 1 to 1000"):
        load_pipeline(folder)


@pytest.mark.parametrize("weight_map,message", [
    ({"conv_in.weight": "../../elsewhere.safetensors"}, "outside its folder"),
    ({"conv_in.weight": "/etc/passwd"}, "outside its folder"), (["a", "b"], "weight_map must map"),
])
def test_a_shard_index_cannot_point_outside_its_folder(tmp_path, weight_map, message):
    _, folder = saved_tiny(tmp_path)
    unet = folder / "unet"
    (unet / "diffusion_pytorch_model.safetensors").unlink()
    (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(PipelineError, match=message):
        load_pipeline(folder)


def test_deeply_nested_json_is_one_line(tmp_path):
    _, folder = saved_tiny(tmp_path)
    (folder / "scheduler" / "scheduler_config.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(PipelineError, match="RecursionError"):
        load_pipeline(folder)


def test_fuzzed_pipeline_folders_load_or_raise_one_line_errors(tmp_path):
    """Random and extreme values in a pipeline's three configs: load_pipeline works or raises a
    ValueError (one line at the command line), quickly: never another exception, a hang or a big
    allocation (issue 25)."""
    import random

    rng = random.Random(0)
    extremes = [None, -1, 0, 1, 2**31, 10**30, 1e-300, 0.5, "abc", [], {}, [0], True, "evil", 2048.5]
    _, folder = saved_tiny(tmp_path)
    files = {name: folder / name for name in ("unet/config.json", "mel/mel_config.json", "scheduler/scheduler_config.json")}
    originals = {name: path.read_text() for name, path in files.items()}
    start = time.perf_counter()
    for trial in range(40):
        name = rng.choice(sorted(files))
        config = json.loads(originals[name])
        key = rng.choice(sorted(k for k in config if not k.startswith("_")))
        config[key] = rng.choice(extremes)
        files[name].write_text(json.dumps(config))
        began = time.perf_counter()
        try:
            load_pipeline(folder)
        except ValueError:
            pass
        assert time.perf_counter() - began < 5, (name, key, config[key])
        files[name].write_text(originals[name])
    assert time.perf_counter() - start < 60
