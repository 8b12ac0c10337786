"""Training procedures shared by the Dagster assets and the benchmarks: seeded candidates,
hyper-parameter search over time-ordered folds, and the choice of a challenger."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from comfort_assets.domain.features import feature_names
from comfort_assets.domain.metrics import rmse
from comfort_assets.domain.modeling import (
    ForecastModel,
    TrainingData,
    average,
    fit_model,
    fit_side_by_side,
)
from comfort_assets.domain.tuning import Fold, expanding_folds

INTEGER_PARAMS = frozenset({"max_depth", "n_estimators", "min_samples_leaf"})
ENSEMBLE = "ensemble"


def daily_seed(day: date) -> int:
    """The day's experiment seed, ``YYYYMMDD``: new every day, and the date alone says how to
    rerun it (``comfort train --random-state 20130701``)."""
    return day.year * 10_000 + day.month * 100 + day.day


def horizon_of(frame: pd.DataFrame) -> int:
    horizons = frame["horizon_h"].unique()
    if len(horizons) != 1:
        raise ValueError(f"a split must hold one horizon, found {sorted(horizons)}")
    return int(horizons[0])


def split_data(frame: pd.DataFrame) -> TrainingData:
    return TrainingData.from_frame(frame, feature_names(horizon_of(frame)))


def validation_rmse(model: ForecastModel, data: TrainingData) -> float:
    return rmse(data.di_target, model.predict_di(data.features, data.di_now))


@dataclass(frozen=True)
class CandidateSet:
    """The fitted candidates (name → model), one row per fit, and the W&B run that logged them."""

    models: Mapping[str, ForecastModel]
    table: pd.DataFrame
    wandb_run: str = ""

    def seed_variance(self) -> pd.DataFrame:
        """Validation RMSE per family over its seeds: mean, std, min, max."""
        return (
            self.table.groupby("family")["validation_rmse"]
            .agg(["mean", "std", "min", "max"])
            .reset_index()
        )


def train_candidates(
    training_set: pd.DataFrame,
    validation_set: pd.DataFrame,
    families: Sequence[str],
    seeds: Sequence[int],
    on_fit: Callable[[dict[str, Any]], None] | None = None,
) -> CandidateSet:
    """One model per family and seed, scored on validation."""
    horizon = horizon_of(training_set)
    names = feature_names(horizon)
    train, validation = split_data(training_set), split_data(validation_set)

    def fit(family: str, seed: int, n_jobs: int) -> tuple[ForecastModel, float]:
        started = time.perf_counter()
        model = fit_model(family, train, validation, names, horizon, seed, n_jobs=n_jobs)
        return model, time.perf_counter() - started

    models, rows = {}, []
    for family in families:
        fits = fit_side_by_side([partial(fit, family, seed) for seed in seeds], family)
        for seed, (model, seconds) in zip(seeds, fits, strict=True):
            row = {
                "model": model.name,
                "family": family,
                "seed": seed,
                "validation_rmse": validation_rmse(model, validation),
                "fit_seconds": seconds,
            }
            models[model.name] = model
            rows.append(row)
            if on_fit:
                on_fit(row)
    return CandidateSet(models, pd.DataFrame(rows))


def _typed(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: int(v) if k in INTEGER_PARAMS else float(v) for k, v in params.items()}


@dataclass(frozen=True)
class TunedResult:
    """The best parameter set refitted, every trial (best first), and the W&B run."""

    model: ForecastModel
    trials: pd.DataFrame
    best_params: dict[str, Any]
    validation_rmse: float
    wandb_run: str = ""

    def summary(self) -> dict[str, Any]:
        """The figures a tracking run keeps: best CV RMSE, validation RMSE, best parameters."""
        return {
            "best_cv_rmse": float(self.trials["cv_rmse"].iloc[0]),
            "validation_rmse": self.validation_rmse,
            **{f"best/{k}": v for k, v in self.best_params.items()},
        }


def search(
    training_set: pd.DataFrame,
    validation_set: pd.DataFrame,
    plan: Iterable[Mapping[str, Any]],
    family: str = "xgboost",
    n_folds: int = 2,
    seed: int = 0,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> TunedResult:
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
    plan = [_typed(params) for params in plan]

    def fold_rmse(params: dict[str, Any], fold: Fold, n_jobs: int) -> float:
        train, test = data.subset(fold[0]), data.subset(fold[1])
        model = fit_model(family, train, test, names, horizon, seed, params, n_jobs)
        return validation_rmse(model, test)

    tasks = [partial(fold_rmse, p, fold) for p in plan for fold in folds]
    fits = fit_side_by_side(tasks, family)
    trials = []
    for number, params in enumerate(plan):
        fold_scores = [next(fits) for _ in folds]
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
    return TunedResult(model, table, best, validation_rmse(model, validation))


@dataclass(frozen=True)
class ChallengerChoice:
    """The contender chosen on validation, every contender, and their validation RMSEs.

    ``members`` names the contenders an ensemble averages (empty for a single contender).
    """

    name: str
    contenders: Mapping[str, ForecastModel]
    validation_rmse: Mapping[str, float]
    members: tuple[str, ...] = ()

    @property
    def model(self) -> ForecastModel:
        return self.contenders[self.name]


def select_challenger(
    candidates: Mapping[str, ForecastModel],
    tuned: ForecastModel | None,
    validation_set: pd.DataFrame,
) -> ChallengerChoice:
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
    best_two = tuple(sorted(scores, key=scores.get)[:2])
    if len(best_two) == 2:
        contenders[ENSEMBLE] = average([contenders[n] for n in best_two], ENSEMBLE)
        scores[ENSEMBLE] = validation_rmse(contenders[ENSEMBLE], validation)
    name = min(scores, key=scores.get)
    return ChallengerChoice(name, contenders, scores, best_two if name == ENSEMBLE else ())
