"""The monitoring loop on a real Dagster instance: a prediction store with crafted forecasts,
the monitoring assets and their checks, and the sensors that retrain and notify."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from unittest import mock

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from comfort_assets import deployment
from comfort_assets.definitions import ASSETS, defs
from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS
from comfort_assets.defs.monitoring import sensors
from comfort_assets.defs.monitoring.schedules import weekly_evaluation
from comfort_assets.domain import monitoring as mon
from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.notifier import Notifier
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.resources.tracking import ExperimentTracker
from comfort_assets_tests.daily_store import store_daily
from comfort_assets_tests.test_notifier import webhook_server

VERSION = "weather-predictor-001"
HOLDOUT_RMSE = 2.2
STATIONS = ("EWR", "JFK", "LGA")
CHECKS = {
    "rmse_vs_holdout",
    "skill_vs_persistence",
    "seasonal_drift",
    "input_domain",
    "day_complete",
    "stuck_di_input",
    "anomaly_burst",
}


def hot_station(clean: pd.DataFrame) -> pd.DataFrame:
    """EWR's year 15 °C warmer and much more humid: a climate the champion never saw."""
    hot = clean[clean["station"] == "EWR"].assign(station="HOT")
    hot["temp_c"] += 15
    hot["humidity_pct"] += 0.4 * (100 - hot["humidity_pct"])
    hot["dewpoint_c"] = np.nan
    return hot


class Loop:
    """A tmp object store, prediction store, champion card and webhook, with helpers."""

    def __init__(self, tmp_path, instance, webhook_url: str, clean: pd.DataFrame) -> None:
        self.instance = instance
        self.store = LocalObjectStore(root=str(tmp_path / "store"))
        self.registry = ModelRegistry(store=self.store)
        self.predictions = PredictionStore(url=f"sqlite:///{tmp_path / 'predictions.db'}")
        self.predictions.create()
        self.notifier = Notifier(webhook_url=webhook_url, backoff_factor_s=0.01)
        self.resources = {
            **deployment.resources(),
            "object_store": self.store,
            "io_manager": ObjectStoreIOManager(store=self.store),
            "registry": self.registry,
            "tracker": ExperimentTracker(mode="disabled"),
            "prediction_store": self.predictions,
            "notifier": self.notifier,
        }
        self.cursor: str | None = None
        self.ingest(clean)

    def ingest(self, clean: pd.DataFrame) -> None:
        """Stand in for the ingestion group: store `clean_weather` and an empty quarantine."""
        io_manager = ObjectStoreIOManager(store=self.store)
        days = sorted(clean["time_utc"].dt.strftime("%Y-%m-%d").unique())
        store_daily(io_manager, "clean_weather", clean, days)
        quarantine = pd.DataFrame({"station": [], "time_utc": pd.to_datetime([], utc=True)})
        store_daily(io_manager, "weather_quarantine", quarantine.assign(reason=[]), days)

    def champion(self, training_end: str = "2013-09-01") -> None:
        card = {
            "version": VERSION,
            "metrics": {"holdout_rmse": HOLDOUT_RMSE},
            "training_window": {"start": "2013-01-05T00:00:00+00:00", "end": training_end},
            "stations": list(STATIONS),
            "sha256": {},
        }
        self.store.put_bytes(f"models/{VERSION}/card.json", json.dumps(card).encode())
        # a card alone (monitoring reads no model file): the pointer written as promote would
        pointer = {"version": VERSION, "history": [], "reason": "test champion"}
        self.store.put_bytes("models/champion.json", json.dumps(pointer).encode())

    def serve(self, weather: pd.DataFrame, day: str, forecast, seed: int = 0) -> None:
        """Log a day of h = 3 forecasts per station, features from ``weather`` at the origin;
        ``forecast(actual, persistence, rng)`` makes the forecast."""
        rng = np.random.default_rng(seed)
        inputs = mon.weather_inputs(weather).set_index(["station", "time_utc"]).sort_index()
        rows = []
        for station in sorted(weather["station"].unique()):
            for valid_at in pd.date_range(day, periods=24, freq="h", tz="UTC"):
                origin = valid_at - pd.Timedelta(hours=3)
                features = inputs.loc[(station, origin)]
                actual = float(inputs.loc[(station, valid_at), "di_now"])
                rows.append(
                    {
                        "id": uuid.uuid4().hex,
                        "created_at": origin.to_pydatetime(),
                        "station": station,
                        "valid_at": valid_at.to_pydatetime(),
                        "horizon_h": 3,
                        "model_version": VERSION,
                        "features": {
                            k: None if np.isnan(v) else float(v) for k, v in features.items()
                        },
                        "prediction": float(forecast(actual, features["di_now"], rng)),
                    }
                )
        self.predictions.insert(rows)

    def _materialize(self, selection: dg.AssetSelection, day: str) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            ASSETS,
            selection=selection,
            partition_key=day,
            resources=self.resources,
            instance=self.instance,
        )
        assert result.success
        return result

    def monitor(self, day: str) -> tuple[dg.ExecuteInProcessResult, dict]:
        result = self._materialize(dg.AssetSelection.groups("monitoring"), day)
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert set(checks) == CHECKS
        # a check with too little to go on passes, says so, and its asset says why
        reasons = " ".join(
            str(m.materialization.metadata["not_judged"].value)
            for m in result.get_asset_materialization_events()
            if "not_judged" in m.materialization.metadata
        )
        for name, check in checks.items():
            judged = check.metadata["judged"].value
            assert judged or (check.passed and check.description.startswith("not judged"))
            assert judged == (f"{name}: " not in reasons)
        return result, checks

    def log(self, day: str) -> None:
        """Only the day's `prediction_log` (as each day's monitoring run stores it)."""
        self._materialize(dg.AssetSelection.assets("prediction_log"), day)

    def tick(self):
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"notifier": self.notifier},
            definitions=defs,
        )
        data = sensors.monitoring_retrain_sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return data


def good(actual, persistence, rng):
    return actual + rng.normal(0, 0.8)


def worse_than_persistence(actual, persistence, rng):
    """Moves the wrong way: errors 1.5 × those of persistence."""
    return persistence - 0.5 * (actual - persistence) + rng.normal(0, 0.3)


@pytest.fixture
def webhook():
    with webhook_server() as server:
        yield server


@pytest.fixture
def loop(tmp_path, webhook, bundled_clean):
    with dg.instance_for_test() as instance:
        loop = Loop(tmp_path, instance, webhook.url, bundled_clean.clean)
        loop.champion()
        yield loop


def test_a_clean_day_passes_every_check_and_nothing_is_retrained(loop, webhook, bundled_clean):
    loop.serve(bundled_clean.clean, "2013-07-10", good)
    result, checks = loop.monitor("2013-07-10")
    failed = {name: e.metadata["message"].value for name, e in checks.items() if not e.passed}
    assert not failed
    log = result.asset_materializations_for_node("prediction_log")[0].metadata
    assert log["with_actuals"].value == 72 and log["waiting_for_actuals"].value == 0
    performance = result.output_for_node("production_performance")
    overall = performance.set_index(["model_version", "station"]).loc[(VERSION, mon.ALL)]
    assert overall["rows"] == 72 and overall["skill"] > 0.3
    shown = result.asset_materializations_for_node("production_performance")[0].metadata
    assert shown["rmse"].value == round(overall["rmse"], 4)  # as people read it
    assert shown["skill_pct"].value == round(overall["skill"] * 100, 1) and "plot" in shown
    assert shown["champion_forecasts_with_actuals"].value == 72
    assert shown["unlogged_days"].value == 6  # only 10 July was logged: the window says so
    assert "prediction_log not materialized for 6 of them" in shown["window"].value
    data = loop.tick()
    assert not data.run_requests and "no decay" in data.skip_message
    assert webhook.bodies == []


@pytest.mark.slow
def test_decay_retrains_once_within_the_cooldown_with_reason_and_figures(
    loop, webhook, bundled_clean
):
    # the seed's rule judges the champion on a full week of its forecasts
    for day in pd.date_range("2013-07-04", "2013-07-11", freq="D"):
        loop.serve(bundled_clean.clean, f"{day:%Y-%m-%d}", worse_than_persistence)
        if day < pd.Timestamp("2013-07-10"):
            loop.log(f"{day:%Y-%m-%d}")
    _, checks = loop.monitor("2013-07-10")
    rmse_check = checks["rmse_vs_holdout"]
    assert not rmse_check.passed and not checks["skill_vs_persistence"].passed
    assert rmse_check.metadata["figure"].value > HOLDOUT_RMSE * 1.1
    assert rmse_check.metadata["threshold"].value == pytest.approx(HOLDOUT_RMSE * 1.1)
    assert rmse_check.metadata["holdout_rmse_from"].value == f"{VERSION}'s own holdout"

    first = loop.tick()
    (request,) = first.run_requests
    assert request.job_name == "retraining_job"
    tags = request.tags
    assert tags["comfort/check"] == "production_performance:rmse_vs_holdout"
    assert tags["comfort/reason"].startswith("rmse_vs_holdout+skill_vs_persistence")
    assert float(tags["comfort/figure"]) > float(tags["comfort/threshold"]) == pytest.approx(2.42)
    assert tags["comfort/model_version"] == VERSION and tags["comfort/partition"] == "2013-07-10"
    # the tick alone tells nobody ("Test sensor" evaluates it too): the run's start does
    assert not any("retrain" in text for text in webhook.texts)
    cursor = notifier_tick(loop, sensors.retraining_notifier, None)
    dg.materialize([retrained], instance=loop.instance, tags=tags)
    dg.materialize([retrained], instance=loop.instance)  # a run not asked for by monitoring
    retry = {**tags, "dagster/parent_run_id": "0" * 36}  # Dagster copies the tags to a retry
    dg.materialize([retrained], instance=loop.instance, tags=retry)
    notifier_tick(loop, sensors.retraining_notifier, cursor)
    (alert,) = [text for text in webhook.texts if "retrain" in text]
    assert "retraining started" in alert and "rmse_vs_holdout" in alert and VERSION in alert
    assert any(
        text.startswith("[comfort-assets] decay") and VERSION in text for text in webhook.texts
    )

    # the next day fails again, inside the cooldown: no second request
    _, checks = loop.monitor("2013-07-11")
    assert not checks["rmse_vs_holdout"].passed
    second = loop.tick()
    assert not second.run_requests and "too recently" in second.skip_message
    assert loop.tick().skip_message == "no new monitoring check evaluations"


@pytest.mark.slow
def test_two_failing_evaluations_in_one_tick_make_one_request(loop, bundled_clean):
    for day in ("2013-07-10", "2013-07-11"):
        loop.serve(bundled_clean.clean, day, worse_than_persistence)
        loop.monitor(day)
    data = loop.tick()
    assert len(data.run_requests) == 1
    assert data.run_requests[0].tags["comfort/partition"] == "2013-07-11"


@pytest.mark.slow
def test_a_station_with_a_very_different_climate(loop, webhook, bundled_clean):
    """Day 1: the service answers a HOT station whose weather has not been ingested yet, so
    no actuals: the domain check fires on the inputs alone and asks for a retrain. Once its
    weather arrives, the per-station skill check fires too. (The forecasts are crafted: the
    real New York XGBoost still beat persistence on this shifted EWR, 1.57 vs 1.95 in July.)"""
    clean = bundled_clean.clean
    hot = hot_station(clean)
    loop.serve(clean, "2013-07-10", good)
    loop.serve(hot, "2013-07-10", worse_than_persistence)
    result, checks = loop.monitor("2013-07-10")
    log = result.asset_materializations_for_node("prediction_log")[0].metadata
    assert log["waiting_for_actuals"].value == 24
    assert not checks["input_domain"].passed
    assert checks["input_domain"].metadata["station"].value == "HOT"
    assert not checks["seasonal_drift"].passed
    assert checks["skill_vs_persistence"].passed  # nothing to judge HOT on yet
    (request,) = loop.tick().run_requests
    assert request.tags["comfort/check"] == "feature_drift:input_domain"
    assert request.tags["comfort/station"] == "HOT"

    loop.ingest(pd.concat([clean, hot], ignore_index=True))
    _, checks = loop.monitor("2013-07-10")
    skill = checks["skill_vs_persistence"]
    assert not skill.passed and skill.metadata["station"].value == "HOT"
    assert skill.metadata["figure"].value < 0
    assert any("skill_vs_persistence" in t and "HOT" in t for t in webhook.texts)


def test_forecasts_still_waiting_for_actuals_are_said_so_not_plotted(loop, bundled_clean):
    loop.serve(hot_station(bundled_clean.clean), "2013-07-10", good)  # no HOT weather yet
    result, checks = loop.monitor("2013-07-10")
    shown = result.asset_materializations_for_node("production_performance")[0].metadata
    assert shown["champion_forecasts_with_actuals"].value == 0
    assert "rmse" not in shown and "plot" not in shown
    # nothing to judge is no decay, and the check says it judged nothing
    for name in ("rmse_vs_holdout", "skill_vs_persistence"):
        assert checks[name].passed and not checks[name].metadata["judged"].value
    assert "no station has 24 forecasts with actuals yet" in shown["not_judged"].value


def test_drift_from_an_unseen_season_warns_but_does_not_retrain(loop, bundled_clean):
    """A champion trained on January–May serving early June: the season is new, so inputs
    drift, but the forecasts are good and nothing is retrained."""
    loop.champion(training_end="2013-06-01T00:00:00+00:00")
    loop.serve(bundled_clean.clean, "2013-06-05", good)
    _, checks = loop.monitor("2013-06-05")
    assert checks["rmse_vs_holdout"].passed and checks["skill_vs_persistence"].passed
    assert checks["input_domain"].passed
    data = loop.tick()
    assert not data.run_requests
    if not checks["seasonal_drift"].passed:
        assert "drift without decay" in data.skip_message


def test_data_quality_checks_fail_on_a_missing_day_and_a_stuck_sensor(loop, bundled_clean):
    clean = bundled_clean.clean.copy()
    ewr, jfk = clean["station"] == "EWR", clean["station"] == "JFK"
    hours = clean["time_utc"]
    day = (hours >= pd.Timestamp("2013-07-10", tz="UTC")) & (
        hours < pd.Timestamp("2013-07-11", tz="UTC")
    )
    clean.loc[ewr & day, ["temp_c", "humidity_pct"]] = np.nan
    clean.loc[ewr & day, "observed"] = False
    clean.loc[jfk & (hours >= pd.Timestamp("2013-07-01", tz="UTC")), "temp_c"] = 24.4
    stitched = (clean["station"] == "LGA") & (hours == pd.Timestamp("2013-07-10T10:00Z"))
    clean.loc[stitched, "temp_c"] += 15  # one hour from another year's record
    loop.ingest(clean)
    _, checks = loop.monitor("2013-07-10")
    burst = checks["anomaly_burst"]
    assert not burst.passed and burst.severity == dg.AssetCheckSeverity.WARN
    assert burst.metadata["station"].value == "LGA" and "2 implausible jump(s)" in (
        burst.metadata["message"].value
    )
    assert burst.metadata["figure"].value == 2 and burst.metadata["threshold"].value == 0
    assert not checks["day_complete"].passed
    assert checks["day_complete"].metadata["station"].value == "EWR"
    assert not checks["stuck_di_input"].passed
    assert checks["stuck_di_input"].metadata["station"].value == "JFK"
    assert checks["stuck_di_input"].metadata["figure"].value >= 24 * 9
    assert not loop.tick().run_requests  # bad data is not a reason to retrain


def test_failed_runs_and_promotions_are_notified(loop, webhook):
    @dg.asset
    def broken() -> None:
        raise RuntimeError("object store unreachable")

    result = dg.materialize([broken], instance=loop.instance, raise_on_error=False)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_notifier",
        dagster_instance=loop.instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"notifier": loop.notifier},
    ).for_run_failure()
    sensors.run_failure_notifier(context)
    assert any("run_failure" in t and "object store unreachable" in t for t in webhook.texts)

    loop.instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "challenger_model",
            metadata={
                "version": "weather-predictor-002",
                "promoted": True,
                "decision": "beat persistence and the champion",
                "challenger_rmse": 2.01,
                "champion_rmse": 2.2,
                "champion_now": "weather-predictor-002",
            },
        )
    )

    def first_tick() -> None:
        context = dg.build_sensor_context(
            instance=loop.instance, resources={"notifier": loop.notifier}, definitions=defs
        )
        sensors.promotion_notifier.evaluate_tick(context)

    now = time.time()
    with mock.patch.object(sensors.time, "time", lambda: now + 3600):
        first_tick()  # a daemon started an hour later: old news
    assert not any("weather-predictor-002 promoted" in t for t in webhook.texts)
    first_tick()
    assert any("weather-predictor-002 promoted" in t for t in webhook.texts)


@dg.asset
def retrained() -> None:
    """Stands in for a run of `retraining_job`."""


def notifier_tick(loop, sensor, cursor: str | None) -> str | None:
    """``sensor`` (a run-status sensor) ticked as the daemon ticks it: in a repository."""
    context = dg.build_sensor_context(
        instance=loop.instance,
        cursor=cursor,
        repository_name=defs.get_repository_def().name,
        resources={"notifier": loop.notifier},
        definitions=defs,
    )
    sensor.evaluate_tick(context)
    return context.cursor


def test_a_failed_run_of_the_comfort_cli_is_notified_and_a_stopped_one_is_not(loop, webhook):
    """`comfort` runs jobs in process: their runs name no code location, and a sensor that
    watches only its own location's runs never saw them fail."""

    @dg.asset
    def broken() -> None:
        raise RuntimeError("object store unreachable")

    def tick(cursor: str | None) -> str | None:
        return notifier_tick(loop, sensors.run_failure_notifier, cursor)

    cursor = tick(None)  # the first tick starts from now
    failed = dg.materialize([broken], instance=loop.instance, raise_on_error=False)
    assert failed.dagster_run.remote_job_origin is None
    stopped = dg.materialize([broken], instance=loop.instance, raise_on_error=False)
    loop.instance.report_run_canceled(loop.instance.get_run_by_id(stopped.run_id))
    tick(cursor)
    alerts = [t for t in webhook.texts if "run_failure" in t]
    assert len(alerts) == 1 and failed.run_id in alerts[0] and stopped.run_id not in alerts[0]


def test_weekly_evaluation_reads_four_weeks_of_the_latest_day():
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2014, 1, 6, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    request = weekly_evaluation.evaluate_tick(context).run_requests[0]
    assert request.partition_key == WEATHER_PARTITIONS.get_partition_keys()[-1]
    config = request.run_config["ops"]["production_performance"]["config"]
    assert config["window_days"] == 28


def test_the_loop_is_in_the_definitions():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "prediction_log",
        "production_performance",
        "feature_drift",
        "data_quality_report",
    } <= keys
    assert {f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys} >= {
        "production_performance:rmse_vs_holdout",
        "feature_drift:input_domain",
        "data_quality_report:stuck_di_input",
    }
    names = {s.name: s for s in defs.sensors}
    assert names["monitoring_retrain_sensor"].job_name == "retraining_job"
    assert names["monitoring_retrain_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
    assert {"run_failure_notifier", "promotion_notifier", "retraining_notifier"} <= set(names)
    assert {"daily_monitoring", "weekly_evaluation", "daily_self_test"} <= {
        s.name for s in defs.schedules
    }
    assert {"monitoring_job", "weekly_evaluation_job", "self_test_job"} <= {
        j.name for j in defs.jobs
    }


@pytest.mark.parametrize(
    ("config", "field", "value"),
    [
        ("PerformanceConfig", "window_days", -3),
        ("PerformanceConfig", "rmse_factor", 0.0),
        ("DriftConfig", "max_out_of_domain_share", 1.5),
        ("QualityConfig", "max_anomalies", 0),
    ],
)
def test_run_config_outside_its_range_is_refused(config, field, value):
    """A window of −3 days ran, and every check passed as 'not judged'."""
    from pydantic import ValidationError

    from comfort_assets.defs.monitoring import assets

    with pytest.raises(ValidationError, match=field):
        getattr(assets, config)(**{field: value})
