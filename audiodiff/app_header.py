"""The app's header in plain words (issue 26): which model, what it was fine-tuned on, its sample
rate and the length of the slices its clips are made of. It used to read "UNet2DModel 1.99 M
parameters ... DDPMScheduler", which said nothing to a musician and contradicted the ddim setting
below it (a clip is sampled with the scheduler chosen on the page, not the pipeline's own).

What a run was tuned on is read from its folder: the run's training_config.json (runs.py), else the
genre row of its model card (model_card.py). A folder is named by its own name, never its place on
the server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path


def model_words(name: str) -> str:
    """A model as `load_pipeline` takes it (a preset, "bundled", a folder, a hub id), said plainly:
    a folder by its own name, never its place on the server."""
    from .pipeline import BUNDLED, PRESETS

    if name == BUNDLED:
        return "the bundled base model"
    if name in PRESETS:
        return f"the {name} preset"
    return name if name.count("/") == 1 and not Path(name).exists() else Path(name).name  # a hub id: owner/name


def tuned_on(folder: Path) -> str:
    """What a pipeline folder says of its fine-tuning: the run's training_config.json, else the
    genre row of its model card (README.md)."""
    from .runs import CONFIG_FILE

    try:
        saved = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        saved = None
    if isinstance(saved, dict):
        genre = saved.get("genre") if isinstance(saved.get("genre"), str) else None
        text = f"fine-tuned on **{genre or 'all genres'}**"
        if saved.get("dataset") == "synthetic":
            text += " of the built-in synthetic set"
        base = saved.get("pretrained")
        return text + (f", starting from {model_words(base)}" if isinstance(base, str) and base else "")
    try:
        card = re.search(r"^\| genre \| ([^|\n]+?) \|$", (folder / "README.md").read_text(), re.MULTILINE)
    except (OSError, UnicodeDecodeError):
        card = None
    if card:
        genre = card[1].strip()
        return f"fine-tuned on **{'all genres' if genre == 'all' else genre}**"
    return "its genre is not known (its folder has no training record or model card)"


def model_header(pipe, model_choice: str = "given") -> str:
    """The page's header in plain words (issue 26: it read "UNet2DModel 1.99 M parameters ...
    DDPMScheduler", which also contradicted the ddim setting): which model, what it was tuned on,
    its sample rate and the length of the slices it makes clips from."""
    from .model_choice import DEFAULT_PRETRAINED
    from .pipeline import BUNDLED, PRESETS

    source, mel = str(pipe.source), pipe.mel
    if source == BUNDLED:
        model = "the bundled base model, not fine-tuned: trained on every genre of the built-in synthetic set"
    elif source in PRESETS:
        model = f"the {source} preset, not trained: its weights are random, so its clips are noise"
    elif Path(source).is_dir():
        model = f"**{model_words(source)}**, {tuned_on(Path(source))}"
    else:
        model = f"**{source}** from the Hugging Face hub, not fine-tuned here"
    lines = [f"**Model:** {model}",
             f"**Sound:** {mel.sample_rate} Hz; made in slices of {mel.slice_seconds:.2f} s, and a longer clip "
             "continues slice after slice"]
    if model_choice != "given":  # no model was named when the app started
        offline = "" if source == DEFAULT_PRETRAINED else " and the hub can't be reached"
        why = "the latest fine-tuned run" if Path(source).is_dir() else "there is no fine-tuned run yet" + offline
        lines.append(f"*Chosen when the app started, as none was named: {why}.*")
    return "  \n".join(lines)
