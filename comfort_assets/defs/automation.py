"""Jobs and schedules. Schedules start stopped (Dagster's default); turn them on in the UI or
with `dagster schedule start` where a daemon runs."""

import dagster as dg

from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS

ingestion_job = dg.define_asset_job(
    "ingestion_job",
    selection=dg.AssetSelection.groups("ingestion", "features"),
    partitions_def=WEATHER_PARTITIONS,
    description="A day of weather in, cleaned, and the features and splits rebuilt.",
)

retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.groups("training", "evaluation"),
    description="Baselines, candidates, search, benchmarks, evaluation and promotion.",
)

daily_ingestion = dg.build_schedule_from_partitioned_job(ingestion_job, hour_of_day=1)

monthly_retraining = dg.ScheduleDefinition(
    name="monthly_retraining",
    job=retraining_job,
    cron_schedule="0 3 1 * *",
    execution_timezone="UTC",
)

JOBS = [ingestion_job, retraining_job]
SCHEDULES = [daily_ingestion, monthly_retraining]
