"""Group `training`: baselines, candidate models over several seeds, hyper-parameter search
and benchmarks; every model is measured against the naive baselines."""

import time

import dagster as dg
import numpy as np
import pandas as pd

from comfort_assets.domain.baselines import BASELINES, attach_baselines, baseline_forecasts
from comfort_assets.domain.features import feature_names
from comfort_assets.domain.metrics import rmse, scores
from comfort_assets.domain.modeling import FAMILIES, ForecastModel, TrainingData, fit_model
from comfort_assets.domain.tuning import chronological_holdout, expanding_folds, search_plan
from comfort_assets.resources.tracking import ExperimentTracker


def horizon_of(frame: pd.DataFrame) -> int:
    horizons = frame["horizon_h"].unique()
    if len(horizons) != 1:
        raise ValueError(f"a split must hold one horizon, found {sorted(horizons)}")
    return int(horizons[0])


def split_data(frame: pd.DataFrame) -> TrainingData:
    return TrainingData.from_frame(frame, feature_names(horizon_of(frame)))


def _md(frame: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.to_markdown(index=False, floatfmt=".4f"))


class CandidateConfig(dg.Config):
    families: list[str] = list(FAMILIES)
    random_states: list[int] = [0, 1, 2]
    """Several seeds per family make seed variance visible (`comfort train --random-state`)."""


class TuningConfig(dg.Config):
    search_type: str = "random"
    n_trials: int = 4
    random_state: int = 0
    n_folds: int = 2
    family: str = "xgboost"
    search_space: dict[str, list[float]] = {
        "max_depth": [4, 6, 8],
        "learning_rate": [0.03, 0.05, 0.1],
        "min_child_weight": [1, 5, 20],
        "subsample": [0.7, 0.9],
        "colsample_bytree": [0.6, 0.8, 1.0],
    }


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
            "scores": _md(summary),
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
    horizon = horizon_of(training_set)
    names = feature_names(horizon)
    train, validation = split_data(training_set), split_data(validation_set)
    models: dict[str, ForecastModel] = {}
    table = []
    with tracker.run("candidate_models", "train", config.model_dump()) as run:
        for family in config.families:
            for seed in config.random_states:
                started = time.perf_counter()
                model = fit_model(family, train, validation, names, horizon, seed=seed)
                score = rmse(
                    validation.di_target, model.predict_di(validation.features, validation.di_now)
                )
                seconds = time.perf_counter() - started
                models[model.name] = model
                table.append(
                    {
                        "model": model.name,
                        "family": family,
                        "seed": seed,
                        "validation_rmse": score,
                        "fit_seconds": seconds,
                    }
                )
                run.log({f"{family}/validation_rmse": score, f"{family}/seed": seed})
                context.log.info(f"{model.name}: validation RMSE {score:.4f} ({seconds:.1f} s)")
        frame = pd.DataFrame(table)
        by_family = (
            frame.groupby("family")["validation_rmse"]
            .agg(["mean", "std", "min", "max"])
            .reset_index()
        )
        run.log_table("candidates", frame)
        run.summary({f"{r.family}_validation_rmse_mean": r.mean for r in by_family.itertuples()})
        run_url = run.url
    return dg.Output(
        {"models": models, "table": frame, "wandb_run": run_url},
        metadata={
            "candidates": _md(frame),
            "seed_variance": _md(by_family),
            "best_validation_rmse": dg.MetadataValue.float(float(frame["validation_rmse"].min())),
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
    horizon = horizon_of(training_set)
    names = feature_names(horizon)
    plan = search_plan(
        config.search_space, config.search_type, config.n_trials, config.random_state
    )
    pool = pd.concat([training_set, validation_set], ignore_index=True)
    data = split_data(pool)
    folds = expanding_folds(
        pool["time_utc"], config.n_folds, min_train_fraction=0.6, embargo_hours=horizon
    )
    trials = []
    with tracker.run("tuned_model", "tune", config.model_dump()) as run:
        for number, params in enumerate(plan):
            params = {
                k: (int(v) if k in {"max_depth", "n_estimators"} else v) for k, v in params.items()
            }
            fold_scores = []
            for train_index, test_index in folds:
                train = TrainingData(
                    data.features[train_index], data.change[train_index], data.di_now[train_index]
                )
                test = TrainingData(
                    data.features[test_index], data.change[test_index], data.di_now[test_index]
                )
                model = fit_model(
                    config.family, train, test, names, horizon, config.random_state, params
                )
                fold_scores.append(
                    rmse(test.di_target, model.predict_di(test.features, test.di_now))
                )
            trial = {
                "trial": number,
                **params,
                "cv_rmse": float(np.mean(fold_scores)),
                "cv_std": float(np.std(fold_scores)),
            }
            trials.append(trial)
            run.log(trial)
            context.log.info(f"trial {number}: {params} → CV RMSE {trial['cv_rmse']:.4f}")
        table = pd.DataFrame(trials).sort_values("cv_rmse")
        best = {k: v for k, v in table.iloc[0].items() if k in config.search_space}
        best = {
            k: (int(v) if k in {"max_depth", "n_estimators"} else float(v)) for k, v in best.items()
        }
        model = fit_model(
            config.family,
            split_data(training_set),
            split_data(validation_set),
            names,
            horizon,
            config.random_state,
            best,
        )
        validation = split_data(validation_set)
        score = rmse(validation.di_target, model.predict_di(validation.features, validation.di_now))
        run.log_table("trials", table)
        run.summary(
            {
                "best_cv_rmse": float(table["cv_rmse"].iloc[0]),
                "validation_rmse": score,
                **{f"best/{k}": v for k, v in best.items()},
            }
        )
        run_url = run.url
    return dg.Output(
        {
            "model": model,
            "trials": table,
            "best_params": best,
            "validation_rmse": score,
            "wandb_run": run_url,
        },
        metadata={
            "search_type": config.search_type,
            "trials": _md(table),
            "best_params": dg.MetadataValue.json(best),
            "validation_rmse": dg.MetadataValue.float(score),
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
            pick = lambda ix: TrainingData(data.features[ix], data.change[ix], data.di_now[ix])  # noqa: E731
            fit, stop, test = pick(fit_index), pick(stop_index), pick(test_index)
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
            "rmse_by_split": _md(pivot),
            "report": _md(report),
            "wandb_run": dg.MetadataValue.text(run_url),
        },
    )
