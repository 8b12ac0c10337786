"""Named jobs and schedules. The `comfort` CLI launches these jobs, so its runs show under
the job's name in the UI (Jobs, Runs, tag filters). Schedules start stopped (Dagster's
default); turn them on in the UI or with `dagster schedule start` where a daemon runs."""

import dagster as dg

from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS
from comfort_assets.domain.training import daily_seed

pipeline_job = dg.define_asset_job(
    "pipeline_job",
    selection=dg.AssetSelection.groups("ingestion", "features", "training", "evaluation"),
    partitions_def=WEATHER_PARTITIONS,
    description="The whole batch graph (`comfort run`): every day of weather in, a champion and "
    "its Bento out. Monitoring runs per day on its own schedule, after predictions exist.",
)

SPLITS = dg.AssetSelection.assets("training_set", "validation_set", "holdout_set")

ingestion_job = dg.define_asset_job(
    "ingestion_job",
    selection=dg.AssetSelection.groups("ingestion", "features") - SPLITS,
    partitions_def=WEATHER_PARTITIONS,
    description="Days of weather in, cleaned and turned into features: each day costs a day, "
    "whatever the history (the splits read every day, so retraining rebuilds them).",
)

retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=SPLITS | dg.AssetSelection.groups("training", "evaluation"),
    description="Splits, baselines, candidates, search, benchmarks, evaluation, promotion and "
    "Bento.",
)

experiment_job = dg.define_asset_job(
    "experiment_job",
    selection=dg.AssetSelection.from_string("candidate_models*"),
    description="Candidates with the given seeds and families, then evaluation and promotion "
    "(`comfort train`).",
)

tuning_job = dg.define_asset_job(
    "tuning_job",
    selection=dg.AssetSelection.from_string("tuned_model*"),
    description="A hyper-parameter search, then evaluation and promotion (`comfort tune`).",
)

bento_job = dg.define_asset_job(
    "bento_job",
    selection=dg.AssetSelection.assets("bento"),
    description="The Bento rebuilt for the registry's champion (after `comfort promote`).",
)


@dg.schedule(
    job=ingestion_job,
    name="ingestion_job_schedule",
    cron_schedule="0 1 * * *",
    execution_timezone="UTC",
    description="01:00 UTC: yesterday's weather in, and the day before it again, whose gaps at "
    "midnight can be closed now that the day after it is here.",
)
def daily_ingestion(context: dg.ScheduleEvaluationContext):
    """One run over the last two complete days; their cost does not grow with the history."""
    keys = WEATHER_PARTITIONS.get_partition_keys(current_time=context.scheduled_execution_time)
    if not keys:
        return dg.SkipReason("no complete day to ingest yet")
    first, last = keys[-2:][0], keys[-1]
    return dg.RunRequest(
        run_key=f"ingestion-{last}",
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )


monthly_retraining = dg.ScheduleDefinition(
    name="monthly_retraining",
    job=retraining_job,
    cron_schedule="0 3 1 * *",
    execution_timezone="UTC",
)


@dg.schedule(
    job=experiment_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    description="Every morning the candidates with a new seed (the date as YYYYMMDD), then "
    "evaluation and promotion: seed variance shows up in the runs, and a lucky seed still has to "
    "beat the champion.",
)
def daily_seed_experiment(context: dg.ScheduleEvaluationContext):
    day = context.scheduled_execution_time.date()
    seed = daily_seed(day)
    return dg.RunRequest(
        run_key=f"seed-experiment-{day:%Y-%m-%d}",
        run_config={"ops": {"candidate_models": {"config": {"random_states": [seed]}}}},
        tags={"comfort/command": "daily_seed_experiment", "comfort/random_state": str(seed)},
    )


JOBS = [pipeline_job, ingestion_job, retraining_job, experiment_job, tuning_job, bento_job]
SCHEDULES = [daily_ingestion, monthly_retraining, daily_seed_experiment]
