"""The hub module: one offline decision, one probe, one error class for models and data sets."""

import huggingface_hub
import pytest

from audiodiff import data, hub, pipeline
from audiodiff.cli import user_errors
from audiodiff.mel import MelConfig


def test_one_error_class_for_models_and_data():
    assert data.HubUnreachableError is hub.HubUnreachableError is pipeline.HubUnreachableError
    error = hub.HubUnreachableError("offline")
    assert isinstance(error, ValueError) and isinstance(error, RuntimeError)  # old `except`s still catch it
    assert any(isinstance(error, kind) for kind in user_errors())  # scripts report it in one line


def test_offline_decision(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert hub.hub_offline() is False and hub.hub_offline(datasets=True) is True
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    assert hub.hub_offline(datasets=True) is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "yes")
    assert hub.hub_offline() is True
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert hub.hub_offline() is True


def test_dataset_and_model_loading_share_the_probe(monkeypatch):
    """Online mode, but the probe gets no answer: the dataset is not looked up, the error says so."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    probes = []
    monkeypatch.setattr(hub, "_probe_endpoint", lambda endpoint, timeout_seconds: probes.append(timeout_seconds) or False)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda *a, **k: pytest.fail("looked up while unreachable"))
    with pytest.raises(hub.HubUnreachableError, match=r"cannot reach the hub for dataset someone/music \(no answer within 5 s\).*--dataset synthetic"):
        data.load_genre("jazz", MelConfig(x_res=16, y_res=16), dataset="someone/music", progress=False)
    assert pipeline.hub_is_reachable() is False
    assert probes == [5.0, 3.0]
