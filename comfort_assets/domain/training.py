"""Training procedures shared by the Dagster assets and the benchmarks: seeded candidates,
hyper-parameter search over time-ordered folds, and the choice of a challenger."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from comfort_assets.domain.features import feature_names
from comfort_assets.domain.metrics import rmse
from comfort_assets.domain.modeling import ForecastModel, TrainingData, average, fit_model
from comfort_assets.domain.tuning import expanding_folds

INTEGER_PARAMS = frozenset({"max_depth", "n_estimators", "min_samples_leaf"})


def horizon_of(frame: pd.DataFrame) -> int:
    horizons = frame["horizon_h"].unique()
    if len(horizons) != 1:
        raise ValueError(f"a split must hold one horizon, found {sorted(horizons)}")
    return int(horizons[0])


def split_data(frame: pd.DataFrame) -> TrainingData:
    return TrainingData.from_frame(frame, feature_names(horizon_of(frame)))


def validation_rmse(model: ForecastModel, data: TrainingData) -> float:
    return rmse(data.di_target, model.predict_di(data.features, data.di_now))


def train_candidates(
    training_set: pd.DataFrame,
    validation_set: pd.DataFrame,
    families: Sequence[str],
    seeds: Sequence[int],
    on_fit: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, ForecastModel], pd.DataFrame]:
    """One model per family and seed, scored on validation; returns models and a table."""
    horizon = horizon_of(training_set)
    names = feature_names(horizon)
    train, validation = split_data(training_set), split_data(validation_set)
    models, rows = {}, []
    for family in families:
        for seed in seeds:
            started = time.perf_counter()
            model = fit_model(family, train, validation, names, horizon, seed=seed)
            row = {
                "model": model.name,
                "family": family,
                "seed": seed,
                "validation_rmse": validation_rmse(model, validation),
                "fit_seconds": time.perf_counter() - started,
            }
            models[model.name] = model
            rows.append(row)
            if on_fit:
                on_fit(row)
    return models, pd.DataFrame(rows)


def _typed(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: int(v) if k in INTEGER_PARAMS else float(v) for k, v in params.items()}


@dataclass
class SearchResult:
    model: ForecastModel
    trials: pd.DataFrame
    best_params: dict[str, Any]
    validation_rmse: float


def search(
    training_set: pd.DataFrame,
    validation_set: pd.DataFrame,
    plan: Iterable[Mapping[str, Any]],
    family: str = "xgboost",
    n_folds: int = 2,
    seed: int = 0,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> SearchResult:
    """Score each parameter set by rolling-origin folds over training + validation (train on
    the past, test on the next block), then refit the best on training with early stopping
    on validation."""
    horizon = horizon_of(training_set)
    names = feature_names(horizon)
    pool = pd.concat([training_set, validation_set], ignore_index=True)
    data = split_data(pool)
    folds = expanding_folds(
        pool["time_utc"], n_folds, min_train_fraction=0.6, embargo_hours=horizon
    )
    trials = []
    for number, params in enumerate(plan):
        params = _typed(params)
        fold_scores = []
        for train_index, test_index in folds:
            train, test = data.subset(train_index), data.subset(test_index)
            model = fit_model(family, train, test, names, horizon, seed, params)
            fold_scores.append(validation_rmse(model, test))
        trial = {
            "trial": number,
            **params,
            "cv_rmse": float(np.mean(fold_scores)),
            "cv_std": float(np.std(fold_scores)),
        }
        trials.append(trial)
        if on_trial:
            on_trial(trial)
    table = pd.DataFrame(trials).sort_values("cv_rmse", ignore_index=True)
    best = _typed(
        {k: table.loc[0, k] for k in table.columns if k not in {"trial", "cv_rmse", "cv_std"}}
    )
    validation = split_data(validation_set)
    model = fit_model(family, split_data(training_set), validation, names, horizon, seed, best)
    return SearchResult(model, table, best, validation_rmse(model, validation))


def select_challenger(
    candidates: Mapping[str, ForecastModel],
    tuned: ForecastModel | None,
    validation_set: pd.DataFrame,
) -> tuple[str, dict[str, ForecastModel], dict[str, float]]:
    """Contenders are each family's seed average, the tuned model and the average of the two
    best; the challenger is the one with the lowest validation RMSE (never the holdout)."""
    by_family: dict[str, list[ForecastModel]] = {}
    for model in candidates.values():
        by_family.setdefault(model.family, []).append(model)
    contenders = {
        f"{family} (seed average)": average(group, family) for family, group in by_family.items()
    }
    if tuned is not None:
        contenders[f"{tuned.family} (tuned)"] = tuned
    validation = split_data(validation_set)
    scores = {name: validation_rmse(m, validation) for name, m in contenders.items()}
    best_two = sorted(scores, key=scores.get)[:2]
    if len(best_two) == 2:
        contenders["ensemble"] = average([contenders[n] for n in best_two], "ensemble")
        scores["ensemble"] = validation_rmse(contenders["ensemble"], validation)
    return min(scores, key=scores.get), contenders, scores
