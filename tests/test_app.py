"""The app as a user meets it: `scripts/app.py` serving a tiny pipeline on localhost, driven by
headless Chromium through Playwright. A click on Generate must put a playable WAV of exactly the
requested length into an <audio> element; a user's mistake must show as a message in the page.

Needs the `app` and `dev` extras (gradio, playwright) and Debian's chromium at /usr/bin/chromium
(or $AUDIODIFF_CHROMIUM); CI installs them (.ci/run), so a missing one fails here, never skips.
Playwright's own browser download is never used: Chromium is launched from its path.
"""

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "app.py"
CHROMIUM = os.environ.get("AUDIODIFF_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium reaches for Google's services, finds no
# network, and stalls; the app itself must never need it.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STARTUP_SECONDS = 120  # torch + gradio imports on a busy 2-core machine; typically ~12 s
GENERATE_MS = 60_000
SAMPLE_RATE = 16000  # the tiny preset's


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from audiodiff.pipeline import load_pipeline, save_pipeline

    return save_pipeline(load_pipeline("tiny"), tmp_path_factory.mktemp("model") / "tiny-pipeline")


@pytest.fixture(scope="module", autouse=True)
def app_process(model_dir, tmp_path_factory):
    """`python scripts/app.py` on a free port, started before this module's first test, so that it
    boots (torch and gradio imports, ~10 s) while the tests that need no server run
    -> (url, output_dir, log path, process)."""
    work = tmp_path_factory.mktemp("app")
    output_dir, log_path, port = work / "clips", work / "server.log", _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(work / "gradio"), PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--model", str(model_dir), "--port", str(port), "--output-dir", str(output_dir)],
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}/", output_dir, log_path, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(app_process):
    """The app, once it answers on its URL."""
    url, _, log_path, process = app_process
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"the app exited with status {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return app_process
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the app did not answer on {url} within {STARTUP_SECONDS} s:\n{log_path.read_text()}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('playwright is not installed: pip install -e ".[dev,app]" (CI installs it; this test must run)')
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium, or set AUDIODIFF_CHROMIUM to its path "
                    f"(CI installs it; this test must run)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A fresh page (one gradio session) on the app; `page.outside` collects requests that left localhost."""
    url = server[0]
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.outside = []
    page.on("request", lambda request: None if request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else page.outside.append(request.url))
    page.goto(url)
    page.wait_for_selector("#generate", timeout=30_000)
    yield page
    context.close()


def _fill(page, elem_id: str, value) -> None:
    page.locator(f"#{elem_id} input").fill(str(value))


def _generate(page, player: str = "#clip audio") -> str:
    """Click Generate; wait for a new WAV in the player or an error message -> the WAV's URL."""
    before = page.locator(player).get_attribute("src") if page.locator(player).count() else None
    page.locator("#generate").click()
    page.wait_for_function(
        """([selector, before]) => {
            const audio = document.querySelector(selector);
            return (audio && audio.getAttribute('src') && audio.getAttribute('src') !== before)
                || document.querySelector('.toast-body.error')
                || [...document.querySelectorAll('[data-testid=status-tracker]')].some(s => s.innerText.includes('Error'));
        }""", arg=[player, before], timeout=GENERATE_MS,
    )
    errors = page.locator(".toast-body.error")
    assert errors.count() == 0, f"generation failed in the page: {errors.first.inner_text()}"
    assert "Error" not in page.locator("#clip [data-testid=status-tracker]").inner_text(), "generation failed"
    return page.locator(player).get_attribute("src")


def _error_text(page) -> str:
    page.wait_for_selector(".toast-body.error", timeout=GENERATE_MS)
    text = page.locator(".toast-body.error").first.inner_text()
    page.locator(".toast-body.error .toast-close").first.click()
    page.wait_for_selector(".toast-body.error", state="detached", timeout=10_000)
    return text


def _wav(page, url: str):
    answer = page.request.get(url)
    assert answer.ok, f"{url}: HTTP {answer.status}"
    return sf.read(io.BytesIO(answer.body()), dtype="float32")


def test_edit_options_reach_generate_only_when_used(tmp_path):
    from audiodiff.app import edit_kwargs
    from audiodiff.generate import GenerationError

    a, b = str(tmp_path / "a.wav"), str(tmp_path / "b.wav")
    assert edit_kwargs(None, "continue", 0.5, None, False) == {}  # plain generation: no edit keyword at all
    assert edit_kwargs(None, "vary", 0.5, None, True) == {"loop": True}
    assert edit_kwargs(a, "continue", 0.5, b, False) == {"init_audio": a}
    assert edit_kwargs(a, "vary", 0.3, None, False) == {"init_audio": a, "strength": 0.3}
    assert edit_kwargs(a, "vary", 0.3, None, False, invert=True) == {"init_audio": a, "strength": 0.3, "invert": True}
    assert edit_kwargs(a, "continue", 0.3, None, False, invert=True) == {"init_audio": a}  # invert is vary's
    assert edit_kwargs(a, "join", 0.5, b, False) == {"fill_gap": (a, b)}
    with pytest.raises(GenerationError, match="second piece of audio"):
        edit_kwargs(a, "join", 0.5, None, False)
    with pytest.raises(GenerationError, match="upload the first one"):
        edit_kwargs(None, "join", 0.5, b, False)
    with pytest.raises(GenerationError, match="untick loop"):
        edit_kwargs(a, "continue", 0.5, None, True)
    with pytest.raises(GenerationError, match="strength"):
        edit_kwargs(a, "vary", 0.0, None, False)


def test_a_request_beyond_the_limits_is_refused_before_the_shared_model_works(tmp_path, monkeypatch):
    """One API call with seconds=1e9 used to hold the app's one-at-a-time queue for everyone."""
    from audiodiff import sample as sample_module
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


def test_generate_plays_a_wav_of_the_requested_length(server, page, tmp_path):
    _, output_dir, log_path, _ = server
    seconds = 2.5
    _fill(page, "seconds", seconds)
    _fill(page, "seed", 7)
    _fill(page, "steps", 3)
    src = _generate(page)
    assert src.split("?")[0].endswith(".wav"), src

    # The browser itself can play it: it read the WAV's header and knows its length.
    page.wait_for_function("document.querySelector('#clip audio').readyState >= 1", timeout=10_000)
    duration = page.locator("#clip audio").evaluate("audio => audio.duration")
    assert duration == pytest.approx(seconds, abs=1e-3)

    audio, sample_rate = _wav(page, src)
    assert sample_rate == SAMPLE_RATE
    assert audio.shape == (round(seconds * SAMPLE_RATE),)
    assert 0.01 < abs(audio).max() <= 1.0  # loudness-normalised sound, not silence

    # The same clip was written to --output-dir, with its spectrogram and its JSON.
    written = output_dir / "tiny-pipeline-seed7.wav"
    assert written.is_file(), sorted(p.name for p in output_dir.iterdir())
    assert page.request.get(src).body() == written.read_bytes()
    assert (output_dir / "tiny-pipeline-seed7.png").is_file()
    assert page.locator("#spectrogram img").evaluate("img => img.complete && img.naturalWidth") > 0

    # The download offers the WAV and its JSON; the JSON says how the clip was made.
    links = [link.get_attribute("href") for link in page.locator("#download a.download-link").all()]
    assert sorted(Path(link.split("?")[0]).suffix for link in links) == [".json", ".wav"], links
    record = page.request.get(next(link for link in links if ".json" in link)).json()
    assert (record["seconds"], record["seed"], record["steps"], record["scheduler"]) == (seconds, 7, 3, "ddim")
    assert record["samples"] == round(seconds * SAMPLE_RATE)
    assert record["model_choice"] == "given"  # how the app's model was chosen, not "already loaded"
    assert json.loads((output_dir / "tiny-pipeline-seed7.json").read_text()) == record
    assert "tiny-pipeline-seed7.wav" in page.locator("#summary").inner_text()

    page.screenshot(path=tmp_path / "app.png", full_page=True)
    assert (tmp_path / "app.png").stat().st_size > 10_000
    assert page.outside == [], f"the page reached beyond localhost: {page.outside}"
    assert f"http://127.0.0.1:{urllib.parse.urlsplit(server[0]).port}" in log_path.read_text()  # localhost only


def test_user_errors_show_in_the_page_and_the_previous_clip_stays_to_compare(server, page, tmp_path):
    _fill(page, "seconds", 1.5)
    _fill(page, "steps", 2)
    _fill(page, "overlap", 5)  # the tiny model's slices are 1.02 s
    page.locator("#generate").click()
    assert "overlap (5 s) must be shorter than one slice" in _error_text(page)
    _fill(page, "overlap", 0.3)
    _fill(page, "seconds", 0)
    page.locator("#generate").click()
    assert "seconds must be a positive number" in _error_text(page)
    assert page.locator("#clip audio[src]").count() == 0  # nothing was made
    assert server[3].poll() is None  # the app is still serving

    _fill(page, "seconds", 1.5)
    first = _generate(page)
    _fill(page, "seed", 1)
    second = _generate(page)
    assert first != second
    # The clip before stays on the page next to the new one, to compare.
    assert page.locator("#previous-clip audio").get_attribute("src") == first
    previous, _ = _wav(page, first)
    current, _ = _wav(page, second)
    assert previous.shape == current.shape == (round(1.5 * SAMPLE_RATE),)
    assert abs(previous - current).max() > 0.01  # another seed, another clip
    page.screenshot(path=tmp_path / "compare.png", full_page=True)


def test_loop_checkbox_makes_a_loop_of_the_requested_length(server, page):
    _, output_dir, _, _ = server
    seconds = 2.5
    _fill(page, "seconds", seconds)
    _fill(page, "seed", 3)
    _fill(page, "steps", 3)
    page.locator("#loop input").check()
    src = _generate(page)
    audio, sample_rate = _wav(page, src)
    assert (sample_rate, audio.shape) == (SAMPLE_RATE, (round(seconds * SAMPLE_RATE),))
    record = json.loads((output_dir / "tiny-pipeline-loop-seed3.json").read_text())
    assert (record["edit"], record["samples"], record["seed"]) == ("loop", round(seconds * SAMPLE_RATE), 3)
    assert page.request.get(src).body() == (output_dir / "tiny-pipeline-loop-seed3.wav").read_bytes()
