"""A session's clips in the app (issue 26: only the last two were kept): each clip's entry with its
settings in a line, the sticky "done: NAME.wav (30 s, 92 bpm)" line, the players' labels, and
"download all", a zip of the session's WAVs and JSONs.

An entry is a plain dict (gradio keeps one list of them per browser tab, in a `gr.State`, on the
server: the paths in it never reach the page). Everything here reads the clip's own NAME.json, so
what the page says of a clip is what its file says.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

from .app_fields import LABELS
from .sampling.autoguide import DEFAULT_BASE_GUIDANCE
from .sampling.options import DEFAULT_CANDIDATES, DEFAULT_LEVEL_HOLD, DEFAULT_TEMPO_HOLD
from .sampling.quantize import DEFAULT_QUANTIZE

ZIP_NAME = "session-clips"  # session-clips.zip, else session-clips-1.zip, ... (never an overwrite)


def _tempo(record: dict) -> str:
    """The clip's tempo as its JSON says: asked for, or the beat the tempo hold kept; "" when none."""
    bpm = record.get("bpm")
    return f"{bpm:.0f} bpm" if isinstance(bpm, (int, float)) and bpm else ""


def settings_line(record: dict) -> str:
    """How a clip was made, in a line: "2.5 s · seed 7 · 120 bpm · 3 ddim steps · overlap 0.41 s"."""
    edit = record.get("edit", "generate")
    parts = [] if edit == "generate" else [edit]
    parts += [f"{record['seconds']:g} s", f"seed {record['seed']}"]
    parts += [_tempo(record)] if _tempo(record) else []
    parts += [f"{record['steps']} {record['scheduler']} steps", f"overlap {record['overlap_seconds']:g} s"]
    if record.get("strength") is not None:
        parts.append(f"strength {record['strength']:g}")
    if record.get("candidates", DEFAULT_CANDIDATES) != DEFAULT_CANDIDATES:
        parts.append(f"{record['candidates']} candidates")
    for key, default in (("level_hold", DEFAULT_LEVEL_HOLD), ("tempo_hold", DEFAULT_TEMPO_HOLD),
                         ("quantize", DEFAULT_QUANTIZE)):
        if record.get(key, default) != default:
            parts.append(f"{LABELS[key]} {record[key]:g}")  # named as the page labels the field
    if "guided_away_from" in record and record.get("base_guidance", DEFAULT_BASE_GUIDANCE) != DEFAULT_BASE_GUIDANCE:
        parts.append(f"{LABELS['base_guidance']} {record['base_guidance']:g}")  # a model with no base to guide by records 1
    return " · ".join(parts)


def _length_and_tempo(record: dict) -> str:
    return ", ".join([f"{record['seconds']:g} s"] + ([_tempo(record)] if _tempo(record) else []))


def done_line(name: str, record: dict) -> str:
    """The sticky line after a job: "done: NAME.wav (30 s, 92 bpm)"."""
    return f"done: {name} ({_length_and_tempo(record)})"


def player_label(which: str, name: str, record: dict) -> str:
    """A player's name, shown above it and read by a screen reader: "this clip: NAME.wav, 30 s, 92 bpm"."""
    return f"{which}: {name}, {_length_and_tempo(record)}"


def history_entry(wav: Path, png: Path, record_json: Path, summary: str) -> dict:
    """One clip of the session, as the page keeps it."""
    record = json.loads(Path(record_json).read_text())
    name = Path(wav).name
    return {"wav": str(wav), "png": str(png), "json": str(record_json), "name": name, "summary": summary,
            "settings": settings_line(record), "done": done_line(name, record),
            "label": player_label("this clip", name, record),
            "previous_label": player_label("previous clip", name, record)}


def zip_clips(entries: list[dict], folder: Path) -> Path:
    """The session's clips (each NAME.wav and NAME.json) in one zip in `folder` -> its path.

    It is written whole under a temporary name first and then linked to session-clips.zip, else
    session-clips-1.zip, ...: a link fails when the name exists, so nothing is overwritten, even by
    two downloads at once (the clips' own files are written the same way, audiodiff.clipfiles)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-zip-", suffix=".zip", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file, zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
            for entry in entries:
                for path in (Path(entry["wav"]), Path(entry["json"])):
                    archive.write(path, path.name)
        for index in range(10_000):
            target = folder / (f"{ZIP_NAME}.zip" if index == 0 else f"{ZIP_NAME}-{index}.zip")
            try:
                os.link(temporary, target)
                return target
            except FileExistsError:
                continue
        raise FileExistsError(f"{folder / ZIP_NAME}-*.zip: every name is taken")
    finally:
        Path(temporary).unlink(missing_ok=True)
