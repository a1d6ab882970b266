"""The Hugging Face hub: whether it can be reached, decided within seconds, and the one error for "it can't".

Models (pipeline.py) and data sets (data/sources.py) both start from the hub by default and both
fall back, or fail with a message on how to work offline, when it is out of reach (DESIGN section 6).
The offline decision, the probe and the error live here so the two can't drift apart.

huggingface_hub is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request

__all__ = ["HubUnreachableError", "env_true", "hub_is_reachable", "hub_offline"]


class HubUnreachableError(ValueError, RuntimeError):
    """The Hugging Face hub (or the model / dataset on it) can't be reached: offline, no network,
    or HF_HUB_OFFLINE=1, and nothing usable is in the local cache.

    A ValueError (a user error: the scripts report it in one line) and a RuntimeError (what model
    loading raised before the two kinds were one). Callers that chose a hub id themselves (a
    default) may catch this and fall back; an id the user named should surface the message.
    """


def env_true(name: str) -> bool:
    """Whether environment variable `name` is set to a true value (1, on, yes, true)."""
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline(*, datasets: bool = False) -> bool:
    """Whether offline mode is on: HF_HUB_OFFLINE (environment or huggingface_hub's constant),
    and with `datasets=True` also HF_DATASETS_OFFLINE."""
    import huggingface_hub

    if env_true("HF_HUB_OFFLINE") or bool(huggingface_hub.constants.HF_HUB_OFFLINE):
        return True
    return datasets and env_true("HF_DATASETS_OFFLINE")


def _probe_endpoint(endpoint: str, timeout_seconds: float) -> bool:
    """True when `endpoint` answers an HTTP request (any status) within `timeout_seconds`.

    Runs in a daemon thread joined with the timeout, because name resolution is not covered
    by socket timeouts and can block far longer on a machine without a network.
    """
    answered = threading.Event()

    def probe():
        request = urllib.request.Request(endpoint.rstrip("/") + "/", method="HEAD")
        try:
            urllib.request.urlopen(request, timeout=timeout_seconds).close()
            answered.set()
        except urllib.error.HTTPError:  # the server answered, with an error status: reachable
            answered.set()
        except Exception:  # noqa: BLE001 - DNS, refused, TLS, timeout: all mean unreachable
            pass

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_seconds)
    return answered.is_set()


def hub_is_reachable(timeout_seconds: float = 3.0, *, endpoint: str | None = None, datasets: bool = False) -> bool:
    """Whether the Hugging Face hub answers: False at once in offline mode (see `hub_offline`),
    else one quick probe of `endpoint` (default: huggingface_hub's)."""
    import huggingface_hub

    if hub_offline(datasets=datasets):
        return False
    return _probe_endpoint(endpoint or huggingface_hub.constants.ENDPOINT, timeout_seconds)
