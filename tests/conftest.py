"""Shared fixtures: audio made in the test, never files from the repository or the network."""

import os
import subprocess
import warnings

import numpy as np
import pytest
import torch

# Tests never touch the network: the hub is unreachable by construction.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)
# One thread: the tests' models are tiny, and on a small shared CI machine torch's thread pool
# fighting other processes costs far more than a second thread gains.
torch.set_num_threads(1)

SAMPLE_RATE = 22050


def tone(freq, seconds, sample_rate=SAMPLE_RATE, amplitude=0.5):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_signals(seconds=5.9, sample_rate=SAMPLE_RATE, seed=0):
    """Named signals that exercise the codec: tones, noise, chords, transients, near-silence, silence."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    chord = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63, 415.3))
    clicks = np.zeros(n)
    clicks[:: sample_rate // 4] = 0.9
    decay = np.exp(-np.arange(n) % (sample_rate // 4) / (0.02 * sample_rate))
    transients = clicks + 0.5 * decay * rng.standard_normal(n)
    sweep = 0.4 * np.sin(2 * np.pi * (60 * t + (4000 - 60) / (2 * seconds) * t**2))
    return {
        "tone": tone(440.0, seconds, sample_rate),
        "bass": tone(55.0, seconds, sample_rate, 0.8),
        "noise": (0.3 * rng.standard_normal(n)).astype(np.float32),
        "chord": chord.astype(np.float32),
        "transients": np.clip(transients, -1, 1).astype(np.float32),
        "sweep": sweep.astype(np.float32),
        "near_silence": (1e-5 * rng.standard_normal(n)).astype(np.float32),
        "silence": np.zeros(n, dtype=np.float32),
    }


@pytest.fixture
def signals():
    return make_signals()


class not_writable:
    """`with not_writable(folder):` the folder can't be written to. chmod makes it read-only; as
    root (which ignores modes) it is made immutable with chattr; where neither works, the test skips."""

    def __init__(self, folder):
        self.folder, self.immutable = folder, False

    def __enter__(self):
        self.folder.chmod(0o555)
        if os.access(self.folder, os.W_OK):
            self.immutable = subprocess.run(["chattr", "+i", str(self.folder)], capture_output=True).returncode == 0
            if not self.immutable or os.access(self.folder, os.W_OK):
                self.__exit__()
                pytest.skip("can't make a folder read-only here (root without chattr)")
        return self.folder

    def __exit__(self, *exc):
        if self.immutable:
            subprocess.run(["chattr", "-i", str(self.folder)], check=True)
            self.immutable = False
        self.folder.chmod(0o755)


# ---- latent and conditional pipelines laid out like the hub's ---------------------------------
OLD_ATTENTION_NAMES = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def hub_like(folder, mel_entry=("audiodiffusion.mel", "Mel")):
    """Rewrite a saved pipeline folder as the public latent checkpoints are laid out: pickled .bin
    weights (the VAE's attention under its pre-0.14 names, as 2022 diffusers saved it) and a legacy
    `mel` entry in model_index.json."""
    import json

    import safetensors.torch

    for part in ("unet", "vqvae"):
        safetensors_path = folder / part / "diffusion_pytorch_model.safetensors"
        if not safetensors_path.is_file():
            continue
        state = safetensors.torch.load_file(safetensors_path)
        if part == "vqvae":
            renamed = {}
            for key, value in state.items():
                for new, old in OLD_ATTENTION_NAMES.items():
                    if ".attentions." in key and f".{new}." in key:
                        key = key.replace(f".{new}.", f".{old}.")
                renamed[key] = value
            state = renamed
        safetensors_path.unlink()
        torch.save(state, folder / part / "diffusion_pytorch_model.bin")
    index = json.loads((folder / "model_index.json").read_text())
    index["mel"] = list(mel_entry)
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


@pytest.fixture
def latent_folder(tmp_path):
    """`latent_folder(preset="tiny-latent", seed=0, **hub_like options)` -> (pipeline, folder): a tiny
    random-weight latent (or conditional, "tiny-conditional-latent") pipeline saved under tmp_path
    in the hub's layout."""
    from audiodiff.latent_presets import build_latent_preset
    from audiodiff.pipeline import save_pipeline

    def make(preset="tiny-latent", seed=0, name=None, **options):
        pipe = build_latent_preset(preset, seed=seed)
        folder = save_pipeline(pipe, tmp_path / (name or f"{preset}-{seed}"))
        return pipe, hub_like(folder, **options)

    return make
