"""Pipelines from the hub, never the network: fail fast offline, the local cache, what a download fetches (split from test_pipeline.py)."""

import http.server
import os
import shutil
import socket
import threading
import time
from types import SimpleNamespace

import huggingface_hub
import pytest
import safetensors.torch
import torch

from audiodiff import hub
from audiodiff import pipeline as pl
from audiodiff.model_choice import DEFAULT_PRETRAINED
from audiodiff.pipeline import (
    HubUnreachableError,
    PipelineError,
    build_preset,
    hub_is_reachable,
    load_pipeline,
    save_pipeline,
)

from test_pipeline import assert_same_weights, edit_json, saved_tiny, to_bin  # test_pipeline's helpers (tests/ is on sys.path)


# ---- the hub (never the network) -----------------------------------------------------------------
@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def assert_offline_message(message):
    for flag in ("--pretrained <folder|preset>", "--dataset synthetic", "--data-dir"):
        assert flag in message


def test_unreachable_hub_fails_fast_offline(empty_hf_cache):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert hub_is_reachable() is False
    start = time.monotonic()
    with pytest.raises(HubUnreachableError) as info:
        load_pipeline(DEFAULT_PRETRAINED)
    assert time.monotonic() - start < 5
    assert_offline_message(str(info.value))


def test_unreachable_hub_fails_fast_when_probe_fails(empty_hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    probes = []
    monkeypatch.setattr(hub, "_probe_endpoint", lambda endpoint, timeout: probes.append(endpoint) or False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda *a, **k: pytest.fail("went online"))
    start = time.monotonic()
    with pytest.raises(HubUnreachableError) as info:
        load_pipeline("someone/some-model")
    assert time.monotonic() - start < 5 and len(probes) == 1
    assert_offline_message(str(info.value))


def test_hub_id_loads_from_local_cache_when_offline(empty_hf_cache, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = empty_hf_cache / "models--someone--cached-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    pipe = build_preset("tiny", seed=5)
    save_pipeline(pipe, repo / "snapshots" / commit)
    loaded = load_pipeline("someone/cached-model")
    assert loaded.source == "someone/cached-model"
    assert_same_weights(pipe.unet, loaded.unet)


class FakeHub:
    """An online hub served from local folders: records what was asked for, copies what matches."""

    def __init__(self, repos, cache):
        self.repos, self.cache, self.requests = repos, cache, []

    def list_repo_files(self, repo_id, **_):
        if repo_id not in self.repos:
            response = SimpleNamespace(headers={}, request=None, status_code=404)
            raise huggingface_hub.errors.RepositoryNotFoundError(f"{repo_id} not found", response=response)
        return [p.relative_to(self.repos[repo_id]).as_posix() for p in self.repos[repo_id].rglob("*") if p.is_file()]

    def snapshot_download(self, repo_id, allow_patterns=None, local_files_only=False, **_):
        import fnmatch

        assert not local_files_only
        self.requests.append(list(allow_patterns))
        target = self.cache / repo_id.replace("/", "--")
        for name in self.list_repo_files(repo_id):
            if any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(self.repos[repo_id] / name, target / name)
        return str(target)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    hub = FakeHub({}, tmp_path / "downloads")
    monkeypatch.setattr(pl, "hub_is_reachable", lambda timeout_seconds=3.0: True)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", hub.list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    return hub


def test_hub_download_fetches_only_pipeline_files(tmp_path, fake_hub):
    # like the course's default model: a pickled .bin only, and TensorBoard logs beside it
    pipe, remote = saved_tiny(tmp_path, "remote-bin")
    to_bin(remote)
    (remote / "logs").mkdir()
    (remote / "logs" / "events.out.tfevents").write_bytes(b"x" * 100)
    fake_hub.repos["teticio/like-default"] = remote
    loaded = load_pipeline("teticio/like-default")
    assert_same_weights(pipe.unet, loaded.unet)
    downloaded = fake_hub.cache / "teticio--like-default"
    assert not (downloaded / "logs").exists()
    assert fake_hub.requests[-1] == pl.HUB_METADATA_PATTERNS + ["unet/diffusion_pytorch_model.bin"]

    # with safetensors in the repository, a .bin beside it is never fetched
    pipe2, remote2 = saved_tiny(tmp_path, "remote-st", seed=1)
    torch.save({"unused": torch.zeros(1)}, remote2 / "unet" / "diffusion_pytorch_model.bin")
    safetensors.torch.save_file({"unused": torch.zeros(1)}, remote2 / "unet" / "diffusion_pytorch_model.fp16.safetensors")
    fake_hub.repos["someone/with-safetensors"] = remote2
    assert_same_weights(pipe2.unet, load_pipeline("someone/with-safetensors").unet)
    fetched = {p.name for p in (fake_hub.cache / "someone--with-safetensors" / "unet").iterdir()}
    assert fetched == {"config.json", "diffusion_pytorch_model.safetensors"}


def test_hub_latent_model_fetches_its_vae_and_nothing_else(latent_folder, fake_hub):
    pipe, remote = latent_folder("tiny-latent")  # .bin weights, legacy mel entry
    (remote / "logs").mkdir()
    (remote / "logs" / "events.out.tfevents").write_bytes(b"x" * 100)
    fake_hub.repos["teticio/like-latent"] = remote
    loaded = load_pipeline("teticio/like-latent")
    assert_same_weights(pipe.vqvae, loaded.vqvae)
    assert fake_hub.requests[-1] == pl.HUB_METADATA_PATTERNS + ["unet/diffusion_pytorch_model.bin",
                                                               "vqvae/diffusion_pytorch_model.bin"]
    assert not (fake_hub.cache / "teticio--like-latent" / "logs").exists()


def test_hub_model_of_an_unknown_kind_refused_before_weights(tmp_path, fake_hub):
    _, remote = saved_tiny(tmp_path, "remote")
    edit_json(remote / "model_index.json", vqvae=["diffusers", "VQModel"])
    fake_hub.repos["someone/latent"] = remote
    with pytest.raises(PipelineError, match="latent pipelines need an AutoencoderKL"):
        load_pipeline("someone/latent")
    assert len(fake_hub.requests) == 1  # the metadata only
    assert not list((fake_hub.cache / "someone--latent").rglob("*.safetensors"))
    with pytest.raises(PipelineError, match="not a model on the Hugging Face hub"):
        load_pipeline("someone/missing")


def test_hub_probe_against_local_servers(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)  # any answer means the server is there
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert hub_is_reachable(2.0, endpoint=f"http://127.0.0.1:{server.server_port}") is True
    finally:
        server.shutdown()
        server.server_close()

    with socket.socket() as closed:  # a port nobody listens on: refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert hub_is_reachable(2.0, endpoint=f"http://127.0.0.1:{port}") is False

    with socket.socket() as silent:  # accepts connections, never answers: the timeout decides
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        assert hub_is_reachable(0.5, endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}") is False
        assert time.monotonic() - start < 2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "_probe_endpoint", lambda *a: pytest.fail("probed while offline"))
    assert hub_is_reachable() is False
