"""One feature builder for training and serving: no training/serving skew.

Every path ends in `feature_matrix`, which turns windows of hourly observations
(shape ``(n, WINDOW_HOURS)``, the last column is the forecast origin t) into the
feature matrix. `build_features` slides that window over a station's hourly
series (training; `build_features_valid_between` for the rows of some days);
`window_feature_matrix` takes the windows of one or many requests directly (serving).
Features at t use nothing after t; only the target looks ahead.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from comfort_assets.domain.comfort import dewpoint_c, discomfort_index

HORIZONS: tuple[int, ...] = (1, 3, 6, 24)
DEFAULT_HORIZON = 3
#: Hours of history a forecast needs, ending at (and including) the origin t.
#: Four days back plus the origin hour: the daily-cycle features reach DI(t − 96 h).
WINDOW_HOURS = 97
#: Observations the features are built from; pressure and wind may be missing (but a model
#: served without wind direction loses about a third of its edge at h = 3).
OBSERVED: tuple[str, ...] = (
    "temp_c",
    "humidity_pct",
    "pressure_hpa",
    "wind_speed_ms",
    "wind_dir_deg",
)
REQUIRED: tuple[str, ...] = ("temp_c", "humidity_pct")
DI_CHANGE_LAGS: tuple[int, ...] = (1, 2, 3, 6, 12, 24)
CYCLE_DAYS = (WINDOW_HOURS - 1) // 24
#: Days of clean weather before a day that the rows forecasting into it need: the origin of
#: the longest horizon is the day before, and its window reaches four days further back.
HISTORY_DAYS = CYCLE_DAYS + 1
WIND_VECTOR_FEATURES: tuple[str, ...] = (
    "wind_u",
    "wind_v",
    "wind_u_mean_3h",
    "wind_v_mean_3h",
    "wind_u_change_3h",
    "wind_v_change_3h",
)
#: Features that may be missing in a usable row (pressure and wind are often not reported).
OPTIONAL_FEATURES: frozenset[str] = frozenset(
    {
        "wind_speed_ms",
        "wind_change_3h",
        "pressure_change_3h",
        "pressure_change_24h",
        *WIND_VECTOR_FEATURES,
    }
)


def feature_names(horizon: int = DEFAULT_HORIZON) -> list[str]:
    """Column order of `feature_matrix`; the same for every horizon."""
    check_horizon(horizon)
    return [
        "di_now",
        "temp_c",
        "humidity_pct",
        "wind_speed_ms",
        *(f"di_change_{k}h" for k in DI_CHANGE_LAGS),
        "temp_change_1h",
        "temp_change_3h",
        "temp_change_24h",
        "humidity_change_1h",
        "humidity_change_3h",
        "humidity_change_24h",
        "dewpoint_c",
        "dewpoint_change_3h",
        "wind_change_3h",
        "temp_max_24h",
        "temp_min_24h",
        "pressure_change_3h",
        "pressure_change_24h",
        "di_mean_24h",
        "di_std_24h",
        "di_max_24h",
        "di_min_24h",
        "di_cycle_1d",
        "di_cycle_mean",
        "di_cycle_level",
        *WIND_VECTOR_FEATURES,
        "hour_sin",
        "hour_cos",
        "valid_hour_sin",
        "valid_hour_cos",
    ]


def required_features(horizon: int = DEFAULT_HORIZON) -> list[str]:
    return [name for name in feature_names(horizon) if name not in OPTIONAL_FEATURES]


def check_horizon(horizon: int) -> int:
    if horizon not in HORIZONS:
        raise ValueError(f"horizon must be one of {HORIZONS} hours, got {horizon!r}")
    return horizon


def feature_matrix(
    windows: Mapping[str, npt.NDArray[np.float64]],
    origin_hour_utc: npt.NDArray[np.float64],
    horizon: int = DEFAULT_HORIZON,
) -> npt.NDArray[np.float64]:
    """Features for windows of shape ``(n, WINDOW_HOURS)`` per observed variable.

    ``origin_hour_utc`` is the UTC hour of day of each window's last hour (the origin t).
    A window with a missing temperature or humidity gives a row of NaN.
    """
    check_horizon(horizon)
    temp = np.asarray(windows["temp_c"], dtype=float)
    humidity = np.asarray(windows["humidity_pct"], dtype=float)
    pressure = np.asarray(windows["pressure_hpa"], dtype=float)
    wind = np.asarray(windows["wind_speed_ms"], dtype=float)
    direction = np.deg2rad(np.asarray(windows["wind_dir_deg"], dtype=float))
    # wind vector (towards which the air moves): sea breezes and fronts show in it
    wind_u, wind_v = -wind * np.sin(direction), -wind * np.cos(direction)
    if temp.ndim != 2 or temp.shape[1] != WINDOW_HOURS:
        raise ValueError(f"windows must have shape (n, {WINDOW_HOURS}), got {temp.shape}")
    di = discomfort_index(temp, humidity)
    dewpoint = dewpoint_c(temp, humidity)
    now = di[:, -1]
    last_day = di[:, -24:]
    # Yesterday's (and earlier days') change over the same hours the forecast spans.
    days = range(1, CYCLE_DAYS + 1)
    cycles = np.stack([di[:, -1 - 24 * d + horizon] - di[:, -1 - 24 * d] for d in days], axis=1)
    valid_hour_levels = np.stack([di[:, -1 - 24 * d + horizon] for d in days], axis=1)
    hour = np.asarray(origin_hour_utc, dtype=float)
    valid_hour = (hour + horizon) % 24
    columns = [
        now,
        temp[:, -1],
        humidity[:, -1],
        wind[:, -1],
        *(now - di[:, -1 - k] for k in DI_CHANGE_LAGS),
        temp[:, -1] - temp[:, -2],
        temp[:, -1] - temp[:, -4],
        temp[:, -1] - temp[:, -25],
        humidity[:, -1] - humidity[:, -2],
        humidity[:, -1] - humidity[:, -4],
        humidity[:, -1] - humidity[:, -25],
        dewpoint[:, -1],
        dewpoint[:, -1] - dewpoint[:, -4],
        wind[:, -1] - wind[:, -4],
        temp[:, -24:].max(axis=1) - temp[:, -1],
        temp[:, -24:].min(axis=1) - temp[:, -1],
        pressure[:, -1] - pressure[:, -4],
        pressure[:, -1] - pressure[:, -25],
        last_day.mean(axis=1) - now,
        last_day.std(axis=1),
        last_day.max(axis=1) - now,
        last_day.min(axis=1) - now,
        cycles[:, 0],
        cycles.mean(axis=1),
        valid_hour_levels.mean(axis=1) - now,
        wind_u[:, -1],
        wind_v[:, -1],
        wind_u[:, -3:].mean(axis=1),
        wind_v[:, -3:].mean(axis=1),
        wind_u[:, -1] - wind_u[:, -4],
        wind_v[:, -1] - wind_v[:, -4],
        np.sin(2 * np.pi * hour / 24),
        np.cos(2 * np.pi * hour / 24),
        np.sin(2 * np.pi * valid_hour / 24),
        np.cos(2 * np.pi * valid_hour / 24),
    ]
    out = np.column_stack(columns)
    incomplete = ~np.isfinite(di).all(axis=1)
    out[incomplete] = np.nan
    return out


def window_feature_matrix(
    observations: Mapping[str, npt.ArrayLike],
    origin_hour_utc: npt.ArrayLike,
    horizon: int = DEFAULT_HORIZON,
) -> npt.NDArray[np.float64]:
    """Serving path: one window (1-D arrays) or a batch of windows (2-D arrays)."""
    windows = {
        name: np.atleast_2d(np.asarray(observations.get(name, np.nan), dtype=float))
        for name in OBSERVED
    }
    n = windows["temp_c"].shape[0]
    windows = {name: np.broadcast_to(w, (n, WINDOW_HOURS)) for name, w in windows.items()}
    return feature_matrix(windows, np.atleast_1d(np.asarray(origin_hour_utc, dtype=float)), horizon)


def _column(frame: pd.DataFrame, name: str) -> npt.NDArray[np.float64]:
    """A required observation must be there; an optional one may be absent (all missing)."""
    if name in frame:
        return frame[name].to_numpy(dtype=float)
    if name in REQUIRED:
        raise ValueError(f"observations lack the required column {name!r}")
    return np.full(len(frame), np.nan)


def build_features(clean: pd.DataFrame, horizon: int = DEFAULT_HORIZON) -> pd.DataFrame:
    """Training path: features and target DI(t+h) for every hour of every station.

    ``clean`` is the clean-weather table: one row per station and hour on a complete
    hourly grid. Rows without a full window of history or without a target are kept
    with ``usable = False`` so that nothing disappears without being counted.
    """
    check_horizon(horizon)
    names = feature_names(horizon)
    frames = []
    for station, group in clean.groupby("station", sort=True, observed=True):
        group = group.sort_values("time_utc")
        times = pd.DatetimeIndex(group["time_utc"])
        if len(times) > 1 and (times[1:] - times[:-1] != pd.Timedelta(hours=1)).any():
            raise ValueError(f"station {station}: time_utc is not a complete hourly grid")
        n = len(group)
        values = np.full((n, len(names)), np.nan)
        if n >= WINDOW_HOURS:
            windows = {
                name: sliding_window_view(_column(group, name), WINDOW_HOURS) for name in OBSERVED
            }
            values[WINDOW_HOURS - 1 :] = feature_matrix(
                windows, times.hour.to_numpy()[WINDOW_HOURS - 1 :], horizon
            )
        di = discomfort_index(
            group["temp_c"].to_numpy(dtype=float), group["humidity_pct"].to_numpy(dtype=float)
        )
        target = np.full(n, np.nan)
        if n > horizon:  # a short series (a station's first hours) has no target yet
            target[: n - horizon] = di[horizon:]
        frame = pd.DataFrame(values, columns=names)
        frame.insert(0, "station", station)
        frame.insert(1, "time_utc", times)
        frame.insert(2, "valid_at_utc", times + pd.Timedelta(hours=horizon))
        frame["horizon_h"] = horizon
        frame["di_target"] = target
        frame["usable"] = np.isfinite(values[:, 0]) & np.isfinite(target)
        frames.append(frame)
    if not frames:
        raise ValueError("clean weather is empty: no station to build features for")
    return pd.concat(frames, ignore_index=True)


def build_features_valid_between(
    clean: pd.DataFrame, horizon: int, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """The rows of `build_features` whose target time lies in [start, end).

    ``clean`` covers [start − `HISTORY_DAYS` days, end): every window and target of those rows
    is inside it, so they equal the rows built from the whole history. Hours a station did
    not report at all (a silence longer than cleaning's context leaves them out of the grid)
    are put back as missing, as the whole history's grid has them.
    """
    grids = []
    for station, group in clean.groupby("station", sort=True, observed=True):
        times = pd.DatetimeIndex(group["time_utc"])
        if times.has_duplicates:
            raise ValueError(f"station {station}: time_utc repeats an hour")
        hours = pd.date_range(times.min(), times.max(), freq="h", name="time_utc")
        grid = group.set_index(times).drop(columns="time_utc").reindex(hours)
        grids.append(grid.assign(station=station).reset_index())
    if not grids:
        raise ValueError("clean weather is empty: no station to build features for")
    features = build_features(pd.concat(grids, ignore_index=True), horizon)
    valid_at = features["valid_at_utc"]
    return features.loc[(valid_at >= start) & (valid_at < end)].reset_index(drop=True)
