import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff import train
from audiodiff.mel import MelConfig, audio_to_images
from audiodiff.pipeline import build_preset, load_pipeline, save_pipeline

REPO = Path(__file__).resolve().parents[1]


def make_music_dir(root: Path, sample_rate: int = 16000, seconds: float = 3.0, per_genre: int = 4) -> Path:
    """DIR/<genre>/*.wav: 'jazz' = soft chords, 'rock' = loud pulses of noise; a broken file among them."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for genre in ("jazz", "rock"):
        (root / genre).mkdir(parents=True)
        for i in range(per_genre):
            if genre == "jazz":
                f = 110.0 * (1 + i / 7)
                audio = sum(0.2 * np.sin(2 * np.pi * f * k * t) / k for k in (1, 1.25, 1.5, 1.875))
            else:
                audio = 0.4 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0)
            sf.write(root / genre / f"{genre}{i}.wav", audio.astype(np.float32), sample_rate)
    (root / "jazz" / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    return root


def killed_copy(run_dir: Path, last_checkpoint: str) -> Path:
    """A copy of a finished run as a kill before `last_checkpoint` would have left it: no final
    pipeline, no last checkpoint (beside it, named "killed")."""
    killed = run_dir.parent / "killed"
    shutil.copytree(run_dir, killed)
    shutil.rmtree(killed / "checkpoints" / last_checkpoint)
    for name in ("model_index.json", "unet", "scheduler", "mel", "README.md"):
        path = killed / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return killed


def tiny_config(tmp_path, **overrides) -> train.FinetuneConfig:
    values = dict(genre="jazz", pretrained="tiny", data_dir=str(tmp_path / "music"), output_dir=str(tmp_path / "runs"),
                  max_steps=6, batch_size=2, checkpoint_every=3, validate_every=3, sample_every=1000,
                  num_workers=0, warmup_steps=1, lr=1e-3, device="cpu", validation_fraction=0.25)
    values.update(overrides)
    return train.FinetuneConfig(**values)


@pytest.fixture
def music(tmp_path):
    return make_music_dir(tmp_path / "music")


def test_loss_goes_down_when_overfitting_one_batch():
    pipe = build_preset("tiny", seed=0)
    mel = pipe.mel
    t = torch.arange(mel.slice_samples) / mel.sample_rate
    audio = torch.stack([0.5 * torch.sin(2 * torch.pi * f * t) for f in (220.0, 330.0, 440.0, 550.0)])
    images = audio_to_images(audio, mel)
    optimizer = torch.optim.AdamW(pipe.unet.parameters(), lr=2e-3)
    losses = []
    for step in range(40):
        # the same noise and timesteps every step: a fixed regression target the model can fit
        loss, _, _ = train.diffusion_loss(pipe.unet, pipe.scheduler, images, torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5]), losses


class Oracle(torch.nn.Module):
    """A "UNet" that outputs a fixed answer: exactly the target of one objective."""

    def __init__(self, answer):
        super().__init__()
        self.answer = answer

    def forward(self, x, t):
        return dataclasses.make_dataclass("Out", ["sample"])(self.answer)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_the_loss_targets_what_the_scheduler_says_the_model_predicts(kind):
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=kind)
    images, noise = torch.rand(4, 1, 8, 8) * 2 - 1, torch.randn(4, 1, 8, 8)
    timesteps = torch.tensor([10, 300, 700, 990])
    answers = {"epsilon": noise, "v_prediction": scheduler.get_velocity(images, noise, timesteps), "sample": images}
    for answer_kind, answer in answers.items():
        loss, _, _ = train.diffusion_loss(Oracle(answer), scheduler, images, None, timesteps, noise=noise)
        assert (loss.item() < 1e-10) == (answer_kind == kind), (kind, answer_kind, loss.item())


def test_min_snr_weights_follow_the_formula_and_spare_the_clean_end():
    from diffusers import DDPMScheduler

    images, noise = torch.zeros(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    timesteps = torch.tensor([0, 500, 999])
    for kind in ("epsilon", "v_prediction"):
        scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=kind)
        alpha_bar = scheduler.alphas_cumprod[timesteps]
        snr = alpha_bar / (1 - alpha_bar)
        _, weight = train._target_and_weight(scheduler, images, noise, timesteps, 5.0)
        expected = snr.clamp(max=5.0) / (snr + 1 if kind == "v_prediction" else snr)
        assert torch.allclose(weight, expected.float())
        assert weight[0] < 0.01  # the nearly clean end weighs little
        assert kind == "v_prediction" or torch.isclose(weight[2], torch.tensor(1.0))  # the noisy end in full
        assert train._target_and_weight(scheduler, images, noise, timesteps, None)[1] is None


def test_a_preset_trains_velocity_from_scratch_and_a_trained_model_keeps_its_target(tmp_path, music):
    result = train.finetune(tiny_config(tmp_path, max_steps=2, prediction_type="v_prediction", snr_gamma=5.0),
                            progress=False)
    assert load_pipeline(result.run_dir).scheduler.config.prediction_type == "v_prediction"
    assert all(np.isfinite(result.losses))
    # fine-tuning it: the model's own target by default, and asking for another is refused before any work
    again = train.finetune(tiny_config(tmp_path, max_steps=1, pretrained=str(result.run_dir)), progress=False)
    assert load_pipeline(again.run_dir).scheduler.config.prediction_type == "v_prediction"
    with pytest.raises(ValueError, match="trained with v_prediction"):
        train.finetune(tiny_config(tmp_path, max_steps=1, pretrained=str(result.run_dir), prediction_type="epsilon"),
                       progress=False)


def test_finetune_writes_a_pipeline_that_loads_here_and_in_diffusers(tmp_path, music):
    result = train.finetune(tiny_config(tmp_path), progress=False)
    run_dir = result.run_dir
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.startswith("jazz-")
    assert result.steps == 6 and len(result.losses) == 6 and all(np.isfinite(result.losses))
    ours = load_pipeline(run_dir)
    base = build_preset("tiny", seed=0)
    assert ours.mel == base.mel
    # the weights moved away from the base model
    moved = sum((a - b).abs().sum().item() for a, b in zip(ours.unet.parameters(), base.unet.parameters()))
    assert moved > 0
    from diffusers.pipelines.deprecated import AudioDiffusionPipeline

    theirs = AudioDiffusionPipeline.from_pretrained(run_dir)
    for a, b in zip(ours.unet.parameters(), theirs.unet.parameters()):
        assert torch.equal(a, b)
    card = (run_dir / "README.md").read_text()
    assert "tiny" in card and "jazz" in card.lower() and "6 (batch 2" in card and "generate.py --model" in card
    saved = json.loads((run_dir / train.CONFIG_FILE).read_text())
    assert saved["genre"] == "jazz" and saved["max_steps"] == 6
    # the base's weights are fingerprinted, so that a later comparison knows if "tiny"/"bundled" changed
    from audiodiff.pipeline import weights_sha256

    assert saved["pretrained_weights_sha256"] == weights_sha256(base.unet) != weights_sha256(ours.unet)
    # --mixed-precision auto (the default) means full precision on the CPU, and says so
    assert saved["mixed_precision"] == "auto" and saved["mixed_precision_used"] == "no"
    assert "| mixed precision | no (chosen by --mixed-precision auto) |" in card
    assert [p.name for p in train.list_checkpoints(run_dir)] == ["step-000003", "step-000006"]
    assert list((run_dir / "logs").rglob("events.out.tfevents*")), "no TensorBoard log"
    # a second run never overwrites the first
    second = train.finetune(tiny_config(tmp_path, max_steps=1, checkpoint_every=1), progress=False)
    assert second.run_dir != run_dir and (run_dir / "model_index.json").exists()


def test_resumed_run_matches_an_uninterrupted_one(tmp_path, music):
    full = train.finetune(tiny_config(tmp_path, run_name="full"), progress=False)
    # pretend the run was killed after step 3: resume from that checkpoint of a copy of the run
    killed = killed_copy(full.run_dir, "step-000006")
    resumed = train.finetune(tiny_config(tmp_path), resume=str(killed), progress=False)
    assert resumed.run_dir == killed and resumed.steps == 6
    np.testing.assert_allclose(resumed.losses, full.losses[3:], rtol=1e-5, atol=1e-7)
    a, b = load_pipeline(full.run_dir), load_pipeline(killed)
    for p, q in zip(a.unet.parameters(), b.unet.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        assert torch.equal(p, q)  # the same arithmetic in the same order: byte-identical EMA weights
    # the loss history survives the resume: the model card averages all 6 steps, as the full run's does
    assert card_loss(killed) == card_loss(full.run_dir) == f"{np.mean(full.losses):.4f}"
    history = json.loads((train.list_checkpoints(killed)[-1] / train.STATE_FILE).read_text())["loss_history"]
    np.testing.assert_allclose(history, full.losses, rtol=1e-5, atol=1e-7)


def card_loss(run_dir: Path) -> str:
    """The model card's "final training loss" cell."""
    line = next(x for x in (run_dir / "README.md").read_text().splitlines() if x.startswith("| final training loss"))
    return line.rstrip(" |").rsplit("|", 1)[1].strip()


def test_resume_from_the_last_checkpoint_keeps_the_loss_history(tmp_path, music):
    """A kill during the final pipeline save: resuming from the last checkpoint trains no step, and
    the model card still reports the run's final loss (not n/a)."""
    import shutil

    full = train.finetune(tiny_config(tmp_path, run_name="full", max_steps=3, validate_every=1000), progress=False)
    killed = tmp_path / "runs" / "killed"
    shutil.copytree(full.run_dir, killed)
    for name in ("model_index.json", "unet", "scheduler", "mel", "README.md"):
        path = killed / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    # what the kill left: the final save's staging folder (its process is gone), an unfinished checkpoint
    from audiodiff.pipeline import staging_folder

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = staging_folder(killed, pid=int(gone.stdout))
    (stale / "unet").mkdir(parents=True)
    (killed / "checkpoints" / ".tmp-step-000004").mkdir()
    resumed = train.finetune(tiny_config(tmp_path, max_steps=3), resume=str(killed), progress=False)
    assert resumed.steps == 3 and resumed.losses == []
    assert not stale.exists() and not (killed / "checkpoints" / ".tmp-step-000004").exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["full", "killed"]
    assert card_loss(killed) == card_loss(full.run_dir) == f"{np.mean(full.losses):.4f}"
    a, b = load_pipeline(full.run_dir), load_pipeline(killed)
    assert all(torch.equal(p, q) for p, q in zip(a.unet.parameters(), b.unet.parameters()))


def test_resume_pushes_only_where_this_command_line_says(tmp_path, music, monkeypatch):
    """A shared run folder's training_config.json cannot make a plain --resume upload (issue 25)."""
    pushed = []
    monkeypatch.setattr(train, "push_to_hub", lambda run_dir, repo_id: pushed.append(repo_id))
    first = train.finetune(tiny_config(tmp_path, max_steps=2, checkpoint_every=1, validate_every=1000), progress=False)
    saved_path = first.run_dir / train.CONFIG_FILE
    saved = json.loads(saved_path.read_text())
    saved.update(push_to_hub=True, hub_model_id="someone/else", output_dir="/somewhere/else")
    saved_path.write_text(json.dumps(saved))
    resumed = train.finetune(tiny_config(tmp_path, max_steps=3), resume=str(first.run_dir), progress=False)
    assert resumed.steps == 3 and pushed == []
    assert not Path("/somewhere/else").exists()
    train.finetune(tiny_config(tmp_path, max_steps=4, push_to_hub=True, hub_model_id="me/mine"),
                   resume=str(first.run_dir), progress=False)
    assert pushed == ["me/mine"]


def test_training_stops_at_the_first_nan_loss_keeping_the_good_checkpoints(tmp_path, music, monkeypatch):
    real = train.diffusion_loss
    calls = []

    def fails_at_step_3(*args, **kwargs):
        calls.append(1)
        loss, per_item, timesteps = real(*args, **kwargs)
        return (loss * float("nan") if len(calls) == 3 else loss), per_item, timesteps

    monkeypatch.setattr(train, "diffusion_loss", fails_at_step_3)
    with pytest.raises(train.TrainingDiverged, match=r"the loss became nan at step 3.*step-000002"):
        train.finetune(tiny_config(tmp_path, run_name="nan", max_steps=6, checkpoint_every=2), progress=False)
    run_dir = tmp_path / "runs" / "nan"
    assert [p.name for p in train.list_checkpoints(run_dir)] == ["step-000002"]
    assert not (run_dir / "model_index.json").exists()  # no pipeline of NaN weights
    monkeypatch.setattr(train, "diffusion_loss", real)
    resumed = train.finetune(tiny_config(tmp_path, max_steps=4), resume=str(run_dir), progress=False)
    assert resumed.steps == 4 and all(np.isfinite(resumed.losses))


@pytest.mark.parametrize("poison", ["weights", "learning rate"])
def test_a_checkpoint_holding_nan_is_refused_at_resume(tmp_path, music, poison):
    from safetensors.torch import load_file, save_file

    from audiodiff import checkpoint as checkpoint_io

    first = train.finetune(tiny_config(tmp_path, max_steps=2, checkpoint_every=2), progress=False)
    latest = train.list_checkpoints(first.run_dir)[-1]
    if poison == "weights":
        state = load_file(latest / checkpoint_io.MODEL_FILE)
        state = {k: v.fill_(float("inf")) if i == 0 else v for i, (k, v) in enumerate(state.items())}
        save_file(state, latest / checkpoint_io.MODEL_FILE)
    else:
        saved = json.loads((latest / checkpoint_io.STATE_FILE).read_text())
        saved["optimizer"]["param_groups"][0]["lr"] = float("nan")
        (latest / checkpoint_io.STATE_FILE).write_text(json.dumps(saved))
    with pytest.raises(checkpoint_io.CheckpointError, match="refusing to resume .*(NaN or infinite|is nan)"):
        train.finetune(tiny_config(tmp_path, max_steps=3), resume=str(first.run_dir), progress=False)


def test_a_run_folder_is_trained_by_one_process_at_a_time(tmp_path, music):
    """A second --resume of a run still training is refused in one line naming the holder; a lock
    left by a dead process is taken over (issue 25)."""
    from audiodiff.checkpoint import LOCK_FILE, RunInUse

    first = train.finetune(tiny_config(tmp_path, max_steps=2, checkpoint_every=2), progress=False)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from audiodiff.checkpoint import RunLock; "
                               "RunLock().take(sys.argv[1]); print('held', flush=True); time.sleep(60)", str(first.run_dir)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = sorted(p.name for p in first.run_dir.rglob("*"))
        with pytest.raises(RunInUse, match=f"being trained by process {holder.pid} on "):
            train.finetune(tiny_config(tmp_path, max_steps=3), resume=str(first.run_dir), progress=False)
        assert sorted(p.name for p in first.run_dir.rglob("*")) == before  # nothing touched
        done = run_script(["--resume", str(first.run_dir), "--max-steps", "3", "--num-workers", "0"], cwd=tmp_path)
        assert done.returncode == 2 and f"process {holder.pid}" in done.stderr and "Traceback" not in done.stderr
    finally:
        holder.kill()
        holder.wait()
    resumed = train.finetune(tiny_config(tmp_path, max_steps=3), resume=str(first.run_dir), progress=False)
    assert resumed.steps == 3 and (first.run_dir / LOCK_FILE).is_file()


@pytest.fixture
def checkpointed(tmp_path, music):
    """A finished tiny run with checkpoints at steps 1 and 2."""
    return train.finetune(tiny_config(tmp_path, max_steps=2, checkpoint_every=1, validate_every=1000),
                          progress=False).run_dir


@pytest.mark.parametrize("damage,message", [
    ("fifo", "not a regular file"), ("step_huge", "its step"), ("step_negative", "its step"),
    ("step_other", "its step"), ("nested_state", "RecursionError"), ("config_list", "JSON object of settings"),
    ("config_types", "settings that can't be used"), ("checkpoints_link", "symbolic link"),
])
def test_a_damaged_run_folder_is_one_line_within_a_second(tmp_path, checkpointed, damage, message):
    """Only regular files inside the run are opened; steps, names and settings are checked (issue 25)."""
    import time

    from audiodiff import checkpoint as checkpoint_io

    latest = train.list_checkpoints(checkpointed)[-1]
    state_path = latest / checkpoint_io.STATE_FILE
    state = json.loads(state_path.read_text())
    if damage == "fifo":
        (latest / checkpoint_io.EMA_FILE).unlink()
        os.mkfifo(latest / checkpoint_io.EMA_FILE)
    elif damage.startswith("step_"):
        state["step"] = {"step_huge": 10**18, "step_negative": -5, "step_other": 1}[damage]
        state_path.write_text(json.dumps(state))
    elif damage == "nested_state":
        state_path.write_text("[" * 100000 + "]" * 100000)
    elif damage == "config_list":
        (checkpointed / train.CONFIG_FILE).write_text("[1, 2]")
    elif damage == "config_types":
        saved = json.loads((checkpointed / train.CONFIG_FILE).read_text())
        (checkpointed / train.CONFIG_FILE).write_text(json.dumps({**saved, "batch_size": "abc"}))
    else:
        outside = tmp_path / "elsewhere"
        shutil.move(checkpointed / train.CHECKPOINTS, outside)
        (checkpointed / train.CHECKPOINTS).symlink_to(outside)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        train.finetune(tiny_config(tmp_path, max_steps=3), resume=str(checkpointed), progress=False)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("part", ["optimizer", "ema", "num_processes"])
def test_mismatched_optimiser_ema_or_process_count_is_one_line_before_training(tmp_path, checkpointed, part):
    from safetensors.torch import load_file, save_file

    from audiodiff import checkpoint as checkpoint_io

    latest = train.list_checkpoints(checkpointed)[-1]
    if part == "num_processes":
        saved = json.loads((checkpointed / train.CONFIG_FILE).read_text())
        (checkpointed / train.CONFIG_FILE).write_text(json.dumps({**saved, "num_processes": "abc"}))
        message = "num_processes must be a positive integer"
    else:
        name = checkpoint_io.OPTIMIZER_FILE if part == "optimizer" else checkpoint_io.EMA_FILE
        tensors = load_file(latest / name)
        key = next(k for k, v in tensors.items() if v.dim() > 1)
        tensors[key] = torch.zeros(3, 5)
        save_file(tensors, latest / name)
        message = "shape" if part == "optimizer" else "EMA tensors of other shapes"
    with pytest.raises(checkpoint_io.CheckpointError, match=message):
        train.finetune(tiny_config(tmp_path, max_steps=3), resume=str(checkpointed), progress=False)


def test_fuzzed_checkpoint_states_raise_only_one_line_errors(tmp_path, checkpointed):
    """Random and extreme values in trainer_state.json: a resume either works or is refused in one
    line (a ValueError), in bounded time: never another exception or a hang (issue 25)."""
    import random
    import time

    from audiodiff import checkpoint as checkpoint_io

    latest = train.list_checkpoints(checkpointed)[-1]
    original = (latest / checkpoint_io.STATE_FILE).read_text()
    extremes = [None, -1, 0, 10**30, 1e308, float("nan"), "abc", [], {}, [1, 2], {"a": 1}, True, 2.5]
    rng = random.Random(0)

    def paths(value, prefix=()):
        if isinstance(value, dict):
            for key, item in value.items():
                yield from paths(item, (*prefix, key))
        elif isinstance(value, list) and value and len(value) < 20:
            for index, item in enumerate(value):
                yield from paths(item, (*prefix, index))
        yield prefix

    state = json.loads(original)
    candidates = [p for p in paths(state) if p and p[0] not in ("rng", "loss_history", "config")]
    start = time.perf_counter()
    for trial in range(8):
        damaged = json.loads(original)
        where = rng.choice(candidates)
        target = damaged
        for key in where[:-1]:
            target = target[key]
        target[where[-1]] = rng.choice(extremes)
        (latest / checkpoint_io.STATE_FILE).write_text(json.dumps(damaged))
        try:
            train.finetune(tiny_config(tmp_path, max_steps=3, checkpoint_every=1000), resume=str(checkpointed),
                           progress=False)
        except ValueError:
            pass
        (latest / checkpoint_io.STATE_FILE).write_text(original)
        for extra in train.list_checkpoints(checkpointed)[2:]:
            shutil.rmtree(extra)
    assert time.perf_counter() - start < 120


def test_stray_folders_beside_checkpoints_and_lone_checkpoints(tmp_path, checkpointed):
    (checkpointed / train.CHECKPOINTS / "step-best").mkdir()
    (checkpointed / train.CHECKPOINTS / "step-best" / train.STATE_FILE).write_text("{}")
    assert [p.name for p in train.list_checkpoints(checkpointed)] == ["step-000001", "step-000002"]
    lone = tmp_path / "lone"
    shutil.copytree(train.list_checkpoints(checkpointed)[-1], lone)
    with pytest.raises(ValueError, match="not inside a run's checkpoints/ folder"):
        train.finetune(tiny_config(tmp_path, max_steps=3), resume=str(lone), progress=False)
    resumed = train.finetune(tiny_config(tmp_path, max_steps=3), resume="latest", progress=False)
    assert resumed.steps == 3


def test_interrupted_checkpoint_never_becomes_latest(tmp_path, music, monkeypatch):
    from audiodiff import checkpoint

    real_write = checkpoint.write_checkpoint
    calls = {"n": 0}

    def dying_write(folder, **kwargs):
        calls["n"] += 1
        real_write(folder, **kwargs)
        if calls["n"] == 2:  # the kill arrives while the second checkpoint is being written
            raise KeyboardInterrupt("killed mid-checkpoint")

    monkeypatch.setattr(checkpoint, "write_checkpoint", dying_write)
    with pytest.raises(KeyboardInterrupt):
        train.finetune(tiny_config(tmp_path, run_name="dying"), progress=False)
    run_dir = tmp_path / "runs" / "dying"
    assert [p.name for p in train.list_checkpoints(run_dir)] == ["step-000003"]
    assert not (run_dir / "model_index.json").exists()
    assert train.find_resume_checkpoint("latest", tmp_path / "runs").name == "step-000003"


class Poison:
    """Unpickling this creates `marker`: stands for any code a shared checkpoint could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoints_hold_no_pickle_and_a_poisoned_one_is_never_unpickled(tmp_path, music):
    import pickle

    result = train.finetune(tiny_config(tmp_path, max_steps=3, validate_every=1000), progress=False)
    checkpoint = train.list_checkpoints(result.run_dir)[-1]
    # safetensors for tensors, JSON for everything else, nothing else anywhere in the run folder
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "ema.safetensors", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]
    assert not [p for p in result.run_dir.rglob("*") if p.suffix in (".pkl", ".bin", ".pt", ".pth")]
    state = json.loads((checkpoint / train.STATE_FILE).read_text())
    assert state["step"] == 3 and len(state["loss_history"]) == 3 and state["config"]["seed"] == 0
    # someone plants a pickle (accelerate's name for the LR-schedule state) in the shared run folder
    marker = tmp_path / "pwned"
    (checkpoint / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(Poison(marker)))
    with pytest.raises(ValueError, match="pickle"):
        train.finetune(tiny_config(tmp_path, max_steps=6), resume=str(result.run_dir), progress=False)
    assert not marker.exists()


def old_pickled_checkpoint(root: Path, marker: Path) -> Path:
    """A run folder as older audiodiff wrote it (accelerate's save_state), its pickle poisoned."""
    import pickle

    checkpoint = root / "old" / "checkpoints" / "step-000003"
    checkpoint.mkdir(parents=True)
    (root / "old" / train.CONFIG_FILE).write_text(json.dumps({"genre": "jazz", "pretrained": "tiny"}))
    (checkpoint / train.STATE_FILE).write_text(json.dumps({"step": 3, "time": 0.0}))
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"):
        (checkpoint / name).write_bytes(pickle.dumps(Poison(marker)))
    return checkpoint


def test_old_pickled_checkpoint_is_refused_in_one_line_by_the_script(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = old_pickled_checkpoint(tmp_path / "runs", marker)
    done = run_script(["--resume", str(checkpoint), "--output-dir", str(tmp_path / "runs")], cwd=tmp_path, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "pickle" in done.stderr and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    with pytest.raises(ValueError, match="pickle"):  # --resume latest finds it, and refuses it too
        train.finetune(train.FinetuneConfig(output_dir=str(tmp_path / "runs")), resume="latest", progress=False)
    assert not marker.exists()


def test_a_two_track_folder_trains_on_both_tracks(tmp_path):
    """Two recordings: the end of each is held out, not one whole recording (which left one to train on)."""
    make_music_dir(tmp_path / "music", per_genre=2)
    result = train.finetune(tiny_config(tmp_path, max_steps=2, batch_size=2, validate_every=2), progress=False)
    split = json.loads((result.run_dir / train.SPLIT_FILE).read_text())
    assert split["held_out_by"] == "time_range"
    assert split["training_recordings"] == split["held_out_recordings"] == ["jazz/jazz0.wav", "jazz/jazz1.wav"]
    slice_seconds = load_pipeline("tiny").mel.slice_seconds  # 3 s tracks: 25 % is 0.75 s < one 1.02 s image
    for held in split["held_out"]:
        assert held["end_seconds"] == pytest.approx(3.0)
        assert held["start_seconds"] == pytest.approx(3.0 - slice_seconds, abs=1e-3)
    assert "the last part of each of 2 recordings held out" in (result.run_dir / "README.md").read_text()
    assert result.steps == 2 and all(np.isfinite(result.losses))


def test_validation_loss_spread_over_processes_equals_the_one_process_loss():
    pipe = build_preset("tiny", seed=0)
    mel = pipe.mel
    t = torch.arange(mel.slice_samples) / mel.sample_rate
    images = audio_to_images(torch.stack([0.4 * torch.sin(2 * torch.pi * f * t) for f in (200.0, 310.0, 450.0)]), mel)
    whole = train.validation_loss(pipe.unet, None, None, pipe.scheduler, images)
    # process 0 holds slices 0 and 2, process 1 slice 1; the stub "all-reduce" adds the other's sums
    sums = {}
    first = train.validation_loss(pipe.unet, None, None, pipe.scheduler, images[[0, 2]], rows=[0, 2], total_rows=3,
                                  reduce_sum=lambda x: sums.setdefault("zero", x.clone()))
    shared = train.validation_loss(pipe.unet, None, None, pipe.scheduler, images[[1]], rows=[1], total_rows=3,
                                   reduce_sum=lambda x: x + sums["zero"])
    assert shared == pytest.approx(whole, rel=1e-5) and first != pytest.approx(whole, rel=1e-3)
    empty = train.validation_loss(pipe.unet, None, None, pipe.scheduler, images[:0], rows=[], total_rows=3,
                                  reduce_sum=lambda x: x + sums["zero"])  # a process with no held-out slice
    assert empty == pytest.approx(first, rel=1e-6)


def test_non_default_mel_config_survives_finetuning(tmp_path, music):
    base = build_preset("tiny", seed=1)
    base.mel = MelConfig(**{**base.mel.to_dict(), "top_db": 60, "n_iter": 7})
    save_pipeline(base, tmp_path / "base")
    result = train.finetune(tiny_config(tmp_path, pretrained=str(tmp_path / "base"), max_steps=2), progress=False)
    assert MelConfig.from_pretrained(result.run_dir) == base.mel


def test_lora_finetune_saves_a_plain_merged_unet(tmp_path, music):
    result = train.finetune(tiny_config(tmp_path, lora_rank=2, max_steps=3, lr=1e-2), progress=False)
    tuned = load_pipeline(result.run_dir)
    keys = tuned.unet.state_dict().keys()
    assert not any("lora" in k for k in keys)
    base = build_preset("tiny", seed=0)
    assert keys == base.unet.state_dict().keys()
    assert any(not torch.equal(a, b) for a, b in zip(tuned.unet.parameters(), base.unet.parameters()))


def test_lora_run_resumes_exactly(tmp_path, music):
    values = dict(lora_rank=2, max_steps=4, checkpoint_every=2, validate_every=1000, lr=1e-2)
    full = train.finetune(tiny_config(tmp_path, run_name="full", **values), progress=False)
    checkpoint = train.list_checkpoints(full.run_dir)[0]
    assert any("lora_" in k for k in safetensors_keys(checkpoint / "model.safetensors"))  # adapters, unmerged
    killed = killed_copy(full.run_dir, "step-000004")
    resumed = train.finetune(tiny_config(tmp_path, **values), resume=str(killed), progress=False)
    assert resumed.losses == full.losses[2:]
    a, b = load_pipeline(full.run_dir), load_pipeline(killed)
    assert all(torch.equal(p, q) for p, q in zip(a.unet.parameters(), b.unet.parameters()))


def safetensors_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return list(f.keys())


def run_script(args, cwd, timeout=300):
    # PYTHONPATH: this checkout's library, whichever checkout the environment's audiodiff came from
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "finetune.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
