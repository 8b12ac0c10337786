"""Monitoring jobs and schedules. Like the other schedules they start stopped (the monitoring
day needs the ingestion day before it); turn them on with `dagster schedule start`."""

import dagster as dg

from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS
from comfort_assets.defs.monitoring.assets import HISTORY_DAYS

monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.groups("monitoring"),
    partitions_def=WEATHER_PARTITIONS,
    description="A day of the prediction log joined with actuals; skill, drift and quality checks.",
)

weekly_evaluation_job = dg.define_asset_job(
    "weekly_evaluation_job",
    selection=dg.AssetSelection.assets("production_performance"),
    partitions_def=WEATHER_PARTITIONS,
    description=f"Production skill per station and model version over {HISTORY_DAYS} days.",
)

#: after the daily ingestion (01:00 UTC), for the day it ingested
daily_monitoring = dg.build_schedule_from_partitioned_job(
    monitoring_job, name="daily_monitoring", hour_of_day=2
)


@dg.schedule(
    job=weekly_evaluation_job,
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
    description=f"Mondays: the last {HISTORY_DAYS} days of production skill, per station.",
)
def weekly_evaluation(context: dg.ScheduleEvaluationContext):
    keys = WEATHER_PARTITIONS.get_partition_keys(current_time=context.scheduled_execution_time)
    key = keys[-1] if keys else None
    if key is None:
        return dg.SkipReason("no complete day to evaluate yet")
    return dg.RunRequest(
        run_key=f"weekly-evaluation-{key}",
        partition_key=key,
        run_config={"ops": {"production_performance": {"config": {"window_days": HISTORY_DAYS}}}},
    )
