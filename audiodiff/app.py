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
- Each browser tab keeps its session's clips (`gr.State`, `audiodiff.app_history`): the newest is
  this clip, the one before it the previous clip (with A/B between them), and every one is listed
  with its settings, "use as input" and "download all" (a zip written beside the clips, never
  overwriting).
- Offline by construction: analytics and the version check are off, the default theme's fonts
  are served by the app itself, and nothing waits on the network. It binds to 127.0.0.1 unless
  `host` or `share` say otherwise.

gradio is an optional extra (`pip install -e ".[app]"`) and is imported by this module and the page's
layout (`audiodiff.app_page`) only; what runs in the browser (CSS, JavaScript) is `audiodiff.app_js`.
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
from .app_fields import PageError, edit_request, page_words, read_page, whole_number  # noqa: F401
from .app_header import model_header
from .app_history import history_entry, zip_clips
from .app_js import AB_JS, CSS, DICE_JS, LOOP_PLAYBACK_JS, PAGE_JS, SCROLL_TO_CLIP_JS, SHOW_RESULT_JS
from .app_models import ModelShelf
from .app_page import (SPECTROGRAM_ALT, action_row, clips_column, history_column, overlap_info, seconds_info,
                       settings_column)
from .cli import user_errors
from .finetune_config import MAX_SEED
from .generate import EditRequest, generate
from .model_choice import resolve_model
from .pipeline import GenerationError, pick_device
from .sampling.options import SamplingOptions, default_overlap_seconds
from .sampling.progress import Cancelled, JobProgress
from .sampling.schedulers import DEFAULT_SCHEDULER, DEFAULT_STEPS_BY_SCHEDULER, strength_start_index

DEFAULT_HOST = "127.0.0.1"  # this machine only; --host 0.0.0.0 or --share expose it
DEFAULT_PORT = 7860  # gradio's usual port
DEFAULT_APP_OUTPUT_DIR = Path("samples") / "app"
MAX_UPLOAD_BYTES = 128 * 1024 * 1024  # ten minutes of 48 kHz stereo WAV is 110 MB
UPLOAD_LIFETIME = (600, 3600)  # gradio deletes uploads and copies older than an hour, checked every 10 min
@dataclass(frozen=True)
class Clip:
    """One generated clip's files."""

    wav: Path
    png: Path
    json: Path


class AudioStudio:
    """The loaded pipeline and where clips go: what every click of the page reuses."""

    def __init__(self, pipe, *, output_dir: str | os.PathLike = DEFAULT_APP_OUTPUT_DIR, device: str | None = None,
                 model_choice: str = "given", runs_dir: str | os.PathLike | None = None):
        self.pipe = pipe  # the model the app started with; the page may choose another (self.models)
        self.models = ModelShelf(pipe, runs_dir, device)
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
        return cls(pipe, output_dir=output_dir, device=device, model_choice=chosen, runs_dir=runs_dir)

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
                 output_dir: Path | None = None, pipe=None, holds: dict | None = None) -> Clip:
        """One clip with `pipe` (default: the model the app started with) -> its files. `holds`:
        SamplingOptions' candidates, level_hold, tempo_hold, quantize and base_guidance. Raises
        GenerationError for user errors, `Cancelled` when `progress` (a JobProgress) says stop."""
        pipe = pipe or self.pipe
        seed = whole_number(seed, "seed", 0, MAX_SEED)
        noise_levels = pipe.scheduler.config.num_train_timesteps
        steps = None if steps is None else whole_number(steps, "steps", 1, noise_levels)
        try:
            options = SamplingOptions(scheduler=scheduler, num_inference_steps=steps,
                                      overlap_seconds=overlap_seconds, seed=seed, bpm=bpm or None, **(holds or {}))
        except ValueError as exc:
            raise GenerationError(str(exc)) from exc
        with self._busy:
            wav, png, meta = generate(
                pipe.source, seconds, options, edit or EditRequest(), output_dir=output_dir or self.output_dir,
                device=self.device, progress=progress, log=log, pipe=pipe,
                model_choice=self.model_choice if pipe is self.pipe else "chosen on the app's page",
            )
        return Clip(wav=wav, png=png, json=meta)

    def describe(self, pipe=None) -> str:
        """The page's header: the model (`pipe`, default the one the app started with) in plain words
        (`model_header`) and where clips go."""
        pipe = pipe or self.pipe
        return (model_header(pipe, self.model_choice if pipe is self.pipe else "given")
                + f"  \n**Clips are written to** a folder of your own under `{self.output_dir}`")


def make_clip(studio: AudioStudio, fields: dict, *, log=None, progress: "bool | JobProgress" = True,
              output_dir: Path | None = None) -> Clip:
    """The page's values (`read_page`'s keywords, and `model`: a key of `studio.models`, default the
    model the app started with) -> a clip. A user's mistake raises PageError in the
    page's words: the fields are checked before any work, and a library message that still comes
    (and every note for the summary) is put into the page's words (`page_words`), without the
    uploads' server paths. Raises `Cancelled` when `progress` says stop."""
    fields = dict(fields)
    pipe = studio.models.pipe(fields.pop("model", None))  # a PageError when it can't be loaded
    uploads, mel = [fields.get("audio"), fields.get("second_audio")], pipe.mel

    def say(message: str) -> None:
        if log and " already exists in " not in message:  # the summary names the file; its folder is the server's
            log(page_words(_without_paths(message, uploads), mel))

    try:
        request = read_page(pipe, **fields)
        return studio.generate(request.seconds, seed=request.seed, steps=request.steps, scheduler=request.scheduler,
                               overlap_seconds=request.overlap, bpm=request.bpm, edit=request.edit, log=say,
                               progress=progress, output_dir=output_dir, pipe=pipe,
                               holds=dict(candidates=request.candidates, level_hold=request.level_hold,
                                          tempo_hold=request.tempo_hold, quantize=request.quantize,
                                          base_guidance=request.base_guidance))
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

    def on_stop(self, pressed_at: float | None, request: gr.Request) -> None:
        """Stop's handler: `pressed_at` is the page's clock at the click."""
        self.stop(request.session_hash if request else None, pressed_at)

    def on_unload(self, request: gr.Request) -> None:
        """The page went away: its jobs stop, now and later."""
        self.forget(request.session_hash if request else None)

    def stopped_since(self, session: str | None, clicked_at: float | None) -> bool:
        """Whether a Stop came after the click at `clicked_at` (None: a call without the page's clock,
        stopped only when its page goes away)."""
        with self._lock:
            stopped = self._stopped.get(session or "", -math.inf)
        return stopped == math.inf or (clicked_at is not None and stopped >= clicked_at)


def _progress_reporter(progress):
    """A JobProgress's updates -> gradio's one bar (slices x steps, the slice it is on, the time left)."""
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

    return report


def _clip_updates(bar, clips, entry: dict, before: dict | None) -> dict:
    """The page after a job made `entry`: it is this clip, `before` (the session's clip before it, if
    any) the previous one, and the sticky row says "done: NAME.wav (...)"."""
    keep = gr.update  # an output left as it is
    return {
        clips.message: gr.update(value="", visible=False),
        clips.placeholder: gr.update(visible=False),  # the clip is here now
        clips.image: gr.update(value=spectrogram_view(entry["png"], entry["json"]), visible=True,
                               alt_text=SPECTROGRAM_ALT.format(name=entry["name"])),
        clips.player: gr.update(value=entry["wav"], visible=True, label=entry["label"]),
        clips.files: gr.update(value=[entry["wav"], entry["json"]], visible=True),
        clips.summary: gr.update(value=entry["summary"], visible=True),
        clips.reuse: gr.update(visible=True),
        clips.previous_column: gr.update(visible=True),  # from the first clip on, so the page keeps its layout
        clips.previous_image: gr.update(value=spectrogram_view(before["png"], before["json"]), visible=True,
                                        alt_text=SPECTROGRAM_ALT.format(name=before["name"])) if before else keep(),
        clips.previous_player: gr.update(value=before["wav"], visible=True,
                                         label=before["previous_label"]) if before else keep(),
        clips.previous_summary: gr.update(value=before["summary"] if before else "Generate again: this clip moves "
                                          "here, to compare with the next one."),
        clips.listening: gr.update(visible=True),
        clips.ab: gr.update(visible=before is not None),
        bar.done: gr.update(value=entry["done"], visible=True),
    }


def _job_handler(studio: AudioStudio, flags: "StopFlags", bar, clips, history):
    """Generate's handler: the page's values -> a clip, added to the session's history and shown
    as this clip (the one before becomes the previous clip); or a message, with the clips as they were."""

    def on_generate(model, seconds, seed, steps, scheduler, overlap, bpm, loop, audio, mode, strength, invert,
                    second_audio, candidates, level_hold, tempo_hold, quantize, base_guidance, kept, clicked_at,
                    request: gr.Request,
                    progress=gr.Progress()):
        session = request.session_hash if request else None
        messages: list[str] = []
        job = JobProgress(on_update=_progress_reporter(progress),
                          should_stop=lambda: flags.stopped_since(session, clicked_at))

        def say(text: str) -> dict:
            return {clips.message: gr.update(value=text, visible=True)}

        yield {clips.message: gr.update(value="", visible=False), bar.done: gr.update(visible=False)}
        if job.should_stop():  # Stop was pressed while this job waited in the queue
            yield say("Stopped before it started; nothing was written.")
            return
        fields = dict(model=model, seconds=seconds, seed=seed, scheduler=scheduler, steps=steps, overlap=overlap,
                      bpm=bpm, loop=loop, audio=audio, mode=mode, strength=strength, invert=invert,
                      second_audio=second_audio, candidates=candidates, level_hold=level_hold, tempo_hold=tempo_hold,
                      quantize=quantize, base_guidance=base_guidance)
        try:
            clip = make_clip(studio, fields, log=messages.append, progress=job,
                             output_dir=studio.session_folder(session))
        except Cancelled:
            yield say(f"Stopped after {job.done_steps} of {job.total_steps} steps; nothing was written.")
            return
        except user_errors() as exc:  # the user's mistake, in the page's words: beside the last clip, no traceback
            yield say(f"**Error:** {exc}")
            return
        kept = list(kept or [])
        entry = history_entry(clip.wav, clip.png, clip.json, _summary(clip, messages))
        yield {**_clip_updates(bar, clips, entry, kept[-1] if kept else None), history: [*kept, entry]}

    return on_generate


def _wire_audio_input(fields, bar, mel) -> None:
    """The user's own audio: checked on arrival, the line next to Generate that says what the next
    click does with it, the mode's own fields, and clear."""
    def on_upload(path):
        problem = check_upload(path, mel)
        if problem is None:
            return gr.update(), gr.update(value="", visible=False)
        return None, gr.update(value=problem, visible=True)

    def on_audio_changed(audio, mode, second_audio):
        if check_upload(audio, mel) is not None:  # refused (on_upload says why): nothing to continue
            audio = None
        line = _loaded_line(audio, mode, second_audio)
        return gr.update(value=line, visible=bool(line)), gr.update(visible=bool(line))

    def on_mode(mode):
        vary = gr.update(visible=mode == "vary")
        return vary, vary, gr.update(visible=mode == "join")

    fields.mode.change(on_mode, fields.mode, [fields.strength, fields.invert, fields.second_audio])
    for source in (fields.audio, fields.second_audio):
        source.upload(on_upload, source, [source, fields.upload_message])
    for trigger in (fields.audio.change, fields.second_audio.change, fields.mode.change):
        trigger(on_audio_changed, [fields.audio, fields.mode, fields.second_audio], [bar.loaded, bar.clear])
    bar.clear.click(lambda: (None, None), None, [fields.audio, fields.second_audio])


def _as_input(wav: str | None):
    """A clip of the session -> the audio input (to continue), its section opened so the change is seen."""
    if not wav:
        return gr.update(), gr.update(), gr.update()
    return wav, "continue", gr.update(open=True)


def _wire_listening(app, fields, bar, clips, shelf, history, studio: AudioStudio) -> None:
    """What needs no job: the browser's players (one at a time, A/B, loop), the dice, the "done" line,
    use this clip, and download all."""
    def on_download_all(kept, request: gr.Request):
        kept = [entry for entry in kept or [] if Path(entry["wav"]).is_file() and Path(entry["json"]).is_file()]
        if not kept:
            return gr.update(visible=False), gr.update(value="Nothing to download yet: generate a clip first.",
                                                       visible=True)
        zipped = zip_clips(kept, studio.session_folder(request.session_hash if request else None))
        return gr.update(value=str(zipped), visible=True), gr.update(value="", visible=False)

    clips.reuse.click(lambda kept: _as_input(kept[-1]["wav"] if kept else None), history,
                      [fields.audio, fields.mode, fields.audio_section])
    shelf.download_all.click(on_download_all, history, [shelf.zipped, clips.message])
    # In the browser: no round trip that a quick click on Generate could overtake.
    # .change, not .input: a dropdown only focused and left (tabbing through it) fires input and reset
    # the steps typed above (issue 26); a real change of scheduler sets its usual count
    fields.scheduler.change(None, fields.scheduler, fields.steps,
                            js=f"(name) => ({json.dumps(DEFAULT_STEPS_BY_SCHEDULER)})[name]")
    fields.dice.click(None, None, fields.seed, js=DICE_JS)
    bar.done.click(None, js=SCROLL_TO_CLIP_JS)
    clips.ab.click(None, js=AB_JS)
    clips.loop_playback.change(None, clips.loop_playback, None, js=LOOP_PLAYBACK_JS)
    app.load(None, js=PAGE_JS)


def _wire_model(app, studio: AudioStudio, fields, header, message) -> None:
    """The model chooser: a model is loaded when chosen (a message says when it can't be), and the
    header and the fields that depend on its slices follow it; each page load lists the runs anew."""
    def on_model(key):
        try:
            pipe = studio.models.pipe(key)
        except PageError as exc:
            return gr.update(), gr.update(), gr.update(), gr.update(value=f"**Error:** {exc}", visible=True)
        mel = pipe.mel
        return (gr.update(value=studio.describe(pipe)), gr.update(info=seconds_info(mel)),
                gr.update(value=default_overlap_seconds(mel), info=overlap_info(mel)),
                gr.update(value="", visible=False))

    fields.model.input(on_model, fields.model, [header, fields.seconds, fields.overlap, message])
    app.load(lambda: gr.update(choices=studio.models.choices()), None, fields.model)


def build_app(studio: AudioStudio) -> gr.Blocks:
    """The page (audiodiff.app_page lays it out): Generate/Stop, the progress and the last job's
    "done" line on top (kept in view); musical settings on the left, the expert ones folded; this
    clip and the previous one side by side on the right, with A/B and loop playback; under them the
    session's clips."""
    mel = studio.pipe.mel
    flags = StopFlags()
    with gr.Blocks(title="audiodiff", analytics_enabled=False, delete_cache=UPLOAD_LIFETIME) as app:
        gr.Markdown("## audiodiff: generate, listen and compare")
        header = gr.Markdown(studio.describe(), elem_id="header")
        bar = action_row()
        history = gr.State([])  # this tab's clips, oldest first (app_history.history_entry)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                fields = settings_column(mel, default_overlap_seconds(mel), studio.models.choices())
            with gr.Column(scale=3):
                clips = clips_column()
                shelf = history_column(history, lambda button, wav: button.click(
                    lambda: _as_input(wav), None, [fields.audio, fields.mode, fields.audio_section]))
        clock = gr.Number(None, visible=False)  # the page's clock (ms) at a click, set by the click's js
        _wire_audio_input(fields, bar, mel)
        _wire_listening(app, fields, bar, clips, shelf, history, studio)
        _wire_model(app, studio, fields, header, clips.message)
        bar.generate.click(
            _job_handler(studio, flags, bar, clips, history),
            [fields.model, fields.seconds, fields.seed, fields.steps, fields.scheduler, fields.overlap, fields.bpm,
             fields.loop, fields.audio, fields.mode, fields.strength, fields.invert, fields.second_audio,
             fields.candidates, fields.level_hold, fields.tempo_hold, fields.quantize, fields.base_guidance, history,
             clock],
            [clips.message, clips.placeholder, clips.image, clips.player, clips.files, clips.summary, clips.reuse,
             clips.previous_column, clips.previous_image, clips.previous_player, clips.previous_summary,
             clips.listening, clips.ab, bar.done, history],
            concurrency_limit=1,  # one shared model: clicks wait in the queue
            show_progress_on=bar.status,  # one bar, in the row that stays in view, next to Generate and Stop
            js="(...values) => [...values.slice(0, -1), Date.now()]",  # when it was clicked, on the page's clock
        ).then(None, js=SHOW_RESULT_JS)
        bar.stop.click(flags.on_stop, clock, None, queue=False, js="() => Date.now()")  # not behind the job it stops
        app.unload(flags.on_unload)  # the page went away: its job stops
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
