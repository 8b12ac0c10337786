"""Group `training`: baselines, candidate models over several seeds, hyper-parameter search
and benchmarks; every model is measured against the naive baselines."""

from dataclasses import replace

import dagster as dg
import pandas as pd

from comfort_assets.domain.baselines import BASELINES, attach_baselines, baseline_forecasts
from comfort_assets.domain.benchmark import benchmark_pool, benchmark_schemes, run_benchmark
from comfort_assets.domain.metrics import scores
from comfort_assets.domain.modeling import FAMILIES
from comfort_assets.domain.training import (
    CandidateSet,
    TunedResult,
    horizon_of,
    search,
    train_candidates,
)
from comfort_assets.domain.tuning import (
    DEFAULT_FOLDS,
    DEFAULT_SEARCH_SPACE,
    DEFAULT_TRIALS,
    search_plan,
)
from comfort_assets.metadata import markdown_table, rmse_value
from comfort_assets.resources.progress import ProgressReporter
from comfort_assets.resources.tracking import ExperimentTracker


class CandidateConfig(dg.Config):
    families: list[str] = list(FAMILIES)
    random_states: list[int] = [0, 1, 2]
    """Several seeds per family make seed variance visible (`comfort train --random-state`)."""


class TuningConfig(dg.Config):
    search_type: str = "random"
    n_trials: int = DEFAULT_TRIALS
    random_state: int = 0
    n_folds: int = DEFAULT_FOLDS
    family: str = "xgboost"
    search_space: dict[str, list[float]] = DEFAULT_SEARCH_SPACE


class BenchmarkConfig(dg.Config):
    train_fractions: list[float] = [0.8, 0.7, 0.6]
    cv_folds: int = 3
    families: list[str] = ["ridge", "xgboost"]
    random_state: int = 0


@dg.asset(group_name="training", kinds={"pandas"})
def baseline_models(
    clean_weather: pd.DataFrame, validation_set: pd.DataFrame, holdout_set: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """Persistence, persistence + daily cycle and 14-day hour-of-day climatology forecasts for
    the validation and holdout rows: the bar every model has to clear."""
    horizon = horizon_of(holdout_set)
    forecasts = baseline_forecasts(clean_weather, horizon)
    rows, table = [], []
    for split, frame in (("validation", validation_set), ("holdout", holdout_set)):
        merged = attach_baselines(frame[["station", "time_utc", "di_target"]], forecasts)
        merged["split"] = split
        rows.append(merged)
        for name in BASELINES:
            ok = merged[name].notna()
            table.append(
                {
                    "split": split,
                    "baseline": name,
                    **scores(merged.loc[ok, "di_target"], merged.loc[ok, name]),
                }
            )
    out = pd.concat(rows, ignore_index=True)
    summary = pd.DataFrame(table)
    return dg.Output(
        out,
        metadata={
            "horizon_h": dg.MetadataValue.int(horizon),
            "scores": markdown_table(summary),
            **{
                f"holdout_{r.baseline}_rmse": rmse_value(r.rmse)
                for r in summary.itertuples()
                if r.split == "holdout"
            },
        },
    )


@dg.asset(group_name="training", kinds={"xgboost", "scikitlearn", "wandb"})
def candidate_models(
    config: CandidateConfig,
    tracker: ExperimentTracker,
    progress: ProgressReporter,
    training_set: pd.DataFrame,
    validation_set: pd.DataFrame,
) -> dg.Output[CandidateSet]:
    """Ridge, random forest and XGBoost on the DI change, one model per family and seed;
    XGBoost stops early on the validation split."""
    total = len(config.families) * len(config.random_states)
    with (
        tracker.run("candidate_models", "train", config.model_dump()) as run,
        progress.task("candidate fits", total) as task,
    ):

        def on_fit(row: dict) -> None:
            run.log({f"{row['family']}/validation_rmse": row["validation_rmse"]})
            task.advance(
                f"{row['model']} validation RMSE {row['validation_rmse']:.4f} "
                f"({row['fit_seconds']:.1f} s)"
            )

        candidates = train_candidates(
            training_set, validation_set, config.families, config.random_states, on_fit
        )
        by_family = candidates.seed_variance()
        run.log_table("candidates", candidates.table)
        run.summary({f"{r.family}_validation_rmse_mean": r.mean for r in by_family.itertuples()})
        candidates = replace(candidates, wandb_run=run.url)
    return dg.Output(
        candidates,
        metadata={
            "candidates": markdown_table(candidates.table),
            "seed_variance": markdown_table(by_family),
            "best_validation_rmse": rmse_value(candidates.table["validation_rmse"].min()),
            "fits": dg.MetadataValue.int(total),
            "wandb_run": dg.MetadataValue.text(candidates.wandb_run),
        },
    )


@dg.asset(group_name="training", kinds={"xgboost", "wandb"})
def tuned_model(
    config: TuningConfig,
    tracker: ExperimentTracker,
    progress: ProgressReporter,
    training_set: pd.DataFrame,
    validation_set: pd.DataFrame,
) -> dg.Output[TunedResult]:
    """Random or grid search scored by time-ordered folds over training + validation (each
    fold trains on the past and tests on the next block); every trial is recorded."""
    plan = search_plan(
        config.search_space, config.search_type, config.n_trials, config.random_state
    )
    with (
        tracker.run("tuned_model", "tune", config.model_dump()) as run,
        progress.task("search trials", len(plan)) as task,
    ):

        def on_trial(trial: dict) -> None:
            run.log(trial)
            task.advance(f"CV RMSE {trial['cv_rmse']:.4f}")

        folds, seed = config.n_folds, config.random_state
        result = search(training_set, validation_set, plan, config.family, folds, seed, on_trial)
        run.log_table("trials", result.trials)
        run.summary(result.summary())
        result = replace(result, wandb_run=run.url)
    return dg.Output(
        result,
        metadata={
            "search_type": config.search_type,
            "trials": markdown_table(result.trials),
            "n_trials": dg.MetadataValue.int(len(plan)),
            "best_params": dg.MetadataValue.json(result.best_params),
            "validation_rmse": rmse_value(result.validation_rmse),
            "wandb_run": dg.MetadataValue.text(result.wandb_run),
        },
    )


@dg.asset(group_name="training", kinds={"xgboost", "scikitlearn", "wandb"})
def benchmark_report(
    config: BenchmarkConfig,
    tracker: ExperimentTracker,
    progress: ProgressReporter,
    training_set: pd.DataFrame,
    validation_set: pd.DataFrame,
    holdout_set: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Chronological 80/20, 70/30 and 60/40 splits and rolling-origin CV over the whole year,
    for each family, their average, and persistence: how stable the ranking is."""
    pool = benchmark_pool(training_set, validation_set, holdout_set)
    schemes = benchmark_schemes(pool, config.train_fractions, config.cv_folds)
    with progress.task("benchmark folds", sum(len(s.folds) for s in schemes)) as task:
        report = run_benchmark(
            pool,
            schemes,
            config.families,
            config.random_state,
            lambda scheme, fold: task.advance(f"{scheme}: {_rmse_note(fold)}"),
        )
    with tracker.run("benchmark_report", "benchmark", config.model_dump()) as run:
        run.log_table("benchmark", report)
        run.summary({f"{r.split}/{r.model}/rmse": r.rmse for r in report.itertuples()})
        run_url = run.url
    pivot = report.pivot(index="model", columns="split", values="rmse").reset_index()
    return dg.Output(
        report,
        metadata={
            "rmse_by_split": markdown_table(pivot),
            "report": markdown_table(report),
            "wandb_run": dg.MetadataValue.text(run_url),
        },
    )


def _rmse_note(scores: pd.DataFrame) -> str:
    return ", ".join(f"{r.model} {r.rmse:.4f}" for r in scores.itertuples())
