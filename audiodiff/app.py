"""`python scripts/app.py`: a page in the browser to generate clips, listen to them and compare.

Why a page: judging a genre model is listening, and listening to the clip just made next to the
one before is how settings (steps, scheduler, overlap, seed) get chosen. The page is a thin
layer over `audiodiff.generate.generate`, the same function the command line uses, so a clip
made here is the same file (WAV, PNG, JSON) as one made by `scripts/generate.py` with the same
settings, written into the app's output folder and never overwriting.

- The pipeline is loaded once, when the app starts (`AudioStudio`), and every click reuses it
  (`generate(..., pipe=...)`); clicks are queued one at a time, since they share one model.
- The edit options (continue, vary or join the user's own audio; a seamless loop) are passed
  to `generate()` only when the user asks for them (`edit_kwargs`).
- A user's mistake (seconds 0, an overlap longer than a slice, an unreadable upload) is shown
  in the page as an error message; anything else is a bug and keeps its traceback in the
  server's log.
- Offline by construction: analytics and the version check are off, the default theme's fonts
  are served by the app itself, and nothing waits on the network. It binds to 127.0.0.1 unless
  `host` or `share` say otherwise.

gradio is an optional extra (`pip install -e ".[app]"`) and is imported by this module only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

try:
    import gradio as gr
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError('the app needs gradio, an optional extra: pip install -e ".[app]"') from exc

from .cli import user_errors
from .generate import GenerationError, generate, pick_device, resolve_model
from .sample import DEFAULT_SCHEDULER, SCHEDULERS, DEFAULT_STEPS, default_overlap_seconds

DEFAULT_HOST = "127.0.0.1"  # this machine only; --host 0.0.0.0 or --share expose it
DEFAULT_PORT = 7860  # gradio's usual port
DEFAULT_APP_OUTPUT_DIR = Path("samples") / "app"
DEFAULT_APP_SECONDS = 10.0  # long enough to hear a continuation seam, short enough to wait for on a CPU
MODES = ("continue", "vary", "join")
DEFAULT_STRENGTH = 0.5  # where the slider starts: audiodiff.edits' default
# Spectrograms fill the column's width: small models' (32 or 64 Mel rows) are scaled up with sharp
# pixels, not a blur; long clips' are scaled down; short clips' no taller than 400 CSS pixels.
CSS = """
.spectrogram button:has(> .image-frame), .spectrogram .image-frame { width: 100%; }
.spectrogram .image-frame img {
    width: 100%; height: auto; max-height: 400px; object-fit: contain; image-rendering: pixelated;
}
"""


@dataclass(frozen=True)
class Clip:
    """One generated clip's files."""

    wav: Path
    png: Path
    json: Path


def edit_kwargs(audio: str | None, mode: str, strength: float | None, second_audio: str | None,
                loop: bool, invert: bool = False) -> dict:
    """The edit keywords for `generate()` from the page's controls; empty for plain generation.

    audio + "continue": init_audio (the clip continues it); + "vary": init_audio and strength,
    invert when ticked (a variation of it); + "join": fill_gap=(audio, second_audio) (new audio
    between the two). loop: loop=True (a new clip that repeats seamlessly; not with audio).
    """
    if mode not in MODES:
        raise GenerationError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if audio is None:
        if mode == "join" and second_audio is not None:
            raise GenerationError("join needs two pieces of audio: upload the first one too (the second is only the end)")
        return {"loop": True} if loop else {}
    if loop:
        raise GenerationError("a loop is a new clip, made without your audio: untick loop to "
                              f"{mode} the uploaded audio, or clear the audio to make a loop")
    if mode == "continue":
        return {"init_audio": audio}
    if mode == "vary":
        if strength is None or not 0 < strength <= 1:
            raise GenerationError(f"strength must be in (0, 1], got {strength}")
        return {"init_audio": audio, "strength": float(strength), **({"invert": True} if invert else {})}
    if second_audio is None:
        raise GenerationError("join needs a second piece of audio: upload the audio the new part should lead into")
    return {"fill_gap": (audio, second_audio)}


class AudioStudio:
    """The loaded pipeline and where clips go: what every click of the page reuses."""

    def __init__(self, pipe, *, output_dir: str | os.PathLike = DEFAULT_APP_OUTPUT_DIR, device: str | None = None,
                 model_choice: str = "given"):
        self.pipe = pipe
        self.model_choice = model_choice  # how the model was chosen when none was given (resolve_model)
        self.output_dir = Path(output_dir)
        self.device = device

    @classmethod
    def load(cls, model: str | None, *, output_dir: str | os.PathLike = DEFAULT_APP_OUTPUT_DIR,
             device: str | None = None, runs_dir: str | os.PathLike | None = None) -> "AudioStudio":
        """Load the pipeline once, chosen as `scripts/generate.py` chooses it (`resolve_model`)."""
        pipe, chosen = resolve_model(model, runs_dir=runs_dir, device=pick_device(device))
        return cls(pipe, output_dir=output_dir, device=device, model_choice=chosen)

    def generate(self, seconds: float, *, seed: int = 0, steps: int | None = None,
                 scheduler: str = DEFAULT_SCHEDULER, overlap_seconds: float | None = None,
                 edits: dict | None = None, log=None, progress: bool = True) -> Clip:
        """One clip with the loaded pipeline -> its files. Raises GenerationError for user errors."""
        edits = edits or {}
        if seed is None or float(seed) != int(seed):
            raise GenerationError(f"seed must be a whole number, got {seed}")
        if steps is not None and float(steps) != int(steps):
            raise GenerationError(f"steps must be a whole number, got {steps}")
        wav, png, meta = generate(
            self.pipe.source, seconds, output_dir=self.output_dir, seed=int(seed),
            steps=None if steps is None else int(steps), scheduler=scheduler, overlap_seconds=overlap_seconds,
            device=self.device, progress=progress, log=log, pipe=self.pipe, model_choice=self.model_choice, **edits,
        )
        return Clip(wav=wav, png=png, json=meta)

    def describe(self) -> str:
        text = f"**Model:** {self.pipe.describe()}"
        if self.model_choice != "given":
            text += f"  \n*{self.model_choice}*"
        return text + f"  \n**Clips are written to** `{self.output_dir}`"


def _summary(clip: Clip, messages: list[str]) -> str:
    record = json.loads(clip.json.read_text())
    edit = record.get("edit", "generate")
    line = (f"**{clip.wav.name}**: {'' if edit == 'generate' else edit + ', '}{record['seconds']:g} s at "
            f"{record['sample_rate']} Hz, seed {record['seed']}, {record['steps']} {record['scheduler']} steps, "
            f"overlap {record['overlap_seconds']:g} s")
    if record.get("strength") is not None:
        line += f", strength {record['strength']:g}" + (" from its inversion" if record.get("invert") else "")
    lines = [line]
    lines += [f"*{message}*" for message in messages]
    return "  \n".join(lines)


def build_app(studio: AudioStudio) -> gr.Blocks:
    """The page: settings on the left, this clip and the previous one (to compare) on the right."""
    # The browser's own <audio> player: the spectrogram above it already shows the clip, and the
    # browser plays the WAV file as written (gradio's waveform view decodes it again in JS).
    browser_player = gr.WaveformOptions(show_recording_waveform=False)
    mel = studio.pipe.mel
    overlap_default = default_overlap_seconds(mel)

    def on_generate(seconds, seed, steps, scheduler, overlap, loop, audio, mode, strength, invert, second_audio,
                    previous, progress=gr.Progress(track_tqdm=True)):
        messages: list[str] = []
        progress(0, desc="starting")
        try:
            edits = edit_kwargs(audio, mode, strength, second_audio, bool(loop), bool(invert))
            clip = studio.generate(
                seconds, seed=seed, steps=steps, scheduler=scheduler, overlap_seconds=overlap,
                edits=edits, log=messages.append, progress=True,
            )
        except user_errors() as exc:  # the user's mistake: a message in the page, no traceback
            raise gr.Error(str(exc), print_exception=False) from exc
        summary = _summary(clip, messages)
        before = previous or {}
        shown = {"wav": str(clip.wav), "png": str(clip.png), "summary": summary}
        return (
            str(clip.png), str(clip.wav), [str(clip.wav), str(clip.json)], summary,
            before.get("png"), before.get("wav"), before.get("summary", ""), shown,
        )

    def on_mode(mode):
        vary = gr.update(visible=mode == "vary")
        return vary, vary, gr.update(visible=mode == "join")

    def on_reuse(current):
        if not current:
            raise gr.Error("generate a clip first", print_exception=False)
        return current["wav"], "continue"

    with gr.Blocks(title="audiodiff", analytics_enabled=False) as app:
        gr.Markdown("## audiodiff: generate, listen and compare")
        gr.Markdown(studio.describe())
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                seconds = gr.Number(DEFAULT_APP_SECONDS, label="seconds", minimum=0,
                                    info="exact length of the clip (longer than one slice, "
                                         f"{mel.slice_seconds:.2f} s, is made by continuation); with your "
                                         "audio: the new seconds to continue or join with, or how much of "
                                         "it to vary",
                                    elem_id="seconds")
                seed = gr.Number(0, label="seed", precision=0, info="the same seed gives the same clip",
                                 elem_id="seed")
                scheduler = gr.Dropdown(list(SCHEDULERS), value=DEFAULT_SCHEDULER, label="scheduler",
                                        elem_id="scheduler")
                steps = gr.Number(DEFAULT_STEPS[DEFAULT_SCHEDULER], label="steps", precision=0, minimum=1,
                                  info="denoising steps per slice; choosing a scheduler sets its usual count",
                                  elem_id="steps")
                overlap = gr.Number(overlap_default, label="overlap (seconds)", minimum=0,
                                    info=f"of the previous slice each next slice continues from; "
                                         f"shorter than one slice ({mel.slice_seconds:.2f} s)",
                                    elem_id="overlap")
                loop = gr.Checkbox(False, label="loop: a clip that repeats seamlessly", elem_id="loop")
                with gr.Accordion("your audio (optional): continue, vary or join", open=False):
                    audio = gr.Audio(type="filepath", sources=["upload"], label="audio", elem_id="init-audio")
                    mode = gr.Radio(list(MODES), value="continue", label="mode",
                                    info="continue: the clip carries it on; vary: a variation of it; "
                                         "join: new audio leading from it into the second audio",
                                    elem_id="mode")
                    strength = gr.Slider(0.05, 1.0, value=DEFAULT_STRENGTH, step=0.05, label="strength",
                                         info="how far the variation may move away (1: anything)",
                                         visible=False, elem_id="strength")
                    invert = gr.Checkbox(False, label="invert: start from the audio's DDIM inversion "
                                         "(keeps more of it; ddim scheduler)", visible=False, elem_id="invert")
                    second_audio = gr.Audio(type="filepath", sources=["upload"], label="second audio (join)",
                                            visible=False, elem_id="second-audio")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=2):
                gr.Markdown("### this clip")
                summary = gr.Markdown(elem_id="summary")
                image = gr.Image(type="filepath", label="spectrogram", interactive=False, elem_id="spectrogram",
                                 elem_classes="spectrogram")
                player = gr.Audio(type="filepath", label="clip", interactive=False, elem_id="clip",
                                  waveform_options=browser_player)
                files = gr.File(label="download (WAV and JSON)", file_count="multiple", interactive=False,
                                elem_id="download")
                reuse = gr.Button("use this clip as the audio to continue", size="sm", elem_id="reuse")
                with gr.Accordion("previous clip, to compare", open=True):
                    previous_summary = gr.Markdown(elem_id="previous-summary")
                    previous_image = gr.Image(type="filepath", label="previous spectrogram", interactive=False,
                                              elem_id="previous-spectrogram", elem_classes="spectrogram")
                    previous_player = gr.Audio(type="filepath", label="previous clip", interactive=False,
                                               elem_id="previous-clip", waveform_options=browser_player)
        current = gr.State(None)

        # In the browser: no round trip that a quick click on Generate could overtake.
        scheduler.input(None, scheduler, steps, js=f"(name) => ({json.dumps(DEFAULT_STEPS)})[name]")
        mode.change(on_mode, mode, [strength, invert, second_audio])
        reuse.click(on_reuse, current, [audio, mode])
        button.click(
            on_generate,
            [seconds, seed, steps, scheduler, overlap, loop, audio, mode, strength, invert, second_audio, current],
            [image, player, files, summary, previous_image, previous_player, previous_summary, current],
            concurrency_limit=1,  # one shared model: clicks wait in the queue
            show_progress_on=image,  # one progress bar, where the spectrogram will appear
        )
    return app


def launch_app(model: str | None = None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
               share: bool = False, output_dir: str | os.PathLike = DEFAULT_APP_OUTPUT_DIR,
               device: str | None = None, runs_dir: str | os.PathLike | None = None, log=print) -> None:
    """Load the model once, then serve the page until interrupted."""
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
        allowed_paths=[str(studio.output_dir.resolve())],  # the clips the page shows and offers
        css=CSS, ssr_mode=False, mcp_server=False, pwa=False,  # no Node server, no extra endpoints
    )
