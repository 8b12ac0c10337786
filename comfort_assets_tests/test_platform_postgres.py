"""The production instance file (`deploy/dagster.yaml`) on a real PostgreSQL server: schema
created on an empty database, a partitioned job run and read back, and a sensor tick that
reads check evaluations from PostgreSQL's event log."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from comfort_assets.definitions import defs
from comfort_assets.defs.monitoring import sensors
from comfort_assets.resources.notifier import Notifier
from comfort_assets_tests.test_definitions import _resources

psycopg = pytest.importorskip("psycopg")

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
DAY = "2013-07-01"
INGESTED = ("raw_weather", "clean_weather", "weather_quarantine")


def _connect(dbname: str):
    return psycopg.connect(dbname=dbname, connect_timeout=3, autocommit=True, **SERVER)


def _tables(dbname: str) -> set[str]:
    with _connect(dbname) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def database() -> Iterator[str]:
    """A throwaway database on the local server, dropped afterwards."""
    try:
        admin = _connect("test")
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL server answers on 127.0.0.1:5432 ({error})")
    name = f"comfort_dagster_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def instance(database, tmp_path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """`deploy/dagster.yaml` verbatim in a fresh DAGSTER_HOME, its DAGSTER_PG_* from the env."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    for key, value in {
        "USERNAME": SERVER["user"],
        "PASSWORD": "unused-with-trust-auth",
        "HOST": SERVER["host"],
        "PORT": str(SERVER["port"]),
        "DB": database,
    }.items():
        monkeypatch.setenv(f"DAGSTER_PG_{key}", value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert _tables(database) == set()
    with dg.DagsterInstance.get() as pg_instance:
        yield pg_instance


def test_the_production_instance_creates_its_schema_on_an_empty_database(instance, database):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    assert {"runs", "event_logs", "asset_keys", "jobs", "job_ticks", "alembic_version"} <= (
        _tables(database)
    )


def test_a_partitioned_job_runs_and_reads_back_from_postgres(instance, database, tmp_path):
    # raw, clean and quarantine of one day (its features need the days before it)
    job = defs.resolve_job_def("ingestion_job").get_subset(
        asset_selection={dg.AssetKey(k) for k in INGESTED}
    )
    result = job.execute_in_process(
        instance=instance,
        partition_key=DAY,
        resources=_resources(tmp_path),
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    run = instance.get_run_by_id(result.run_id)
    assert run.job_name == "ingestion_job"
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == DAY
    event = instance.get_latest_materialization_event(dg.AssetKey("raw_weather"))
    assert event.run_id == result.run_id
    assert event.asset_materialization.partition == DAY
    assert event.asset_materialization.metadata["dagster/row_count"].value == 72
    assert instance.get_materialized_partitions(dg.AssetKey("raw_weather")) == {DAY}
    for key in INGESTED:
        assert instance.get_latest_materialization_event(dg.AssetKey(key)).run_id == run.run_id
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("clean_weather"), "schema")]
    )
    assert record[dg.AssetCheckKey(dg.AssetKey("clean_weather"), "schema")].run_id == result.run_id
    # the rows are in this database, not in a SQLite file next to it
    with _connect(database) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,)
        ).fetchone()
    assert count == 1
    assert not list((tmp_path / "dagster_home").glob("**/*.db"))


def _evaluation(check: str, passed: bool, figure: float) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("production_performance"),
        check_name=check,
        passed=passed,
        metadata={"figure": figure, "threshold": 2.42, "model_version": "weather-predictor-001"},
    )


def test_the_retrain_sensor_reads_check_evaluations_from_postgres(instance):
    def tick(cursor: str | None):
        context = dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"notifier": Notifier()},
            definitions=defs,
        )
        return sensors.monitoring_retrain_sensor.evaluate_tick(context)

    first = tick(None)
    assert not first.run_requests and "no new monitoring" in first.skip_message

    instance.report_runless_asset_event(_evaluation("rmse_vs_holdout", True, 2.1))
    quiet = tick(first.cursor)
    assert not quiet.run_requests and "no decay" in quiet.skip_message

    instance.report_runless_asset_event(_evaluation("rmse_vs_holdout", False, 3.4))
    decayed = tick(quiet.cursor)
    (request,) = decayed.run_requests
    assert request.job_name == "retraining_job"
    assert request.tags["comfort/check"] == "production_performance:rmse_vs_holdout"
    assert request.tags["comfort/figure"] == "3.4"
    # the cursor moved past it: the same evaluation does not ask twice
    assert not tick(decayed.cursor).run_requests
