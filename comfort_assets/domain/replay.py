"""Pure helpers of the replayed year (`comfort simulate`): training windows that end on a
simulated day, the simulated clock behind the retrain sensor's cooldown, and the scoring of
the arms (closed loop, never retrained, monthly retrain, persistence) on the same hours."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

ARMS = ("loop", "static", "monthly", "persistence")
#: The replay's retrain cooldown: the loop may retrain at most as often as the monthly arm it
#: is judged against, and only when monitoring asks. (The year's sensitivity: 14 days gave
#: 10 retrains, 21 days 8, 28 and 30 days 5; every one within 1.3 % of the monthly arm.)
REPLAY_COOLDOWN_DAYS = 30.0


@dataclass(frozen=True)
class ReplayWindows:
    """Expanding-window split ending at ``end`` (exclusive): training from the first day,
    then ``validation_days``, then the most recent ``holdout_days`` as the holdout."""

    train_end: pd.Timestamp
    validation_end: pd.Timestamp
    holdout_end: pd.Timestamp

    @classmethod
    def ending(cls, end: pd.Timestamp, holdout_days: int, validation_days: int) -> ReplayWindows:
        if holdout_days < 1 or validation_days < 1:
            raise ValueError("holdout_days and validation_days must be at least 1")
        end = utc_day(end)
        validation_end = end - pd.Timedelta(days=holdout_days)
        return cls(validation_end - pd.Timedelta(days=validation_days), validation_end, end)

    def split_config(self) -> dict[str, str]:
        """The `SplitConfig` fields (explicit dates) of these windows."""
        return {
            "train_end": self.train_end.isoformat(),
            "validation_end": self.validation_end.isoformat(),
            "holdout_end": self.holdout_end.isoformat(),
        }


def utc_day(value: object) -> pd.Timestamp:
    """Midnight UTC of a date, a date string or a timestamp."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
    return stamp.floor("D")


def month_starts(
    trained: pd.Timestamp, first: pd.Timestamp, last: pd.Timestamp
) -> list[pd.Timestamp]:
    """When the monthly arm retrains: the first day of each month after the first training
    (``trained``) up to ``last``, leaving out those replaced by a later one before ``first``
    (the first scored hour) since none of their forecasts would be scored."""
    starts = list(
        pd.date_range(utc_day(trained) + pd.offsets.MonthBegin(1), utc_day(last), freq="MS")
    )
    return [s for i, s in enumerate(starts) if i + 1 == len(starts) or starts[i + 1] > first]


def simulated_cursor(
    cursor: str | None, real_now: float, sim_elapsed_s: float | None
) -> str | None:
    """The retrain sensor's cursor with its last request moved so that, measured on the wall
    clock, it lies ``sim_elapsed_s`` in the past: the sensor times its cooldown with
    ``time.time()``, so this is how simulated days pass for it. ``None`` keeps no request."""
    if cursor is None:
        return None
    state = json.loads(cursor)
    state["last_request"] = None if sim_elapsed_s is None else real_now - sim_elapsed_s
    return json.dumps(state)


def only_drift(reason: str) -> bool:
    """A retrain reason with no decay and no out-of-domain part: seasonal drift alone."""
    parts = {p for p in reason.split("+") if p}
    return bool(parts) and parts <= {"seasonal_drift"}


def rmse(errors: pd.Series | np.ndarray) -> float:
    values = np.asarray(errors, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(values**2))) if len(values) else float("nan")


def arm_rmse(scored: pd.DataFrame, arms: Sequence[str] = ARMS) -> dict[str, float]:
    """RMSE of each arm's forecast column against ``actual`` on the rows every arm has."""
    rows = scored.dropna(subset=["actual", *arms])
    return {arm: rmse(rows[arm] - rows["actual"]) for arm in arms}


def weekly_table(
    scored: pd.DataFrame,
    retrain_days: Sequence[pd.Timestamp],
    monthly_days: Sequence[pd.Timestamp],
    arms: Sequence[str] = ARMS,
) -> pd.DataFrame:
    """RMSE per arm per week (Monday start, by valid time), the rows scored, and the loop's
    and the monthly arm's retrains that fell in the week."""
    rows = scored.dropna(subset=["actual", *arms])
    week = rows["valid_at"].dt.tz_convert("UTC").dt.floor("D")
    week = week - pd.to_timedelta(week.dt.day_of_week, unit="D")
    out = []
    for start, group in rows.groupby(week, sort=True):
        end = start + pd.Timedelta(days=7)
        out.append(
            {
                "week": start.strftime("%Y-%m-%d"),
                "rows": len(group),
                **{arm: rmse(group[arm] - group["actual"]) for arm in arms},
                "loop_retrains": sum(start <= utc_day(d) < end for d in retrain_days),
                "monthly_retrains": sum(start <= utc_day(d) < end for d in monthly_days),
            }
        )
    return pd.DataFrame(out)
