"""Group `training`: baselines, candidate models over several seeds, hyper-parameter search
and benchmarks; every model is measured against the naive baselines."""

import dagster as dg
import numpy as np
import pandas as pd

from comfort_assets.domain.baselines import BASELINES, attach_baselines, baseline_forecasts
from comfort_assets.domain.features import feature_names
from comfort_assets.domain.metrics import scores
from comfort_assets.domain.modeling import FAMILIES, fit_model
from comfort_assets.domain.training import horizon_of, search, split_data, train_candidates
from comfort_assets.domain.tuning import (
    DEFAULT_FOLDS,
    DEFAULT_SEARCH_SPACE,
    DEFAULT_TRIALS,
    chronological_holdout,
    expanding_folds,
    search_plan,
)
from comfort_assets.metadata import markdown_table
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
            "horizon_h": horizon,
            "scores": markdown_table(summary),
            **{
                f"holdout_{r.baseline}_rmse": dg.MetadataValue.float(r.rmse)
                for r in summary.itertuples()
                if r.split == "holdout"
            },
        },
    )


@dg.asset(group_name="training", kinds={"xgboost", "scikitlearn", "wandb"})
def candidate_models(
    context: dg.AssetExecutionContext,
    config: CandidateConfig,
    tracker: ExperimentTracker,
    training_set: pd.DataFrame,
    validation_set: pd.DataFrame,
) -> dg.Output[dict]:
    """Ridge, random forest and XGBoost on the DI change, one model per family and seed;
    XGBoost stops early on the validation split."""
    with tracker.run("candidate_models", "train", config.model_dump()) as run:

        def on_fit(row: dict) -> None:
            run.log(
                {
                    f"{row['family']}/validation_rmse": row["validation_rmse"],
                    f"{row['family']}/seed": row["seed"],
                }
            )
            context.log.info(
                f"{row['model']}: validation RMSE {row['validation_rmse']:.4f} "
                f"({row['fit_seconds']:.1f} s)"
            )

        models, table = train_candidates(
            training_set, validation_set, config.families, config.random_states, on_fit
        )
        by_family = (
            table.groupby("family")["validation_rmse"]
            .agg(["mean", "std", "min", "max"])
            .reset_index()
        )
        run.log_table("candidates", table)
        run.summary({f"{r.family}_validation_rmse_mean": r.mean for r in by_family.itertuples()})
        run_url = run.url
    return dg.Output(
        {"models": models, "table": table, "wandb_run": run_url},
        metadata={
            "candidates": markdown_table(table),
            "seed_variance": markdown_table(by_family),
            "best_validation_rmse": dg.MetadataValue.float(float(table["validation_rmse"].min())),
            "wandb_run": dg.MetadataValue.text(run_url),
        },
    )


@dg.asset(group_name="training", kinds={"xgboost", "wandb"})
def tuned_model(
    context: dg.AssetExecutionContext,
    config: TuningConfig,
    tracker: ExperimentTracker,
    training_set: pd.DataFrame,
    validation_set: pd.DataFrame,
) -> dg.Output[dict]:
    """Random or grid search scored by time-ordered folds over training + validation (each
    fold trains on the past and tests on the next block); every trial is recorded."""
    plan = search_plan(
        config.search_space, config.search_type, config.n_trials, config.random_state
    )
    with tracker.run("tuned_model", "tune", config.model_dump()) as run:

        def on_trial(trial: dict) -> None:
            run.log(trial)
            context.log.info(f"trial {trial['trial']}: CV RMSE {trial['cv_rmse']:.4f} {trial}")

        result = search(
            training_set,
            validation_set,
            plan,
            config.family,
            config.n_folds,
            config.random_state,
            on_trial,
        )
        run.log_table("trials", result.trials)
        run.summary(
            {
                "best_cv_rmse": float(result.trials["cv_rmse"].iloc[0]),
                "validation_rmse": result.validation_rmse,
                **{f"best/{k}": v for k, v in result.best_params.items()},
            }
        )
        run_url = run.url
    return dg.Output(
        {
            "model": result.model,
            "trials": result.trials,
            "best_params": result.best_params,
            "wandb_run": run_url,
        },
        metadata={
            "search_type": config.search_type,
            "trials": markdown_table(result.trials),
            "best_params": dg.MetadataValue.json(result.best_params),
            "validation_rmse": dg.MetadataValue.float(result.validation_rmse),
            "wandb_run": dg.MetadataValue.text(run_url),
        },
    )


@dg.asset(group_name="training", kinds={"xgboost", "scikitlearn", "wandb"})
def benchmark_report(
    config: BenchmarkConfig,
    tracker: ExperimentTracker,
    training_set: pd.DataFrame,
    validation_set: pd.DataFrame,
    holdout_set: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Chronological 80/20, 70/30 and 60/40 splits and rolling-origin CV over the whole year,
    for each family, their average, and persistence: how stable the ranking is."""
    pool = pd.concat([training_set, validation_set, holdout_set], ignore_index=True).sort_values(
        "time_utc", ignore_index=True
    )
    horizon = horizon_of(pool)
    names = feature_names(horizon)
    data = split_data(pool)
    schemes = [
        (
            f"{round(f * 100)}/{round((1 - f) * 100)}",
            [chronological_holdout(pool["time_utc"], f, horizon)],
        )
        for f in config.train_fractions
    ]
    schemes.append(
        (
            f"rolling-origin CV ({config.cv_folds} folds)",
            expanding_folds(pool["time_utc"], config.cv_folds, 0.5, horizon),
        )
    )
    rows = []
    for scheme, folds in schemes:
        fold_rows = []
        for train_index, test_index in folds:
            # the last tenth of the training block stops XGBoost early; the test block is never seen
            cut = int(len(train_index) * 0.9)
            fit_index, stop_index = train_index[:cut], train_index[cut:]
            fit, stop, test = (
                data.subset(fit_index),
                data.subset(stop_index),
                data.subset(test_index),
            )
            fitted = [
                fit_model(f, fit, stop, names, horizon, config.random_state)
                for f in config.families
            ]
            predictions = {m.family: m.predict_di(test.features, test.di_now) for m in fitted}
            predictions["ensemble"] = np.mean([predictions[f] for f in config.families], axis=0)
            predictions["persistence"] = test.di_now
            for model, predicted in predictions.items():
                fold_rows.append({"model": model, **scores(test.di_target, predicted)})
        folds_frame = (
            pd.DataFrame(fold_rows)
            .groupby("model", sort=False)
            .mean(numeric_only=True)
            .reset_index()
        )
        folds_frame.insert(0, "split", scheme)
        rows.append(folds_frame)
    report = pd.concat(rows, ignore_index=True)[["split", "model", "rmse", "mae", "bias", "rows"]]
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
