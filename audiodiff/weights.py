"""Reading a model component's files: its JSON configuration and its weights, safely.

Nothing read here runs code: configurations are JSON; weights are safetensors, or a pickled `.bin`
through torch's weights-only unpickler (tensors and containers only, never a full unpickle);
sharded weights only from files beside their index. `build_from_weights` turns a configuration
and its weight file into a model without random initialisation. pipeline.py reads the UNet with
these, latent.py the VAE (`vqvae/`) and the conditional UNet.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import safetensors.torch
import torch

from .model import PipelineError

WEIGHTS_NAME = "diffusion_pytorch_model"
# weight files in order of preference: safetensors (plain, sharded, fp16), a pickled .bin last
WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".fp16.safetensors", ".fp16.safetensors.index.json",
                   ".bin", ".bin.index.json", ".fp16.bin")


def read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PipelineError(f"can't read {what} {path}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise PipelineError(f"{what} {path} does not hold a JSON object")
    return value


def find_weights(folder: Path) -> Path | None:
    """A component's weight file (unet/, vqvae/): the first of WEIGHT_SUFFIXES present."""
    for suffix in WEIGHT_SUFFIXES:
        candidate = folder / f"{WEIGHTS_NAME}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def load_bin(path: Path) -> dict:
    """A pickled state dict through torch's weights-only unpickler: tensors and containers only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError for forbidden globals, or a corrupt file
        raise PipelineError(
            f"refusing to load {path}: it is not a plain tensor checkpoint, and unpickling anything else could run "
            f"code ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Use a model that ships "
            f"safetensors, or convert this one on a machine you trust."
        ) from exc
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise PipelineError(f"refusing to load {path}: it does not hold a state dict of named tensors")
    return dict(state)


def load_file(path: Path) -> dict:
    if path.name.endswith(".index.json"):  # sharded: {"weight_map": {key: shard file}}
        index = read_json(path, "weight index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise PipelineError(f"{path}: weight_map must map weight names to shard file names")
        shards = sorted(set(weight_map.values()))
        if not shards:
            raise PipelineError(f"{path} lists no weight shards")
        outside = [shard for shard in shards if Path(shard).name != shard or shard in (".", "..")]
        if outside:  # only files beside the index are opened (issue 25: ../../elsewhere, /etc/passwd)
            raise PipelineError(f"{path} names shards outside its folder ({outside[0]!r}); refusing to read them")
        state = {}
        for shard in shards:
            state.update(load_file(path.parent / shard))
        return state
    if not path.is_file():
        raise PipelineError(f"missing weight file {path}")
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt file
            raise PipelineError(f"can't read {path}: {exc}") from exc
    return load_bin(path)


def rename_deprecated_attention_keys(model: torch.nn.Module, state: dict) -> dict:
    """Checkpoints saved before diffusers 0.14 name attention weights query/key/value/proj_attn."""
    renames = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
    for path, module in model.named_modules():
        if getattr(module, "_from_deprecated_attn_block", False):
            for old, new in renames.items():
                for kind in ("weight", "bias"):
                    if f"{path}.{old}.{kind}" in state:
                        state[f"{path}.{new}.{kind}"] = state.pop(f"{path}.{old}.{kind}")
    return state



def build_from_weights(cls, config: dict, weights: Path, config_path: Path, source: str, what: str):
    """`cls.from_config(config)` with every parameter from `weights` (float32), in eval mode.

    what: the component as messages name it ("UNet", "VAE"). Raises PipelineError in one line for
    a configuration this diffusers can't build, NaN or infinite weights, or weights that don't fit.
    """
    part = config_path.parent.name
    try:
        with torch.device("meta"):  # no random initialisation: every parameter comes from the file
            model = cls.from_config(config)
    except Exception as exc:  # noqa: BLE001 - diffusers fails on bad configs in many ways (UnboundLocalError...)
        raise PipelineError(f"{source}: {part}/config.json does not describe a {what} this version can build "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    state = rename_deprecated_attention_keys(model, load_file(weights))
    # float32 master weights whatever the file holds (fp16 variants): move with .to(dtype=...)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:  # it would only ever make silence (issue 25)
        raise PipelineError(f"{source}: the {what} weights hold NaN or infinite values ({bad}); the model is broken")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise PipelineError(f"{weights} does not match {config_path}: {str(exc).splitlines()[0]} ...") from exc
    return model.eval()
