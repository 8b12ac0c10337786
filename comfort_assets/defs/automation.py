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

ingestion_job = dg.define_asset_job(
    "ingestion_job",
    selection=dg.AssetSelection.groups("ingestion", "features"),
    partitions_def=WEATHER_PARTITIONS,
    description="A day of weather in, cleaned, and the features and splits rebuilt.",
)

retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.groups("training", "evaluation"),
    description="Baselines, candidates, search, benchmarks, evaluation, promotion and Bento.",
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

daily_ingestion = dg.build_schedule_from_partitioned_job(ingestion_job, hour_of_day=1)

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
