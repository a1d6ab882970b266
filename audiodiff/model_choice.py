"""Which model a generation uses when none is named: DESIGN section 6, defaults that adapt, never
silently.

`resolve_model`: the latest fine-tuned run, else the course's hub model, else, when the hub can't
be reached, the bundled base model, said in one line that is printed and recorded in the clip's
JSON sidecar. A model the user named never falls back.

pipeline is imported inside the function: importing this module stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import GenerationError
from .hub import HubUnreachableError

DEFAULT_PRETRAINED = "teticio/audio-diffusion-instrumental-hiphop-256"


def resolve_model(model: str | os.PathLike | None, *, runs_dir: str | os.PathLike | None = None, device=None):
    """Load the pipeline to generate with -> (AudioDiffusion, how it was chosen).

    None: the most recent fine-tuned run under `runs_dir` (default runs/), else the course's
    pretrained hub model; when that can't be reached either (offline), the bundled base model,
    with a notice that is printed and recorded in the JSON sidecar (DESIGN section 6).
    """
    from .pipeline import BUNDLED, DEFAULT_RUNS_DIR, PipelineError, latest_run, load_pipeline

    runs_dir = Path(runs_dir) if runs_dir is not None else DEFAULT_RUNS_DIR
    if model is None:
        run = latest_run(runs_dir)
        if run is not None:
            return load_pipeline(run, device=device), f"latest fine-tuned run ({run})"
        try:
            return load_pipeline(DEFAULT_PRETRAINED, device=device), f"default pretrained model (no run under {runs_dir}/)"
        except HubUnreachableError:
            notice = (f"no fine-tuned run under {runs_dir}/ and the hub can't be reached (offline), so this uses the "
                      f"bundled base model instead of {DEFAULT_PRETRAINED}; run `python scripts/finetune.py --genre jazz` "
                      f"first for a genre, or pass --model <pipeline folder|preset>")
            try:
                return load_pipeline(BUNDLED, device=device), notice
            except PipelineError as exc:
                raise GenerationError(
                    f"no model to generate with: there is no fine-tuned run under {runs_dir}/, the default pretrained "
                    f"model {DEFAULT_PRETRAINED} can't be reached and {exc}. Run `python scripts/finetune.py "
                    f"--genre jazz` first, or pass --model <pipeline folder|preset> (e.g. --model tiny)."
                ) from exc
    try:
        return load_pipeline(model, device=device), "given"
    except HubUnreachableError as exc:
        raise HubUnreachableError(
            f"can't load model {os.fspath(model)!r}: it is not a local folder or preset, and as a hub id it can't be "
            f"fetched (the hub can't be reached and it is not cached). Pass --model <pipeline folder|preset>."
        ) from exc
