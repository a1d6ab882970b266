"""The device to generate on: CUDA when there is one, else the CPU; a device that can't be used
is refused with a sentence that says what to pass instead."""

from __future__ import annotations

import torch

from .errors import GenerationError


def pick_device(device: str | None) -> torch.device:
    """None or "auto": CUDA when available, else CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise GenerationError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if chosen.type not in ("cpu", "cuda", "mps"):  # e.g. "meta": tensors without data, no audio could come out
        raise GenerationError(f"can't generate on device {device!r}; use auto, cpu, cuda or cuda:N")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise GenerationError(f"--device {device} asked for Apple's MPS, which is not available here; use --device cpu")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise GenerationError(f"--device {device} asked for CUDA, but no CUDA GPU is available; use --device cpu")
    return chosen
