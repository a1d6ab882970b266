"""`python scripts/app.py`: a page in the browser to generate clips, listen to them and compare.

Why a page: judging a genre model is listening, and listening to the clip just made next to the
one before is how settings (steps, scheduler, overlap, seed) get chosen. The page is a thin
layer over `audiodiff.generate.generate`, the same function the command line uses, so a clip
made here is the same file (WAV, PNG, JSON) as one made by `scripts/generate.py` with the same
settings, written into the app's output folder and never overwriting.

- The pipeline is loaded once, when the app starts (`AudioStudio`), and every click reuses it
  (`generate(..., pipe=...)`); clicks are queued one at a time, since they share one model.
- The edit options (continue, vary or join the user's own audio; a seamless loop) are passed
  to `generate()` only when the user asks for them (`edit_request`).
- Every field is checked before any work, in the page's words (`audiodiff.app_fields`): a user's
  mistake (seconds 0, seed -3, an overlap longer than a slice) is shown as a message beside the
  clips, which stay as they were, naming the field, never a flag, an environment variable or a
  server path; an upload is checked when it arrives (`check_upload`). Anything else is a bug and
  keeps its traceback in the server's log.
- The header says in plain words which model this is, what it was fine-tuned on, its sample rate
  and slice length (`audiodiff.app_header`).
- Every job reports to one `audiodiff.sampling.progress.JobProgress` (one bar: slices x steps, the slice it
  is on, the time left) whose `should_stop` is the page's stop flag: Stop, or the page going away
  (gradio's unload), stops the job before its next UNet call, and the next job starts at once.
- Offline by construction: analytics and the version check are off, the default theme's fonts
  are served by the app itself, and nothing waits on the network. It binds to 127.0.0.1 unless
  `host` or `share` say otherwise.

gradio is an optional extra (`pip install -e ".[app]"`) and is imported by this module only.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

try:
    import gradio as gr
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError('the app needs gradio, an optional extra: pip install -e ".[app]"') from exc

# edit_request, the edit a click asks for, is imported from here too
from .app_fields import (DEFAULT_APP_SECONDS, LABELS, MODES, PageError, edit_request, page_words,  # noqa: F401
                         read_page, whole_number)
from .app_header import model_header
from .cli import user_errors
from .finetune_config import MAX_SEED
from .generate import EditRequest, generate
from .model_choice import resolve_model
from .pipeline import GenerationError, pick_device
from .sampling.options import DEFAULT_STRENGTH, SamplingOptions, default_overlap_seconds
from .sampling.progress import Cancelled, JobProgress
from .sampling.schedulers import DEFAULT_SCHEDULER, DEFAULT_STEPS_BY_SCHEDULER, SCHEDULERS, strength_start_index

DEFAULT_HOST = "127.0.0.1"  # this machine only; --host 0.0.0.0 or --share expose it
DEFAULT_PORT = 7860  # gradio's usual port
DEFAULT_APP_OUTPUT_DIR = Path("samples") / "app"
MAX_UPLOAD_BYTES = 128 * 1024 * 1024  # ten minutes of 48 kHz stereo WAV is 110 MB
UPLOAD_LIFETIME = (600, 3600)  # gradio deletes uploads and copies older than an hour, checked every 10 min
# The row with Generate, Stop and the progress stays at the top of the window while the page
# scrolls (on an 800-pixel screen the clips are below it); spectrograms fill their column (they are
# drawn at display resolution, audiodiff.display).
CSS = """
.gradio-container { overflow: clip !important; }  /* hidden would make it a scroll box, and sticky would not stick */
/* z-index: above gradio's labels (40) and image buttons, which else show through the sticky row; below toasts */
#actions { position: sticky; top: 0; z-index: 100; background: var(--background-fill-primary);
           padding: 6px 0; align-items: center; }
#status { min-height: 44px; }
@media (max-width: 640px) {  /* a phone: the progress gets a row of its own under Generate and Stop */
  #actions { flex-wrap: wrap; }
  #actions > #status { flex: 1 1 100% !important; min-width: 100% !important; min-height: 0; }
  #status .wrap:not(.hide) { position: static !important; padding: 0; }  /* the row grows to hold it */
  #status .progress-text { display: none; }  /* "25/150 steps": the description says it, and the bar shows it */
  #status .progress-bar-wrap { width: 100%; }
}
.spectrogram button:has(> .image-frame), .spectrogram .image-frame { width: 100%; }
.spectrogram .image-frame img { width: 100%; height: auto; object-fit: contain; }
.spectrogram .icon-button-wrapper.top-panel { position: static; width: fit-content; margin-left: auto; }  /* off the plot */
#download .filename .stem { white-space: normal; overflow-wrap: anywhere; }  /* whole names, not "bundled-s… .wav" */
#download .download { min-width: 5rem; }
"""
# After a job, what it left (the message, else the new clip's player) is brought into view when it
# is not (issue 26): an error raised while scrolled down to bpm showed above the window, and on a
# phone the clip lands below all the settings. Its top goes just under the sticky row; nothing moves
# when it is already in view.
# One player at a time (issue 26): when any player starts, every other one on the page pauses, so
# this clip and the previous one can be compared without playing over each other. 'play' does
# not bubble; a capturing listener on the document still hears it from every <audio>.
ONE_PLAYER_JS = """() => {
  document.addEventListener('play', (event) => {
    document.querySelectorAll('audio').forEach((other) => {
      if (other !== event.target && !other.paused) other.pause();
    });
  }, true);
}"""

SHOW_RESULT_JS = """() => {
  const shown = (element) => element && element.offsetParent !== null;
  const show = () => {
    const message = document.querySelector('#message');
    const said = shown(message) && message.innerText.trim();
    const seen = said ? message : document.querySelector('#clip');
    if (!shown(seen)) return;
    const bar = document.querySelector('#actions').getBoundingClientRect().bottom;
    const box = seen.getBoundingClientRect();
    if (box.top >= bar && box.bottom <= window.innerHeight) return;
    const top = (said ? message : document.querySelector('#this-clip')).getBoundingClientRect().top;
    window.scrollBy(0, top - bar - 8);
  };
  show();
  [300, 1000].forEach((ms) => setTimeout(show, ms));  // again once the spectrogram has loaded and pushed it down
}"""


@dataclass(frozen=True)
class Clip:
    """One generated clip's files."""

    wav: Path
    png: Path
    json: Path


class AudioStudio:
    """The loaded pipeline and where clips go: what every click of the page reuses."""

    def __init__(self, pipe, *, output_dir: str | os.PathLike = DEFAULT_APP_OUTPUT_DIR, device: str | None = None,
                 model_choice: str = "given"):
        self.pipe = pipe
        self.model_choice = model_choice  # how the model was chosen when none was given (resolve_model)
        self.output_dir = Path(output_dir)
        self.device = device
        # one job at a time on the shared model, even when a stopped job's thread is still
        # finishing its last UNet call while the next click starts
        self._busy = threading.Lock()
        self._tokens: dict[str, str] = {}  # session -> its folder's random name
        self._busy_tokens = threading.Lock()

    @classmethod
    def load(cls, model: str | None, *, output_dir: str | os.PathLike = DEFAULT_APP_OUTPUT_DIR,
             device: str | None = None, runs_dir: str | os.PathLike | None = None) -> "AudioStudio":
        """Load the pipeline once, chosen as `scripts/generate.py` chooses it (`resolve_model`)."""
        pipe, chosen = resolve_model(model, runs_dir=runs_dir, device=pick_device(device))
        return cls(pipe, output_dir=output_dir, device=device, model_choice=chosen)

    def session_folder(self, session: str | None) -> Path:
        """Where a visitor's clips go: a folder under output_dir named by a random token of 128 bits,
        made for their session. Files the page serves can be fetched by anyone who knows their path,
        so a clip's path must be known to its session alone (issue 25: names like bundled-seed0.wav
        in one shared folder let every visitor fetch every other's)."""
        with self._busy_tokens:
            token = self._tokens.setdefault(session or "", secrets.token_urlsafe(16))
        return self.output_dir / token

    def generate(self, seconds: float, *, seed: int = 0, steps: int | None = None,
                 scheduler: str = DEFAULT_SCHEDULER, overlap_seconds: float | None = None, bpm: float | None = None,
                 edit: EditRequest | None = None, log=None, progress: "bool | JobProgress" = True,
                 output_dir: Path | None = None) -> Clip:
        """One clip with the loaded pipeline -> its files. Raises GenerationError for user errors,
        `Cancelled` when `progress` (a JobProgress) says stop."""
        seed = whole_number(seed, "seed", 0, MAX_SEED)
        noise_levels = self.pipe.scheduler.config.num_train_timesteps
        steps = None if steps is None else whole_number(steps, "steps", 1, noise_levels)
        try:
            options = SamplingOptions(scheduler=scheduler, num_inference_steps=steps,
                                      overlap_seconds=overlap_seconds, seed=seed, bpm=bpm or None)
        except ValueError as exc:
            raise GenerationError(str(exc)) from exc
        with self._busy:
            wav, png, meta = generate(
                self.pipe.source, seconds, options, edit or EditRequest(), output_dir=output_dir or self.output_dir,
                device=self.device, progress=progress, log=log, pipe=self.pipe, model_choice=self.model_choice,
            )
        return Clip(wav=wav, png=png, json=meta)

    def describe(self) -> str:
        """The page's header: the model in plain words (`model_header`) and where clips go."""
        return (model_header(self.pipe, self.model_choice)
                + f"  \n**Clips are written to** a folder of your own under `{self.output_dir}`")


def make_clip(studio: AudioStudio, fields: dict, *, log=None, progress: "bool | JobProgress" = True,
              output_dir: Path | None = None) -> Clip:
    """The page's values (`read_page`'s keywords) -> a clip. A user's mistake raises PageError in the
    page's words: the fields are checked before any work, and a library message that still comes
    (and every note for the summary) is put into the page's words (`page_words`), without the
    uploads' server paths. Raises `Cancelled` when `progress` says stop."""
    uploads, mel = [fields.get("audio"), fields.get("second_audio")], studio.pipe.mel

    def say(message: str) -> None:
        if log and " already exists in " not in message:  # the summary names the file; its folder is the server's
            log(page_words(_without_paths(message, uploads), mel))

    try:
        request = read_page(studio.pipe, **fields)
        return studio.generate(request.seconds, seed=request.seed, steps=request.steps, scheduler=request.scheduler,
                               overlap_seconds=request.overlap, bpm=request.bpm, edit=request.edit, log=say,
                               progress=progress, output_dir=output_dir)
    except PageError:
        raise
    except user_errors() as exc:
        raise PageError(page_words(_without_paths(str(exc), uploads), mel)) from exc


def _summary(clip: Clip, messages: list[str]) -> str:
    record = json.loads(clip.json.read_text())
    edit = record.get("edit", "generate")
    line = (f"**{clip.wav.name}**: {'' if edit == 'generate' else edit + ', '}{record['seconds']:g} s at "
            f"{record['sample_rate']} Hz, seed {record['seed']}, {record['steps']} {record['scheduler']} steps, "
            f"overlap {record['overlap_seconds']:g} s" + (f", {record['bpm']:g} bpm" if record.get("bpm") else ""))
    if record.get("strength") is not None:
        run = record["steps"] - strength_start_index(record["steps"], record["strength"])
        line += (f", strength {record['strength']:g} (the last {run} of the {record['steps']} steps run)"
                 + (" from its inversion" if record.get("invert") else ""))
    lines = [line]
    lines += [f"*{message}*" for message in messages]
    return "  \n".join(lines)


def spectrogram_view(png: str | os.PathLike, record_json: str | os.PathLike):
    """The picture the page shows for a clip: its NAME.png drawn for the eye (colour, seconds,
    Hz, joins and the user's audio marked; audiodiff.display). NAME.png itself is unchanged."""
    from .display import clip_marks, render_spectrogram
    from .clipfiles import png_to_image

    image, mel, samples = png_to_image(png)
    seams, given = clip_marks(json.loads(Path(record_json).read_text()))
    return render_spectrogram(image[0, 0].numpy(), mel, samples, seam_seconds=seams, given_seconds=given)


def _without_paths(text: str, paths) -> str:
    """`text` with every server path of an upload (and its folder) replaced by the file's name."""
    for path in paths:
        if path:
            path = os.fspath(path)
            text = text.replace(path, Path(path).name).replace(str(Path(path).parent) + os.sep, "")
    return text


def check_upload(path: str | None, mel) -> str | None:
    """An uploaded file -> None when it is usable audio, else a plain sentence that names the
    file (never its place on the server) and says what to do."""
    if path is None:
        return None
    from .audio import AudioError, read_audio

    from .audio import duration_seconds
    from .limits import RequestLimits

    name = Path(path).name
    try:
        longest = RequestLimits.from_env().max_seconds
        if duration_seconds(path) > longest:  # from the header: an hour of FLAC is never decoded (issue 25)
            return (f"**{name}** can't be used: it is longer than this app's {longest / 60:g} minutes per request. "
                    "Upload a shorter excerpt.")
        audio, sample_rate = read_audio(path)
    except AudioError:
        return (f"**{name}** can't be used: it is not audio this app can read. Upload a WAV, FLAC, OGG, MP3 "
                "or AIFF file.")
    seconds = len(audio) / sample_rate if sample_rate else 0.0
    shortest = mel.n_fft / mel.sample_rate
    if seconds < shortest:
        return f"**{name}** can't be used: it is {seconds:.2f} s long; it needs at least {shortest:.2f} s of audio."
    if not len(audio) or float(abs(audio).max()) < 1e-6:
        return f"**{name}** can't be used: it is silent."
    return None


def _loaded_line(audio: str | None, mode: str, second_audio: str | None) -> str:
    """What the next Generate will do with the loaded audio, e.g. "continuing: take.wav (4 s)"."""
    if audio is None:
        return ""
    import soundfile as sf

    def named(path: str) -> str:
        try:
            return f"{Path(path).name} ({sf.info(path).duration:.3g} s)"
        except Exception:  # noqa: BLE001 - only a label; the upload check has already spoken
            return Path(path).name

    if mode == "join":
        second = named(second_audio) if second_audio else "(upload the second audio)"
        return f"**joining:** {named(audio)} → {second}"
    return f"**{'varying' if mode == 'vary' else 'continuing'}:** {named(audio)}"


def _time_left(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f", about {max(1, round(seconds))} s left"
    return f", about {seconds / 60:.0f} min left"


class StopFlags:
    """When each browser session last pressed Stop, on its page's clock (ms). A job stops when a Stop
    came after its own click, checked between two UNet calls and before it starts: so a Stop pressed
    while the job still waits in the queue behind another tab's cancels it (issue 26: it ran when its
    turn came and wrote a clip). A page that goes away stops its jobs for good."""

    def __init__(self):
        self._stopped: dict[str, float] = {}
        self._lock = threading.Lock()

    def stop(self, session: str | None, at: float | None) -> None:
        with self._lock:
            key = session or ""
            self._stopped[key] = max(self._stopped.get(key, -math.inf), math.inf if at is None else float(at))

    def forget(self, session: str | None) -> None:
        self.stop(session, math.inf)

    def stopped_since(self, session: str | None, clicked_at: float | None) -> bool:
        """Whether a Stop came after the click at `clicked_at` (None: a call without the page's clock,
        stopped only when its page goes away)."""
        with self._lock:
            stopped = self._stopped.get(session or "", -math.inf)
        return stopped == math.inf or (clicked_at is not None and stopped >= clicked_at)


def build_app(studio: AudioStudio) -> gr.Blocks:
    """The page: Generate/Stop and the progress on top (kept in view), settings on the left,
    this clip and the previous one side by side on the right."""
    # The browser's own <audio> player: the spectrogram above it already shows the clip, and the
    # browser plays the WAV file as written (gradio's waveform view decodes it again in JS).
    browser_player = gr.WaveformOptions(show_recording_waveform=False)
    mel = studio.pipe.mel
    overlap_default = default_overlap_seconds(mel)
    flags = StopFlags()
    keep = gr.update  # an output left as it is

    def on_generate(seconds, seed, steps, scheduler, overlap, bpm, loop, audio, mode, strength, invert, second_audio,
                    current, clicked_at, request: gr.Request, progress=gr.Progress()):
        session = request.session_hash if request else None
        messages: list[str] = []
        shown_at = [0.0]

        def report(job: JobProgress) -> None:
            now = time.monotonic()
            if job.done_steps and job.done_steps < job.total_steps and now - shown_at[0] < 0.25:
                return  # a few updates a second are enough for the eye
            shown_at[0] = now
            if job.total_steps:
                progress((job.done_steps, job.total_steps), unit="steps",
                         desc=f"{job.description()} (step {job.done_steps} of {job.total_steps})"
                              + _time_left(job.seconds_left()))
            else:
                progress(0, desc=job.description())

        job = JobProgress(on_update=report, should_stop=lambda: flags.stopped_since(session, clicked_at))
        unchanged = [keep()] * 10
        yield [gr.update(value="", visible=False), *unchanged, current]  # the last job's message goes
        if job.should_stop():  # Stop was pressed while this job waited in the queue
            yield [gr.update(value="Stopped before it started; nothing was written.", visible=True), *unchanged, current]
            return
        fields = dict(seconds=seconds, seed=seed, scheduler=scheduler, steps=steps, overlap=overlap, bpm=bpm, loop=loop,
                      audio=audio, mode=mode, strength=strength, invert=invert, second_audio=second_audio)
        try:
            clip = make_clip(studio, fields, log=messages.append, progress=job,
                             output_dir=studio.session_folder(session))
        except Cancelled:
            note = f"Stopped after {job.done_steps} of {job.total_steps} steps; nothing was written."
            yield [gr.update(value=note, visible=True), *unchanged, current]
            return
        except user_errors() as exc:  # the user's mistake, in the page's words: beside the last clip, no traceback
            yield [gr.update(value=f"**Error:** {exc}", visible=True), *unchanged, current]
            return
        summary = _summary(clip, messages)
        shown = {"wav": str(clip.wav), "png": str(clip.png), "json": str(clip.json), "summary": summary}
        before = current or None
        yield [
            gr.update(value="", visible=False),
            gr.update(visible=False),  # the placeholder: the clip is here now
            gr.update(value=spectrogram_view(clip.png, clip.json), visible=True),
            gr.update(value=str(clip.wav), visible=True),
            gr.update(value=[str(clip.wav), str(clip.json)], visible=True),
            gr.update(value=summary, visible=True),
            gr.update(visible=True),
            gr.update(visible=True),  # from the first clip on, so the page keeps its layout
            gr.update(value=spectrogram_view(before["png"], before["json"]), visible=True) if before else keep(),
            gr.update(value=before["wav"], visible=True) if before else keep(),
            gr.update(value=before["summary"] if before else "Generate again: this clip moves here, to compare "
                      "with the next one."),
            shown,
        ]

    def on_stop(pressed_at, request: gr.Request):
        flags.stop(request.session_hash if request else None, pressed_at)

    def on_unload(request: gr.Request):
        flags.forget(request.session_hash if request else None)

    def on_upload(path):
        problem = check_upload(path, mel)
        if problem is None:
            return keep(), gr.update(value="", visible=False)
        return None, gr.update(value=problem, visible=True)

    def on_audio_changed(audio, mode, second_audio):
        if check_upload(audio, mel) is not None:  # refused (on_upload says why): nothing to continue
            audio = None
        line = _loaded_line(audio, mode, second_audio)
        return gr.update(value=line, visible=bool(line)), gr.update(visible=bool(line))

    def on_mode(mode):
        vary = gr.update(visible=mode == "vary")
        return vary, vary, gr.update(visible=mode == "join")

    def on_reuse(current):
        if not current:
            return keep(), keep(), keep()
        return current["wav"], "continue", gr.update(open=True)

    with gr.Blocks(title="audiodiff", analytics_enabled=False, delete_cache=UPLOAD_LIFETIME) as app:
        gr.Markdown("## audiodiff: generate, listen and compare")
        gr.Markdown(studio.describe())
        with gr.Row(elem_id="actions", equal_height=True):
            button = gr.Button("Generate", variant="primary", elem_id="generate", scale=0, min_width=130)
            stop = gr.Button("Stop", variant="stop", elem_id="stop", scale=0, min_width=80)
            loaded = gr.Markdown(visible=False, elem_id="loaded")
            clear = gr.Button("clear", size="sm", visible=False, elem_id="clear-audio", scale=0, min_width=60)
            status = gr.Markdown("", elem_id="status")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                # No minimum= or precision=: gradio's toast for the first names no field, and the second
                # rounds a seed of 2.5 to 2 without a word; app_fields checks every value and names its field
                seconds = gr.Number(DEFAULT_APP_SECONDS, label=LABELS["seconds"],
                                    info="exact length of the clip (longer than one slice, "
                                         f"{mel.slice_seconds:.2f} s, is made by continuation); with your "
                                         "audio: the new seconds to continue or join with, or how much of "
                                         "it to vary",
                                    elem_id="seconds")
                seed = gr.Number(0, label=LABELS["seed"],
                                 info=f"a whole number from 0 to {MAX_SEED}; the same seed gives the same clip",
                                 elem_id="seed")
                scheduler = gr.Dropdown(list(SCHEDULERS), value=DEFAULT_SCHEDULER, label=LABELS["scheduler"],
                                        elem_id="scheduler")
                steps = gr.Number(DEFAULT_STEPS_BY_SCHEDULER[DEFAULT_SCHEDULER], label=LABELS["steps"],
                                  info="denoising steps per slice; choosing a scheduler sets its usual count",
                                  elem_id="steps")
                overlap = gr.Number(overlap_default, label=LABELS["overlap"],
                                    info=f"of the previous slice each next slice continues from; "
                                         f"shorter than one slice ({mel.slice_seconds:.2f} s)",
                                    elem_id="overlap")
                bpm = gr.Number(None, label=LABELS["bpm"],
                                info="the tempo of a new clip or loop, 40 to 240; empty or 0: the clip keeps "
                                     "the beat of its first slice (your audio's, when you continue it)",
                                elem_id="bpm")
                loop = gr.Checkbox(False, label="loop: a clip that repeats seamlessly", elem_id="loop")
                with gr.Accordion("your audio (optional): continue, vary or join", open=False,
                                  elem_id="audio-section") as audio_section:
                    audio = gr.Audio(type="filepath", sources=["upload"], label="audio", elem_id="init-audio")
                    upload_message = gr.Markdown(visible=False, elem_id="upload-message")
                    mode = gr.Radio(list(MODES), value="continue", label="mode",
                                    info="continue: the clip carries it on; vary: a variation of it; "
                                         "join: new audio leading from it into the second audio",
                                    elem_id="mode")
                    strength = gr.Slider(0.05, 1.0, value=DEFAULT_STRENGTH, step=0.05, label=LABELS["strength"],
                                         info="how far the variation may move away (1: anything)",
                                         visible=False, elem_id="strength")
                    invert = gr.Checkbox(False, label="invert: start from the audio's DDIM inversion "
                                         "(keeps more of it; ddim scheduler)", visible=False, elem_id="invert")
                    second_audio = gr.Audio(type="filepath", sources=["upload"], label="second audio (join)",
                                            visible=False, elem_id="second-audio")
            with gr.Column(scale=3):
                message = gr.Markdown(visible=False, elem_id="message")
                with gr.Row(elem_id="clips"):
                    with gr.Column(min_width=320, elem_id="this-clip"):
                        gr.Markdown("### this clip")
                        placeholder = gr.Markdown(
                            "Press **Generate**: the clip appears here with its spectrogram, and the one "
                            "before it stays beside it to compare.", elem_id="placeholder")
                        summary = gr.Markdown(visible=False, elem_id="summary")
                        image = gr.Image(type="pil", label="spectrogram", interactive=False, visible=False,
                                         elem_id="spectrogram", elem_classes="spectrogram", show_label=False,
                                         format="png")
                        player = gr.Audio(type="filepath", label="clip", interactive=False, visible=False,
                                          elem_id="clip", waveform_options=browser_player)
                        files = gr.File(label="download (WAV and JSON)", file_count="multiple", interactive=False,
                                        visible=False, elem_id="download")
                        reuse = gr.Button("use this clip as the audio to continue", size="sm", visible=False,
                                          elem_id="reuse")
                    with gr.Column(min_width=320, visible=False, elem_id="previous") as previous_column:
                        gr.Markdown("### previous clip")
                        previous_summary = gr.Markdown(elem_id="previous-summary")
                        previous_image = gr.Image(type="pil", label="previous spectrogram", interactive=False,
                                                  elem_id="previous-spectrogram", elem_classes="spectrogram",
                                                  show_label=False, format="png", visible=False)
                        previous_player = gr.Audio(type="filepath", label="previous clip", interactive=False,
                                                   elem_id="previous-clip", waveform_options=browser_player,
                                                   visible=False)
        current = gr.State(None)
        clock = gr.Number(None, visible=False)  # the page's clock (ms) at a click, set by the click's js

        # In the browser: no round trip that a quick click on Generate could overtake.
        # .change, not .input: a dropdown only focused and left (tabbing through it) fires input and reset
        # the steps typed above (issue 26); a real change of scheduler sets its usual count
        scheduler.change(None, scheduler, steps, js=f"(name) => ({json.dumps(DEFAULT_STEPS_BY_SCHEDULER)})[name]")
        mode.change(on_mode, mode, [strength, invert, second_audio])
        for source in (audio, second_audio):
            source.upload(on_upload, source, [source, upload_message])
        for trigger in (audio.change, second_audio.change, mode.change):
            trigger(on_audio_changed, [audio, mode, second_audio], [loaded, clear])
        clear.click(lambda: (None, None), None, [audio, second_audio])
        reuse.click(on_reuse, current, [audio, mode, audio_section])
        button.click(
            on_generate,
            [seconds, seed, steps, scheduler, overlap, bpm, loop, audio, mode, strength, invert, second_audio, current,
             clock],
            [message, placeholder, image, player, files, summary, reuse, previous_column, previous_image,
             previous_player, previous_summary, current],
            concurrency_limit=1,  # one shared model: clicks wait in the queue
            show_progress_on=status,  # one bar, in the row that stays in view, next to Generate and Stop
            js="(...values) => [...values.slice(0, -1), Date.now()]",  # when it was clicked, on the page's clock
        ).then(None, js=SHOW_RESULT_JS)
        stop.click(on_stop, clock, None, queue=False, js="() => Date.now()")  # not behind the job it stops
        app.load(None, js=ONE_PLAYER_JS)
        app.unload(on_unload)  # the page went away: its job stops
    return app


def launch_app(model: str | None = None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
               share: bool = False, output_dir: str | os.PathLike = DEFAULT_APP_OUTPUT_DIR,
               device: str | None = None, runs_dir: str | os.PathLike | None = None, log=print) -> None:
    """Load the model once, then serve the page until interrupted."""
    from .limits import RequestLimits

    RequestLimits.from_env()  # a malformed AUDIODIFF_MAX_* is said here, at start-up, not on a visitor's page
    studio = AudioStudio.load(model, output_dir=output_dir, device=device, runs_dir=runs_dir)
    if log:
        log(f"model: {studio.pipe.describe()}")
        if studio.model_choice != "given":
            log(studio.model_choice)
    studio.output_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(studio)
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host, server_port=port, share=share, inbrowser=False,
        show_error=True,  # an unexpected failure shows its message in the page too, not only "Error"
        allowed_paths=[str(studio.output_dir.resolve())],  # the clips the page shows (each session's own folder)
        max_file_size=MAX_UPLOAD_BYTES,  # refused by the server before it is stored
        css=CSS, ssr_mode=False, mcp_server=False, pwa=False,  # no Node server, no extra endpoints
    )
