"""scripts/encode.py and audiodiff.encode/encoder: encodings per track for conditional fine-tuning,
with a tiny random encoder and audio written by the test."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.cli import run
from audiodiff.conditioning import read_track_encodings
from audiodiff.data.sources import load_genre
from audiodiff.encode import encode_folder, encode_track, slice_images
from audiodiff.encoder import WEIGHTS_NAME, build_encoder, load_encoder
from audiodiff.errors import GenerationError
from audiodiff.mel import MelConfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "encode.py"
MEL = MelConfig(x_res=32, y_res=16, sample_rate=8000, n_fft=128, hop_length=64)  # 0.26 s slices
SIZE = 12


def _load_script():
    spec = importlib.util.spec_from_file_location("encode_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, seconds: float, seed: int, sample_rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = 0.3 * np.sin(2 * np.pi * (200 + 150 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(path, audio.astype(np.float32), sample_rate)
    return path


@pytest.fixture
def encoder_dir(tmp_path):
    folder = tmp_path / "encoder"
    build_encoder(SIZE, MEL, block_out_channels=(4, 8)).save_pretrained(folder)
    return folder


@pytest.fixture
def music(tmp_path):
    root = tmp_path / "music"
    _write(root / "jazz" / "a.wav", 1.5, 0)
    _write(root / "jazz" / "sub" / "b.flac", 1.2, 1, sample_rate=11025)  # resampled to the Mel's rate
    _write(root / "rock" / "c.wav", 1.0, 2)
    _write(root / "top.wav", 1.1, 3)
    return root


def test_encoder_folder_is_safetensors_and_round_trips(encoder_dir):
    assert sorted(p.name for p in encoder_dir.iterdir()) == ["config.json", WEIGHTS_NAME]
    loaded = load_encoder(encoder_dir)
    assert loaded.encoding_size == SIZE and loaded.mel == MEL
    images = torch.rand(3, 1, MEL.y_res, MEL.x_res) * 2 - 1
    torch.testing.assert_close(loaded(images), build_encoder(SIZE, MEL, block_out_channels=(4, 8))(images))
    (encoder_dir / WEIGHTS_NAME).rename(encoder_dir / "diffusion_pytorch_model.bin")  # a pickle is never read
    with pytest.raises(GenerationError, match="safetensors"):
        load_encoder(encoder_dir)


def test_track_encoding_is_the_mean_of_its_slices(encoder_dir):
    encoder = load_encoder(encoder_dir)
    audio = torch.from_numpy(sf.read(_write(encoder_dir.parent / "x.wav", 1.0, 5))[0].astype(np.float32))
    images = slice_images(audio, MEL)  # 8000 samples = 3 slices of 2047 + a tail of 1859 (kept: > half)
    assert images.shape == (4, 1, MEL.y_res, MEL.x_res)
    encoding, count = encode_track(encoder, audio, MEL, batch_size=3)  # batches of 3 and 1: same mean
    assert count == 4 and encoding.shape == (SIZE,)
    with torch.no_grad():
        torch.testing.assert_close(encoding, encoder(images).mean(dim=0))
    assert slice_images(audio[:2047 + 500], MEL).shape[0] == 1  # a short tail is left out


def test_keys_are_finetune_track_names_and_plug_into_its_reader(encoder_dir, music, tmp_path):
    output = tmp_path / "out" / "enc.safetensors"
    result = encode_folder(encoder_dir, music, output, progress=False)
    assert result.output == output and result.tracks == 4 and not result.skipped

    from safetensors.torch import load_file

    tensors = load_file(output)
    finetune_names = [track.name for track in load_genre(None, MEL, data_dir=music, progress=False).tracks]
    assert sorted(tensors) == sorted(finetune_names) == ["jazz/a.wav", "jazz/sub/b.flac", "rock/c.wav", "top.wav"]
    assert all(v.shape == (SIZE,) and v.dtype == torch.float32 and torch.isfinite(v).all() for v in tensors.values())
    assert min(torch.dist(a, b) for i, a in enumerate(tensors.values())
               for b in list(tensors.values())[i + 1:]) > 0  # distinct audio, distinct encodings

    encodings = read_track_encodings(output, SIZE)  # what finetune.py --encoding calls
    jazz = [track.name for track in load_genre("jazz", MEL, data_dir=music, progress=False).tracks]
    assert set(encodings.for_tracks(jazz)) == {"jazz/a.wav", "jazz/sub/b.flac"}
    torch.testing.assert_close(encodings.for_tracks(finetune_names)["rock/c.wav"], tensors["rock/c.wav"])
    with pytest.raises(GenerationError, match="cross_attention_dim"):
        read_track_encodings(output, SIZE + 1)


def test_unreadable_files_are_skipped_and_counted(encoder_dir, tmp_path, capsys):
    flat = tmp_path / "flat"
    _write(flat / "good.wav", 1.0, 0)
    (flat / "broken.wav").write_bytes(b"not audio")
    (flat / "notes.txt").write_text("not a track")
    output = tmp_path / "enc.safetensors"
    run(lambda: _load_script().main(["--encoder", str(encoder_dir), "--input", str(flat), "--output", str(output),
                                     "--no-progress", "--seconds-per-slice", "0.5"]))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("skipped 1 unreadable file(s)") and "broken.wav" in lines[0]
    assert "wrote 1 encodings of 12 numbers (2 slices)" in lines[1]  # 0.5 s slices of 1 s
    assert list(read_track_encodings(output, SIZE).by_name) == ["good.wav"]


def _bad_input_cases(tmp_path, encoder_dir, music):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no audio")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.wav").write_bytes(b"junk")
    pipeline = tmp_path / "pipeline"
    MEL.save_pretrained(pipeline / "mel")
    (pipeline / "unet").mkdir()
    (pipeline / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": SIZE + 88}))
    taller = tmp_path / "taller-mel"
    MelConfig(x_res=32, y_res=64, sample_rate=8000, n_fft=256, hop_length=64).save_pretrained(taller)
    return {
        "missing input": (["--input", str(tmp_path / "nowhere")], "does not exist"),
        "no audio": (["--input", str(empty)], "no audio files"),
        "nothing decodes": (["--input", str(broken)], "could be decoded"),
        "missing encoder": (["--encoder", str(tmp_path / "no-encoder")], "encoder folder"),
        "size against pipeline": (["--mel", str(pipeline)], f"reads {SIZE + 88} (cross_attention_dim)"),
        "other image height": (["--mel", str(taller)], "64 high"),
        "not safetensors": (["--output", str(tmp_path / "enc.npy")], ".safetensors file"),
        "slice too short": (["--seconds-per-slice", "0.01"], "--seconds-per-slice"),
    }


@pytest.mark.parametrize("case", ["missing input", "no audio", "nothing decodes", "missing encoder",
                                  "size against pipeline", "other image height", "not safetensors", "slice too short"])
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, encoder_dir, music, capsys):
    extra, message = _bad_input_cases(tmp_path, encoder_dir, music)[case]
    args = {"--encoder": str(encoder_dir), "--input": str(music), "--output": str(tmp_path / "out.safetensors")}
    args.update(dict(zip(extra[::2], extra[1::2])))
    argv = [item for pair in args.items() for item in pair] + ["--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        run(lambda: _load_script().main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out.safetensors").exists()


def test_script_writes_then_refuses_to_overwrite(encoder_dir, music, tmp_path):
    output = tmp_path / "enc.safetensors"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(SCRIPT), "--encoder", str(encoder_dir), "--input", str(music),
               "--output", str(output)]
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert f"wrote 4 encodings of {SIZE} numbers" in first.stdout and str(output) in first.stdout
    written = output.read_bytes()
    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines()[-1] == f"error: {output} exists; it is never overwritten: give another --output"
    assert output.read_bytes() == written and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    help_text = subprocess.run([sys.executable, str(SCRIPT), "--help"], env=env, capture_output=True, text=True,
                               timeout=300).stdout
    for flag in ("--encoder", "--input", "--output", "--mel", "--seconds-per-slice", "--batch-size", "--no-progress"):
        assert flag in help_text


def test_encodings_condition_a_conditional_finetune(latent_folder, tmp_path):
    """The whole path: a conditional pipeline's Mel and size, encode.py's file, finetune.py --encoding."""
    import dataclasses

    from audiodiff import train
    from test_train import make_music_dir

    base, folder = latent_folder("tiny-conditional-latent")
    dim = base.unet.config.cross_attention_dim
    build_encoder(dim, base.mel, block_out_channels=(4, 8)).save_pretrained(tmp_path / "enc8")
    music = make_music_dir(tmp_path / "music")  # with a broken file, skipped by both
    result = encode_folder(tmp_path / "enc8", music, tmp_path / "enc.safetensors", mel_source=folder, progress=False)
    assert result.tracks == 8 and [name for name, _ in result.skipped] == ["jazz/broken.wav"]
    wrong = build_encoder(dim + 1, base.mel, block_out_channels=(4, 8))
    wrong.save_pretrained(tmp_path / "enc9")
    with pytest.raises(GenerationError, match=f"reads {dim} \\(cross_attention_dim\\)"):
        encode_folder(tmp_path / "enc9", music, tmp_path / "other.safetensors", mel_source=folder, progress=False)
    config = train.FinetuneConfig(genre="jazz", pretrained=str(folder), data_dir=str(music), output_dir=str(tmp_path / "runs"),
                                  max_steps=2, batch_size=2, checkpoint_every=2, validate_every=2, sample_every=100,
                                  num_workers=0, warmup_steps=1, lr=1e-3, device="cpu", validation_fraction=0.25)
    run_result = train.finetune(dataclasses.replace(config, encoding=str(result.output)), progress=False)
    assert run_result.steps == 2 and all(np.isfinite(run_result.losses))
