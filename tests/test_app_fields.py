"""The app's words (issue 26): every field of the page checked before any work, each message
naming its field as the page labels it and holding no flag, environment variable, "None", server
path or traceback (audiodiff/app_fields.py); and the header's plain account of the model
(audiodiff/app_header.py). No browser and no server: the page's handler path (`make_clip`) is called
directly. The same messages in the browser: tests/test_app.py.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SAMPLE_RATE = 16000  # the tiny preset's


# ---- every field in the page's words (issue 26) -------------------------------------------------
# What no message of the page may hold: a flag, an environment variable, Python's None, a server
# path (any "/"), a traceback, or the image columns the library counts in.
NOT_PAGE_WORDS = ("--", "AUDIODIFF_", "None", "/", "Traceback", "columns")
EMPTY, NEGATIVE, HUGE, NOT_A_NUMBER, FRACTION = ["", None], [-3], [1e30, 10**400], ["abc", "nan"], [2.5]
BAD_VALUES = {
    "seconds": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER + [0],
    "seed": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER + FRACTION + [2**32],
    "scheduler": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER,
    "steps": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER + FRACTION + [0, 1001],
    "overlap": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER + [1.02],  # the tiny model's slice is 1.02 s
    "bpm": NEGATIVE + HUGE + NOT_A_NUMBER + FRACTION + [300],  # empty is allowed: the first slice's beat
    "strength": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER + [0],  # the variation's (mode vary)
    "candidates": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER + FRACTION + [0, 17],
    "level_hold": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER + [4.5],
    "tempo_hold": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER + [1.5],
    "quantize": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER + [1.5],  # the beat grid: 0 (as sampled) to 1
    "base_guidance": EMPTY + NEGATIVE + HUGE + NOT_A_NUMBER + [0, 0.5, 4.5],  # 1 (off) to 4
}
PAGE_WORD = {"quantize": "beat grid"}  # a field whose page word is not its name
PAGE = dict(seconds=2, seed=0, scheduler="ddim", steps=3, overlap=0.4, bpm=None, loop=False, audio=None,
            mode="continue", strength=0.5, invert=False, second_audio=None)


@pytest.fixture(scope="module")
def tiny_studio(tmp_path_factory):
    from audiodiff.app import AudioStudio
    from audiodiff.pipeline import build_preset

    return AudioStudio(build_preset("tiny"), output_dir=tmp_path_factory.mktemp("page") / "clips")


@pytest.fixture
def take(tmp_path):
    """An upload as gradio keeps it: a 2 s WAV in a folder of the server's."""
    path = tmp_path / "uploads" / "take.wav"
    path.parent.mkdir()
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE), SAMPLE_RATE)
    return str(path)


def _page_error(studio, monkeypatch, **fields) -> str:
    """The page's values -> the message the page shows for them (the handler's own path, make_clip)."""
    from audiodiff.app import PageError, make_clip
    from audiodiff.sampling import loop as sample_module

    def no_sampling(*args, **kwargs):
        raise AssertionError("the model started on values the page should have refused")

    monkeypatch.setattr(sample_module, "sample", no_sampling)
    notes = []
    with pytest.raises(PageError) as refused:
        make_clip(studio, {**PAGE, **fields}, log=notes.append, progress=False)
    return str(refused.value)


def _in_page_words(message: str, field: str) -> None:
    word = PAGE_WORD.get(field, field.replace("_", " "))  # level_hold: "level hold", as the page labels it
    assert word in message, message
    for word in NOT_PAGE_WORDS:
        assert word not in message, (word, message)


@pytest.mark.parametrize("field,value", [(field, value) for field, values in BAD_VALUES.items() for value in values])
def test_every_field_is_named_in_the_page_words(tiny_studio, monkeypatch, take, field, value):
    """Issue 26: "got None", "Overflow when unpacking long long", "use at most --steps 1000",
    AUDIODIFF_MAX_SECONDS, and a seed of 2.5 silently made 2."""
    extra = dict(mode="vary", audio=take) if field == "strength" else {}
    message = _page_error(tiny_studio, monkeypatch, **extra, **{field: value})
    _in_page_words(message, field)
    assert not tiny_studio.output_dir.exists()  # nothing was written


@pytest.mark.parametrize("fields,field", [
    (lambda take: dict(audio=take, bpm=120), "bpm"),  # an edit of your audio keeps its tempo
    (lambda take: dict(audio=take, mode="vary", invert=True, scheduler="dpm"), "invert"),
    (lambda take: dict(audio=take, seconds=599), "seconds"),  # with the 2 s upload: over the 600 s of a request
    (lambda take: dict(loop=True, seconds=0.05), "seconds"),  # shorter than a loop can be (the library's check)
    (lambda take: dict(audio=take, mode="join", second_audio=take, overlap=0.99), "overlap"),  # no room for the end
    (lambda take: dict(audio=str(Path(take).with_name("gone.wav"))), "gone.wav"),  # gradio deleted it after an hour
    (lambda take: dict(audio=take, mode="shuffle"), "mode"),
    (lambda take: dict(bpm=120, tempo_hold=0), "tempo hold"),  # a bpm is kept by the tempo hold
])
def test_fields_that_only_together_go_wrong_are_named_too(tiny_studio, monkeypatch, take, fields, field):
    _in_page_words(_page_error(tiny_studio, monkeypatch, **fields(take)), field)


def test_the_page_values_that_are_fine_pass_as_numbers(tiny_studio):
    from audiodiff.app import read_page

    request = read_page(tiny_studio.pipe, **{**PAGE, "seed": 7.0, "steps": "20", "bpm": 0, "seconds": "2.5"})
    assert (request.seed, request.steps, request.bpm, request.seconds) == (7, 20, None, 2.5)
    assert type(request.seed) is int and type(request.steps) is int  # the file is ...-seed7.wav, not seed7.0
    assert read_page(tiny_studio.pipe, **{**PAGE, "bpm": ""}).bpm is None
    assert read_page(tiny_studio.pipe, **{**PAGE, "bpm": " 120 "}).bpm == 120.0  # the bpm box is text


def test_the_beat_grid_and_base_guidance_reach_the_sampler(tiny_studio, monkeypatch):
    import audiodiff.app as app
    from audiodiff.app import make_clip

    asked = []
    monkeypatch.setattr(app, "generate", lambda source, seconds, options, *a, **k: asked.append(options) or (1, 2, 3))
    make_clip(tiny_studio, {**PAGE, "quantize": "0.25", "base_guidance": 2}, progress=False)
    make_clip(tiny_studio, PAGE, progress=False)  # a page as it opens: the library's defaults
    assert [(o.quantize, o.base_guidance) for o in asked] == [(0.25, 2.0), (1.0, 1.5)]
    message = _page_error(tiny_studio, monkeypatch, base_guidance=0.5)
    assert message == "base guidance must be from 1 (off) to 4, got 0.5", message


def test_a_number_typed_as_text_is_repeated_as_a_number(tiny_studio, monkeypatch):
    assert _page_error(tiny_studio, monkeypatch, bpm="300").startswith("bpm must be from 40 to 240, got 300;")
    assert "got 'fast'" in _page_error(tiny_studio, monkeypatch, bpm="fast")


def test_library_messages_come_to_the_page_in_its_words():
    """What the command line says, as the page says it: the flags become the fields, the limit's
    environment variable (the server owner's business) goes, columns become seconds."""
    from audiodiff.app_fields import page_words
    from audiodiff.limits import LimitError, RequestLimits
    from audiodiff.pipeline import build_preset
    from audiodiff.sampling.options import SamplingOptions, check_invertible, overlap_columns

    pipe = build_preset("tiny")
    said = []
    for make in (lambda: RequestLimits().check(seconds=1e9),
                 lambda: SamplingOptions(num_inference_steps=5000).resolve(pipe),
                 lambda: overlap_columns(5, pipe.mel, 32), lambda: check_invertible("dpm")):
        with pytest.raises((LimitError, ValueError)) as refused:
            make()
        said.append(page_words(str(refused.value), pipe.mel))
    assert said[0].startswith("this request asks for 1e+09 s of audio, more than the limit of 600 s per request")
    assert said[1].endswith("use at most steps 1000")
    assert said[2].endswith("it is 4.99 s, a slice 1.02 s")  # 156 columns of 32 ms
    assert "scheduler ddim" in said[3]
    for message in said:
        for word in NOT_PAGE_WORDS:
            assert word not in message, (word, message)


# ---- the header in plain words (issue 26) --------------------------------------------------------
def test_the_header_says_the_model_its_genre_sample_rate_and_slice_in_plain_words(tmp_path):
    """It read "UNet2DModel 1.99 M parameters ... DDPMScheduler", contradicting the ddim setting below."""
    from audiodiff.app import model_header
    from audiodiff.pipeline import build_preset, load_pipeline, save_pipeline

    bundled = model_header(load_pipeline("bundled"))
    assert "the bundled base model, not fine-tuned" in bundled and "16000 Hz" in bundled
    assert "slices of 4.03 s" in bundled
    run = save_pipeline(build_preset("tiny"), tmp_path / "runs" / "jazz-20250101-120000")
    (run / "training_config.json").write_text(json.dumps({"genre": "jazz", "pretrained": "bundled",
                                                          "dataset": "synthetic", "data_dir": None}))
    tuned = model_header(load_pipeline(run), "latest fine-tuned run (runs/jazz-20250101-120000)")
    assert "**jazz-20250101-120000**, fine-tuned on **jazz** of the built-in synthetic set, starting from the " \
           "bundled base model" in tuned
    assert "16000 Hz" in tuned and "slices of 1.02 s" in tuned and "the latest fine-tuned run" in tuned
    (run / "training_config.json").unlink()  # a pipeline pushed without its config: the model card's genre row
    (run / "README.md").write_text("| | |\n|---|---|\n| base model | `bundled` |\n| genre | Hip-Hop |\n")
    assert "fine-tuned on **Hip-Hop**" in model_header(load_pipeline(run))
    (run / "README.md").unlink()
    assert "its genre is not known" in model_header(load_pipeline(run))
    assert "not trained" in model_header(build_preset("tiny"))
    for header in (bundled, tuned):
        assert not any(word in header for word in ("UNet", "Scheduler", "parameters", str(tmp_path), "--"))
