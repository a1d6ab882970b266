"""The app as a user meets it: `scripts/app.py` serving a tiny pipeline on localhost, driven by
headless Chromium through Playwright, in a 1280x800 window. A click on Generate must put a
playable WAV of exactly the requested length into an <audio> element, with one progress bar for
the whole job on the way; Stop (or closing the page) must end a job at once, so the next one
starts; a user's mistake or a bad upload must show as a message in the page, beside the last
clip, without a server path. The harness (the server, the browser, the page's actions):
tests/app_browser.py; the app's requests without a browser: tests/test_app_requests.py.

Needs the `app` and `dev` extras (gradio, playwright) and Debian's chromium at /usr/bin/chromium
(or $AUDIODIFF_CHROMIUM); CI installs them (.ci/run), so a missing one fails here, never skips.
"""

import io
import json
import math
import time
import urllib.parse
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app_browser import (  # noqa: F401  (fixtures: pytest finds them by name in this module)
    EXPERT, RUN, VIEWPORT, _cpu_share, _error_text, _fill, _generate, _message, _open_expert,
    _start_long_job, _wav, app_process, browser, model_dir, page, server,
)
from audiodiff.sampling.options import FIRST_SLICE_RESTEER

SAMPLE_RATE = 16000  # the tiny preset's
HOP_LENGTH, SLICE_WIDTH = 512, 32  # the tiny preset's: 1.02 s slices


def test_generate_plays_a_wav_of_the_requested_length(server, page, tmp_path):
    _, output_dir, log_path, _ = server
    seconds = 2.5
    _fill(page, "seconds", seconds)
    _fill(page, "seed", 7)
    _fill(page, "steps", 3)
    _fill(page, "bpm", 120)
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

    # The same clip was written to this session's own folder under --output-dir (a random name of
    # 128 bits), with its spectrogram and its JSON; at the name anyone could guess there is nothing.
    (written,) = output_dir.rglob("tiny-pipeline-seed7.wav")
    session_folder = written.parent
    assert session_folder.parent == output_dir and len(session_folder.name) >= 22
    assert page.request.get(src).body() == written.read_bytes()
    assert (session_folder / "tiny-pipeline-seed7.png").is_file()
    base = src.split("/gradio_api/")[0]
    guessed = f"{base}/gradio_api/file={output_dir / 'tiny-pipeline-seed7.wav'}"
    assert not page.request.get(guessed).ok  # another visitor's guess of a clip's name: nothing there
    assert page.locator("#spectrogram img").evaluate("img => img.complete && img.naturalWidth") > 0

    # The download offers the WAV and its JSON; the JSON says how the clip was made.
    links = [link.get_attribute("href") for link in page.locator("#download a.download-link").all()]
    assert sorted(Path(link.split("?")[0]).suffix for link in links) == [".json", ".wav"], links
    record = page.request.get(next(link for link in links if ".json" in link)).json()
    assert (record["seconds"], record["seed"], record["steps"], record["scheduler"]) == (seconds, 7, 3, "ddim")
    assert record["bpm"] == 120.0 and record["tempo_hold"] == 0.25  # the tempo asked for, kept by the tempo hold
    assert record["samples"] == round(seconds * SAMPLE_RATE)
    assert record["model_choice"] == "given"  # how the app's model was chosen, not "already loaded"
    assert json.loads((session_folder / "tiny-pipeline-seed7.json").read_text()) == record
    assert "tiny-pipeline-seed7.wav" in page.locator("#summary").inner_text()
    assert "120 bpm" in page.locator("#summary").inner_text()

    page.screenshot(path=tmp_path / "app.png", full_page=True)
    assert (tmp_path / "app.png").stat().st_size > 10_000
    assert page.outside == [], f"the page reached beyond localhost: {page.outside}"
    assert f"http://127.0.0.1:{urllib.parse.urlsplit(server[0]).port}" in log_path.read_text()  # localhost only


def test_user_errors_show_in_the_page_and_the_previous_clip_stays_to_compare(server, page, tmp_path):
    _fill(page, "seconds", 1.5)
    _fill(page, "steps", 2)
    # before the first clip: no empty boxes, one line that says where the clip will appear
    assert page.locator("#placeholder").is_visible()
    assert not page.locator("#spectrogram").is_visible() and not page.locator("#clip").is_visible()
    assert not page.locator("#previous").is_visible()
    _fill(page, "overlap", 5)  # the tiny model's slices are 1.02 s
    assert "overlap must be from 0 to less than one slice of this model (1.02 s), got 5 s" in _error_text(page)
    _fill(page, "overlap", 0.3)
    _fill(page, "seconds", 0)
    assert "seconds must be a positive number" in _error_text(page)
    _fill(page, "seconds", 1.5)
    _fill(page, "bpm", 300)
    assert "bpm must be from 40 to 240, got 300" in _error_text(page)
    _fill(page, "bpm", "")
    _fill(page, "seconds", 100000)  # the request over the cap gets the message, in the page's words
    said = _error_text(page)
    assert "seconds must be at most 600: this app makes at most 10 minutes" in said and "AUDIODIFF" not in said
    assert page.locator("#clip audio[src]").count() == 0  # nothing was made
    assert server[3].poll() is None  # the app is still serving

    _fill(page, "seconds", 1.5)
    first = _generate(page)
    _fill(page, "seed", 1)
    second = _generate(page)
    assert first != second
    # The clip before stays on the page beside the new one, to compare: side by side, both in
    # the window (1280 pixels wide), their tops level.
    assert page.locator("#previous-clip audio").get_attribute("src") == first
    this_box, previous_box = page.locator("#this-clip").bounding_box(), page.locator("#previous").bounding_box()
    assert previous_box["x"] >= this_box["x"] + this_box["width"] - 1
    assert abs(previous_box["y"] - this_box["y"]) < 2
    assert previous_box["x"] + previous_box["width"] <= VIEWPORT["width"]
    for spectrogram in ("#spectrogram", "#previous-spectrogram"):  # drawn for the column, not a 32-pixel image
        page.wait_for_function(f"document.querySelector('{spectrogram} img')?.complete", timeout=10_000)
        natural = page.locator(f"{spectrogram} img").evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert natural[0] >= 400 and natural[1] >= 150, natural
    previous, _ = _wav(page, first)
    current, _ = _wav(page, second)
    assert previous.shape == current.shape == (round(1.5 * SAMPLE_RATE),)
    assert abs(previous - current).max() > 0.01  # another seed, another clip

    # A mistake now: the message shows beside the clips, and the last clip stays whole.
    _fill(page, "overlap", 5)
    assert "overlap must be from 0 to less than one slice" in _error_text(page)
    assert page.locator("#clip audio").get_attribute("src") == second
    assert page.locator("#previous-clip audio").get_attribute("src") == first
    assert page.locator("#spectrogram img").is_visible() and page.locator("#download a.download-link").count() == 2
    assert "Error" not in page.locator("#this-clip").inner_text()  # no badge over the clip
    page.screenshot(path=tmp_path / "compare.png")


def test_tabbing_through_the_scheduler_keeps_the_steps_and_choosing_one_sets_its_count(server, page):
    """Issue 26: steps went back to 50 when the scheduler dropdown was only focused and left."""
    from audiodiff.sample import DEFAULT_STEPS_BY_SCHEDULER

    _fill(page, "steps", 20)  # unfolds the expert settings
    page.locator("#scheduler input").focus()
    page.keyboard.press("Tab")
    page.locator("#seed input").click()  # and away
    page.wait_for_timeout(500)
    assert page.locator("#steps input").input_value() == "20"
    other = next(name for name in DEFAULT_STEPS_BY_SCHEDULER if name != "ddim" and DEFAULT_STEPS_BY_SCHEDULER[name] != 20)
    page.locator("#scheduler input").click()
    page.get_by_role("option", name=other, exact=True).click()
    page.wait_for_function(f"document.querySelector('#steps input').value === '{DEFAULT_STEPS_BY_SCHEDULER[other]}'",
                           timeout=10_000)


def test_an_empty_seconds_field_is_an_error_naming_it(server, page):
    """Issue 26: an emptied seconds field silently made 30 s."""
    output_dir = server[1]
    before = sorted(output_dir.rglob("*.wav")) if output_dir.exists() else []
    _fill(page, "seconds", "")
    page.locator("#generate").click()
    page.wait_for_selector("#message", state="visible", timeout=30_000)
    assert "seconds is empty" in _message(page)
    assert (sorted(output_dir.rglob("*.wav")) if output_dir.exists() else []) == before


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
    (written,) = output_dir.rglob("tiny-pipeline-loop-seed3.json")  # in the session's own folder
    record = json.loads(written.read_text())
    assert (record["edit"], record["samples"], record["seed"]) == ("loop", round(seconds * SAMPLE_RATE), 3)
    assert page.request.get(src).body() == written.with_suffix(".wav").read_bytes()


def test_stop_ends_a_long_job_and_the_next_starts_at_once(server, page):
    process = server[3]
    done, total = _start_long_job(page, seconds=20, steps=1000)
    # one bar for the whole job: slices x steps, said before the end of the first slice
    columns = math.ceil(20 * SAMPLE_RATE / HOP_LENGTH) + 1
    overlap = round(0.41 * SAMPLE_RATE / HOP_LENGTH)  # the default overlap: 40 % of a slice
    slices = 1 + math.ceil((columns - SLICE_WIDTH) / (SLICE_WIDTH - overlap))
    resteer = 1000 - round(1000 * (1 - FIRST_SLICE_RESTEER))  # the first slice's last half run again on its beat
    assert total == slices * 1000 + resteer, page.locator("#status").inner_text()
    assert f"of {slices}" in page.locator("#status").inner_text()  # "sampling slice 1 of 33, about ... left"
    assert "left" in page.locator("#status").inner_text()
    assert page.locator("#status .progress-bar").count() == 1  # one bar, not one per slice
    page.mouse.wheel(0, 2000)  # scrolled down to the settings and clips: the bar and Stop stay in view
    page.wait_for_function("window.scrollY > 100", timeout=5_000)
    for element in ("#status", "#stop"):
        box = page.locator(element).bounding_box()
        assert 0 <= box["y"] and box["y"] + box["height"] <= VIEWPORT["height"], (element, box)

    page.locator("#stop").click()
    page.wait_for_function("(document.querySelector('#message')?.innerText || '').includes('Stopped')", timeout=10_000)
    assert _cpu_share(process.pid) < 0.3  # the job really stopped: no core left spinning

    started = time.monotonic()
    _fill(page, "seconds", 1.5)
    _fill(page, "steps", 3)
    src = _generate(page, timeout_ms=30_000)  # not queued behind the stopped job
    assert time.monotonic() - started < 20
    audio, _ = _wav(page, src)
    assert audio.shape == (round(1.5 * SAMPLE_RATE),)


def test_stop_cancels_a_job_still_waiting_in_the_queue(server, browser, page):
    """Issue 26: Generate then Stop in tab A while tab B generates: A's job still ran when its turn
    came and wrote a clip."""
    output_dir = server[1]
    other = browser.new_context(viewport=VIEWPORT).new_page()
    other.goto(server[0])
    _start_long_job(other, seconds=20, steps=1000)  # B holds the model
    before = sorted(output_dir.rglob("*.wav"))
    _fill(page, "seconds", 1)
    _fill(page, "steps", 2)
    page.locator("#generate").click()
    page.wait_for_timeout(1000)  # A waits in the queue
    page.locator("#stop").click()
    other.locator("#stop").click()  # B's job ends, so A's turn comes
    page.wait_for_selector("#message", state="visible", timeout=60_000)
    assert "Stopped before it started; nothing was written." in _message(page)
    assert sorted(output_dir.rglob("*.wav")) == before
    src = _generate(page)  # the next click runs: the old Stop does not stop it
    assert src.split("?")[0].endswith(".wav")
    other.context.close()


def test_closing_the_page_stops_its_job(server, browser, page):
    process = server[3]
    other = browser.new_context(viewport=VIEWPORT)
    closing = other.new_page()
    closing.goto(server[0])
    closing.wait_for_selector("#generate", timeout=30_000)
    _start_long_job(closing)
    other.close()  # the tab goes away mid-job
    deadline = time.monotonic() + 20
    while _cpu_share(process.pid, 1.0) > 0.3:
        assert time.monotonic() < deadline, "the job of a closed page kept running"
    _fill(page, "seconds", 1.5)
    _fill(page, "steps", 3)
    _generate(page, timeout_ms=30_000)


def test_uploads_are_checked_on_arrival_without_server_paths(server, page, tmp_path):
    page.locator("#audio-section").get_by_text("your audio").first.click()  # open the audio section
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are my notes, not audio\n" * 20)
    page.locator("#init-audio input[type=file]").set_input_files(str(not_audio))
    page.wait_for_selector("#upload-message", state="visible", timeout=30_000)
    message = page.locator("#upload-message").inner_text()
    assert "notes.wav" in message and "can't be used" in message and "WAV" in message
    assert "/" not in message and "gradio" not in message.lower()  # no server path, no temp folder
    assert page.locator("#init-audio audio[src]").count() == 0  # refused: no 0:00 player left behind
    assert not page.locator("#loaded").is_visible()  # and nothing to continue

    good = tmp_path / "take.wav"
    sf.write(good, 0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE), SAMPLE_RATE)
    page.locator("#init-audio input[type=file]").set_input_files(str(good))
    page.wait_for_selector("#loaded", state="visible", timeout=30_000)
    assert "continuing: take.wav (2 s)" in page.locator("#loaded").inner_text()  # next to Generate
    assert not page.locator("#upload-message").is_visible()
    page.locator("#clear-audio").click()
    page.wait_for_selector("#loaded", state="hidden", timeout=10_000)
    assert page.locator("#init-audio audio[src]").count() == 0
    assert page.outside == []


def test_use_this_clip_opens_the_audio_section_and_says_so(server, page):
    _fill(page, "seconds", 1.5)
    _fill(page, "steps", 2)
    src = _generate(page)
    name = Path(urllib.parse.urlsplit(src).path).name
    assert not page.locator("#init-audio").is_visible()  # the audio section starts closed
    page.locator("#reuse").click()
    page.wait_for_selector("#init-audio audio[src]", state="attached", timeout=10_000)
    assert page.locator("#init-audio").is_visible()  # opened, so the change is in view
    assert f"continuing: {name} (1.5 s)" in page.locator("#loaded").inner_text()


def test_a_bad_seed_or_a_negative_length_is_named_in_the_page_and_writes_nothing(server, page):
    """Issue 26: seed -3 wrote bundled-seed-3.wav, 2.5 silently became 2, and seconds -3 showed gradio's
    toast "Value -3 is less than minimum value 0", which names no field."""
    output_dir = server[1]
    before = sorted(output_dir.rglob("*.wav")) if output_dir.exists() else []
    _fill(page, "steps", 2)
    for value in (-3, 2.5):
        _fill(page, "seed", value)
        said = _error_text(page)  # beside the clips, not a toast
        assert f"seed must be a whole number from 0 to 4294967295, got {value}" in said
    _fill(page, "seed", 0)
    _fill(page, "seconds", -3)
    assert "seconds must be a positive number, got -3" in _error_text(page)
    assert (sorted(output_dir.rglob("*.wav")) if output_dir.exists() else []) == before


def _in_view(page, selector: str) -> bool:
    """`selector` is wholly in the window, below the sticky row of Generate and Stop."""
    return page.evaluate("""(selector) => {
        const box = document.querySelector(selector).getBoundingClientRect();
        const bar = document.querySelector('#actions').getBoundingClientRect().bottom;
        return box.height > 0 && box.top >= bar - 1 && box.bottom <= window.innerHeight + 1; }""", selector)


def test_an_error_and_a_finished_clip_are_brought_into_view(server, browser, page):
    """Issue 26: an error raised while scrolled down to bpm showed above the window (nothing seemed
    to happen), and on a phone the new clip landed about 1280 px down, below all the settings."""
    _fill(page, "seconds", 1.5)
    _fill(page, "steps", 2)
    _fill(page, "bpm", 300)
    page.mouse.wheel(0, 2000)  # down at bpm and below
    page.wait_for_function("window.scrollY > 100", timeout=5_000)
    assert "bpm must be from 40 to 240" in _error_text(page)
    page.wait_for_function("document.querySelector('#message').getBoundingClientRect().top >= 0", timeout=5_000)
    assert _in_view(page, "#message")

    phone = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    phone.goto(server[0])
    phone.wait_for_selector("#generate", timeout=30_000)
    _fill(phone, "seconds", 1.5)
    _fill(phone, "steps", 2)
    phone.evaluate("window.scrollTo(0, 0)")
    _generate(phone)
    phone.wait_for_function("window.scrollY > 0", timeout=5_000)
    phone.wait_for_timeout(1500)  # the spectrogram loads after the clip is shown and pushes the player down
    assert _in_view(phone, "#clip"), phone.evaluate("document.querySelector('#clip').getBoundingClientRect().top")
    phone.context.close()


def test_two_players_never_play_at_once(server, page):
    """Issue 26: this clip and the previous one played over each other; starting one pauses the other."""
    _fill(page, "seconds", 2)
    _fill(page, "steps", 2)
    _generate(page)
    _generate(page)  # now there is a previous clip too
    page.wait_for_function("document.querySelector('#previous-clip audio') !== null"
                           " && document.querySelector('#previous-clip audio').readyState >= 1"
                           " && document.querySelector('#clip audio').readyState >= 1", timeout=10_000)
    page.evaluate("document.querySelectorAll('audio').forEach((a) => { a.loop = true; })")  # none ends by itself
    page.evaluate("document.querySelector('#clip audio').play()")
    page.wait_for_function("!document.querySelector('#clip audio').paused", timeout=5_000)
    page.evaluate("document.querySelector('#previous-clip audio').play()")
    page.wait_for_function("!document.querySelector('#previous-clip audio').paused", timeout=5_000)
    page.wait_for_function("document.querySelector('#clip audio').paused", timeout=5_000)  # A stopped for B
    page.evaluate("document.querySelector('#clip audio').play()")
    page.wait_for_function("document.querySelector('#previous-clip audio').paused", timeout=5_000)  # and back


PHONE = {"width": 390, "height": 844}
PHONE_BAR = """() => {
    const box = (selector) => { const b = document.querySelector(selector).getBoundingClientRect();
                                return {left: b.left, right: b.right, top: b.top, bottom: b.bottom, width: b.width}; };
    const bar = document.querySelector('#actions');
    const covered = [];  // points of the sticky bar where something else is on top of it
    const b = bar.getBoundingClientRect();
    for (let x = b.left + 2; x < b.right; x += 10)
        for (let y = b.top + 1; y < b.bottom; y += 5) {
            const hit = document.elementFromPoint(x, y);
            if (!bar.contains(hit)) covered.push([x, y, hit && (hit.id || hit.className)]);
        }
    return {bar: box('#actions'), status: box('#status'), stop: box('#stop'), generate: box('#generate'), progress: box('#status .progress-bar-wrap'),
            background: getComputedStyle(bar).backgroundColor, covered}; }"""


def _overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def test_on_a_phone_the_progress_has_its_own_row_in_an_opaque_sticky_bar(server, browser):
    """Issue 26: at 390x844 the progress was squeezed beside Stop ("sampling slic 1 of" over "25/150",
    no bar), and the settings' labels showed through the sticky row while scrolled."""
    phone = browser.new_context(viewport=PHONE).new_page()
    phone.goto(server[0])
    phone.wait_for_selector("#generate", timeout=30_000)
    _start_long_job(phone)
    phone.evaluate("window.scrollTo(0, 600)")
    phone.wait_for_function("document.querySelector('#actions').getBoundingClientRect().top <= 0", timeout=5_000)
    bar = phone.evaluate(PHONE_BAR)
    phone.locator("#stop").click()
    phone.context.close()
    progress = bar["progress"]
    assert progress["width"] >= 250, bar
    assert not _overlap(progress, bar["stop"]) and not _overlap(progress, bar["generate"]), bar
    assert bar["background"].startswith("rgb(") or bar["background"].endswith(", 1)"), bar  # no alpha
    assert not bar["covered"], bar
    assert bar["bar"]["top"] <= progress["top"] and progress["bottom"] <= bar["bar"]["bottom"], bar  # on its background


def test_on_a_phone_the_spectrogram_buttons_leave_the_plot_and_file_names_are_whole(server, browser):
    """Issue 26: at 390x844 the spectrogram's buttons sat over the plot, and file names were cut to
    "bundled-s… .wav"."""
    phone = browser.new_context(viewport=PHONE).new_page()
    phone.goto(server[0])
    phone.wait_for_selector("#generate", timeout=30_000)
    _fill(phone, "seconds", 1.5)
    _fill(phone, "steps", 2)
    _generate(phone)
    phone.wait_for_selector("#spectrogram img", timeout=10_000)
    phone.wait_for_selector("#download .filename .stem", timeout=10_000)
    found = phone.evaluate("""() => {
        const box = (element) => { const b = element.getBoundingClientRect();
                                    return {left: b.left, right: b.right, top: b.top, bottom: b.bottom}; };
        return {buttons: box(document.querySelector('#spectrogram .icon-button-wrapper')),
                plot: box(document.querySelector('#spectrogram img')),
                names: [...document.querySelectorAll('#download .filename')].map((e) => e.innerText),
                cut: [...document.querySelectorAll('#download .filename .stem')]
                         .filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.innerText)}; }""")
    phone.context.close()
    assert not _overlap(found["buttons"], found["plot"]), found
    assert found["names"] and not found["cut"], found


def _two_clips(page, seconds: float = 1.5) -> tuple[str, str]:
    """Two clips of the tiny model (seed 7, then seed 8 at 120 bpm) -> their WAVs' URLs."""
    _fill(page, "seconds", seconds)
    _fill(page, "steps", 2)
    _fill(page, "seed", 7)
    first = _generate(page)
    _fill(page, "seed", 8)
    _fill(page, "bpm", 120)
    return first, _generate(page)


def test_the_sessions_clips_are_listed_with_their_settings_and_one_can_be_used_as_input(server, page):
    """Issue 26: only the last two clips were kept; each clip of the session is listed, newest first,
    with its settings, its own player and "use as input"."""
    page.wait_for_selector("#history-empty", timeout=10_000)
    assert "Every clip of this session will be listed here" in page.locator("#history").inner_text()
    first, second = _two_clips(page)
    page.wait_for_function("document.querySelectorAll('#history .history-entry').length === 2", timeout=10_000)
    entries = [entry.inner_text() for entry in page.locator("#history .history-entry").all()]
    assert "2. tiny-pipeline-seed8.wav: 1.5 s · seed 8 · 120 bpm · 2 ddim steps · overlap" in entries[0], entries
    assert "1. tiny-pipeline-seed7.wav: 1.5 s · seed 7 · " in entries[1], entries
    page.wait_for_function("document.querySelectorAll('#history .history-entry audio[src]').length === 2",
                           timeout=10_000)
    for number, src in ((1, first), (2, second)):  # each entry plays its own clip
        played = page.locator(f"#history-{number} audio").get_attribute("src")
        assert page.request.get(played).body() == page.request.get(src).body()

    assert not page.locator("#init-audio").is_visible()  # the audio section starts closed
    page.locator("#history-1 .history-use").click()  # the older clip, not this one
    page.wait_for_selector("#init-audio audio[src]", state="attached", timeout=10_000)
    assert page.locator("#init-audio").is_visible()  # opened, so the change is in view
    page.wait_for_selector("#loaded", state="visible", timeout=10_000)
    assert "continuing: tiny-pipeline-seed7.wav (1.5 s)" in page.locator("#loaded").inner_text()


def test_download_all_zips_the_sessions_clips_without_overwriting(server, page):
    """Issue 26: "download all", a zip of the session's WAVs and JSONs, written beside them under a
    name never taken; and the sticky "done" line after every job, which brings the clip into view."""
    output_dir = server[1]
    page.locator("#download-all").click()  # nothing yet: one sentence, no empty zip
    page.wait_for_selector("#message", state="visible", timeout=10_000)
    assert "Nothing to download yet" in _message(page)
    _two_clips(page)
    done = page.locator("#done")
    assert done.inner_text() == "done: tiny-pipeline-seed8.wav (1.5 s, 120 bpm)"
    assert "tiny-pipeline-seed8.wav, 1.5 s, 120 bpm" in page.locator("#clip").inner_text()  # the player's tempo
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("window.scrollY > 100", timeout=5_000)
    done.click()  # sticky: in reach while scrolled down; it brings the clip back into view
    page.wait_for_function("document.querySelector('#this-clip').getBoundingClientRect().top >= 0", timeout=5_000)
    assert _in_view(page, "#this-clip h3")

    archives = []
    for _ in range(2):
        before = page.locator("#download-all-file a").get_attribute("href") if archives else None
        page.locator("#download-all").click()
        page.wait_for_function("""(before) => { const a = document.querySelector('#download-all-file a');
                                               return a && a.getAttribute('href') !== before; }""",
                               arg=before, timeout=10_000)
        answer = page.request.get(page.locator("#download-all-file a").first.get_attribute("href"))
        assert answer.ok
        archives.append(zipfile.ZipFile(io.BytesIO(answer.body())))
    names = [f"tiny-pipeline-seed{seed}{suffix}" for seed in (7, 8) for suffix in (".json", ".wav")]
    (session,) = {path.parent for path in output_dir.rglob("session-clips.zip")}  # beside this session's clips
    for archive in archives:
        assert sorted(archive.namelist()) == names
        for name in names:
            assert archive.read(name) == (session / name).read_bytes()
    assert sorted(path.name for path in session.glob("*.zip")) == ["session-clips-1.zip", "session-clips.zip"]
    assert not list(session.glob(".tmp-*"))


def test_ab_switches_clips_at_the_same_position_and_loop_playback_repeats_them(server, page):
    """Issue 26: an A/B toggle between the last two clips that keeps the playback position, and a
    loop-playback switch."""
    _two_clips(page, seconds=3)
    clip, previous = "document.querySelector('#clip audio')", "document.querySelector('#previous-clip audio')"
    page.wait_for_function(f"{clip}.readyState >= 1 && {previous}.readyState >= 1", timeout=10_000)
    page.evaluate(f"{clip}.play()")
    page.wait_for_function(f"{clip}.currentTime > 0.8", timeout=10_000)
    page.locator("#ab").click()
    page.wait_for_function(f"!{previous}.paused && {clip}.paused", timeout=5_000)
    left, taken = page.evaluate(f"[{clip}.currentTime, {previous}.currentTime]")
    assert left > 0.8 and left - 0.05 <= taken <= left + 0.5, (left, taken)  # B goes on where A was
    page.wait_for_function(f"{previous}.currentTime > {taken + 0.3}", timeout=10_000)
    page.locator("#ab").click()  # and back to A, where B was
    page.wait_for_function(f"!{clip}.paused && {previous}.paused", timeout=5_000)
    left, taken = page.evaluate(f"[{previous}.currentTime, {clip}.currentTime]")
    assert left - 0.05 <= taken <= left + 0.5, (left, taken)

    assert not page.evaluate("[...document.querySelectorAll('audio')].some((a) => a.loop)")
    page.locator("#loop-playback input").check()
    page.wait_for_function("[...document.querySelectorAll('audio')].every((a) => a.loop)", timeout=5_000)
    page.wait_for_timeout(3500)  # past the end of the 3 s clip: it starts again instead of stopping
    assert page.evaluate(f"!{clip}.paused && !{clip}.ended")
    page.locator("#loop-playback input").uncheck()
    page.wait_for_function("![...document.querySelectorAll('audio')].some((a) => a.loop)", timeout=5_000)
    page.evaluate(f"{clip}.pause()")


def test_musical_settings_come_first_and_the_expert_ones_are_folded(server, page):
    """Issue 26: length, tempo and a seed with a dice first; scheduler, steps, overlap, holds and
    candidates folded."""
    for field in ("seconds", "bpm", "seed"):
        assert page.locator(f"#{field} input").is_visible()
    assert page.locator("#bpm input").input_value() == ""  # it read "0", though its help says leave it empty
    for field in EXPERT:
        assert not page.locator(f"#{field} input").is_visible()
    seeds = set()
    for _ in range(3):
        before = page.locator("#seed input").input_value()
        page.locator("#dice").click()
        page.wait_for_function("(before) => document.querySelector('#seed input').value !== before", arg=before,
                               timeout=5_000)
        seeds.add(page.locator("#seed input").input_value())
    assert len(seeds) == 3 and all(seed.isdigit() and int(seed) <= 4294967295 for seed in seeds), seeds
    _open_expert(page)
    seconds_box, steps_box = page.locator("#seconds").bounding_box(), page.locator("#steps").bounding_box()
    assert seconds_box["y"] < steps_box["y"]
    # the folded holds and candidates reach the clip, and its entry in the history says them
    _fill(page, "seconds", 2.5)  # three slices of 1.02 s: two continued, where the holds and candidates work
    _fill(page, "steps", 2)
    _fill(page, "seed", 6)
    for field, value in (("candidates", 2), ("level-hold", 1), ("tempo-hold", 0.5), ("quantize", 0)):
        _fill(page, field, value)
    _generate(page)
    (written,) = server[1].rglob("tiny-pipeline-seed6.json")
    record = json.loads(written.read_text())
    assert (record["candidates"], record["level_hold"], record["tempo_hold"], record["quantize"]) == (2, 1.0, 0.5, 0.0)
    page.wait_for_selector("#history-1", timeout=10_000)
    assert "2 candidates · level hold 1 · tempo hold 0.5 · beat grid 0" in page.locator("#history-1").inner_text()


def test_the_spectrogram_the_players_and_generates_focus_are_named_and_seen(server, page):
    """Issue 26 (accessibility): alt text on the spectrogram, named players, a visible focus ring on
    Generate."""
    page.locator("#stop").focus()
    page.keyboard.press("Shift+Tab")  # from the keyboard, as a keyboard user reaches it
    assert page.evaluate("document.activeElement.id") == "generate"
    ring = page.evaluate("(() => { const s = getComputedStyle(document.activeElement);"
                         " return [s.outlineStyle, parseFloat(s.outlineWidth)]; })()")
    assert ring[0] != "none" and ring[1] >= 2, ring
    _fill(page, "seconds", 1.5)
    _fill(page, "steps", 2)
    _fill(page, "seed", 5)
    _generate(page)
    page.wait_for_selector("#spectrogram img", timeout=10_000)
    alt = page.locator("#spectrogram img").get_attribute("alt")
    assert alt.startswith("spectrogram of tiny-pipeline-seed5.wav: time in seconds"), alt
    page.wait_for_function("(document.querySelector('#clip audio').getAttribute('aria-label') || '')"
                           ".startsWith('this clip: tiny-pipeline-seed5.wav, 1.5 s')", timeout=5_000)
    labels = page.evaluate("[...document.querySelectorAll('audio')].map((a) => a.getAttribute('aria-label'))")
    assert all(labels) and "audio player" not in labels, labels


def test_a_run_under_runs_can_be_chosen_and_its_genre_is_said(server, page):
    """Issue 26: "first: genre or model (choose among the runs under runs/ and the bundled model)"."""
    page.locator("#model input").click()
    options = [option.inner_text().replace("✓", "").strip() for option in page.get_by_role("option").all()]
    assert options == ["tiny-pipeline (the app started with it)",
                       f"{RUN}: fine-tuned on jazz, starting from the tiny preset",
                       "the bundled base model: every genre of the built-in synthetic set"], options
    page.get_by_role("option", name=f"{RUN}: fine-tuned on jazz", exact=False).click()
    page.wait_for_function(f"document.querySelector('#header').innerText.includes('{RUN}, fine-tuned on jazz')",
                           timeout=30_000)
    _fill(page, "seconds", 1.5)
    _fill(page, "steps", 2)
    _fill(page, "seed", 4)
    src = _generate(page)
    assert Path(urllib.parse.urlsplit(src).path).name == f"{RUN}-seed4.wav"
    (written,) = server[1].rglob(f"{RUN}-seed4.json")
    record = json.loads(written.read_text())
    assert Path(record["model"]).name == RUN and record["model_choice"] == "chosen on the app's page"
