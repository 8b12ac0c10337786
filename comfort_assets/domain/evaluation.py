"""Holdout evaluation: scores per model, per station, per month and per DI band."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from comfort_assets.domain.comfort import discomfort_bands
from comfort_assets.domain.metrics import scores

SEASONS = {
    12: "winter",
    1: "winter",
    2: "winter",
    3: "spring",
    4: "spring",
    5: "spring",
    6: "summer",
    7: "summer",
    8: "summer",
    9: "autumn",
    10: "autumn",
    11: "autumn",
}


def score_table(
    actual: npt.NDArray[np.float64],
    forecasts: Mapping[str, npt.NDArray[np.float64]],
    reference: npt.NDArray[np.float64],
) -> pd.DataFrame:
    """One row per forecast: RMSE, MAE, bias, rows and skill against ``reference``."""
    rows = []
    for name, predicted in forecasts.items():
        ok = np.isfinite(predicted)
        rows.append({"model": name, **scores(actual[ok], predicted[ok], reference[ok])})
    return pd.DataFrame(rows).sort_values("rmse", ignore_index=True)


def breakdown(
    frame: pd.DataFrame, predicted: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]
) -> pd.DataFrame:
    """Scores of one forecast per station, season, month and band of the actual DI."""
    data = frame[["station", "time_utc", "di_target"]].copy()
    data["predicted"], data["reference"] = predicted, reference
    month = data["time_utc"].dt.month
    groups = {
        "station": data["station"],
        "season": month.map(SEASONS),
        "month": month.map(lambda m: f"{m:02d}"),
        "band": pd.Series(discomfort_bands(data["di_target"].to_numpy()), index=data.index),
    }
    rows = []
    for dimension, keys in groups.items():
        for key, part in data.groupby(keys, sort=True):
            rows.append(
                {
                    "dimension": dimension,
                    "group": str(key),
                    **scores(
                        part["di_target"].to_numpy(),
                        part["predicted"].to_numpy(),
                        part["reference"].to_numpy(),
                    ),
                }
            )
    return pd.DataFrame(rows)
