"""Training checkpoints as safe to open as pipelines: safetensors for tensors, JSON for the rest.

A run folder gets shared (copied to a cluster, sent to a colleague), and `--resume` opens what is
in it, so a checkpoint must not be able to run code: nothing here is ever unpickled, and a
checkpoint holding pickle files (what accelerate's `save_state` wrote, and what older audiodiff
versions wrote) is refused before anything is read.

One checkpoint folder (`checkpoints/step-000500/`):
    model.safetensors       the UNet's state dict (with its LoRA adapters, unmerged, on a LoRA run)
    optimizer.safetensors   the optimiser's per-parameter tensors, named state.<index>.<name>
    ema.safetensors         the EMA's shadow weights, named shadow.<index> (absent without EMA)
    trainer_state.json      format and version, step, loss history, optimiser parameter groups,
                            LR-schedule state, EMA counters, gradient-scaler state, the RNG states
                            of every process, and the run's configuration; written last

train.py writes these files into a temporary folder and renames it, so a folder named step-N is
complete. Writing is the main process's job; every process takes part in collecting RNG states.

A run folder is trained by one process (group) at a time: RunLock holds an advisory lock on its
`.lock` file for the whole run (the kernel drops it when the process dies, so a dead run's lock is
simply taken over).
"""

from __future__ import annotations

import json
import math
import os
import socket
import random
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

FORMAT = "audiodiff-checkpoint"
VERSION = 1
STATE_FILE = "trainer_state.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
EMA_FILE = "ema.safetensors"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt")


LOCK_FILE = ".lock"
MAX_STEP = 10**9 - 1  # step-NNNNNN folder names hold up to nine digits


class RunInUse(ValueError):
    """Another live process is training this run folder."""


class RunLock:
    """The advisory lock (flock) on a run folder's `.lock`, naming its holder's PID and host inside."""

    def __init__(self):
        self.fd: int | None = None

    def take(self, folder: Path) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            return
        path = Path(folder) / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunInUse(f"{folder} is being trained by {holder}; wait for it to finish (or stop it), then "
                           f"--resume it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock; the file stays, unlocked
            self.fd = None


class CheckpointError(ValueError):
    """A checkpoint that can't (or must not) be resumed from; the message says why and what to do."""


# ---- RNG states: plain JSON values -----------------------------------------------------------------
def rng_state() -> dict:
    """This process's Python, NumPy and torch (CPU, and CUDA when in use) RNG states as JSON values."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    try:
        version, internal, gauss = state["python"]
        random.setstate((int(version), tuple(int(x) for x in internal), None if gauss is None else float(gauss)))
        kind, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((str(kind), np.asarray(keys, dtype=np.uint32), int(position), int(has_gauss), float(cached)))
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
        if "cuda" in state and torch.cuda.is_available():
            cuda = state["cuda"]
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in cuda])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"the checkpoint's RNG state is malformed ({type(exc).__name__}: {exc})") from exc


# ---- writing ----------------------------------------------------------------------------------------
def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    # detached CPU copies: safetensors refuses tensors that share memory or are not contiguous
    safetensors.torch.save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, path,
                                metadata={"format": "pt"})


def write_checkpoint(folder: Path, *, unet: torch.nn.Module, optimizer, lr_scheduler, ema, grad_scaler, step: int,
                     loss_history: list[float], rng_states: list[dict], config: dict) -> None:
    """Write a full training state into `folder` (an existing, empty folder); trainer_state.json last.

    `unet` is the bare model (unwrapped from DDP); `rng_states` holds one rng_state() per process.
    """
    folder = Path(folder)
    _save_tensors(unet.state_dict(), folder / MODEL_FILE)

    optimizer_state = optimizer.state_dict()
    tensors, values = {}, {}
    for index, per_parameter in optimizer_state["state"].items():
        for name, value in per_parameter.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value
            else:
                values.setdefault(str(index), {})[name] = value
    _save_tensors(tensors, folder / OPTIMIZER_FILE)

    ema_values = None
    if ema is not None:
        ema_state = ema.state_dict()
        _save_tensors({f"shadow.{i}": p for i, p in enumerate(ema_state.pop("shadow_params"))}, folder / EMA_FILE)
        ema_values = {k: v for k, v in ema_state.items() if not isinstance(v, torch.Tensor)}

    state = {
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "loss_history": [float(x) for x in loss_history],
        "optimizer": {"param_groups": optimizer_state["param_groups"], "values": values},
        "lr_scheduler": {k: v for k, v in lr_scheduler.state_dict().items() if k != "lr_lambdas"},
        "ema": ema_values,
        "grad_scaler": grad_scaler.state_dict() if grad_scaler is not None else None,
        "rng": rng_states,
        "config": config,
    }
    # json refuses anything that is not a plain value: a state that would need pickle fails here, loudly
    (folder / STATE_FILE).write_text(json.dumps(state) + "\n")


# ---- reading ----------------------------------------------------------------------------------------
def check_loadable(folder: Path) -> dict:
    """The checkpoint's JSON state, or CheckpointError when the folder holds pickle files or was not
    written in this format. Reads nothing but the JSON file (and the folder's file names)."""
    folder = Path(folder)
    pickles = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"refusing to resume from {folder}: it holds pickle files ({', '.join(pickles)}), which can run code when "
            f"loaded, so audiodiff never reads them (a checkpoint of an older audiodiff, or one altered by someone); "
            f"start a new run, or resume from a checkpoint written by this version (safetensors + JSON only)"
        )
    try:
        state = json.loads((folder / STATE_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"can't read the checkpoint {folder / STATE_FILE}: {type(exc).__name__}: "
                              f"{str(exc)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"refusing to resume from {folder}: it was not written in audiodiff's checkpoint format (safetensors + "
            f"JSON; older versions wrote pickle files, which are never read); start a new run"
        )
    if state.get("version") != VERSION:
        raise CheckpointError(f"{folder} is checkpoint format version {state.get('version')}; this audiodiff reads "
                              f"version {VERSION}")
    step = state.get("step")
    named = folder.name.split("-", 1)[1] if folder.name.startswith("step-") else None
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= MAX_STEP or (
            named is not None and named.isdigit() and int(named) != step):
        raise CheckpointError(f"refusing to resume from {folder}: its step {step!r} is not a step from 1 to {MAX_STEP}"
                              f" matching its folder's name")
    return state


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.is_symlink() or not path.is_file():  # a FIFO would hang the read; a link may lead anywhere
        raise CheckpointError(f"can't read the checkpoint file {path}: not a regular file inside the checkpoint")
    try:
        tensors = safetensors.torch.load_file(path, device="cpu")
    except Exception as exc:  # noqa: BLE001 - missing, truncated or corrupt file
        raise CheckpointError(f"can't read the checkpoint file {path}: {exc}") from exc
    bad = next((name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:  # resuming would train (and save) NaN: refuse (issue 25)
        raise CheckpointError(f"refusing to resume from {path.parent}: {path.name} holds NaN or infinite values "
                              f"({bad}); resume from an earlier checkpoint")
    return tensors


def _check_shapes(per_parameter: dict, optimizer, folder: Path) -> None:
    """The optimiser's moments must have their parameters' shapes (issue 25: wrong ones loaded, then
    failed at step 1); step counts are scalars."""
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    for index, values in per_parameter.items():
        if not 0 <= index < len(parameters):
            raise CheckpointError(f"{folder} holds optimiser state for parameter {index}; this model has "
                                  f"{len(parameters)}")
        for name, value in values.items():
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != parameters[index].shape:
                raise CheckpointError(f"{folder}: the optimiser's {name} of parameter {index} has shape "
                                      f"{tuple(value.shape)}, the parameter {tuple(parameters[index].shape)}")


_NUMBER, _INT, _FLAG = "number", "integer", "flag"
_SCHEMA = {  # the types of the JSON state's known fields: wrong ones loaded, then failed at step 1 (issue 25)
    "lr_scheduler": {"last_epoch": _INT, "_step_count": _INT, "base_lrs": [_NUMBER], "_last_lr": [_NUMBER]},
    "ema": {"decay": _NUMBER, "min_decay": _NUMBER, "optimization_step": _INT, "update_after_step": _INT,
            "use_ema_warmup": _FLAG, "inv_gamma": _NUMBER, "power": _NUMBER},
    "group": {"lr": _NUMBER, "eps": _NUMBER, "weight_decay": _NUMBER, "betas": [_NUMBER], "params": [_INT],
              "initial_lr": _NUMBER, "amsgrad": _FLAG, "maximize": _FLAG},
}


def _fits(value, kind) -> bool:
    if isinstance(kind, list):
        return isinstance(value, list) and all(_fits(item, kind[0]) for item in value)
    if kind == _FLAG:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind == _INT else isinstance(value, (int, float))


def _check_types(state: dict, folder: Path) -> None:
    optimizer = state.get("optimizer")
    groups = optimizer.get("param_groups") if isinstance(optimizer, dict) else None
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
        raise CheckpointError(f"refusing to resume from {folder}: its optimiser state has no parameter groups")
    checks = [("lr_scheduler", state.get("lr_scheduler"), _SCHEMA["lr_scheduler"])]
    checks += [("ema", state["ema"], _SCHEMA["ema"])] if state.get("ema") is not None else []
    checks += [(f"optimizer.param_groups.{i}", group, _SCHEMA["group"]) for i, group in enumerate(groups)]
    for where, values, schema in checks:
        if not isinstance(values, dict):
            raise CheckpointError(f"refusing to resume from {folder}: {where} is not a JSON object")
        for key, kind in schema.items():
            if key in values and not (values[key] is None and kind == _FLAG) and not _fits(values[key], kind):
                raise CheckpointError(f"refusing to resume from {folder}: {where}.{key} is {values[key]!r}, "
                                      f"not a{'n' if str(kind)[0] in 'i' else ''} {kind if isinstance(kind, str) else 'list'}")
    for i, group in enumerate(groups):
        betas = group.get("betas", [0.9, 0.999])
        numbers_in_range = (len(betas) == 2 and all(0 <= b < 1 for b in betas) and 0 <= group.get("lr", 0) < 1
                            and 0 < group.get("eps", 1e-8) < 1 and 0 <= group.get("weight_decay", 0) < 1)
        if not numbers_in_range:
            raise CheckpointError(f"refusing to resume from {folder}: optimizer.param_groups.{i} holds values out of "
                                  f"range (betas two numbers in [0, 1), lr and weight_decay in [0, 1), eps in (0, 1))")
    values = optimizer.get("values", {})
    steps = [v.get("step") for v in values.values() if isinstance(v, dict)] if isinstance(values, dict) else [None]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= MAX_STEP for v in steps):
        raise CheckpointError(f"refusing to resume from {folder}: the optimiser's step counts are not steps")
    ema = state.get("ema") or {}
    if not (0 <= ema.get("decay", 0) <= 1 and 0 <= ema.get("min_decay", 0) <= 1 and ema.get("optimization_step", 0) >= 0):
        raise CheckpointError(f"refusing to resume from {folder}: its EMA decay or step is out of range")


def _check_finite_numbers(value, where: str, folder: Path) -> None:
    """Every number in the JSON state (learning rates, betas, moments' counts) must be finite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise CheckpointError(f"refusing to resume from {folder}: {where} is {value}; resume from an earlier checkpoint")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _check_finite_numbers(item, f"{where}.{key}", folder)


def restore(folder: Path, *, unet: torch.nn.Module, optimizer, lr_scheduler, ema, grad_scaler,
            process_index: int = 0) -> tuple[int, list[float]]:
    """Load a checkpoint written by write_checkpoint into the run's objects (which must have been built
    the same way: same model, LoRA, optimiser). Returns (step, loss history of steps 1..step)."""
    folder = Path(folder)
    state = check_loadable(folder)
    for part in ("optimizer", "lr_scheduler", "ema"):
        _check_finite_numbers(state.get(part), part, folder)
    _check_types(state, folder)
    try:
        unet.load_state_dict(_load_tensors(folder / MODEL_FILE), strict=True)

        tensors = _load_tensors(folder / OPTIMIZER_FILE)
        per_parameter: dict[int, dict] = {}
        for key, value in tensors.items():
            _, index, name = key.split(".", 2)
            per_parameter.setdefault(int(index), {})[name] = value
        for index, values in state["optimizer"].get("values", {}).items():
            per_parameter.setdefault(int(index), {}).update(values)
        groups = [{**group, "betas": tuple(group["betas"])} if "betas" in group else group
                  for group in state["optimizer"]["param_groups"]]
        _check_shapes(per_parameter, optimizer, folder)
        optimizer.load_state_dict({"state": per_parameter, "param_groups": groups})

        lr_scheduler.load_state_dict({**state["lr_scheduler"], "lr_lambdas": [None] * len(lr_scheduler.lr_lambdas)})

        if ema is not None:
            if state.get("ema") is None:
                raise CheckpointError(f"{folder} holds no EMA weights, but this run uses EMA")
            shadow = _load_tensors(folder / EMA_FILE)
            if len(shadow) != len(ema.shadow_params):
                raise CheckpointError(f"{folder} holds {len(shadow)} EMA tensors, this model has {len(ema.shadow_params)}")
            if any(shadow[f"shadow.{i}"].shape != p.shape for i, p in enumerate(ema.shadow_params)):
                raise CheckpointError(f"{folder} holds EMA tensors of other shapes than this model's")
            devices = [p.device for p in ema.shadow_params]
            ema.load_state_dict({**state["ema"], "shadow_params": [shadow[f"shadow.{i}"] for i in range(len(shadow))]})
            ema.shadow_params = [p.to(device) for p, device in zip(ema.shadow_params, devices)]

        if grad_scaler is not None and state.get("grad_scaler"):
            grad_scaler.load_state_dict(state["grad_scaler"])

        rng = state["rng"]
        if rng:
            set_rng_state(rng[process_index] if process_index < len(rng) else rng[0])
        step = int(state["step"])
        history = [float(x) for x in state.get("loss_history", [])]
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"can't resume from {folder}: it does not fit this run's model and optimiser "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    return step, history
