"""The long-clip planner: which slices a job samples, where each lies in the image, and how many
UNet calls each costs, all before the first one. New clips, loops, continuations, gap fills,
variations and interpolations are all planned here; the job's progress total is the plan's count
(audiocraft keeps its windowing apart from its one-window sampler in the same way). One count
cannot be planned: a new clip's first slice drawn again for want of a clear pulse is decided after
it is made (`longclip.redraw_unclear`), and raises the total then (`JobProgress.add_steps`).

Two shapes of plan:
- *extend*: grow an image of `start_width` columns to `total_width`, each slice starting with the
  last `overlap_columns` columns made so far (known) and, with a known end of `tail` columns
  (gap fills, loops), the last slice ending with them. A new clip or a loop starts with a first
  slice from noise.
- *cover*: resample an image that exists (variations, interpolation) slice by slice, consecutive
  slices sharing at least `overlap_columns` columns, the last one moved back to end at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

from .options import FIRST_SLICE_RESTEER, SamplingSetup
from .schedulers import strength_start_index


def unet_calls(num_inference_steps: int, *, strength: float | None = None, repaint_jumps: int = 0,
               candidates: int = 1) -> int:
    """UNet calls of one slice as progress counts them: the steps it runs, plus RePaint's extra
    calls (none after the last step); a call on `candidates` versions of an item counts as that
    many (it costs that much)."""
    steps = num_inference_steps
    if strength is not None:
        steps -= strength_start_index(num_inference_steps, strength)
    return candidates * (steps + repaint_jumps * (steps - 1))


@dataclass(frozen=True)
class Slice:
    """One slice of a plan: columns [start, start + width) of the image, of which the first `known`
    are already made; it adds `keep` new columns (extend plans); `final`: it ends with the job's
    known end; `calls`: its UNet calls."""

    start: int
    width: int
    known: int
    keep: int
    final: bool
    calls: int

    @property
    def end(self) -> int:
        return self.start + self.width


@dataclass(frozen=True)
class SlicePlan:
    """A job's slices, in order, and what they add up to."""

    slices: tuple[Slice, ...]
    total_width: int  # columns of the finished image
    tail: int = 0  # known columns the image ends with (extend plans)

    @property
    def unet_calls(self) -> int:
        return sum(s.calls for s in self.slices)

    def __len__(self) -> int:
        return len(self.slices)

    def after_first(self) -> "SlicePlan":
        return SlicePlan(self.slices[1:], self.total_width, self.tail)


def extend_slices(start_width: int, total_width: int, *, overlap_columns: int, slice_width: int, tail: int = 0,
                  calls: int = 0) -> list[Slice]:
    """The slices that continue an image of `start_width` columns to `total_width`, the last `tail`
    of them known, each costing `calls`. Pure arithmetic."""
    gap_end = total_width - tail  # columns [gap_end, total_width) are the known end
    made = start_width
    slices = []
    while made < gap_end:
        k = min(overlap_columns, made)
        remaining = gap_end - made
        final = bool(tail) and k + remaining + tail <= slice_width
        if final:
            width, keep = k + remaining + tail, remaining + tail
        else:
            width = slice_width
            # with a known end ahead, stop early enough that the last slice still fits it
            keep = min(slice_width - k, remaining + k + tail - slice_width) if tail else slice_width - k
        slices.append(Slice(start=made - k, width=width, known=k, keep=keep, final=final, calls=calls))
        made += keep
    return slices


def cover_slices(width: int, slice_width: int, overlap_columns: int, calls: int = 0) -> list[Slice]:
    """Cover `width` columns with slices of `slice_width`; the first `known` columns of each are
    already made (0 for the first). Consecutive slices share at least `overlap_columns` columns;
    the last slice is moved back to end at `width`, so every slice is full width (unless the whole
    image is narrower than one slice)."""
    if width <= slice_width:
        return [Slice(start=0, width=width, known=0, keep=width, final=False, calls=calls)]
    slices = [Slice(start=0, width=slice_width, known=0, keep=slice_width, final=False, calls=calls)]
    while slices[-1].end < width:
        made = slices[-1].end
        start = made - overlap_columns
        if start + slice_width > width:
            start = width - slice_width
        slices.append(Slice(start=start, width=slice_width, known=made - start, keep=start + slice_width - made,
                            final=False, calls=calls))
    return slices


def draw_calls(setup: SamplingSetup) -> int:
    """The UNet calls a slice's other draws add (`sampling.tonal.tonal_draws`; 0 without draws)."""
    from .loop import Draws
    from .tonal import draw_step

    if setup.draws <= 1:
        return 0
    return Draws(setup.draws, draw_step(setup.steps), choose=None).extra_calls(setup.steps, setup.options.repaint_jumps)


def plan_extend(setup: SamplingSetup, start_width: int, total_width: int, *, tail: int = 0,
                first_width: int | None = None) -> SlicePlan:
    """Continue an image of `start_width` columns to `total_width` (continuations, gap fills); with
    `first_width`, a first slice from noise comes before, of which `start_width` columns are kept
    (new clips, loops)."""
    options = setup.options
    drawn = draw_calls(setup)
    slices = extend_slices(start_width, total_width, overlap_columns=setup.overlap_columns,
                           slice_width=setup.slice_width, tail=tail,
                           calls=unet_calls(setup.steps, repaint_jumps=options.repaint_jumps,
                                            candidates=options.candidates) + drawn)
    if first_width is not None:
        calls = unet_calls(setup.steps, repaint_jumps=options.repaint_jumps, candidates=options.candidates) + drawn
        if setup.reads_beat:  # the first slice steered onto the beat read from it (sampling.beat)
            calls += unet_calls(setup.steps, strength=FIRST_SLICE_RESTEER)
        first = Slice(start=0, width=first_width, known=0, keep=start_width, final=False, calls=calls)
        slices = [first] + slices
    return SlicePlan(tuple(slices), total_width, tail)


def plan_cover(setup: SamplingSetup, width: int, calls_per_slice: int) -> SlicePlan:
    """Resample an image of `width` columns slice by slice (variations, interpolation)."""
    return SlicePlan(tuple(cover_slices(width, setup.slice_width, setup.overlap_columns, calls_per_slice)), width)
