"""Progress and stopping: one count of a whole job's UNet calls against a total the planner
computed before the first one (`audiodiff.sampling.plan`), so no function counts by hand.

The denoising loop reports to a `JobProgress` through two calls: `check()` before every UNet call
(a stop raises `Cancelled` there) and `step(count)` after it. A 30 s clip is one count from 0 to
the plan's UNet calls, not one bar per slice, and a stop is noticed within one UNet call. The one
count not known before the first call, a new clip's first slice drawn again for want of a clear
pulse (sampling.longclip), raises the total when it is decided, and says so (`add_steps`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator


class Cancelled(Exception):
    """The job was stopped (its `should_stop` said so) between two denoising steps."""


class JobProgress:
    """One count of a whole job's UNet calls against a total computed before the first one.

    The job runner (`job`) calls `begin(total_steps, slices)` once with the plan's count; the
    denoising loop and `invert` call `check()` before and `step()` after every UNet call; the slice
    loops call `next_slice(what)`.

    bar: show a tqdm bar on stderr (the command line). on_update(progress): called at every
    change (the app draws its own bar from `done_steps`, `total_steps`, `description()`).
    should_stop(): checked before every UNet call and before decoding; True raises `Cancelled`.
    """

    def __init__(self, *, bar: bool = False, on_update: Callable[["JobProgress"], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        self.show_bar = bar
        self.on_update = on_update
        self.should_stop = should_stop
        self.total_steps = 0
        self.done_steps = 0
        self.slices = 0
        self.slice_index = 0  # 1-based once the first slice starts
        self.stage = "starting"
        self.started = time.monotonic()
        self._bar = None

    def begin(self, total_steps: int, slices: int) -> None:
        self.total_steps, self.slices = int(total_steps), int(slices)
        self.done_steps, self.slice_index, self.started = 0, 0, time.monotonic()
        if self.show_bar and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total_steps, unit="step", dynamic_ncols=True)
        self._changed()

    def next_slice(self, what: str = "sampling") -> None:
        self.slice_index += 1
        self.stage = what
        self._changed()

    def set_stage(self, what: str) -> None:
        self.stage = what
        self._changed()

    def add_steps(self, count: int, why: str) -> None:
        """Raise the total by `count` UNet calls decided during the job (a first slice redrawn:
        sampling.longclip), saying `why` as the stage; the total is never lowered."""
        self.total_steps += max(0, int(count))
        if self._bar is not None:
            self._bar.total = self.total_steps
        self.set_stage(why)

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("stopped")

    def step(self, count: int = 1) -> None:
        self.done_steps += count
        self.total_steps = max(self.total_steps, self.done_steps)  # never past 100 %
        if self._bar is not None:
            self._bar.total = self.total_steps
            self._bar.update(count)
        self._changed(moved=True)

    def weighted(self, weight: int) -> "JobProgress | _Weighted":
        """This count, as a loop that denoises `weight` versions of each item at once reports to it:
        a call on all of them counts as `weight` calls (it costs that much)."""
        return self if weight == 1 else _Weighted(self, weight)

    def seconds_left(self) -> float | None:
        """Time left at the rate so far (None before the first step)."""
        if self.done_steps == 0:
            return None
        rate = (time.monotonic() - self.started) / self.done_steps
        return rate * (self.total_steps - self.done_steps)

    def description(self) -> str:
        """e.g. "sampling slice 3 of 6", "decoding the audio"."""
        if self.slices and self.slice_index and self.stage in ("sampling", "inverting"):
            return f"{self.stage} slice {min(self.slice_index, self.slices)} of {self.slices}"
        return self.stage

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _changed(self, moved: bool = False) -> None:
        if self._bar is not None and not moved:  # a new slice or stage: shown at once, even between refreshes
            self._bar.set_description_str(self.description(), refresh=True)
        if self.on_update is not None:
            self.on_update(self)


class _Weighted:
    """A JobProgress seen by a loop whose every UNet call counts `weight` times (`JobProgress.weighted`)."""

    def __init__(self, job: JobProgress, weight: int):
        self.job, self.weight = job, weight

    def check(self) -> None:
        self.job.check()

    def step(self, count: int = 1) -> None:
        self.job.step(count * self.weight)


def job_progress(progress: "bool | JobProgress | None") -> JobProgress | None:
    """A library function's `progress` argument -> the JobProgress to report to: the caller's
    own, a new one with a tqdm bar for True, or None (False/None: report nothing)."""
    if isinstance(progress, JobProgress):
        return progress
    return JobProgress(bar=True) if progress else None


def decoding(tracker: JobProgress | None) -> None:
    """Last chance to stop before the (long) decode; then say that it is decoding."""
    if tracker is not None:
        tracker.check()
        tracker.set_stage("decoding the audio")


@contextmanager
def job(progress: "bool | JobProgress | None", unet_calls: int, slices: int) -> Iterator[JobProgress | None]:
    """The skeleton of every job: the count begun with the plan's total, the tracker to report to,
    `decoding` when the sampling ends, and a bar of its own (progress=True) closed however it ends;
    a caller's JobProgress stays open."""
    tracker = job_progress(progress)
    if tracker is not None:
        tracker.begin(unet_calls, slices)
    try:
        yield tracker
        decoding(tracker)
    finally:
        if tracker is not None and tracker is not progress:
            tracker.close()
