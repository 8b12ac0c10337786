"""One real champion-like model for the behaviour tests, trained once per session.

XGBoost with the project's default parameters but a faster learning rate, on the reference
split (train Jan–Aug, early stopping on September), as the `candidate_models` asset fits one
seed: under a second of fitting here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from comfort_assets.domain.features import (
    OBSERVED,
    REQUIRED,
    WINDOW_HOURS,
    build_features,
    feature_names,
    window_feature_matrix,
)
from comfort_assets.domain.modeling import ForecastModel, TrainingData, fit_model
from comfort_assets.domain.splits import SplitWindows, chronological_split

HORIZON = 3
#: The default 0.03 stops after ~530 trees (~3 s idle, ~45 s on a loaded 2-core machine);
#: 0.1 stops after ~110 with nearly the same holdout RMSE at h = 3 (2.17 vs 2.15).
FAST_LEARNING_RATE = 0.1
#: Real windows drawn per station for the behaviour tests.
WINDOWS_PER_STATION = 400


@dataclass(frozen=True)
class Windows:
    """A batch of real request windows, as the service receives them."""

    observations: dict[str, npt.NDArray[np.float64]]
    origin_hour_utc: npt.NDArray[np.float64]
    stations: npt.NDArray[np.object_]

    def replace(self, name: str, values: npt.NDArray[np.float64]) -> Windows:
        return Windows({**self.observations, name: values}, self.origin_hour_utc, self.stations)


def forecast(model: ForecastModel, windows: Windows) -> npt.NDArray[np.float64]:
    """DI(t+h) through the serving path: `window_feature_matrix`, then the model."""
    built = window_feature_matrix(windows.observations, windows.origin_hour_utc, model.horizon_h)
    columns = [feature_names(model.horizon_h).index(n) for n in model.feature_names]
    return model.predict_di(built[:, columns], built[:, 0])


@pytest.fixture(scope="session")
def clean(bundled_clean) -> pd.DataFrame:
    return bundled_clean.clean


@pytest.fixture(scope="session")
def features(clean) -> pd.DataFrame:
    return build_features(clean, HORIZON)


@pytest.fixture(scope="session")
def model(features) -> ForecastModel:
    splits = chronological_split(features, SplitWindows.from_dates("2013-09-01", "2013-10-01"))
    names = feature_names(HORIZON)
    return fit_model(
        "xgboost",
        TrainingData.from_frame(splits["training"], names),
        TrainingData.from_frame(splits["validation"], names),
        names,
        HORIZON,
        seed=0,
        params={"learning_rate": FAST_LEARNING_RATE},
    )


@pytest.fixture(scope="session")
def windows(clean) -> Windows:
    """Complete real windows from the whole year, the same number per station."""
    rng = np.random.default_rng(0)
    parts: dict[str, list] = {name: [] for name in OBSERVED}
    hours, stations = [], []
    for station, group in clean.groupby("station", sort=True):
        group = group.sort_values("time_utc")
        slid = {
            name: sliding_window_view(group[name].to_numpy(dtype=float), WINDOW_HOURS)
            for name in OBSERVED
        }
        complete = np.logical_and.reduce([np.isfinite(slid[n]).all(axis=1) for n in REQUIRED])
        pick = rng.choice(np.flatnonzero(complete), WINDOWS_PER_STATION, replace=False)
        for name in OBSERVED:
            parts[name].append(slid[name][pick])
        hours.append(group["time_utc"].dt.hour.to_numpy()[WINDOW_HOURS - 1 :][pick])
        stations += [station] * len(pick)
    return Windows(
        {name: np.concatenate(p) for name, p in parts.items()},
        np.concatenate(hours).astype(float),
        np.array(stations, dtype=object),
    )
