"""The app's page laid out (gradio components, no behaviour): the sticky row of Generate and Stop, the
settings (musical ones first, the expert ones folded), the clips to compare, and the session's
history. `audiodiff.app.build_app` lays it out with these and wires the events.

Each function makes its part inside the Blocks being built and returns its components by name.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from .app_fields import DEFAULT_APP_SECONDS, LABELS, MODES
from .finetune_config import MAX_SEED
from .sampling.autoguide import DEFAULT_BASE_GUIDANCE, MAX_BASE_GUIDANCE
from .sampling.options import (DEFAULT_CANDIDATES, DEFAULT_LEVEL_HOLD, DEFAULT_STRENGTH, DEFAULT_TEMPO_HOLD,
                                MAX_CANDIDATES, MAX_LEVEL_HOLD, MAX_TEMPO_HOLD)
from .sampling.quantize import DEFAULT_QUANTIZE
from .sampling.schedulers import DEFAULT_SCHEDULER, DEFAULT_STEPS_BY_SCHEDULER, SCHEDULERS

# The browser's own <audio> player: the spectrogram above it already shows the clip, and the
# browser plays the WAV file as written (gradio's waveform view decodes it again in JS).
BROWSER_PLAYER = gr.WaveformOptions(show_recording_waveform=False)
SPECTROGRAM_ALT = ("spectrogram of {name}: time in seconds from left to right, pitch in Hz from bottom to top, "
                   "brighter is louder")


def action_row() -> SimpleNamespace:
    """Generate, Stop, what the next click does with loaded audio, the last job's "done" line and the
    progress: the row that stays at the top of the window."""
    with gr.Row(elem_id="actions", equal_height=True):
        generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=0, min_width=130)
        stop = gr.Button("Stop", variant="stop", elem_id="stop", scale=0, min_width=80)
        loaded = gr.Markdown(visible=False, elem_id="loaded")
        clear = gr.Button("clear", size="sm", visible=False, elem_id="clear-audio", scale=0, min_width=60)
        done = gr.Button("", size="sm", visible=False, elem_id="done", scale=0, min_width=160)
        status = gr.Markdown("", elem_id="status")
    return SimpleNamespace(generate=generate, stop=stop, loaded=loaded, clear=clear, done=done, status=status)


def seconds_info(mel) -> str:
    return (f"exact length of the clip (longer than one slice, {mel.slice_seconds:.2f} s, is made by continuation); "
            "with your audio: the new seconds to continue or join with, or how much of it to vary")


def overlap_info(mel) -> str:
    return (f"of the previous slice each next slice continues from; shorter than one slice "
            f"({mel.slice_seconds:.2f} s)")


def settings_column(mel, overlap_default: float, models: list[tuple[str, str]]) -> SimpleNamespace:
    """The settings: a musician's first (the model and its genre, length, tempo, seed with its dice,
    loop), the expert's folded (scheduler, steps, overlap), then the user's own audio (folded too).
    `models`: (label, key) of every model to choose from (audiodiff.app_models), the started one first."""
    model = gr.Dropdown(models, value=models[0][1], label="model (genre)",
                        info="a fine-tuned run under runs/ makes its genre; another model is loaded when chosen",
                        elem_id="model")
    # No minimum= or precision=: gradio's toast for the first names no field, and the second
    # rounds a seed of 2.5 to 2 without a word; app_fields checks every value and names its field
    seconds = gr.Number(DEFAULT_APP_SECONDS, label=LABELS["seconds"], info=seconds_info(mel), elem_id="seconds")
    # A one-line text box, not gr.Number: gradio shows an empty Number as "0" and sends 0 (issue 26: the
    # field read "0" on a fresh page although its help says to leave it empty); app_fields reads the text
    bpm = gr.Textbox("", max_lines=1, label=LABELS["bpm"], placeholder="empty: the beat of the first slice",
                     info="the tempo of a new clip or loop, 40 to 240; empty (or 0): the clip keeps "
                          "the beat of its first slice (your audio's, when you continue it)",
                     elem_id="bpm")
    with gr.Row(elem_id="seed-row", equal_height=False):
        seed = gr.Number(0, label=LABELS["seed"],
                         info=f"a whole number from 0 to {MAX_SEED}; the same seed gives the same clip",
                         elem_id="seed", scale=4)
        dice = gr.Button("dice", elem_id="dice", scale=0, min_width=64)  # an emoji is a box without an emoji font
    loop = gr.Checkbox(False, label="loop: a clip that repeats seamlessly", elem_id="loop")
    with gr.Accordion("expert settings: scheduler, steps, overlap, holds, candidates, beat grid, base guidance",
                      open=False, elem_id="expert"):
        scheduler = gr.Dropdown(list(SCHEDULERS), value=DEFAULT_SCHEDULER, label=LABELS["scheduler"],
                                elem_id="scheduler")
        steps = gr.Number(DEFAULT_STEPS_BY_SCHEDULER[DEFAULT_SCHEDULER], label=LABELS["steps"],
                          info="denoising steps per slice; choosing a scheduler sets its usual count",
                          elem_id="steps")
        overlap = gr.Number(overlap_default, label=LABELS["overlap"], info=overlap_info(mel), elem_id="overlap")
        level_hold = gr.Number(DEFAULT_LEVEL_HOLD, label=LABELS["level_hold"], elem_id="level-hold",
                               info=f"how strongly each next slice is held at the clip's loudness, 0 (off) to "
                                    f"{MAX_LEVEL_HOLD:g}")
        tempo_hold = gr.Number(DEFAULT_TEMPO_HOLD, label=LABELS["tempo_hold"], elem_id="tempo-hold",
                               info=f"how strongly each next slice keeps the clip's beat, 0 (off) to "
                                    f"{MAX_TEMPO_HOLD:g}; a bpm needs it")
        candidates = gr.Number(DEFAULT_CANDIDATES, label=LABELS["candidates"], elem_id="candidates",
                               info=f"versions of each slice, of which the most tonal one near the clip's loudness "
                                    f"is kept; 1 to {MAX_CANDIDATES}, each one more costs a slice's time again")
        quantize = gr.Number(DEFAULT_QUANTIZE, label=LABELS["quantize"], elem_id="quantize",
                             info="how far a new clip's beats are moved onto an even grid before it is decoded, "
                                  "0 (as sampled) to 1")
        base_guidance = gr.Number(DEFAULT_BASE_GUIDANCE, label=LABELS["base_guidance"], elem_id="base-guidance",
                                  info=f"how far a fine-tuned model is steered away from the model it was fine-tuned "
                                       f"from, toward what it learned: 1 (off) to {MAX_BASE_GUIDANCE:g}; above 1 "
                                       "costs about half a slice's time again")
    return SimpleNamespace(model=model, seconds=seconds, bpm=bpm, seed=seed, dice=dice, loop=loop, scheduler=scheduler,
                           steps=steps, overlap=overlap, level_hold=level_hold, tempo_hold=tempo_hold,
                           candidates=candidates, quantize=quantize, base_guidance=base_guidance,
                           **vars(audio_section()))


def audio_section() -> SimpleNamespace:
    """The user's own audio to continue, vary or join, in a folded section."""
    with gr.Accordion("your audio (optional): continue, vary or join", open=False,
                      elem_id="audio-section") as section:
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
    return SimpleNamespace(audio_section=section, audio=audio, upload_message=upload_message, mode=mode,
                           strength=strength, invert=invert, second_audio=second_audio)


def _spectrogram(elem_id: str, label: str) -> gr.Image:
    return gr.Image(type="pil", label=label, interactive=False, visible=False, elem_id=elem_id,
                    elem_classes="spectrogram", show_label=False, format="png",
                    alt_text=SPECTROGRAM_ALT.format(name=label))


def clips_column() -> SimpleNamespace:
    """The last job's message, then this clip and the previous one side by side, with the A/B
    toggle and the loop-playback switch between them."""
    message = gr.Markdown(visible=False, elem_id="message")
    with gr.Row(elem_id="listening", visible=False) as listening:
        ab = gr.Button("A/B: switch between this clip and the previous one", size="sm", elem_id="ab", scale=0,
                       min_width=200)
        loop_playback = gr.Checkbox(False, label="loop playback", elem_id="loop-playback", scale=0, min_width=160)
    with gr.Row(elem_id="clips"):
        with gr.Column(min_width=320, elem_id="this-clip"):
            gr.Markdown("### this clip")
            placeholder = gr.Markdown(
                "Press **Generate**: the clip appears here with its spectrogram, and the one "
                "before it stays beside it to compare.", elem_id="placeholder")
            summary = gr.Markdown(visible=False, elem_id="summary")
            image = _spectrogram("spectrogram", "this clip")
            player = gr.Audio(type="filepath", label="this clip", interactive=False, visible=False,
                              elem_id="clip", waveform_options=BROWSER_PLAYER)
            files = gr.File(label="download (WAV and JSON)", file_count="multiple", interactive=False,
                            visible=False, elem_id="download")
            reuse = gr.Button("use this clip as the audio to continue", size="sm", visible=False,
                              elem_id="reuse")
        with gr.Column(min_width=320, visible=False, elem_id="previous") as previous_column:
            gr.Markdown("### previous clip")
            previous_summary = gr.Markdown(elem_id="previous-summary")
            previous_image = _spectrogram("previous-spectrogram", "the previous clip")
            previous_player = gr.Audio(type="filepath", label="previous clip", interactive=False,
                                       elem_id="previous-clip", waveform_options=BROWSER_PLAYER, visible=False)
    return SimpleNamespace(message=message, listening=listening, ab=ab, loop_playback=loop_playback,
                           placeholder=placeholder, summary=summary, image=image, player=player, files=files,
                           reuse=reuse, previous_column=previous_column, previous_summary=previous_summary,
                           previous_image=previous_image, previous_player=previous_player)


def history_column(history: gr.State, use_as_input) -> SimpleNamespace:
    """This session's clips, newest first, each with its settings, its player and "use as input"
    (`use_as_input(button, wav)` wires a button to put that clip into the audio input), and
    "download all" (a zip of their WAVs and JSONs)."""
    with gr.Column(elem_id="history"):
        gr.Markdown("### this session's clips")
        with gr.Row():
            download_all = gr.Button("download all (zip of the WAVs and JSONs)", size="sm", elem_id="download-all",
                                     scale=0, min_width=200)
            zipped = gr.File(label="all clips", interactive=False, visible=False, elem_id="download-all-file")

        @gr.render(inputs=history)
        def entries(clips):
            if not clips:
                gr.Markdown("Every clip of this session will be listed here, newest first.", elem_id="history-empty")
                return
            for number, clip in reversed(list(enumerate(clips, start=1))):
                with gr.Column(variant="panel", elem_classes="history-entry", elem_id=f"history-{number}"):
                    gr.Markdown(f"**{number}. {clip['name']}**: {clip['settings']}", elem_classes="history-settings",
                                padding=True)
                    gr.Audio(clip["wav"], type="filepath", label=f"clip {number}: {clip['name']}", interactive=False,
                             show_label=False, waveform_options=BROWSER_PLAYER, elem_classes="history-player")
                    use = gr.Button("use as input", size="sm", elem_classes="history-use")
                    use_as_input(use, clip["wav"])

    return SimpleNamespace(download_all=download_all, zipped=zipped, entries=entries)
