"""The self-test job on a real champion: passes on a sound deployment, and names the step
that failed when the champion's file no longer matches its sha256."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from comfort_assets.defs.monitoring import sensors
from comfort_assets.defs.monitoring.self_test import self_test_job
from comfort_assets.domain.features import build_features, feature_names
from comfort_assets.domain.modeling import TrainingData, fit_model
from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.notifier import Notifier
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.resources.tracking import ExperimentTracker
from comfort_assets_tests.daily_store import store_daily
from comfort_assets_tests.test_notifier import webhook_server


@pytest.fixture(scope="module")
def small_model(bundled_clean):
    clean = bundled_clean.clean
    frame = build_features(clean[clean["time_utc"] < pd.Timestamp("2013-02-15", tz="UTC")])
    frame = frame[frame["usable"]]
    names = feature_names(3)
    cut = int(len(frame) * 0.8)
    return fit_model(
        "xgboost",
        TrainingData.from_frame(frame.iloc[:cut], names),
        TrainingData.from_frame(frame.iloc[cut:], names),
        names,
        3,
        params={"n_estimators": 20, "max_depth": 3},
    )


def _deployment(tmp_path, small_model, clean, webhook_url):
    store = LocalObjectStore(root=str(tmp_path / "store"))
    registry = ModelRegistry(store=store)
    version = registry.register(small_model, {"stations": ["EWR", "JFK", "LGA"], "metrics": {}})
    registry.promote(version, "test")
    io_manager = ObjectStoreIOManager(store=store)
    store_daily(io_manager, "clean_weather", clean)
    resources = {
        "io_manager": io_manager,
        "object_store": store,
        "registry": registry,
        "tracker": ExperimentTracker(mode="disabled"),
        "prediction_store": PredictionStore(url=f"sqlite:///{tmp_path / 'p.db'}"),
        "notifier": Notifier(webhook_url=webhook_url, backoff_factor_s=0.01),
    }
    return store, version, resources


def test_self_test_passes_and_leaves_no_forecast_behind(tmp_path, small_model, bundled_clean):
    with webhook_server() as server:
        _, version, resources = _deployment(tmp_path, small_model, bundled_clean.clean, server.url)
        result = self_test_job.execute_in_process(resources=resources)
    assert result.success and server.bodies == []
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    steps = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert list(steps) == [
        "data_contract",
        "champion_integrity",
        "known_window",
        "object_store",
        "tracker",
        "prediction_store",
    ]
    assert version in steps["champion_integrity"]
    assert resources["prediction_store"].count() == 0


def test_a_tampered_champion_fails_the_self_test_at_its_step(tmp_path, small_model, bundled_clean):
    with webhook_server() as server:
        store, version, resources = _deployment(
            tmp_path, small_model, bundled_clean.clean, server.url
        )
        model_file = next(
            k
            for k in store.list_keys(f"models/{version}/")
            if not k.endswith(("card.json", "RESERVED"))
        )
        store.put_bytes(model_file, store.get_bytes(model_file) + b"tampered")
        with dg.instance_for_test() as instance:
            result = self_test_job.execute_in_process(
                resources=resources, instance=instance, raise_on_error=False
            )
            assert not result.success
            # the run-failure sensor does not repeat an alert the failed step already sent
            context = dg.build_run_status_sensor_context(
                sensor_name="run_failure_notifier",
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                dagster_event=result.get_run_failure_event(),
                resources={"notifier": resources["notifier"]},
            ).for_run_failure()
            sensors.run_failure_notifier(context)
    (text,) = server.texts
    assert "self-test failed at champion_integrity" in text and "sha256" in text
    assert version in text
