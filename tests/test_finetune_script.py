"""The fine-tuning script as a user runs it, the offline fallback, several processes, EMA and small
folders (split from test_train.py, which keeps the library's training loop and checkpoints)."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audiodiff import train
from audiodiff.pipeline import build_preset, load_pipeline, save_pipeline
from test_train import REPO, make_music_dir, run_script, tiny_config  # test_train's helpers (tests/ is on sys.path)


@pytest.fixture
def music(tmp_path):
    return make_music_dir(tmp_path / "music")


def test_finetune_script_as_a_user_runs_it(tmp_path, music):
    done = run_script(["--genre", "JAZZ", "--data-dir", str(music), "--pretrained", "tiny", "--max-steps", "2",
                       "--batch-size", "2", "--num-workers", "0", "--output-dir", str(tmp_path / "out")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "out" and (run_dir / "model_index.json").is_file()
    assert "fine-tuning tiny" in done.stdout and "1 files skipped" in done.stdout
    from diffusers.pipelines.deprecated import AudioDiffusionPipeline

    assert AudioDiffusionPipeline.from_pretrained(run_dir).mel.config.sample_rate == load_pipeline("tiny").mel.sample_rate


@pytest.mark.parametrize("args,message", [
    (["--batch-size", "0"], "at least 1"),
    (["--genre", "polka", "--pretrained", "tiny"], "polka"),
    (["--pretrained", "someone/not-a-model", "--dataset", "synthetic"], "--pretrained"),
    (["--run-name", "../escaped", "--pretrained", "tiny"], "--run-name"),
    (["--seed", str(2**70), "--pretrained", "tiny"], "seed"),
])
def test_finetune_script_user_errors_are_one_line(tmp_path, music, args, message):
    extra = [] if "--dataset" in args else ["--data-dir", str(music)]
    done = run_script([*args, *extra, "--output-dir", str(tmp_path / "out"), "--num-workers", "0"], cwd=tmp_path, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if "error" in line]) == 1, done.stderr
    # nothing was written: no run folder (half-made or escaped) anywhere
    assert not (tmp_path / "out").exists() and not (tmp_path / "escaped").exists()


def finetune_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("finetune_script", REPO / "scripts" / "finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finetune_script_flags_become_the_config_field_by_field(tmp_path):
    script = finetune_script()
    assert train.FinetuneConfig.from_flags(vars(script.parse_args([]))) == train.FinetuneConfig()
    args = script.parse_args([
        "--genre", "ALL", "--dataset", "me/songs", "--split", "test", "--genre-column", "style",
        "--audio-column", "sound", "--recording-column", "album", "--streaming", "--num-workers", "0",
        "--pretrained", "tiny", "--lora-rank", "4", "--gradient-checkpointing", "--no-ema", "--max-steps", "7",
        "--epochs", "3", "--batch-size", "5", "--grad-accum", "2", "--lr", "0.001", "--warmup-steps", "9",
        "--mixed-precision", "bf16", "--seed", "11", "--output-dir", str(tmp_path), "--run-name", "mine",
        "--resume", "latest", "--checkpoint-every", "13", "--keep-checkpoints", "4", "--validate-every", "17",
        "--sample-every", "19", "--push-to-hub", "--hub-model-id", "me/jazz", "--device", "cpu",
        "--prediction-type", "v_prediction", "--snr-gamma", "5"])
    expected = train.FinetuneConfig(
        genre=None, dataset="me/songs", split="test", genre_column="style", audio_column="sound",
        recording_column="album", streaming=True, num_workers=0, pretrained="tiny", lora_rank=4,
        gradient_checkpointing=True, ema=False, max_steps=7, epochs=3, batch_size=5, grad_accum=2, lr=0.001,
        warmup_steps=9, mixed_precision="bf16", seed=11, output_dir=str(tmp_path), run_name="mine",
        checkpoint_every=13, keep_checkpoints=4, validate_every=17, sample_every=19, push_to_hub=True,
        hub_model_id="me/jazz", device="cpu", prediction_type="v_prediction", snr_gamma=5.0)
    assert train.FinetuneConfig.from_flags(vars(args)) == expected
    assert train.FinetuneConfig.from_flags({"genre": "Rock", "device": "auto"}).genre == "Rock"
    # every flag reaches the config (a flag with no field of its name would be dropped silently)
    fields = {f.name for f in dataclasses.fields(train.FinetuneConfig)}
    flags = set(vars(script.parse_args([]))) - {"resume"}
    assert flags <= fields | set(train.FLAG_SPELLINGS), flags - fields


def test_output_dir_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    missing_data = str(tmp_path / "no-such-music")  # data loading would fail with another message
    for output_dir, message in ((a_file, "is a file"), (a_file / "runs", "is a file")):
        with pytest.raises(ValueError, match=message) as error:
            train.finetune(tiny_config(tmp_path, data_dir=missing_data, output_dir=str(output_dir)), progress=False)
        assert "--output-dir" in str(error.value)
    assert a_file.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_dir_is_refused_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="not writable"):
            train.finetune(tiny_config(tmp_path, data_dir=str(tmp_path / "no-such-music"),
                                       output_dir=str(locked / "runs")), progress=False)
    finally:
        locked.chmod(0o755)


def test_an_error_before_the_first_step_leaves_no_run_folder(tmp_path, music, monkeypatch):
    from audiodiff import data

    def broken(*args, **kwargs):
        raise ValueError("validation slices failed")

    monkeypatch.setattr(data, "validation_slices", broken)  # runs after the run folder is made
    with pytest.raises(ValueError, match="validation slices failed"):
        train.finetune(tiny_config(tmp_path, run_name="early"), progress=False)
    assert not (tmp_path / "runs" / "early").exists()


# ---- defaults that adapt (DESIGN section 6) ----------------------------------------------------
def test_defaults_fall_back_only_when_the_hub_cannot_be_reached():
    from audiodiff.model_choice import DEFAULT_PRETRAINED
    from audiodiff.pipeline import BUNDLED

    down, up = (lambda: False), (lambda: True)
    plain = train.FinetuneConfig()
    fallen = train.resolve_sources(plain, hub_reachable=down)
    assert (fallen.pretrained, fallen.dataset) == (BUNDLED, "synthetic")
    assert "can't be reached" in fallen.fallback and "--data-dir" in fallen.fallback
    online = train.resolve_sources(plain, hub_reachable=up)
    assert (online.pretrained, online.dataset, online.fallback) == (DEFAULT_PRETRAINED, train.DEFAULT_DATASET, None)
    # a typed model never falls back; only the default dataset does
    typed_model = train.resolve_sources(train.FinetuneConfig(pretrained="me/model"), hub_reachable=down)
    assert (typed_model.pretrained, typed_model.dataset) == ("me/model", "synthetic")
    assert "bundled" not in typed_model.fallback
    # everything typed: the hub is not even probed
    def probe():
        raise AssertionError("probed the hub although every source was given")

    typed = train.resolve_sources(train.FinetuneConfig(pretrained="me/model", data_dir="/music"), hub_reachable=probe)
    assert (typed.pretrained, typed.dataset, typed.fallback) == ("me/model", None, None)


def test_offline_default_run_uses_the_bundled_model_and_says_so(tmp_path, monkeypatch, capsys):
    from audiodiff import model_choice, pipeline

    # a stand-in for the bundled model (the real one is tested in test_bundled.py)
    stand_in = build_preset("tiny", seed=3)
    save_pipeline(stand_in, tmp_path / "bundled")
    monkeypatch.setattr(pipeline, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setattr(model_choice, "hub_is_reachable", lambda *a, **k: False)
    config = train.FinetuneConfig(genre="Jazz", output_dir=str(tmp_path / "runs"), synthetic_clips_per_genre=3,
                                  synthetic_seconds=3.0, max_steps=2, batch_size=2, num_workers=0, device="cpu")
    result = train.finetune(config, progress=False)
    out = capsys.readouterr().out
    assert out.count("can't be reached") == 1 and "bundled base model" in out
    saved = json.loads((result.run_dir / train.CONFIG_FILE).read_text())
    assert saved["pretrained"] == "bundled" and saved["dataset"] == "synthetic" and "bundled" in saved["fallback"]
    assert "Note: the Hugging Face hub can't be reached" in (result.run_dir / "README.md").read_text()
    assert load_pipeline(result.run_dir).mel == stand_in.mel


def test_fallback_without_step_flags_trains_the_fallback_budget(tmp_path, monkeypatch):
    from audiodiff import model_choice, pipeline

    save_pipeline(build_preset("tiny", seed=3), tmp_path / "bundled")
    monkeypatch.setattr(pipeline, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setattr(model_choice, "hub_is_reachable", lambda *a, **k: False)
    monkeypatch.setattr(model_choice, "FALLBACK_MAX_STEPS", 3)
    config = train.FinetuneConfig(genre="rock", output_dir=str(tmp_path / "runs"), synthetic_clips_per_genre=3,
                                  synthetic_seconds=3.0, batch_size=2, num_workers=0, device="cpu")
    result = train.finetune(config, progress=False)
    saved = json.loads((result.run_dir / train.CONFIG_FILE).read_text())
    assert result.steps == 3 and saved["max_steps"] == 3 and saved["lr"] == train.FALLBACK_LR


def test_fallback_keeps_its_learning_rate_when_only_the_length_is_given(tmp_path, monkeypatch):
    from audiodiff import model_choice, pipeline

    save_pipeline(build_preset("tiny", seed=3), tmp_path / "bundled")
    monkeypatch.setattr(pipeline, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setattr(model_choice, "hub_is_reachable", lambda *a, **k: False)
    config = train.FinetuneConfig(genre="rock", output_dir=str(tmp_path / "runs"), max_steps=2)
    resolved, sources = model_choice.with_sources(config, lambda line: None)
    assert sources.fallback and resolved.max_steps == 2 and resolved.lr == train.FALLBACK_LR
    given = model_choice.with_sources(train.FinetuneConfig(genre="rock", output_dir=str(tmp_path / "runs"), max_steps=2, lr=1e-3),
                                     lambda line: None)[0]
    assert given.lr == 1e-3


def torchrun_finetune(args, cwd, processes=2):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
         str(REPO / "scripts" / "finetune.py"), *args, "--pretrained", "tiny", "--num-workers", "0", "--device", "cpu"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_two_processes_each_decode_half_the_tracks_write_once_and_resume_exactly(tmp_path):
    """Scale-out on this machine: 2 CPU processes (torchrun), each decoding its own share of the
    tracks, one writer, one run folder; a run killed after step 2 resumes to the same weights."""
    music = make_music_dir(tmp_path / "music", per_genre=6)  # 6 jazz tracks + a broken file
    args = ["--genre", "jazz", "--data-dir", str(music), "--max-steps", "4", "--batch-size", "1",
            "--checkpoint-every", "2", "--validate-every", "2", "--output-dir", str(tmp_path / "out")]
    done = torchrun_finetune(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "batch 1x1x2" in done.stdout  # two processes, each its own share of every step's batch
    decoded = re.search(r"tracks decoded per process: (\d+), (\d+) \(of (\d+)\)", done.stdout)
    assert decoded and decoded.groups() == ("3", "3", "6"), done.stdout
    runs = list((tmp_path / "out").iterdir())
    assert len(runs) == 1 and (runs[0] / "model_index.json").is_file()
    full = runs[0]
    assert [p.name for p in train.list_checkpoints(full)] == ["step-000002", "step-000004"]
    assert done.stdout.count(str(full)) == 2  # "written to ..." and the final line, from the main process only
    assert json.loads((full / train.CONFIG_FILE).read_text())["num_processes"] == 2

    killed = tmp_path / "killed"
    shutil.copytree(full, killed)
    shutil.rmtree(killed / "checkpoints" / "step-000004")
    for name in ("model_index.json", "unet", "scheduler", "mel", "README.md"):
        path = killed / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    resumed = torchrun_finetune(["--resume", str(killed)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at step 2" in resumed.stdout
    for p, q in zip(load_pipeline(full).unet.parameters(), load_pipeline(killed).unet.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # one process cannot continue a two-process run exactly: said before any data is read
    with pytest.raises(ValueError, match="trained by 2 process.*resume it with 2"):
        train.finetune(train.FinetuneConfig(device="cpu", data_dir=str(tmp_path / "gone")), resume=str(killed), progress=False)


def test_ema_weights_swaps_in_the_average_and_always_restores():
    from diffusers.training_utils import EMAModel

    from audiodiff.train import ema_weights

    layer = torch.nn.Linear(3, 2)
    params = list(layer.parameters())
    ema = EMAModel(params, decay=0.5)
    average = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.add_(1.0)  # training moved on; the EMA still holds the old values
    trained = [p.detach().clone() for p in params]
    with ema_weights(ema, params):
        assert all(torch.equal(p, a) for p, a in zip(params, average))
    assert all(torch.equal(p, t) for p, t in zip(params, trained))
    with pytest.raises(RuntimeError, match="boom"), ema_weights(ema, params):
        raise RuntimeError("boom")
    assert all(torch.equal(p, t) for p, t in zip(params, trained))
    with ema_weights(None, params):  # no EMA: the training weights
        assert all(torch.equal(p, t) for p, t in zip(params, trained))


def test_a_folder_with_fewer_tracks_than_a_batch_still_fills_its_batches(tmp_path):
    """One recording, batch 4: each epoch draws 4 slices of it (at different offsets), not one."""
    from accelerate import Accelerator

    assert train.draws_per_track(1, 8) == 8 and train.draws_per_track(3, 8) == 3 and train.draws_per_track(40, 8) == 1
    music = make_music_dir(tmp_path / "music", seconds=8.0, per_genre=1)
    pipe = build_preset("tiny", seed=0)
    config = train.FinetuneConfig(genre="jazz", data_dir=str(music), output_dir=str(tmp_path / "runs"), batch_size=4,
                                  max_steps=1, num_workers=0, device="cpu")
    data = train._load_training_data(config, pipe.mel, Accelerator(cpu=True), progress=False)
    assert len(data.split.train) == 1 and data.draws_per_track == 4
    batch = next(iter(data.loader))
    batch = batch[0] if isinstance(batch, (list, tuple)) else batch
    assert batch.shape[0] == 4
    slices = batch.reshape(4, -1)
    assert not torch.equal(slices[0], slices[1]) or not torch.equal(slices[1], slices[2])  # different offsets


@pytest.mark.parametrize("name,processes,machines", [
    ("cpu-2proc", 2, 1), ("one-machine-multi-gpu", 2, 1), ("multi-node", 16, 2)])
def test_launch_configurations_load_in_accelerate(name, processes, machines):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "configs" / "accelerate" / f"{name}.yaml"))
    assert (config.num_processes, config.num_machines, config.distributed_type.value) == (processes, machines, "MULTI_GPU")
    assert f"configs/accelerate/{name}.yaml" in (REPO / "README.md").read_text()


def test_auto_precision_is_full_on_cpu_bf16_on_new_gpus_fp16_on_old_ones():
    assert train.FinetuneConfig().mixed_precision == "auto"
    assert train.resolve_mixed_precision("auto", "cpu") == "no"
    assert train.resolve_mixed_precision("auto", "mps") == "no"
    assert train.resolve_mixed_precision("auto", "cuda", capability=(8, 0)) == "bf16"  # A100
    assert train.resolve_mixed_precision("auto", "cuda", capability=(9, 0)) == "bf16"  # H100
    assert train.resolve_mixed_precision("auto", "cuda", capability=(7, 5)) == "fp16"  # T4
    assert train.resolve_mixed_precision("fp16", "cpu") == "fp16"  # an explicit choice is kept
    assert train._device_type(train.FinetuneConfig(device="cpu")) == "cpu"


def test_push_to_hub_uploads_the_pipeline_not_the_checkpoints(tmp_path):
    class FakeApi:
        def __init__(self):
            self.calls = []

        def create_repo(self, repo_id, exist_ok):
            self.calls.append(("create", repo_id, exist_ok))

        def upload_folder(self, **kwargs):
            self.calls.append(("upload", kwargs))

    api = FakeApi()
    url = train.push_to_hub(tmp_path, "me/jazz", api=api)
    assert url.endswith("me/jazz")
    assert api.calls[0] == ("create", "me/jazz", True)
    upload = api.calls[1][1]
    assert upload["repo_id"] == "me/jazz" and upload["folder_path"] == str(tmp_path)
    assert "checkpoints/*" in upload["ignore_patterns"]


@pytest.mark.parametrize("values,message", [
    ({"batch_size": 0}, "batch-size"), ({"mixed_precision": "fp8"}, "mixed-precision"),
    ({"push_to_hub": True}, "hub-model-id"), ({"dataset": "x", "data_dir": "y"}, "not both"),
    ({"run_name": "../x"}, "run-name"), ({"run_name": "/tmp/x"}, "run-name"), ({"run_name": "a/b"}, "run-name"),
    ({"run_name": ".."}, "run-name"), ({"seed": 2**70}, "seed"), ({"seed": -1}, "seed"),
    ({"data_dir": "y", "recording_column": "song_id"}, "recording-column"),
    ({"prediction_type": "sample"}, "prediction-type"), ({"snr_gamma": 0.0}, "snr-gamma"),
])
def test_bad_config_values_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        train.FinetuneConfig(**values)
