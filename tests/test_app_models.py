"""The models the app's page offers (audiodiff/app_models.py, issue 26): the started one, the runs
under runs/ (most recent first, the started one not twice) and the bundled model, each loaded when
first chosen, and a few kept loaded. No browser: the page's own chooser is in tests/test_app.py."""

import json
import os

import pytest


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny runs under a runs folder, the oldest first: (runs folder, [run folders])."""
    from audiodiff.pipeline import build_preset, save_pipeline

    runs_dir = tmp_path_factory.mktemp("shelf") / "runs"
    folders = []
    for age, name in enumerate(["rock-1", "jazz-2", "pop/blues-3"]):
        folder = save_pipeline(build_preset("tiny"), runs_dir / name)
        (folder / "training_config.json").write_text(json.dumps({"genre": name.split("/")[-1].split("-")[0]}))
        os.utime(folder / "model_index.json", (1_000_000 + age, 1_000_000 + age))
        folders.append(folder)
    return runs_dir, folders


def test_the_page_offers_the_started_model_the_runs_newest_first_and_the_bundled_one(runs):
    from audiodiff.app_models import ModelShelf
    from audiodiff.pipeline import load_pipeline

    runs_dir, folders = runs
    shelf = ModelShelf(load_pipeline(folders[1]), runs_dir)  # started with jazz-2, one of the runs
    assert shelf.choices() == [("jazz-2 (the app started with it)", "started"),
                               ("pop/blues-3: fine-tuned on blues", "run:pop/blues-3"),
                               ("rock-1: fine-tuned on rock", "run:rock-1"),
                               ("the bundled base model: every genre of the built-in synthetic set", "bundled")]
    assert shelf.pipe(None) is shelf.pipe("started") is shelf.started


def test_a_chosen_model_is_loaded_once_and_only_a_few_are_kept(runs):
    from audiodiff.app_fields import PageError
    from audiodiff.app_models import MAX_LOADED, ModelShelf
    from audiodiff.pipeline import build_preset

    runs_dir, folders = runs
    shelf = ModelShelf(build_preset("tiny"), runs_dir)
    rock = shelf.pipe("run:rock-1")
    assert str(rock.source) == str(folders[0]) and shelf.pipe("run:rock-1") is rock  # loaded once
    shelf.pipe("run:jazz-2")
    shelf.pipe("run:pop/blues-3")
    assert len(shelf._loaded) == MAX_LOADED == 2 and "run:rock-1" not in shelf._loaded  # the least recent went
    with pytest.raises(PageError, match="^model: gone-4 is no longer among the runs; choose another model"):
        shelf.pipe("run:gone-4")
    with pytest.raises(PageError, match="^model: "):
        shelf.pipe("run:../../etc")  # only what choices() lists can be loaded
