"""Edits that lay given audio on one timeline and generate the rest: continue it, fill a gap,
loop. Each is the long-clip slice loop (`extend_image`) on the planner's slices with another mask.

**One timeline.** The user's pieces of audio are laid on one timeline at the model's sample rate,
with silence where new audio is wanted: `[A | gap]` for a continuation, `[A | gap | B]` for a gap
fill. The timeline becomes one spectrogram (one level reference, the STFT's global column grid:
column j is centred on sample j * hop_length). A column is *known* when its whole STFT window
lies inside given audio; every column whose window touches the gap is generated. (Taking A's
last columns as they come would hand the model a fade into the gap's silence as context.) The
gap's columns are generated slice by slice, each slice starting with the last `overlap` columns
made so far and, for a gap fill, the last slice ending with B's first columns as known columns:
the new part is generated to lead out of A and into B.

**The user's audio is kept.** Decoding a spectrogram (Griffin-Lim) is lossy, so the output is the
given waveform itself wherever it is given, and decoded audio only in the gap, with an
equal-power crossfade of `CROSSFADE_SECONDS` inside the given audio next to each join. The
decoded part is scaled back from the spectrogram's 0 dB reference to the given audio's level
(one gain, sqrt(reference power)), so nothing is loudness-normalised and the output has exactly
len(A) + seconds (+ len(B)) samples.

**Loops.** A loop of N samples is an image of W = round(N / hop_length) columns whose end leads
into its own start: after a first slice, the rest is generated with the loop's first `overlap`
columns as the known end, so column W + i equals column i. The image is decoded with a periodic
margin on both sides, the wrap is crossfaded, and the period is resampled exactly to N samples
with an FFT (a periodic signal stays periodic), so on repeat there is no click and no jump of
even one sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..mel import MelConfig, mel_power, power_to_images
from ..metrics import DEFAULT_TARGET_LUFS
from .beat import read_given_beat
from .finish import decode_audio, peak_protect, set_level
from .longclip import LongClip, extend_image, first_slice, slice_spans
from .options import SamplingOptions, SamplingSetup, check_bpm_use, default_overlap_seconds, sampling_options
from .plan import plan_extend
from .progress import JobProgress, job
from .steering import beat_bpm, beat_columns_for

CROSSFADE_SECONDS = 0.1  # original -> decoded audio next to each join, inside the given audio
# A loop's context when the caller gives no overlap: 1 s, the default before long clips' grew to 1.5 s,
# so that loops of a bar (2 s at 120 bpm) stay possible.
LOOP_OVERLAP_SECONDS = 1.0


class EditError(ValueError):
    """An edit that can't be done with the given audio or settings; the message says why."""


# ---- helpers ---------------------------------------------------------------------------------
def check_audio(audio: torch.Tensor, mel: MelConfig, what: str) -> torch.Tensor:
    """(T,) float audio at mel.sample_rate, finite, not silent, at least one STFT window long."""
    audio = torch.as_tensor(audio).float().reshape(-1)
    if not torch.isfinite(audio).all():
        raise EditError(f"{what} contains NaN or infinite samples")
    if audio.numel() < mel.n_fft:
        raise EditError(f"{what} is too short ({audio.numel() / mel.sample_rate:.3f} s); it needs at least "
                        f"{mel.n_fft / mel.sample_rate:.3f} s ({mel.n_fft} samples at {mel.sample_rate} Hz)")
    if audio.abs().max() < 1e-6:
        raise EditError(f"{what} is silent")
    return audio


def equal_power(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fade_out, fade_in), each (length,), with fade_out^2 + fade_in^2 = 1."""
    u = (torch.arange(length, dtype=torch.float32) + 0.5) / max(length, 1)
    return torch.cos(0.5 * math.pi * u), torch.sin(0.5 * math.pi * u)


def _crossfade_samples(mel: MelConfig, *lengths: int) -> int:
    return max(1, min([int(round(CROSSFADE_SECONDS * mel.sample_rate))] + [n // 4 for n in lengths]))


def prepare(pipe, options: SamplingOptions | None, keywords: dict, most_overlap_seconds: float | None = None,
            new_music: bool = False) -> SamplingSetup:
    """An edit's `SamplingSetup` (options, with `keywords` laid over them, resolved against
    `pipe`); an edit always continues from at least one known column. `most_overlap_seconds`
    caps the default overlap when the options name none. A bpm is for edits that make `new_music`
    (loops): the others keep the tempo of the audio they are given."""
    try:
        options = sampling_options(options, keywords)
        check_bpm_use(options.bpm, new_music)
        if options.overlap_seconds is None and most_overlap_seconds is not None:
            options = replace(options, overlap_seconds=min(most_overlap_seconds, default_overlap_seconds(pipe.mel)))
        setup = SamplingSetup.prepare(pipe, options)
    except ValueError as exc:
        raise EditError(str(exc)) from exc
    return replace(setup, overlap_columns=max(setup.overlap_columns, 1))


@dataclass
class Timeline:
    """Given pieces of audio on one timeline, with gaps to generate."""

    pieces: list[tuple[int, torch.Tensor]]  # (start sample, (T,) audio)
    total: int  # samples in the result

    def image(self, mel: MelConfig) -> tuple[torch.Tensor, torch.Tensor, float]:
        """-> (image (1, 1, H, W) with silence in the gaps, known (W,) bool, reference power).

        One hop of extra silence at the end, so the image decodes to at least `total` samples.
        """
        timeline = torch.zeros(self.total + mel.hop_length)
        for start, audio in self.pieces:
            timeline[start : start + audio.numel()] = audio
        power = mel_power(timeline, mel)  # (1, n_mels, W)
        power_reference = float(power.amax())
        image = power_to_images(power, mel, torch.tensor([power_reference]))  # (1, 1, H, W)
        width = image.shape[-1]
        centres = torch.arange(width) * mel.hop_length
        known = torch.zeros(width, dtype=torch.bool)
        # a window's part outside the timeline is silence either way: only [0, total) counts
        lo = (centres - mel.n_fft // 2).clamp_min(0)
        hi = (centres + mel.n_fft // 2).clamp_max(self.total)
        for start, audio in self.pieces:
            known |= (lo >= start) & (hi <= start + audio.numel())
        return image, known, power_reference

    def splice(self, decoded: torch.Tensor, decoded_start: int, crossfade: int) -> torch.Tensor:
        """Given pieces where given, decoded audio (B, T_d) (starting at sample `decoded_start`)
        elsewhere, equal-power crossfades of `crossfade` samples inside each piece next to a gap."""
        batch = decoded.shape[0]
        out = torch.zeros(batch, self.total)
        lo = decoded_start
        hi = min(self.total, decoded_start + decoded.shape[-1])
        out[:, lo:hi] = decoded[:, : hi - lo]
        fade_out, fade_in = equal_power(crossfade)
        for start, audio in self.pieces:
            end = min(start + audio.numel(), self.total)
            piece = audio[: end - start].unsqueeze(0).expand(batch, -1).clone()
            if end < self.total:  # a gap follows: fade the piece out into the decoded audio
                piece[:, -crossfade:] = piece[:, -crossfade:] * fade_out + out[:, end - crossfade : end] * fade_in
            if start > 0:  # a gap precedes: fade in from the decoded audio
                piece[:, :crossfade] = out[:, start : start + crossfade] * fade_out + piece[:, :crossfade] * fade_in
            out[:, start:end] = piece
        return out


def spliced_audio(timeline: "Timeline", result: torch.Tensor, mel: MelConfig, reference: float):
    """The given pieces with `result` (B, 1, H, W, their image with the gap made) decoded in the gap,
    crossfaded inside the pieces -> (audio (B, T), seams in seconds, between columns). The given
    audio keeps its level; only if the new part would clip is the whole item turned down."""
    (first_start, first), *rest = timeline.pieces
    crossfade = _crossfade_samples(mel, *(a.numel() for _, a in timeline.pieces))
    gap_start = first_start + first.numel()
    gap_end = rest[0][0] if rest else timeline.total
    decoded, decoded_start = _decode_span(result, mel, gap_start - crossfade, min(gap_end + crossfade, timeline.total),
                                          math.sqrt(reference))
    audio = peak_protect(timeline.splice(decoded, decoded_start, crossfade), ceiling=1.0)
    return audio, [gap_start / mel.sample_rate] + ([gap_end / mel.sample_rate] if rest else [])


def _decode_span(image: torch.Tensor, mel: MelConfig, first_sample: int, last_sample: int, gain) -> tuple[torch.Tensor, int]:
    """Decode only the columns needed for samples [first_sample, last_sample), with a margin
    of two STFT windows for Griffin-Lim's edges -> (audio (B, T) * gain, its first sample)."""
    margin = 2 * math.ceil(mel.n_fft / mel.hop_length)
    c0 = max(0, first_sample // mel.hop_length - margin)
    c1 = min(image.shape[-1], math.ceil(last_sample / mel.hop_length) + margin + 1)
    return decode_audio(image[..., c0:c1], mel, gain=gain), c0 * mel.hop_length


def _end_columns(setup: SamplingSetup, available: int) -> int:
    """How many known columns a gap's last slice ends with: up to the overlap, leaving room to generate."""
    end = min(setup.overlap_columns, available, (setup.slice_width - setup.overlap_columns) // 2)
    if end < 1:
        raise EditError(f"the overlap ({setup.overlap_columns} columns) leaves no room in a slice of {setup.slice_width} "
                        "columns for a known end; use a smaller --overlap")
    return end


def _fill(setup: SamplingSetup, timeline: Timeline, progress) -> LongClip:
    """Generate the gap of a timeline with one given piece at its start and optionally one at its end.

    The tempo hold keeps the beat of the piece before the gap (A), read by both estimators at the
    tracker's level (`beat.read_given_beat`) and recorded as the clip's bpm. B's beat is not read:
    every slice echoes its known columns one beat earlier, which are A and what was made from it,
    and B's columns enter only the last slice, as its known end, where the hold does not reach."""
    mel = setup.mel
    image, known, reference = timeline.image(mel)
    width = image.shape[-1]
    unknown = torch.nonzero(~known).flatten()
    g0, g1 = int(unknown[0]), int(unknown[-1]) + 1  # generated columns [g0, g1)
    if g0 < 1:
        raise EditError("the given audio leaves no complete column to continue from")
    end_known = image[..., g1 : g1 + _end_columns(setup, width - g1)] if g1 < width else None
    tail = 0 if end_known is None else end_known.shape[-1]
    plan = plan_extend(setup, g0, g1 + tail, tail=tail)
    prefix = image[..., :g0].expand(setup.batch_size, -1, -1, -1).contiguous()
    beat = None
    if setup.options.tempo_hold:  # A's beat, read as a new clip's first slice is (B's is not held: see the docstring)
        bpm = read_given_beat(image[..., :g0], timeline.pieces[0][1], mel)
        beat = torch.full((setup.batch_size,), beat_columns_for(bpm, mel))
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        made, starts, slices = extend_image(setup, prefix, plan, end_known=end_known, beat_columns=beat, tracker=tracker)
    result = torch.cat([made[..., :g1], image[..., g1:].expand(setup.batch_size, -1, -1, -1)], dim=-1)  # (B, 1, H, W)

    audio, seams = spliced_audio(timeline, result, mel, reference)
    return LongClip.from_columns(result, audio, mel, slice_columns=slice_spans(starts, setup.slice_width, plan.total_width),
                                 slices=slices, seam_seconds=seams, known_columns=known,
                                 bpm=None if beat is None else beat_bpm(beat, mel))


# ---- continuation and gap filling -------------------------------------------------------------
def continue_audio(pipe, audio: torch.Tensor, seconds: float, options: SamplingOptions | None = None, *,
                   progress: "bool | JobProgress" = True, **sampling) -> LongClip:
    """The given audio (T,) at the pipeline's sample rate, then `seconds` of new audio that
    continues it: (B, T + round(seconds * sample_rate)) samples, the given part unchanged.
    options (or keywords named as its fields): how to sample, see `SamplingOptions`."""
    if not seconds > 0:
        raise EditError(f"seconds to add must be positive, got {seconds}")
    setup = prepare(pipe, options, sampling)
    audio = check_audio(audio, setup.mel, "the audio to continue")
    added = int(round(seconds * setup.mel.sample_rate))
    return _fill(setup, Timeline(pieces=[(0, audio)], total=audio.numel() + added), progress)


def fill_gap(pipe, audio_a: torch.Tensor, audio_b: torch.Tensor, seconds: float, options: SamplingOptions | None = None,
             *, progress: "bool | JobProgress" = True, **sampling) -> LongClip:
    """A, then `seconds` of new audio leading out of A's end into B's start, then B:
    (B, len(A) + round(seconds * sample_rate) + len(B)) samples, A and B unchanged.
    options (or keywords named as its fields): how to sample, see `SamplingOptions`."""
    if not seconds > 0:
        raise EditError(f"the gap must be positive, got {seconds} s")
    setup = prepare(pipe, options, sampling)
    audio_a = check_audio(audio_a, setup.mel, "audio A (before the gap)")
    audio_b = check_audio(audio_b, setup.mel, "audio B (after the gap)")
    gap = int(round(seconds * setup.mel.sample_rate))
    timeline = Timeline(pieces=[(0, audio_a), (audio_a.numel() + gap, audio_b)], total=audio_a.numel() + gap + audio_b.numel())
    return _fill(setup, timeline, progress)


# ---- loops -----------------------------------------------------------------------------------
def periodic_resample(audio: torch.Tensor, samples: int) -> torch.Tensor:
    """Resample one period of a periodic signal (B, T) to exactly `samples` per period (FFT)."""
    length = audio.shape[-1]
    if samples == length:
        return audio
    spectrum = torch.fft.rfft(audio.double(), dim=-1)
    keep = min(spectrum.shape[-1], samples // 2 + 1)
    spectrum = spectrum[..., :keep]  # irfft zero-pads (upsampling) and treats a Nyquist bin as real
    return (torch.fft.irfft(spectrum, n=samples, dim=-1) * (samples / length)).float()


def make_loop(pipe, seconds: float, options: SamplingOptions | None = None, *, progress: "bool | JobProgress" = True,
              target_lufs: float | None = DEFAULT_TARGET_LUFS, **sampling) -> LongClip:
    """A clip of exactly round(seconds * sample_rate) samples that repeats seamlessly.

    The image (B, 1, H, W + E) ends with a copy of its first E columns (what the end leads
    into); `audio` is one period, no fades. options (or keywords named as its fields): how to
    sample, see `SamplingOptions`; without an overlap of the caller's, a loop continues from
    LOOP_OVERLAP_SECONDS (1 s) of itself.
    """
    setup = prepare(pipe, options, sampling, most_overlap_seconds=LOOP_OVERLAP_SECONDS, new_music=True)
    mel, k = setup.mel, setup.overlap_columns
    samples = int(round(seconds * mel.sample_rate)) if seconds > 0 else 0
    loop_width = int(round(samples / mel.hop_length))  # one period: the nearest whole number of columns
    end = _end_columns(setup, k)
    bridge = k  # at least this many columns are generated to lead back into the start
    if loop_width < end + bridge + 1:
        shortest = mel.columns_to_seconds(end + bridge + 1)
        raise EditError(f"a loop must be at least {shortest:.2f} s with this model and overlap; "
                        "ask for more --seconds or a smaller --overlap")
    prefix_width = min(setup.slice_width, loop_width - bridge)
    plan = plan_extend(setup, prefix_width, loop_width + end, tail=end, first_width=setup.slice_width)
    with job(progress, plan.unet_calls, len(plan)) as tracker:
        first, beat, redraws = first_slice(setup, tracker)  # (B, 1, H, slice_width), the beat (B,) or None, B ints
        made, starts, slices = extend_image(setup, first[..., :prefix_width], plan.after_first(),
                                            end_known=first[..., :end], beat_columns=beat, tracker=tracker)
        # made[..., loop_width:] == made[..., :end]
    audio = set_level(loop_audio(made[..., :loop_width], mel, samples), mel.sample_rate, target_lufs)
    return LongClip.from_columns(
        made, audio, mel, slice_columns=[(0, prefix_width)] + slice_spans(starts, setup.slice_width, loop_width + end),
        slices=[first] + slices, seam_columns=[s + k for s in starts if s + k < loop_width],
        seam_seconds=[samples / mel.sample_rate],  # the wrap, end -> start
        bpm=None if beat is None else beat_bpm(beat, mel), first_slice_redraws=redraws if setup.reads_beat else None,
    )


def loop_audio(period: torch.Tensor, mel: MelConfig, samples: int) -> torch.Tensor:
    """One period of a looping image (B, 1, H, W) -> (B, samples) audio that repeats seamlessly.

    The image is decoded with `margin` columns of its own other end on each side (so Griffin-Lim
    sees the wrap as the middle of the music), the wrap is crossfaded (the period's start is
    blended from the copy that follows its end, so end -> start is continuous), and the period is
    resampled to exactly `samples` with an FFT.
    """
    width = period.shape[-1]
    hop = mel.hop_length
    crossfade_columns = min(math.ceil(mel.seconds_to_columns(CROSSFADE_SECONDS)), width // 4)
    margin = min(width, crossfade_columns + 2 * math.ceil(mel.n_fft / hop) + 1)
    tiled = torch.cat([period[..., width - margin :], period, period[..., :margin]], dim=-1)
    decoded = decode_audio(tiled, mel)  # (B, (W + 2 margin - 1) * hop)
    start, length = margin * hop, width * hop
    audio = decoded[:, start : start + length].clone()
    fade = max(1, min(crossfade_columns * hop, length // 4))
    fade_out, fade_in = equal_power(fade)
    after_end = decoded[:, start + length : start + length + fade]  # what follows the end, decoded in one piece with it
    audio[:, :fade] = after_end * fade_out + audio[:, :fade] * fade_in
    return periodic_resample(audio, samples)
