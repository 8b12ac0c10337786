"""The Dagster wiring: graph shape, one-day runs, and checks that fail readably."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest

from comfort_assets import deployment
from comfort_assets.definitions import ASSETS, defs
from comfort_assets.defs.automation import daily_ingestion
from comfort_assets.defs.ingestion import assets as ingestion
from comfort_assets.domain.features import build_features
from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.resources.tracking import ExperimentTracker
from comfort_assets.resources.weather import BundledWeatherSource, WeatherSource

EXPECTED_GROUPS = {
    "raw_weather": "ingestion",
    "clean_weather": "ingestion",
    "weather_quarantine": "ingestion",
    "comfort_features": "features",
    "training_set": "features",
    "validation_set": "features",
    "holdout_set": "features",
    "baseline_models": "training",
    "candidate_models": "training",
    "tuned_model": "training",
    "benchmark_report": "training",
    "evaluation_report": "evaluation",
    "challenger_model": "evaluation",
    "champion_model": "evaluation",
    "bento": "evaluation",
    "prediction_log": "monitoring",
    "production_performance": "monitoring",
    "feature_drift": "monitoring",
    "data_quality_report": "monitoring",
}


def test_graph_snapshot():
    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {k: v for k, v in groups.items() if k in EXPECTED_GROUPS} == EXPECTED_GROUPS
    checks = {f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys}
    assert {
        "raw_weather:schema",
        "clean_weather:schema",
        "weather_quarantine:schema",
        "comfort_features:schema",
        "holdout_set:chronological",
        "challenger_model:promotion",
        "raw_weather:units",
        "production_performance:rmse_vs_holdout",
        "production_performance:skill_vs_persistence",
        "feature_drift:seasonal_drift",
        "feature_drift:input_domain",
        "data_quality_report:day_complete",
        "data_quality_report:stuck_di_input",
        "data_quality_report:anomaly_burst",
    } <= checks
    assert {job.name for job in defs.jobs} >= {
        "pipeline_job",
        "ingestion_job",
        "retraining_job",
        "experiment_job",
        "tuning_job",
        "bento_job",
        "monitoring_job",
        "weekly_evaluation_job",
        "self_test_job",
    }
    assert {s.name for s in defs.schedules} == {
        "ingestion_job_schedule",
        "monthly_retraining",
        "daily_monitoring",
        "weekly_evaluation",
        "daily_self_test",
        "daily_seed_experiment",
    }
    assert {s.name for s in defs.sensors} >= {
        "monitoring_retrain_sensor",
        "promotion_notifier",
        "run_failure_notifier",
    }
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name, f"{key} has no group"
        assert node.description, f"{key} has no description"
        assert node.owners == ["team:comfort-ml"], f"{key} has no owner"
        assert node.tags["layer"] in {"data", "model", "monitoring"}, f"{key} has no layer tag"


def test_the_daily_seed_experiment_takes_a_new_seed_each_day():
    from datetime import UTC, datetime

    from comfort_assets.defs.automation import daily_seed_experiment, experiment_job

    def request(day: int) -> dg.RunRequest:
        context = dg.build_schedule_context(
            scheduled_execution_time=datetime(2013, 7, day, 6, tzinfo=UTC)
        )
        return daily_seed_experiment.evaluate_tick(context).run_requests[0]

    first, second = request(1), request(2)
    config = [r.run_config["ops"]["candidate_models"]["config"] for r in (first, second)]
    assert [c["random_states"] for c in config] == [[20130701], [20130702]]
    assert first.tags["comfort/random_state"] == "20130701"
    assert first.run_key != second.run_key
    # the run config is one the experiment job accepts
    assert dg.validate_run_config(defs.resolve_job_def(experiment_job.name), first.run_config)


def _resources(tmp_path, weather: WeatherSource | None = None) -> dict:
    """The deployment's resources, with storage in ``tmp_path`` and tracking off."""
    store = LocalObjectStore(root=str(tmp_path / "store"))
    return {
        **deployment.resources(),
        "weather": weather or BundledWeatherSource(),
        "object_store": store,
        "io_manager": ObjectStoreIOManager(store=store),
        "registry": ModelRegistry(store=store),
        "tracker": ExperimentTracker(mode="disabled"),
    }


def test_one_day_of_ingestion(tmp_path):
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ASSETS,
            selection=dg.AssetSelection.groups("ingestion"),
            partition_key="2013-07-01",
            resources=_resources(tmp_path),
            instance=instance,
        )
        assert result.success
        clean = result.output_for_node("clean_weather", "clean_weather")
        assert len(clean) == 72 and set(clean["station"]) == {"EWR", "JFK", "LGA"}
        assert all(e.passed for e in result.get_asset_check_evaluations())
        materialization = instance.get_latest_materialization_event(dg.AssetKey("raw_weather"))
        assert materialization.asset_materialization.partition == "2013-07-01"
        assert materialization.asset_materialization.metadata["dagster/row_count"].value == 72


INGESTED = ("raw_weather", "clean_weather", "weather_quarantine", "comfort_features")


def _stored(tmp_path, asset: str) -> pd.DataFrame:
    """Every stored day of ``asset``, read as an unpartitioned asset would read it."""
    keys = ingestion.WEATHER_PARTITIONS.get_partition_keys()
    context = dg.build_input_context(
        asset_key=dg.AssetKey(asset),
        asset_partitions_def=ingestion.WEATHER_PARTITIONS,
        asset_partition_key_range=dg.PartitionKeyRange(keys[0], keys[-1]),
    )
    store = LocalObjectStore(root=str(tmp_path / "store"))
    return ObjectStoreIOManager(store=store).load_input(context)


def _by_key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["station", "time_utc"]).reset_index(drop=True)


def test_the_year_in_one_run_gives_the_whole_history_rows_and_a_day_run_the_same_day(
    tmp_path, bundled_raw, bundled_clean
):
    """A 365-day backfill is one run whose daily partitions hold exactly the rows the
    unpartitioned build made; running one day again afterwards rewrites the same rows."""
    keys = ingestion.WEATHER_PARTITIONS.get_partition_keys()
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ASSETS,
            selection=dg.AssetSelection.assets(*INGESTED),
            resources=_resources(tmp_path),
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
        assert result.success
        assert len(instance.get_runs()) == 1
        for asset in INGESTED:
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(keys)
        whole_features = build_features(bundled_clean.clean, 3)
        features = _stored(tmp_path, "comfort_features")
        pd.testing.assert_frame_equal(_by_key(features), _by_key(whole_features))
        clean = _stored(tmp_path, "clean_weather")
        pd.testing.assert_frame_equal(_by_key(clean), _by_key(bundled_clean.clean))

        day = "2013-07-01"
        before = {a: _stored(tmp_path, a) for a in ("clean_weather", "comfort_features")}
        result = dg.materialize(
            ASSETS,
            selection=dg.AssetSelection.assets(*INGESTED),
            partition_key=day,
            resources=_resources(tmp_path),
            instance=instance,
        )
        assert result.success
        one_day = result.output_for_node("comfort_features")
        assert set(one_day["valid_at_utc"].dt.strftime("%Y-%m-%d")) == {day}
        assert one_day["usable"].all() and len(one_day) == 72
        for asset, frame in before.items():
            pd.testing.assert_frame_equal(_by_key(_stored(tmp_path, asset)), _by_key(frame))


def test_the_daily_schedule_ingests_yesterday_and_the_day_before_in_one_run():
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2014, 3, 1, 1, tzinfo=UTC)
    )
    (request,) = daily_ingestion.evaluate_tick(context).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2013-12-30"
    assert request.tags["dagster/asset_partition_range_end"] == "2013-12-31"
    job = defs.resolve_job_def("ingestion_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == set(INGESTED)


class BrokenSource(WeatherSource):
    """A source that delivers text where numbers belong and forgets a column."""

    def fetch(self, start, end) -> pd.DataFrame:
        raw = BundledWeatherSource().fetch(start, end).drop(columns=["parse_error"])
        raw["temp_c"] = raw["temp_c"].astype(object)
        raw.loc[:4, "temp_c"] = "hot"
        return raw


def test_schema_failure_is_a_failed_blocking_check_with_a_readable_message(tmp_path):
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ASSETS,
            selection=dg.AssetSelection.groups("ingestion"),
            partition_key="2013-07-01",
            resources=_resources(tmp_path, BrokenSource()),
            instance=instance,
            raise_on_error=False,
        )
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey("raw_weather")
    )
    assert not evaluation.passed
    summary = evaluation.metadata["summary"].value
    assert "temp_c" in summary and "5 row(s)" in summary and "hot" in summary
    assert "parse_error" in summary
    # blocking: nothing downstream is built from data that failed its contract
    assert not result.success
    assert not (tmp_path / "store" / "assets" / "clean_weather").exists()


def test_partitions_cover_the_bundled_year():
    keys = ingestion.WEATHER_PARTITIONS.get_partition_keys()
    # first and last day included: 31 December is a partition too
    assert keys[0] == "2013-01-01" and keys[-1] == "2013-12-31" and len(keys) == 365


@pytest.mark.parametrize("env", ["staging"])
def test_unknown_environment_is_refused(monkeypatch, env):
    from comfort_assets import deployment

    monkeypatch.setenv("COMFORT_ENV", env)
    with pytest.raises(ValueError, match="COMFORT_ENV"):
        deployment.environment()
