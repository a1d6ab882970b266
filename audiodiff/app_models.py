"""The models the app's page offers (issue 26: "choose the genre or model among the runs under runs/
and the bundled model"): the one the app started with, every completed fine-tuned run under the runs
folder, most recent first, and the bundled base model.

The page names a model by a key ("started", "bundled", "run:jazz-20250101-120000"), never by its
place on the server; a run by its folder's path under the runs folder. A model other than the one the
app started with is loaded when it is first chosen, and kept loaded for the next clips; only the
last few are kept (MAX_LOADED), as every one holds its UNet in memory.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .app_fields import PageError
from .app_header import model_words, tuned_on

STARTED, BUNDLED_KEY, RUN_PREFIX = "started", "bundled", "run:"
MAX_LOADED = 2  # models kept loaded besides the one the app started with: a run of the 256 model is ~450 MB


class ModelShelf:
    """The started pipeline, the models under `runs_dir` and the bundled one, loaded when chosen."""

    def __init__(self, started, runs_dir: str | Path | None = None, device: str | None = None):
        from .pipeline import DEFAULT_RUNS_DIR

        self.started = started
        self.runs_dir = Path(runs_dir) if runs_dir is not None else DEFAULT_RUNS_DIR
        self.device = device
        self._loaded: dict[str, object] = {}  # key -> pipeline, the most recently used last
        self._lock = threading.Lock()

    def _started_folder(self) -> Path | None:
        source = Path(str(self.started.source))
        return source.resolve() if source.is_dir() else None

    def _runs(self) -> dict[str, Path]:
        """The completed runs under the runs folder (not the started model), by key, most recent first."""
        from .pipeline import completed_runs

        started = self._started_folder()
        return {RUN_PREFIX + folder.relative_to(self.runs_dir).as_posix(): folder
                for folder in completed_runs(self.runs_dir) if folder.resolve() != started}

    def choices(self) -> list[tuple[str, str]]:
        """(what the page shows, key) for every model the page offers, the started one first."""
        from .pipeline import BUNDLED

        choices = [(f"{model_words(str(self.started.source))} (the app started with it)", STARTED)]
        for key, folder in self._runs().items():
            choices.append((f"{key[len(RUN_PREFIX):]}: {tuned_on(folder).replace('**', '')}", key))
        if str(self.started.source) != BUNDLED:
            choices.append(("the bundled base model: every genre of the built-in synthetic set", BUNDLED_KEY))
        return choices

    def pipe(self, key: str | None):
        """The pipeline for a key of `choices` (None: the started one), loaded on first use."""
        from .pipeline import BUNDLED, PipelineError, load_pipeline, pick_device

        if not key or key == STARTED:
            return self.started
        with self._lock:
            if key in self._loaded:
                self._loaded[key] = self._loaded.pop(key)  # the most recently used last
                return self._loaded[key]
            source = BUNDLED if key == BUNDLED_KEY else self._runs().get(key)
            if source is None:
                raise PageError(f"model: {key.removeprefix(RUN_PREFIX)} is no longer among the runs; "
                                "choose another model (reload the page for the current list)")
            try:
                pipe = load_pipeline(source, device=pick_device(self.device))
            except PipelineError as exc:  # its message names the server's folders: the log has it
                raise PageError(f"model: {key.removeprefix(RUN_PREFIX)} can't be loaded: its folder is not a "
                                "complete pipeline this app can use; choose another model") from exc
            while len(self._loaded) >= MAX_LOADED:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[key] = pipe
            return pipe
