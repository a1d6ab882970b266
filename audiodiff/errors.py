"""GenerationError, the error of a generation request, in a module of its own: clip files, the
choice of device and model, generation and the edits all raise it, and raising it imports nothing
heavy (clipfiles.py reads PNGs without pulling in diffusers)."""

from __future__ import annotations


class GenerationError(ValueError):
    """A generation request that can't be carried out; the message says what to do. Raised by the
    choice of the model and device to generate with (model_choice.py, device.py), by generate.py and
    the edits for the rest of a request, and by clipfiles.py for a clip that can't be read."""
