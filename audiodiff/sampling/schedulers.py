"""Schedulers by short name, and the x0 adapter: the one place that turns a model output into the
clean image it predicts and back, for each of diffusers' prediction types.

Every scheduler is built from the pipeline's own scheduler config, so it shares the noise
schedule (betas) the UNet was trained with. diffusers is imported on first use: it takes seconds
to import, and `scripts/generate.py --help` should not wait for it.
"""

from __future__ import annotations

import inspect
import math

import torch

SCHEDULERS = ("ddim", "ddpm", "dpm")
DEFAULT_SCHEDULER = "ddim"
# DDIM's 50 is the reference pipeline's default and where its output stops changing audibly;
# DDPM needs its full chain; DPM-Solver++ is not the default (docs/sampling-defaults.md says why).
DEFAULT_STEPS_BY_SCHEDULER = {"ddim": 50, "dpm": 25, "ddpm": 1000}


def _scheduler_classes() -> dict:
    """diffusers' scheduler classes by short name."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    return {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "dpm": DPMSolverMultistepScheduler}


def make_scheduler(name: str | None, base_scheduler):
    """A fresh scheduler of kind `name` ("ddim", "ddpm", "dpm" or None: the base's own kind),
    built from `base_scheduler`'s config. Never the same object: set_timesteps mutates a scheduler."""
    config = base_scheduler.config
    if name is None:
        return type(base_scheduler).from_config(config)
    key = scheduler_key(name)
    if key == "dpm":
        return _scheduler_classes()["dpm"].from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    return _scheduler_classes()[key].from_config(config)


def scheduler_key(name: str) -> str:
    """A scheduler name as a user may write it ("DDIM", "dpm++") -> one of SCHEDULERS."""
    key = name.lower() if isinstance(name, str) else name
    if key in ("ddim", "ddpm"):
        return key
    if key in ("dpm", "dpm++", "dpmsolver++"):
        return "dpm"
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def scheduler_name(scheduler) -> str:
    """Short name of a scheduler instance ("ddim", "ddpm", "dpm") or its class name."""
    for name, cls in _scheduler_classes().items():
        if isinstance(scheduler, cls):
            return name
    return type(scheduler).__name__


def default_steps(scheduler) -> int:
    """The usual step count of a scheduler (an instance, or a name of SCHEDULERS)."""
    return DEFAULT_STEPS_BY_SCHEDULER.get(scheduler if isinstance(scheduler, str) else scheduler_name(scheduler), 50)


def is_stateless(scheduler) -> bool:
    """DDIM and DDPM steps depend only on (t, sample): a step can be redone (RePaint)."""
    return scheduler_name(scheduler) in ("ddim", "ddpm")


def strength_start_index(num_inference_steps: int, strength: float) -> int:
    """Index of the first timestep run at `strength`: the last strength * steps steps are run."""
    return min(int(round(num_inference_steps * (1.0 - strength))), num_inference_steps - 1)


def set_timesteps(scheduler, num_inference_steps: int, device) -> None:
    if "device" in inspect.signature(scheduler.set_timesteps).parameters:
        scheduler.set_timesteps(num_inference_steps, device=device)
    else:
        scheduler.set_timesteps(num_inference_steps)


# ---- the x0 adapter ----------------------------------------------------------------------------
def alpha_bar(scheduler, timestep) -> float:
    """Cumulative alpha at `timestep` (None: the clean end of the chain, alpha_bar = 1)."""
    if timestep is None:
        return 1.0
    return float(scheduler.alphas_cumprod[int(timestep)])


def noised(known: torch.Tensor, noise: torch.Tensor, alpha_bar_t: float) -> torch.Tensor:
    """q(x_t | x_0): sqrt(a) x0 + sqrt(1 - a) eps (the same formula as scheduler.add_noise)."""
    return math.sqrt(alpha_bar_t) * known + math.sqrt(1.0 - alpha_bar_t) * noise


def _x0_terms(scheduler, t) -> tuple[float, float, str]:
    """sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t) and what the model predicts ("epsilon", "v_prediction", "sample")."""
    a = alpha_bar(scheduler, t)
    return math.sqrt(a), math.sqrt(1.0 - a), getattr(scheduler.config, "prediction_type", "epsilon")


def predicted_clean(scheduler, model_output: torch.Tensor, x: torch.Tensor, t) -> torch.Tensor:
    """The clean image the model predicts from `x` at timestep `t` (its x0 estimate)."""
    signal, noise, kind = _x0_terms(scheduler, t)
    if kind == "sample":
        return model_output
    if kind == "v_prediction":
        return signal * x - noise * model_output
    return (x - noise * model_output) / signal


def model_output_for(scheduler, clean: torch.Tensor, x: torch.Tensor, t) -> torch.Tensor:
    """The model output that predicts `clean` from `x` at timestep `t` (`predicted_clean` inverted)."""
    signal, noise, kind = _x0_terms(scheduler, t)
    if kind == "sample":
        return clean
    if kind == "v_prediction":
        return (signal * x - clean) / noise
    return (x - signal * clean) / noise
