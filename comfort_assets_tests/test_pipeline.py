"""End to end: README command (a) in a subprocess on a fresh home, then the `comfort` habits."""

import json
import subprocess
import sys

import dagster as dg
import numpy as np
import pytest

from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS
from comfort_assets.domain.features import build_features, feature_names
from comfort_assets.domain.modeling import TrainingData, fit_model
from comfort_assets.domain.splits import SplitWindows, chronological_split
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets_tests.wandb_files import offline_runs


def test_same_seed_and_data_give_the_same_model(bundled_clean):
    features = build_features(bundled_clean.clean, 3)
    splits = chronological_split(features, SplitWindows.from_dates("2013-09-01", "2013-10-01"))
    names = feature_names(3)
    train = TrainingData.from_frame(splits["training"], names)
    validation = TrainingData.from_frame(splits["validation"], names)
    for family in ("xgboost", "random_forest"):
        a, b = (
            fit_model(family, train, validation, names, 3, seed=7, params={"n_estimators": 30})
            for _ in range(2)
        )
        # forests sum trees in parallel: equal to the last few bits, not bit for bit
        assert np.allclose(
            a.predict_change(validation.features),
            b.predict_change(validation.features),
            rtol=0,
            atol=1e-9,
        )


def _comfort(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "comfort_assets.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # a shared 2-core machine can be several times slower than usual
    )


@pytest.mark.slow
def test_readme_command_a_materializes_everything_and_promotes_a_champion(pipeline_home):
    home, env = pipeline_home
    assets = {p.name for p in (home / "store" / "assets").iterdir()}
    assert {
        "raw_weather",
        "clean_weather",
        "weather_quarantine",
        "comfort_features",
        "training_set",
        "validation_set",
        "holdout_set",
        "baseline_models",
        "candidate_models",
        "tuned_model",
        "benchmark_report",
        "evaluation_report",
        "champion_model",
    } <= assets
    assert len(list((home / "store" / "assets" / "raw_weather").iterdir())) == 365
    registry = ModelRegistry(store=LocalObjectStore(root=str(home / "store")))
    champion = registry.champion()
    assert champion == "weather-predictor-001"
    _, card = registry.load(champion)
    assert card["metrics"]["holdout_rmse"] < card["metrics"]["persistence_rmse"]
    assert card["training_window"]["end"] < card["holdout_window"]["start"]
    listed = json.loads(_comfort(env, "models", "--json").stdout)
    assert listed[0]["version"] == champion and listed[0]["champion"]


def _instance(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    return dg.DagsterInstance.get()


@pytest.mark.slow
def test_comfort_run_is_a_tagged_pipeline_job_run_that_reads_in_a_screen(
    pipeline_home, monkeypatch
):
    home, env = pipeline_home
    with _instance(env, monkeypatch) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"comfort/command": "run"}))
    (run,) = runs
    assert run.job_name == "pipeline_job" and run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["comfort/user"]
    keys = WEATHER_PARTITIONS.get_partition_keys()
    assert run.tags["dagster/asset_partition_range_start"] == keys[0] == "2013-01-01"
    assert run.tags["dagster/asset_partition_range_end"] == keys[-1]
    out = (home / "comfort-run.out").read_text().splitlines()
    assert len(out) <= 30, "\n".join(out)
    assert any(line.strip().startswith("✓ candidate_models") for line in out)
    assert any(line.startswith("champion weather-predictor-001: holdout RMSE") for line in out)
    assert any(line.startswith("promoted weather-predictor-001") for line in out)
    (log,) = (home / "logs").glob(f"*{run.run_id[:8]}.log")
    assert "STEP_SUCCESS" in log.read_text()


@pytest.mark.slow
def test_wandb_offline_runs_hold_the_metrics(pipeline_home):
    home, _ = pipeline_home
    runs = offline_runs(home / "wandb")
    assert {
        "candidate_models",
        "tuned_model",
        "benchmark_report",
        "evaluation_report",
        "challenger_model",
    } <= set(runs)
    candidates = runs["candidate_models"]
    logged = [row for row in candidates["history"] if "xgboost/validation_rmse" in row]
    assert len(logged) == 3 and all(0 < row["xgboost/validation_rmse"] < 5 for row in logged)
    assert candidates["config"]["random_states"] == [0, 1, 2]
    assert runs["tuned_model"]["summary"]["best_cv_rmse"] > 0
    assert runs["evaluation_report"]["summary"]["challenger_holdout_rmse"] > 0
    assert runs["challenger_model"]["artifacts"] == ["weather-predictor-001"]


@pytest.mark.slow
def test_retraining_with_the_same_seed_reproduces_metrics_and_keeps_the_champion(
    pipeline_home, monkeypatch
):
    home, env = pipeline_home
    completed = _comfort(
        env, "train", "--random-state", "0", "--random-state", "1", "--random-state", "2"
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "champion weather-predictor-001 stands" in completed.stdout
    registry = ModelRegistry(store=LocalObjectStore(root=str(home / "store")))
    assert registry.versions() == ["weather-predictor-001", "weather-predictor-002"]
    first, second = (registry.card(v)["metrics"] for v in registry.versions())
    assert second["holdout_rmse"] == pytest.approx(first["holdout_rmse"], rel=1e-9)
    assert registry.champion() == "weather-predictor-001"
    with _instance(env, monkeypatch) as instance:
        (run,) = instance.get_runs(dg.RunsFilter(tags={"comfort/command": "train"}))
        assert run.job_name == "experiment_job" and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["comfort/random_state"] == "0,1,2"
        assert run.tags["comfort/families"] == "ridge,random_forest,xgboost"
    # promote and roll back by hand: recorded on `champion_model`, the Bento follows
    promoted = _comfort(env, "promote", "weather-predictor-002")
    assert promoted.returncode == 0, promoted.stdout[-2000:] + promoted.stderr[-2000:]
    assert "bento comfort_forecast:weather-predictor-002 built" in promoted.stdout
    assert registry.champion() == "weather-predictor-002"
    with _instance(env, monkeypatch) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("champion_model"))
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        assert event.run_id == ""  # reported, not materialized by a run
        assert metadata["champion_before"] == "weather-predictor-001"
        assert metadata["champion_now"] == "weather-predictor-002"
        assert metadata["requested_by"]
        (bento_run,) = instance.get_runs(dg.RunsFilter(tags={"comfort/command": "promote"}))
        assert bento_run.job_name == "bento_job"
        assert bento_run.status == dg.DagsterRunStatus.SUCCESS
    assert _comfort(env, "rollback").returncode == 0
    assert registry.champion() == "weather-predictor-001"
    with _instance(env, monkeypatch) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("champion_model"))
        assert event.asset_materialization.metadata["champion_now"].value == (
            "weather-predictor-001"
        )
        assert "rollback" in event.asset_materialization.metadata["reason"].value
