"""Holdout evaluation: scores per model, per station, season, month and DI band."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from comfort_assets.domain.baselines import BASELINES
from comfort_assets.domain.comfort import discomfort_bands
from comfort_assets.domain.metrics import rmse, scores
from comfort_assets.domain.modeling import ForecastModel
from comfort_assets.domain.training import ChallengerChoice, horizon_of, split_data

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


def rmse_by_month(
    frame: pd.DataFrame,
    actual: npt.NDArray[np.float64],
    forecasts: Mapping[str, npt.NDArray[np.float64]],
) -> pd.DataFrame:
    """Index month ("10", "11", …), one column of RMSE per forecast."""
    month = frame["time_utc"].dt.month.to_numpy()
    months = sorted(set(month.tolist()))
    return pd.DataFrame(
        {
            name: [rmse(actual[month == m], predicted[month == m]) for m in months]
            for name, predicted in forecasts.items()
        },
        index=pd.Index([f"{m:02d}" for m in months], name="month"),
    )


@dataclass(frozen=True)
class EvaluationReport:
    """The challenger chosen on validation and how every model and baseline did on the holdout."""

    horizon_h: int
    challenger_name: str
    challenger: ForecastModel
    members: tuple[str, ...]
    scores: pd.DataFrame
    breakdown: pd.DataFrame
    by_month: pd.DataFrame
    actual: npt.NDArray[np.float64]
    predicted: npt.NDArray[np.float64]
    plots: Mapping[str, bytes] = field(default_factory=dict)
    wandb_runs: tuple[str, ...] = ()

    @property
    def challenger_scores(self) -> pd.Series:
        return self.scores.set_index("model").loc[self.challenger_name]


def evaluate_holdout(
    choice: ChallengerChoice, holdout_set: pd.DataFrame, baselines: pd.DataFrame
) -> EvaluationReport:
    """Scores every contender and baseline on the holdout (skill against persistence), the
    challenger per station, season, month and band, and the challenger and persistence per
    month. ``baselines``: baseline forecasts keyed by station and origin time."""
    holdout = split_data(holdout_set)
    keyed = holdout_set[["station", "time_utc"]].merge(
        baselines[["station", "time_utc", *BASELINES]],
        on=["station", "time_utc"],
        how="left",
        validate="one_to_one",
    )
    forecasts = {
        name: m.predict_di(holdout.features, holdout.di_now)
        for name, m in choice.contenders.items()
    }
    forecasts.update({name: keyed[name].to_numpy(dtype=float) for name in BASELINES})
    persistence = holdout.di_now
    table = score_table(holdout.di_target, forecasts, persistence)
    table.insert(1, "validation_rmse", table["model"].map(choice.validation_rmse))
    predicted = forecasts[choice.name]
    return EvaluationReport(
        horizon_h=horizon_of(holdout_set),
        challenger_name=choice.name,
        challenger=choice.model,
        members=choice.members,
        scores=table,
        breakdown=breakdown(holdout_set, predicted, persistence),
        by_month=rmse_by_month(
            holdout_set,
            holdout.di_target,
            {choice.name: predicted, "persistence": persistence},
        ),
        actual=holdout.di_target,
        predicted=predicted,
    )
