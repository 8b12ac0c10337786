"""The local instance's event log (`LocalEventLogStorage`) writes what Dagster's own SQLite
storage reads: same files, same schema, every event kept."""

from pathlib import Path

import dagster as dg

from comfort_assets import instance_storage
from comfort_assets.cli_runs import instance_settings

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-06")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def days(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


def _instance(home: Path, settings: str) -> dg.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(settings)
    return dg.DagsterInstance.from_config(str(home))


def test_events_written_with_open_connections_read_back_with_dagsters_storage(
    tmp_path, monkeypatch
):
    # fewer open shards than runs, so connections are also closed and reopened on the way
    monkeypatch.setattr(instance_storage, "OPEN_SHARDS", 2)
    home = tmp_path / "dagster"
    local = _instance(home, instance_settings(home))
    assert isinstance(local.event_log_storage, instance_storage.LocalEventLogStorage)
    runs = []
    for _ in range(4):
        result = dg.materialize(
            [days],
            instance=local,
            tags={
                "dagster/asset_partition_range_start": "2024-01-01",
                "dagster/asset_partition_range_end": "2024-01-05",
            },
        )
        assert result.success
        runs.append(result.run_id)
    local.event_log_storage.dispose()

    # the stock storage on the same files (a `dagster dev` with Dagster's defaults)
    stock = _instance(home, "telemetry:\n  enabled: false\n")
    assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
    materialized = stock.get_materialized_partitions(dg.AssetKey("days"))
    assert materialized == set(DAYS.get_partition_keys())
    for run_id in runs:
        events = stock.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        assert len(events) == 5
        assert stock.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    records = stock.fetch_materializations(dg.AssetKey("days"), limit=100).records
    assert len(records) == 4 * 5
