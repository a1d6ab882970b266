"""Which model (and data) a job uses when none is named: DESIGN section 6, defaults that adapt,
never silently.

Generation (`resolve_model`): the latest fine-tuned run, else the course's hub model, else, when the
hub can't be reached, the bundled base model. Fine-tuning (`resolve_sources`, `with_sources`): the
course's hub model and dataset, else, offline, the bundled model and the built-in genre set on a
fixed step budget. A model or data set the user named never falls back. A fallback is said in one
line that is printed and recorded (the clip's JSON sidecar, the run's configuration and model card).

Cheap to import (train.py imports it at start): pipeline and data are imported inside the functions.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import GenerationError
from .finetune_config import DEFAULT_DATASET, FinetuneConfig
from .hub import HubUnreachableError, hub_is_reachable

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


@dataclass(frozen=True)
class Sources:
    pretrained: str
    dataset: str | None
    fallback: str | None  # the one-line notice when the defaults fell back to the bundled model, else None


def resolve_sources(config: FinetuneConfig, hub_reachable=None) -> Sources:
    """Which model and data a run uses (DESIGN section 6).

    The defaults are the course's hub model and dataset. When the hub can't be reached (no network
    or HF_HUB_OFFLINE=1, decided within seconds) a default falls back to the bundled base model /
    the built-in genre set, with a notice; a value the user typed never falls back (an unreachable
    hub id given explicitly fails fast with a message on how to work offline).
    """
    from .data import SYNTHETIC
    from .pipeline import BUNDLED

    default_model = config.pretrained is None
    default_data = config.dataset is None and config.data_dir is None
    pretrained = config.pretrained or DEFAULT_PRETRAINED
    dataset = config.dataset if not default_data else (None if config.data_dir else DEFAULT_DATASET)
    if not (default_model or default_data):
        return Sources(pretrained, dataset, None)
    if (hub_reachable or hub_is_reachable)():
        return Sources(pretrained, dataset, None)
    used = []
    if default_model:
        pretrained = BUNDLED
        used.append(f"the bundled base model instead of {DEFAULT_PRETRAINED}")
    if default_data:
        dataset = SYNTHETIC
        used.append(f"the built-in synthetic genre set instead of {DEFAULT_DATASET}")
    notice = (f"the Hugging Face hub can't be reached (offline), so this run uses {' and '.join(used)}; "
              f"for real music pass --pretrained <hub id|folder> and --dataset <hub id> or --data-dir DIR")
    return Sources(pretrained, dataset, notice)


# On the bundled model (1.02 s images, 2 M parameters) an "epoch" of one slice per track is tiny,
# so a fallback run without --max-steps/--epochs trains a fixed budget instead: 300 steps of batch 8
# at a learning rate suited to a small model (2e-4) moves it clearly toward the genre and takes a
# few minutes on a 2-core CPU. The learning rate holds whenever the fallback trains the bundled
# model and --lr is not given, also when --max-steps/--epochs set the length (before, asking for
# more steps silently dropped it to DEFAULT_LR, 5e-5, a rate meant for the 114 M hub UNet).
FALLBACK_MAX_STEPS = 300
FALLBACK_LR = 2e-4


def with_sources(config: FinetuneConfig, say) -> tuple[FinetuneConfig, Sources]:
    """The configuration with the model and data this run uses written in (resolve_sources), and the
    fallback's step budget when the defaults fell back offline."""
    sources = resolve_sources(config)
    if sources.fallback:
        say(sources.fallback)
        if config.max_steps is None and config.epochs is None:
            config = dataclasses.replace(config, max_steps=FALLBACK_MAX_STEPS)
        if config.lr is None:
            config = dataclasses.replace(config, lr=FALLBACK_LR)
    # Saved with the run: a resumed run uses the same model and data whatever the network does.
    return dataclasses.replace(config, pretrained=sources.pretrained, dataset=sources.dataset), sources
