"""How stable the ranking is: chronological 80/20, 70/30, 60/40 splits and rolling-origin CV
over the whole year, for each family, their average, and persistence."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
import pandas as pd

from comfort_assets.domain.features import feature_names
from comfort_assets.domain.metrics import scores
from comfort_assets.domain.modeling import fit_model, fit_side_by_side
from comfort_assets.domain.training import horizon_of, split_data
from comfort_assets.domain.tuning import Fold, chronological_holdout, expanding_folds

#: the last tenth of a training block stops XGBoost early; the test block is never seen
EARLY_STOP_FRACTION = 0.1


@dataclass(frozen=True)
class Scheme:
    """One way to split the pool: a name and its (train, test) row positions."""

    name: str
    folds: tuple[Fold, ...]


def benchmark_pool(*splits: pd.DataFrame) -> pd.DataFrame:
    """Every split in one frame in time order (row positions are what folds index)."""
    return pd.concat(splits, ignore_index=True).sort_values("time_utc", ignore_index=True)


def benchmark_schemes(
    pool: pd.DataFrame, train_fractions: Sequence[float], cv_folds: int
) -> list[Scheme]:
    """One chronological split per fraction, then rolling-origin CV; each embargoes the
    horizon so no training target reaches into its test block."""
    horizon = horizon_of(pool)
    times = pool["time_utc"]
    schemes = [
        Scheme(
            f"{round(f * 100)}/{round((1 - f) * 100)}",
            (chronological_holdout(times, f, horizon),),
        )
        for f in train_fractions
    ]
    folds = expanding_folds(times, cv_folds, 0.5, horizon)
    schemes.append(Scheme(f"rolling-origin CV ({cv_folds} folds)", tuple(folds)))
    return schemes


def run_benchmark(
    pool: pd.DataFrame,
    schemes: Sequence[Scheme],
    families: Sequence[str],
    seed: int = 0,
    on_fold: Callable[[str, pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """Per scheme and model (each family, their average, persistence): scores averaged over
    the scheme's folds. ``on_fold(scheme, scores)`` is called after every fold."""
    horizon = horizon_of(pool)
    names = feature_names(horizon)
    data = split_data(pool)

    def fold_forecasts(fold: Fold, family: str, n_jobs: int) -> npt.NDArray[np.float64]:
        train_index, test_index = fold
        cut = int(len(train_index) * (1 - EARLY_STOP_FRACTION))
        fit, stop = data.subset(train_index[:cut]), data.subset(train_index[cut:])
        test = data.subset(test_index)
        model = fit_model(family, fit, stop, names, horizon, seed, n_jobs=n_jobs)
        return model.predict_di(test.features, test.di_now)

    forecasts = fit_side_by_side(
        [partial(fold_forecasts, fold, f) for s in schemes for fold in s.folds for f in families]
    )
    frames = []
    for scheme in schemes:
        fold_frames = []
        for _, test_index in scheme.folds:
            test = data.subset(test_index)
            predictions = {f: next(forecasts) for f in families}
            predictions["ensemble"] = np.mean([predictions[f] for f in families], axis=0)
            predictions["persistence"] = test.di_now
            fold = pd.DataFrame(
                [{"model": m, **scores(test.di_target, p)} for m, p in predictions.items()]
            )
            fold_frames.append(fold)
            if on_fold:
                on_fold(scheme.name, fold)
        mean = (
            pd.concat(fold_frames)
            .groupby("model", sort=False)
            .mean(numeric_only=True)
            .reset_index()
        )
        mean.insert(0, "split", scheme.name)
        frames.append(mean)
    return pd.concat(frames, ignore_index=True)[["split", "model", "rmse", "mae", "bias", "rows"]]
