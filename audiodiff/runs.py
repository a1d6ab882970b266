"""A fine-tuning run's folder: what it holds, a fresh one for a new run, its checkpoints, where a
resumed run starts, and what kills left in it.

What a run leaves in its folder (`runs/<genre>-<timestamp>/`):
    checkpoints/step-000500/   full training state (model, EMA, optimiser, LR schedule, RNG, step,
                               loss history) as safetensors + JSON, no pickle (checkpoint.py);
                               written under a temporary name and renamed when complete, so a kill
                               at any moment leaves the previous checkpoint as the latest one
    logs/                      TensorBoard: loss (and per timestep quarter), lr, validation loss at
                               fixed timesteps and noise, generated audio and spectrograms
    training_config.json       this run's configuration (a resumed run reads it back), the precision
                               --mixed-precision auto chose and the number of processes
    validation_split.json      exactly what was held out for validation: recordings, time ranges
    model_index.json, unet/, scheduler/, mel/, README.md
                               the fine-tuned pipeline (EMA weights), written last
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import checkpoint as checkpoint_io
from .finetune_config import FinetuneConfig
from .staging import clean_stale_staging

CHECKPOINTS = "checkpoints"
STATE_FILE = checkpoint_io.STATE_FILE
CONFIG_FILE = "training_config.json"
SPLIT_FILE = "validation_split.json"  # exactly what was held out: recording ids and time ranges


def new_run_dir(output_dir: str | Path, genre: str | None, run_name: str | None = None) -> Path:
    """A fresh folder for a run; never an existing one (a suffix is added instead)."""
    root = Path(output_dir)
    base = run_name or f"{(genre or 'all').lower().replace(' ', '-')}-{datetime.now():%Y%m%d-%H%M%S}"
    candidate, n = root / base, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    candidate.mkdir(parents=True)
    return candidate


CHECKPOINT_NAME = re.compile(r"step-\d{6,9}")


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders of an interrupted write are ignored)."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    if folder.is_symlink():  # saving and pruning would happen outside the run (issue 25)
        raise checkpoint_io.CheckpointError(f"{folder} is a symbolic link; a run's checkpoints must be a real folder "
                                            f"inside it")
    done = [p for p in folder.iterdir() if CHECKPOINT_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
            and (p / STATE_FILE).is_file()]  # a stray step-best or a link is not a checkpoint
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def find_resume_checkpoint(resume: str, output_dir: str | Path) -> Path:
    """`latest` -> the newest checkpoint of the newest run under output_dir; a run folder -> its newest
    checkpoint; a checkpoint folder -> itself."""
    if resume == "latest":
        runs = [p for p in Path(output_dir).glob("*") if list_checkpoints(p)] if Path(output_dir).is_dir() else []
        if not runs:
            raise FileNotFoundError(f"--resume latest: no run with a checkpoint under {output_dir}")
        newest = max(runs, key=lambda p: list_checkpoints(p)[-1].stat().st_mtime)
        return list_checkpoints(newest)[-1]
    path = Path(resume)
    if (path / STATE_FILE).is_file():
        return path
    checkpoints = list_checkpoints(path)
    if not checkpoints:
        raise FileNotFoundError(f"--resume {resume}: not a run folder with checkpoints, nor a checkpoint folder")
    return checkpoints[-1]


def _read_saved_config(run_dir: Path) -> dict:
    """A resumed run's training_config.json: a JSON object, or one line saying what is wrong."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise checkpoint_io.CheckpointError(f"{run_dir} has no {CONFIG_FILE}: resume a run folder (or a checkpoint "
                                            f"inside one's {CHECKPOINTS}/ folder)")
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise checkpoint_io.CheckpointError(f"can't read {path}: {type(exc).__name__}") from None
    if not isinstance(saved, dict):
        raise checkpoint_io.CheckpointError(f"{path} does not hold a JSON object of settings")
    return saved


OUTSIDE_EFFECTS = ("push_to_hub", "hub_model_id", "output_dir")  # fields a resume takes from the command line only


@dataclass(frozen=True)
class RunStart:
    """Where a run starts: a new run from the configuration given, or (a resume) a checkpoint of a run
    folder, with the configuration saved there (only max_steps can be raised on the command line)."""

    config: FinetuneConfig
    checkpoint: Path | None = None
    run_dir: Path | None = None
    saved: dict = dataclasses.field(default_factory=dict)  # the resumed run's training_config.json

    @classmethod
    def find(cls, config: FinetuneConfig, resume: str | None) -> "RunStart":
        if not resume:
            return cls(config)
        checkpoint = find_resume_checkpoint(resume, config.output_dir)
        checkpoint_io.check_loadable(checkpoint)  # a pickled (old or tampered) checkpoint: refused before any work
        if checkpoint.parent.name != CHECKPOINTS:  # a lone checkpoint folder: its run is not two folders up
            raise checkpoint_io.CheckpointError(f"{checkpoint} is not inside a run's {CHECKPOINTS}/ folder; resume "
                                                f"the run folder it came from")
        run_dir = checkpoint.parent.parent
        saved = _read_saved_config(run_dir)
        # The training state comes from the folder; what acts outside it (an upload, where output
        # goes) only from this command line: a shared run folder must not push to someone's hub (issue 25)
        here = {name: getattr(config, name) for name in OUTSIDE_EFFECTS}
        try:
            config = FinetuneConfig.from_dict({**saved, **here, "max_steps": config.max_steps or saved.get("max_steps")})
        except (TypeError, ValueError) as exc:  # wrong types or values written into the folder's settings
            raise checkpoint_io.CheckpointError(f"{run_dir / CONFIG_FILE} holds settings that can't be used: "
                                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        return cls(config, checkpoint, run_dir, saved)

    def check_processes(self, num_processes: int) -> None:
        """Each process trained on its own share of the tracks, so only as many processes continue exactly."""
        if self.checkpoint is None or self.config.streaming:
            return
        trained_by = self.saved.get("num_processes", 1)
        if isinstance(trained_by, bool) or not isinstance(trained_by, int) or trained_by < 1:
            raise checkpoint_io.CheckpointError(f"{self.run_dir / CONFIG_FILE}: num_processes must be a positive "
                                                f"integer, got {trained_by!r}")
        if trained_by != num_processes:
            raise ValueError(f"{self.run_dir} was trained by {trained_by} process(es), each on its own share of the "
                             f"tracks; resume it with {trained_by} (e.g. torchrun --nproc_per_node {trained_by}) to "
                             f"continue exactly")


def clean_leftovers(folder: Path, resumed: bool) -> None:
    """What kills left behind: staging folders of final pipeline saves (in --output-dir, or the resumed
    run's), and the resumed run's unfinished checkpoint folders (never the latest complete one)."""
    folder = Path(folder)
    if not resumed:
        clean_stale_staging(folder)
        return
    clean_stale_staging(folder.parent, folder.name)
    checkpoints = folder / CHECKPOINTS
    for temporary in checkpoints.glob(".tmp-step-*") if checkpoints.is_dir() else []:
        shutil.rmtree(temporary, ignore_errors=True)
