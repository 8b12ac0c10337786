"""W&B runs link up: one Dagster run → one group, run id and asset on every run, and every
file W&B writes stays under the tracker's ``dir`` (read back from the offline run files)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from comfort_assets.resources.tracking import WANDB_LOCATIONS, ExperimentTracker, run_identity
from comfort_assets_tests.wandb_files import offline_runs, read_offline_run


@dg.asset
def first_model(tracker: ExperimentTracker) -> None:
    """Logs a metric and a model artifact, like `champion_model`."""
    config = {"seed": 1, "version": "weather-predictor-007"}
    with tracker.run("first_model", "train", config) as run:
        run.log({"rmse": 1.5})
        run.log_artifact("weather-predictor-007", "model", {"model.ubj": b"\x00model"}, {"a": 1})


@dg.asset(deps=[first_model])
def second_model(tracker: ExperimentTracker) -> None:
    """Tracked twice in one run: the names stay unique."""
    for attempt in range(2):
        with tracker.run("second_model", "evaluate", {"attempt": attempt}) as run:
            run.summary({"attempt": attempt})


def test_identity_names_groups_and_tags_a_run():
    run_id = "1a2b3c4d-0000-4000-8000-000000000000"
    identity = run_identity("champion_model", run_id, {"version": "weather-predictor-003"})
    assert identity["name"] == "champion_model-1a2b3c4d"
    assert identity["group"] == run_id
    assert identity["tags"] == [
        "asset:champion_model",
        f"dagster_run:{run_id}",
        "model:weather-predictor-003",
    ]
    assert identity["config"]["dagster_run_id"] == run_id
    outside = run_identity("bench", None, {}, started=datetime(2026, 11, 25, 4, 5, 6, tzinfo=UTC))
    assert outside["name"] == "bench-20261125T040506"
    assert outside["group"] is None and outside["tags"] == ["asset:bench"]
    assert run_identity("a", None, {}, model_version="m-1")["config"]["model_version"] == "m-1"


@pytest.fixture
def materialized(tmp_path, monkeypatch):
    """Two tracked assets in one `dg.materialize`, W&B offline under ``tmp_path``."""
    for key in WANDB_LOCATIONS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # anything W&B puts in ~ shows up
    tracker = ExperimentTracker(mode="offline", dir=str(tmp_path / "wandb"))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [first_model, second_model], resources={"tracker": tracker}, instance=instance
        )
    assert result.success
    return tmp_path, result.run_id


def test_runs_of_one_dagster_run_share_group_and_carry_run_id(materialized):
    tmp_path, run_id = materialized
    runs = {
        run["name"]: run
        for run in map(read_offline_run, (tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    }
    short = run_id[:8]
    assert sorted(runs) == [
        f"first_model-{short}",
        f"second_model-{short}",
        f"second_model-{short}-2",
    ]
    assert {run["group"] for run in runs.values()} == {run_id}
    assert all(f"dagster_run:{run_id}" in run["tags"] for run in runs.values())
    first = runs[f"first_model-{short}"]
    assert "asset:first_model" in first["tags"] and "model:weather-predictor-007" in first["tags"]
    assert first["config"]["model_version"] == "weather-predictor-007"
    assert first["config"]["dagster_asset"] == "first_model"
    assert first["config"]["seed"] == 1 and first["artifacts"] == ["weather-predictor-007"]
    assert "model:" not in " ".join(runs[f"second_model-{short}"]["tags"])


def test_everything_wandb_writes_stays_under_the_tracker_dir(materialized):
    tmp_path, _ = materialized
    staged = [p for p in (tmp_path / "wandb" / "data").rglob("*") if p.is_file()]
    assert any(p.read_bytes() == b"\x00model" for p in staged), staged
    home = tmp_path / "home"
    stray = [p for p in home.rglob("*") if p.is_file()] if home.exists() else []
    assert stray == [], stray
    assert all(key not in os.environ for key in WANDB_LOCATIONS)  # restored after the run


def test_dir_is_absolute_so_a_later_chdir_does_not_scatter_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = ExperimentTracker(mode="offline", dir="rel/wandb")
    with tracker.run("solo", "test") as run:
        run.log({"x": 1})
    monkeypatch.chdir(Path("/"))
    (only,) = offline_runs(tmp_path / "rel" / "wandb").values()
    assert only["name"].startswith("solo-") and only["group"] == ""
