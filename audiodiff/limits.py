"""How much work one request may ask for: the upper bounds that `generate()`, `compare_models()`
(scripts/generate.py, scripts/evaluate.py) and the app check before any model work.

A request beyond them is refused at once with one sentence that names the limit and how to raise
it, instead of sampling for hours or running out of memory after minutes (issue 14: `--seconds
1e9` sampled for minutes; `--batch-size 10000` ran at 4.6 GB; one API call with seconds=1e9
blocked the app's queue for everyone). Raise them with environment variables, e.g.
`AUDIODIFF_MAX_SECONDS=1200` for 20 minutes of audio per request.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

ENV_MAX_SECONDS = "AUDIODIFF_MAX_SECONDS"
ENV_MAX_BATCH_SIZE = "AUDIODIFF_MAX_BATCH_SIZE"

# Seconds of audio one request makes, all its clips together (seconds x clips): 10 minutes, a
# long track for a musician, or e.g. 8 clips of 75 s. The whole clip's phase is reconstructed at
# once, so memory grows with it: on the public 256 models' Mel (22.05 kHz, n_fft 2048) decoding
# 120 s peaked at +556 MB (measured on CPU), ~4.6 MB per second of audio, so ~2.8 GB at the
# limit, which a 4-8 GB GPU or a laptop still holds. Sampling time grows with it too: 600 s is
# ~136 slices of the public model (5.94 s slices, 1.5 s overlap), 6800 UNet calls at 50 steps.
DEFAULT_MAX_SECONDS = 600.0
# Clips sampled at once: the public 256 UNet holds ~370 MB of activations per batch item in a
# forward pass (fp32; measured on CPU: +489 MB at batch 1, +1.6 GB at batch 4), so 64 is ~24 GB,
# a large GPU's worth; small models (bundled, tiny) need a fraction of that.
DEFAULT_MAX_BATCH_SIZE = 64


class LimitError(ValueError):
    """A request for more work than the limits allow; the message says how to raise them."""


def _read(environ: Mapping[str, str], name: str, default, kind):
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not (math.isfinite(value) and value > 0):
        raise LimitError(f"environment variable {name} must be a positive number, got {text!r}")
    return value


@dataclass(frozen=True)
class RequestLimits:
    """max_seconds: seconds of audio per request (seconds x clips); max_batch_size: clips at once."""

    max_seconds: float = DEFAULT_MAX_SECONDS
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "RequestLimits":
        """The defaults, or AUDIODIFF_MAX_SECONDS / AUDIODIFF_MAX_BATCH_SIZE when set."""
        environ = os.environ if environ is None else environ
        return cls(max_seconds=float(_read(environ, ENV_MAX_SECONDS, DEFAULT_MAX_SECONDS, float)),
                   max_batch_size=int(_read(environ, ENV_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_SIZE, int)))

    def check(self, *, seconds: float | None, clips: int = 1, batch_size: int = 1) -> None:
        """Raise LimitError when `clips` clips of `seconds` each (None: nothing to check), made
        `batch_size` at a time, are more than the limits allow."""
        if batch_size > self.max_batch_size:
            raise LimitError(
                f"batch size {batch_size} is more than the limit of {self.max_batch_size} clips at once; use a smaller "
                f"batch (several runs with different seeds make more clips), or raise the limit with the environment "
                f"variable {ENV_MAX_BATCH_SIZE}={batch_size}")
        if seconds is None:
            return
        total = seconds * clips
        if total > self.max_seconds:
            asked = f"{seconds:g} s" if clips == 1 else f"{clips} clips of {seconds:g} s = {total:g} s"
            raise LimitError(
                f"this request asks for {asked} of audio, more than the limit of {self.max_seconds:g} s per request "
                f"({self.max_seconds / 60:g} min); ask for less, or raise the limit with the environment variable "
                f"{ENV_MAX_SECONDS} (e.g. {ENV_MAX_SECONDS}=1200 for 20 minutes)")
