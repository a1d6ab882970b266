"""The app's history of a session's clips (audiodiff/app_history.py, issue 26): what the page says of
each clip, read from its JSON, and "download all", a zip that never overwrites a file, even when two
are made at once. No browser: the page's own use of these is in tests/test_app.py."""

import json
import threading
import zipfile

from audiodiff.app_history import done_line, history_entry, player_label, settings_line, zip_clips

RECORD = {"edit": "generate", "seconds": 30.0, "seed": 7, "steps": 20, "scheduler": "ddim", "overlap_seconds": 1.6,
          "bpm": 92.4}


def _clip(folder, name: str, record: dict):
    (folder / f"{name}.wav").write_bytes(b"RIFF" + name.encode())
    (folder / f"{name}.png").write_bytes(b"png")
    (folder / f"{name}.json").write_text(json.dumps(record))
    return history_entry(folder / f"{name}.wav", folder / f"{name}.png", folder / f"{name}.json", "summary")


def test_a_clip_is_said_from_its_own_json():
    assert settings_line(RECORD) == "30 s · seed 7 · 92 bpm · 20 ddim steps · overlap 1.6 s"
    assert done_line("a.wav", RECORD) == "done: a.wav (30 s, 92 bpm)"
    assert player_label("this clip", "a.wav", RECORD) == "this clip: a.wav, 30 s, 92 bpm"
    vary = {**RECORD, "edit": "vary", "strength": 0.4, "bpm": None}  # an edit, and no tempo on record
    assert settings_line(vary) == "vary · 30 s · seed 7 · 20 ddim steps · overlap 1.6 s · strength 0.4"
    assert done_line("v.wav", vary) == "done: v.wav (30 s)"
    plain = {**RECORD, "quantize": 0.0, "base_guidance": 1.0}  # beats as sampled; no base (or guidance off)
    assert settings_line(plain).endswith("overlap 1.6 s · beat grid 0")
    guided = {**RECORD, "base_guidance": 2.0, "guided_away_from": "bundled"}
    assert settings_line(guided).endswith("overlap 1.6 s · base guidance 2")
    assert settings_line({**RECORD, "quantize": 1.0, "base_guidance": 1.5}) == settings_line(RECORD)  # the defaults


def test_download_all_holds_every_clip_and_never_overwrites(tmp_path):
    entries = [_clip(tmp_path, "a", RECORD), _clip(tmp_path, "b", {**RECORD, "seed": 8})]
    assert entries[1]["settings"].startswith("30 s · seed 8") and entries[0]["name"] == "a.wav"
    (tmp_path / "session-clips.zip").write_bytes(b"the user's own file")
    made, threads = [], [threading.Thread(target=lambda: made.append(zip_clips(entries, tmp_path))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (tmp_path / "session-clips.zip").read_bytes() == b"the user's own file"
    assert sorted(path.name for path in made) == [f"session-clips-{n}.zip" for n in range(1, 5)]
    for path in made:
        with zipfile.ZipFile(path) as archive:
            assert sorted(archive.namelist()) == ["a.json", "a.wav", "b.json", "b.wav"]
            assert archive.read("b.wav") == (tmp_path / "b.wav").read_bytes()
    assert not list(tmp_path.glob(".tmp-*"))
