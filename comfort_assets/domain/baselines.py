"""Naive forecasts every model must beat: persistence, persistence + daily cycle, climatology.

All are past-only: the forecast for t+h issued at t uses observations up to t.
"""

from __future__ import annotations

import pandas as pd

from comfort_assets.domain.comfort import discomfort_index
from comfort_assets.domain.features import check_horizon

BASELINES: tuple[str, ...] = ("persistence", "persistence_daily_cycle", "climatology")
CLIMATOLOGY_DAYS = 14


def baseline_forecasts(
    clean: pd.DataFrame, horizon: int, days: int = CLIMATOLOGY_DAYS
) -> pd.DataFrame:
    """Per station and origin hour t: the three baseline forecasts of DI(t+h).

    - persistence: DI(t)
    - persistence_daily_cycle: DI(t) + mean over the past ``days`` days of DI(t+h−24d) − DI(t−24d)
    - climatology: mean over the past ``days`` days of DI at the hour of day of t+h
    """
    check_horizon(horizon)
    frames = []
    for station, group in clean.groupby("station", sort=True):
        group = group.sort_values("time_utc")
        di = pd.Series(
            discomfort_index(
                group["temp_c"].to_numpy(dtype=float), group["humidity_pct"].to_numpy(dtype=float)
            )
        )
        same_hour = [di.shift(24 * d - horizon) for d in range(1, days + 1)]
        origin_hour = [di.shift(24 * d) for d in range(1, days + 1)]
        climatology = pd.concat(same_hour, axis=1).mean(axis=1)
        cycle = pd.concat([a - b for a, b in zip(same_hour, origin_hour, strict=True)], axis=1)
        frames.append(
            pd.DataFrame(
                {
                    "station": station,
                    "time_utc": group["time_utc"].to_numpy(),
                    "persistence": di.to_numpy(),
                    "persistence_daily_cycle": (di + cycle.mean(axis=1)).to_numpy(),
                    "climatology": climatology.to_numpy(),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["time_utc"] = pd.to_datetime(out["time_utc"], utc=True)
    return out


def attach_baselines(split: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """The split's rows with the baseline forecasts for the same station and origin."""
    merged = split.merge(baselines, on=["station", "time_utc"], how="left", validate="one_to_one")
    if merged[list(BASELINES)].isna().all(axis=None):
        raise ValueError("no baseline forecast matches the split's station-hours")
    return merged
