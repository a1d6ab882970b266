"""clipfiles.write_clip_files: the one writer of a clip's WAV, PNG and JSON, on a clip made in the test (no model)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff import clipfiles
from audiodiff.clipfiles import RECORD_ORDER, png_to_image, write_clip_files
from audiodiff.mel import MelConfig
from audiodiff.sample import LongClip, columns_for_samples

MEL = MelConfig(x_res=32, y_res=16, sample_rate=8000, n_fft=256, hop_length=64)
SAMPLES = 2000  # 0.25 s: 33 image columns decode to it, the image below has 40


def _clip(batch_size: int = 2) -> LongClip:
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(SAMPLES) / MEL.sample_rate
    audio = torch.stack([0.5 * torch.sin(2 * torch.pi * (220 + 110 * i) * t) for i in range(batch_size)])  # (B, T)
    image = torch.rand(batch_size, 1, MEL.y_res, 40, generator=generator) * 2 - 1  # (B, 1, H, W) in [-1, 1]
    return LongClip(image=image, audio=audio, sample_rate=MEL.sample_rate, seam_seconds=[0.123456])


MADE_WITH = {"model": "tiny", "model_choice": "given", "edit": "interpolate", "interpolate": ["a.wav", "b.wav"],
             "seed": 3, "steps": 2, "scheduler": "ddim", "overlap_seconds": 0.1, "repaint_jumps": 0, "device": "cpu"}


def test_writes_wav_png_json_for_each_clip_of_a_batch(tmp_path):
    clip = _clip()
    messages = []
    paths = write_clip_files(clip, MEL, tmp_path / "new", "c", MADE_WITH, per_clip=[{"alpha": 0.25}, {"alpha": 0.75}],
                             log=messages.append)
    assert [p.name for p in paths] == [f"c_{i}.{ext}" for i in (1, 2) for ext in ("wav", "png", "json")]
    assert messages == []
    for index, (wav, png, meta) in enumerate(zip(paths[0::3], paths[1::3], paths[2::3])):
        audio, rate = sf.read(wav, dtype="float32")
        assert rate == 8000 and sf.info(wav).subtype == "PCM_16"
        assert np.abs(audio - clip.audio[index].numpy()).max() <= 1 / 32767 + 1e-6  # 16-bit quantisation only
        image, mel, samples = png_to_image(png)  # the PNG alone: its Mel config, length and image, cropped to the audio
        columns = columns_for_samples(SAMPLES, MEL)
        assert mel == MEL and samples == SAMPLES and image.shape == (1, 1, MEL.y_res, columns) and columns < 40
        assert (image[0] - clip.image[index, :, :, :columns]).abs().max() <= 1 / 127.5 + 1e-6
        record = json.loads(meta.read_text())
        assert {key: record[key] for key in MADE_WITH} == MADE_WITH
        assert (record["alpha"], record["batch_index"], record["batch_size"]) == ((0.25, 0.75)[index], index, 2)
        assert (record["seconds"], record["samples"], record["sample_rate"]) == (0.25, SAMPLES, 8000)
        assert record["seam_seconds"] == [0.1235] and record["mel"] == MEL.to_dict()
        assert record["files"] == {"wav": wav.name, "png": png.name}
        listed = [key for key in record if key in RECORD_ORDER]
        assert listed == sorted(listed, key=RECORD_ORDER.index) and list(record)[3] == "interpolate"  # edit's own after "edit"


def test_never_overwrites_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    (tmp_path / "c_2.json").write_text("someone else's")
    messages = []
    paths = write_clip_files(_clip(), MEL, tmp_path, "c", MADE_WITH, log=messages.append)
    assert [p.name for p in paths][:3] == ["c-1_1.wav", "c-1_1.png", "c-1_1.json"]
    assert messages == [f"c already exists in {tmp_path}; writing c-1 instead"]
    assert (tmp_path / "c_2.json").read_text() == "someone else's" and not (tmp_path / "c_1.wav").exists()
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}

    def fail_on_the_second_png(image, mel, samples, path):
        if path.name.endswith("-1.png"):  # the second clip's, written under its temporary name
            raise OSError("disk full")
        return real_png(image, mel, samples, path)

    real_png = clipfiles.spectrogram_png
    monkeypatch.setattr(clipfiles, "spectrogram_png", fail_on_the_second_png)
    with pytest.raises(OSError, match="disk full"):
        write_clip_files(_clip(), MEL, tmp_path, "c", MADE_WITH)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before  # c-2's files, written or reserved, are gone


def test_a_kill_while_writing_leaves_no_named_file_and_its_leftovers_are_cleaned(tmp_path):
    """kill -9 during the PNG: nothing named c*.* exists (no 0-byte files), and the next write removes
    the dead process's temporary files (issue 25)."""
    import signal
    import subprocess
    import sys

    script = (
        "import sys, time, torch\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from test_clipfiles import _clip, MEL, MADE_WITH\n"
        "from audiodiff import clipfiles\n"
        "def stuck(*args, **kwargs):\n"
        "    print('writing', flush=True); time.sleep(60)\n"
        "clipfiles.spectrogram_png = stuck\n"
        "from pathlib import Path\n"
        "clipfiles.write_clip_files(_clip(), MEL, Path(sys.argv[1]), 'c', MADE_WITH)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(Path(__file__).parent)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left and all(name.startswith(clipfiles.TEMP_PREFIX) for name in left), left  # only temporaries
    paths = write_clip_files(_clip(), MEL, tmp_path, "c", MADE_WITH)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # c_1.*, c_2.*: cleaned up
    assert all(p.stat().st_size > 0 for p in paths)


def test_without_hard_links_names_are_reserved_and_replaced(tmp_path, monkeypatch):
    (tmp_path / "c_1.wav").write_text("someone else's")

    def no_links(source, target):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(clipfiles.os, "link", no_links)
    paths = write_clip_files(_clip(), MEL, tmp_path, "c", MADE_WITH)
    assert [p.name for p in paths][:3] == ["c-1_1.wav", "c-1_1.png", "c-1_1.json"]
    assert json.loads(paths[2].read_text())["files"] == {"wav": "c-1_1.wav", "png": "c-1_1.png"}
    assert (tmp_path / "c_1.wav").read_text() == "someone else's"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(clipfiles.TEMP_PREFIX)]


def _png_with(tmp_path, size=(40, 16 + clipfiles.AXIS_HEIGHT), name="x.png", **text):
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    values = {clipfiles.PNG_KEY_MEL: json.dumps(MEL.to_dict()), clipfiles.PNG_KEY_BOX: json.dumps([0, 0, size[0], 16]),
              clipfiles.PNG_KEY_SAMPLES: "500", **text}
    for key, value in values.items():
        info.add_text(key, value)
    path = tmp_path / name
    Image.new("L", size, 128).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("size,text,message", [
    ((100000, 32), {clipfiles.PNG_KEY_BOX: "[0, 0, 100000, 32]"}, "box"), ((6000, 6000), {}, "at most"),
    ((40, 32), {clipfiles.PNG_KEY_SAMPLES: "-5"}, "whole number of samples"),
    ((40, 32), {clipfiles.PNG_KEY_SAMPLES: "10000000"}, "whole number of samples"),
    ((40, 32), {clipfiles.PNG_KEY_MEL: json.dumps({**MEL.to_dict(), "n_iter": 10**9})}, "n_iter"),
    ((40, 32), {clipfiles.PNG_KEY_BOX: "[0, 0, 99999, 16]"}, "box"),
    ((40, 32), {clipfiles.PNG_KEY_BOX: "[" * 100000 + "]" * 100000}, "not a readable"),
    ((40, 32), {clipfiles.PNG_KEY_MEL: "{not json"}, "not a readable"),
])
def test_hostile_pngs_are_one_line_before_their_pixels_are_decoded(tmp_path, size, text, message):
    import time

    from audiodiff.pipeline import GenerationError

    path = _png_with(tmp_path, size=size, **text)
    start = time.perf_counter()
    with pytest.raises(GenerationError, match=message):
        clipfiles.png_to_audio(path)
    assert time.perf_counter() - start < 2.0


def test_a_truncated_or_garbled_png_is_one_line(tmp_path):
    from audiodiff.pipeline import GenerationError

    whole = _png_with(tmp_path).read_bytes()
    for name, data in (("cut.png", whole[: len(whole) // 2]), ("garbled.png", whole[:60] + bytes(200) + whole[260:])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(GenerationError, match="readable|metadata"):
            clipfiles.png_to_audio(tmp_path / name)


def test_fuzzed_mel_configs_and_png_metadata_raise_only_one_line_errors(tmp_path):
    """Random and extreme values: only ValueError (one line at the command line), fast, never a
    hang, another exception or a big allocation."""
    import time

    from audiodiff.mel import MelConfig

    rng = np.random.default_rng(0)
    extremes = [0, -1, 1, 2**31, 2**63, 10**30, 1e-300, float("inf"), float("nan"), 0.5, "3", None, [], {}, True]
    fields = list(MelConfig().to_dict())
    start = time.perf_counter()
    for trial in range(300):
        values = MelConfig().to_dict()
        for field in rng.choice(fields, size=rng.integers(1, 4), replace=False):
            values[field] = extremes[rng.integers(len(extremes))] if rng.random() < 0.6 else int(rng.integers(-10, 10**6))
        try:
            config = MelConfig.from_dict(values)
        except ValueError:
            continue
        assert config.x_res * config.hop_length < 2**27  # what was accepted allocates little
        if trial % 10 == 0:
            path = _png_with(tmp_path, name=f"f{trial}.png", **{clipfiles.PNG_KEY_MEL: json.dumps(values)})
            try:
                clipfiles.png_to_image(path)
            except ValueError:
                pass
    assert time.perf_counter() - start < 30
