"""The challenger and the standing champion scored on the same holdout, and the decision.

An old champion can be scored only if it forecasts the same horizon and the holdout still
has every feature it was trained on; otherwise the decision says why, and persistence (with
the station rule) is the only bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from comfort_assets.domain.metrics import rmse, skill
from comfort_assets.domain.modeling import ForecastModel, TrainingData
from comfort_assets.domain.promotion import (
    DEFAULT_MIN_STATION_ROWS,
    StationScore,
    decide_promotion,
)
from comfort_assets.domain.training import horizon_of


@dataclass(frozen=True)
class ChallengerDecision:
    """What the promotion step decided; ``version`` is set once the challenger is registered."""

    promoted: bool
    reason: str
    challenger_rmse: float
    persistence_rmse: float
    champion_before: str | None
    champion_rmse: float | None
    stations: tuple[StationScore, ...]
    version: str = ""

    @property
    def skill(self) -> float:
        return skill(self.challenger_rmse, self.persistence_rmse)

    @property
    def champion_now(self) -> str | None:
        """The champion once the decision is carried out."""
        return self.version if self.promoted else self.champion_before


def unscorable_reason(model: ForecastModel, holdout_set: pd.DataFrame) -> str | None:
    """Why ``model`` cannot be scored on this holdout, or None when it can."""
    horizon = horizon_of(holdout_set)
    if model.horizon_h != horizon:
        return f"it forecasts {model.horizon_h} h ahead, the holdout {horizon} h"
    missing = [name for name in model.feature_names if name not in holdout_set.columns]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return f"the holdout lacks its feature(s) {', '.join(missing[:3])}{more}"
    return None


def forecast(model: ForecastModel, holdout_set: pd.DataFrame) -> npt.NDArray[np.float64]:
    """DI(t+h) forecasts of ``model`` for the holdout rows, from its own feature list."""
    data = TrainingData.from_frame(holdout_set, model.feature_names)
    return model.predict_di(data.features, data.di_now)


def station_scores(
    holdout_set: pd.DataFrame, predicted: npt.NDArray[np.float64]
) -> tuple[StationScore, ...]:
    """The challenger's and persistence's RMSE per station, with its row count."""
    frame = pd.DataFrame(
        {
            "station": holdout_set["station"].astype(str).to_numpy(),
            "actual": holdout_set["di_target"].to_numpy(dtype=float),
            "predicted": predicted,
            "persistence": holdout_set["di_now"].to_numpy(dtype=float),
        }
    )
    return tuple(
        StationScore(
            station=str(station),
            rows=len(part),
            challenger_rmse=rmse(part["actual"].to_numpy(), part["predicted"].to_numpy()),
            persistence_rmse=rmse(part["actual"].to_numpy(), part["persistence"].to_numpy()),
        )
        for station, part in frame.groupby("station", sort=True)
    )


def judge_challenger(
    challenger: ForecastModel,
    holdout_set: pd.DataFrame,
    champion_version: str | None = None,
    champion: ForecastModel | None = None,
    margin: float = 0.01,
    min_station_rows: int = DEFAULT_MIN_STATION_ROWS,
) -> ChallengerDecision:
    """Scores the challenger, persistence and (if it can be scored) the champion on the same
    holdout, and applies the promotion rule with the station rule."""
    predicted = forecast(challenger, holdout_set)
    actual = holdout_set["di_target"].to_numpy(dtype=float)
    persistence_rmse = rmse(actual, holdout_set["di_now"].to_numpy(dtype=float))
    champion_rmse, note = None, ""
    if champion is not None:
        why = unscorable_reason(champion, holdout_set)
        if why is None:
            champion_rmse = rmse(actual, forecast(champion, holdout_set))
        else:
            note = f"champion {champion_version} cannot be scored: {why}"
    stations = station_scores(holdout_set, predicted)
    decision = decide_promotion(
        rmse(actual, predicted),
        persistence_rmse,
        champion_rmse,
        margin,
        stations,
        min_station_rows,
        note,
    )
    return ChallengerDecision(
        promoted=decision.promote,
        reason=decision.reason,
        challenger_rmse=decision.challenger_rmse,
        persistence_rmse=persistence_rmse,
        champion_before=champion_version,
        champion_rmse=champion_rmse,
        stations=stations,
    )


def station_table(decision: ChallengerDecision) -> pd.DataFrame:
    return pd.DataFrame(
        [vars(s) for s in decision.stations],
        columns=["station", "rows", "challenger_rmse", "persistence_rmse"],
    )
