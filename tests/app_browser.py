"""The app's browser harness for tests/test_app.py: `scripts/app.py` serving a tiny pipeline on a
free localhost port (started before the module's first test, so it boots while the tests that need
no server run), headless Debian Chromium through Playwright in a 1280x800 window, and the page's
actions (fill a field, click Generate and wait for a clip or a message, read a WAV it serves).

Playwright's own browser download is never used: Chromium is launched from its path
(/usr/bin/chromium or $AUDIODIFF_CHROMIUM); a missing one fails, never skips.
"""

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
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
VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen: what has to fit
RUN = "jazz-20250101-120000"  # a fine-tuned run under the app's runs/ (the tiny model, said to be tuned on jazz)


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
    from audiodiff.pipeline import load_pipeline, save_pipeline

    work = tmp_path_factory.mktemp("app")
    output_dir, log_path, port = work / "clips", work / "server.log", _free_port()
    run = save_pipeline(load_pipeline(model_dir), work / "runs" / RUN)  # under runs/ of the app's folder: a choice
    (run / "training_config.json").write_text(json.dumps({"genre": "jazz", "pretrained": "tiny"}))
    # PYTHONPATH: the app of this checkout, whichever checkout the environment's audiodiff was installed from
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(work / "gradio"), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
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
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.outside = []
    page.on("request", lambda request: None if request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else page.outside.append(request.url))
    page.goto(url)
    page.wait_for_selector("#generate", timeout=30_000)
    yield page
    context.close()


EXPERT = ("scheduler", "steps", "overlap", "level-hold", "tempo-hold", "candidates", "quantize", "base-guidance")  # under "expert settings"


def _open_expert(page) -> None:
    """Unfold the expert settings (closed when the page opens)."""
    if not page.locator("#steps input").is_visible():
        page.locator("#expert").get_by_text("expert settings").first.click()
        page.locator("#steps input").wait_for(state="visible", timeout=5_000)


def _fill(page, elem_id: str, value) -> None:
    """Type `value` into a field and see that it stayed: a field the page is still mounting (the
    expert settings' first unfolding, on a loaded machine) can be replaced by a fresh one holding the
    default, which the click would then send (CI, session 16: steps 50 sent for 3)."""
    if elem_id in EXPERT:
        _open_expert(page)
    field = page.locator(f"#{elem_id} input")
    for _ in range(3):
        field.fill(str(value))
        page.wait_for_timeout(150)
        if field.input_value() == str(value):
            return
    assert field.input_value() == str(value), f"#{elem_id} would not keep {value!r}"


def _message(page) -> str:
    """The message beside the clips (an error, a stop), or "" when none is shown."""
    return page.locator("#message").inner_text() if page.locator("#message").is_visible() else ""


def _generate(page, player: str = "#clip audio", timeout_ms: int = GENERATE_MS) -> str:
    """Click Generate; wait for a new WAV in the player or a message -> the WAV's URL."""
    before = page.locator(player).get_attribute("src") if page.locator(player).count() else None
    message_before = _message(page)
    page.locator("#generate").click()
    page.wait_for_function(
        """([selector, before, messageBefore]) => {
            const audio = document.querySelector(selector);
            const message = document.querySelector('#message');
            const said = message && message.offsetParent !== null ? message.innerText.trim() : '';
            return (audio && audio.getAttribute('src') && audio.getAttribute('src') !== before)
                || (said && said !== messageBefore.trim())
                || document.querySelector('.toast-body.error');
        }""", arg=[player, before, message_before], timeout=timeout_ms,
    )
    errors = page.locator(".toast-body.error")
    assert errors.count() == 0, f"generation failed in the page: {errors.first.inner_text()}"
    assert not _message(page), f"generation failed: {_message(page)}"
    return page.locator(player).get_attribute("src")


def _error_text(page) -> str:
    """Click Generate on a mistake -> the message shown beside the clips (another than before)."""
    before = _message(page).strip()
    page.locator("#generate").click()
    page.wait_for_function(
        """(before) => { const m = document.querySelector('#message');
                         const said = m && m.offsetParent !== null ? m.innerText.trim() : '';
                         return said && said !== before; }""", arg=before, timeout=GENERATE_MS)
    assert page.locator(".toast-body.error").count() == 0  # beside the clip, not a toast over the page
    return page.locator("#message").inner_text()


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_share(pid: int, seconds: float = 2.0) -> float:
    """The share of one core the process uses over the next `seconds`."""
    start = _cpu_seconds(pid)
    time.sleep(seconds)
    return (_cpu_seconds(pid) - start) / seconds


def _start_long_job(page, seconds: float = 20, steps: int = 1000) -> tuple[int, int]:
    """Start a job of minutes on the tiny model; wait until its progress shows -> (done, total) steps."""
    _fill(page, "seconds", seconds)
    _fill(page, "steps", steps)
    page.locator("#generate").click()
    handle = page.wait_for_function(
        r"""() => { const m = document.querySelector('#status').innerText.match(/step (\d+) of (\d+)\)/);
                   return m && +m[1] > 0 ? [+m[1], +m[2]] : null; }""", timeout=GENERATE_MS)
    return tuple(handle.json_value())


def _wav(page, url: str):
    answer = page.request.get(url)
    assert answer.ok, f"{url}: HTTP {answer.status}"
    return sf.read(io.BytesIO(answer.body()), dtype="float32")
