"""The app's requests without a browser or a server (audiodiff/app.py called directly): edit
options reach generation only when used, a request beyond the limits is refused before the shared
model works, each session writes to its own unguessable folder, a bad seed or a long upload is one
sentence, a variation's summary counts the steps that ran. The same app in the browser:
tests/test_app.py.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SAMPLE_RATE = 16000  # the tiny preset's


def test_edit_options_reach_generate_only_when_used(tmp_path):
    from audiodiff.app import edit_request
    from audiodiff.generate import EditRequest, GenerationError

    a, b = str(tmp_path / "a.wav"), str(tmp_path / "b.wav")
    assert edit_request(None, "continue", 0.5, None, False) == EditRequest()  # plain generation: no edit at all
    assert edit_request(None, "continue", 0.5, None, False).kind is None
    assert edit_request(None, "vary", 0.5, None, True) == EditRequest(loop=True)
    assert edit_request(a, "continue", 0.5, b, False) == EditRequest(init_audio=a)
    assert edit_request(a, "vary", 0.3, None, False) == EditRequest(init_audio=a, strength=0.3)
    assert edit_request(a, "vary", 0.3, None, False, invert=True) == EditRequest(init_audio=a, strength=0.3, invert=True)
    assert edit_request(a, "continue", 0.3, None, False, invert=True) == EditRequest(init_audio=a)  # invert is vary's
    assert edit_request(a, "join", 0.5, b, False) == EditRequest(fill_gap=(a, b))
    with pytest.raises(GenerationError, match="second piece of audio"):
        edit_request(a, "join", 0.5, None, False)
    with pytest.raises(GenerationError, match="upload the first one"):
        edit_request(None, "join", 0.5, b, False)
    with pytest.raises(GenerationError, match="untick loop"):
        edit_request(a, "continue", 0.5, None, True)
    with pytest.raises(GenerationError, match="strength"):
        edit_request(a, "vary", 0.0, None, False)


def test_a_request_beyond_the_limits_is_refused_before_the_shared_model_works(tmp_path, monkeypatch):
    """One API call with seconds=1e9 used to hold the app's one-at-a-time queue for everyone."""
    from audiodiff.sampling import loop as sample_module  # where every job's slices are sampled
    from audiodiff.app import AudioStudio
    from audiodiff.cli import user_errors
    from audiodiff.pipeline import load_pipeline

    def no_sampling(*args, **kwargs):
        raise AssertionError("the shared model started on a request beyond the limits")

    monkeypatch.setattr(sample_module, "sample", no_sampling)
    studio = AudioStudio(load_pipeline("tiny"), output_dir=tmp_path / "clips")
    for kwargs, message in [(dict(seconds=1e9), "limit of 600 s per request"), (dict(seconds=3000.0), "3000 s")]:
        with pytest.raises(user_errors(), match=message):  # the page's handler shows these as a message
            studio.generate(**kwargs, steps=2, progress=False)
    assert not (tmp_path / "clips").exists()


def test_each_session_writes_to_its_own_unguessable_folder_and_records_upload_names_only(tmp_path):
    """Issue 25: clips under names anyone could guess, in one folder every visitor could fetch from,
    and JSON that gave the server path of the upload (which gradio then serves)."""
    from audiodiff.app import AudioStudio
    from audiodiff.generate import EditRequest
    from audiodiff.pipeline import build_preset

    studio = AudioStudio(build_preset("tiny"), output_dir=tmp_path / "clips")
    a, b = studio.session_folder("session-a"), studio.session_folder("session-b")
    assert a != b and a == studio.session_folder("session-a") and a.parent == b.parent == tmp_path / "clips"
    assert len(a.name) >= 22 and len(b.name) >= 22
    upload = tmp_path / "gradio" / "0123abcd" / "my take.wav"
    upload.parent.mkdir(parents=True)
    sf.write(upload, 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE), SAMPLE_RATE)
    clip = studio.generate(0.5, steps=1, edit=EditRequest(init_audio=str(upload)), progress=False, output_dir=a)
    record = json.loads(Path(clip.json).read_text())
    assert record["init_audio"] == "my take.wav" and "gradio" not in Path(clip.json).read_text()
    assert Path(clip.wav).parent == a


@pytest.mark.parametrize("seed", [1e30, -3, 2.5, float("nan"), 2**32])
def test_a_seed_out_of_range_is_one_sentence(tmp_path, seed):
    from audiodiff.app import AudioStudio
    from audiodiff.pipeline import GenerationError, build_preset

    studio = AudioStudio(build_preset("tiny"), output_dir=tmp_path)
    with pytest.raises(GenerationError, match="seed must be a whole number from 0 to 4294967295"):
        studio.generate(0.5, seed=seed, steps=1, progress=False)
    assert not any(tmp_path.iterdir())


def test_a_long_upload_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    from audiodiff import app as app_module
    from audiodiff.pipeline import build_preset

    long = tmp_path / "set.flac"
    sf.write(long, np.zeros(11 * 60 * 8000, dtype=np.float32), 8000)
    monkeypatch.setattr("audiodiff.audio.read_audio", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    message = app_module.check_upload(str(long), build_preset("tiny").mel)
    assert "set.flac" in message and "longer than this app's 10 minutes" in message


def test_a_variations_summary_says_how_many_steps_ran(tmp_path):
    from audiodiff.app import Clip, _summary

    record = tmp_path / "v.json"
    record.write_text(json.dumps({"edit": "vary", "seconds": 4, "sample_rate": SAMPLE_RATE, "seed": 0, "steps": 10,
                                  "scheduler": "ddim", "overlap_seconds": 0.4, "strength": 0.4}))
    text = _summary(Clip(wav=tmp_path / "v.wav", png=tmp_path / "v.png", json=record), [])
    assert "10 ddim steps" in text and "strength 0.4 (the last 4 of the 10 steps run)" in text  # as the bar counts
