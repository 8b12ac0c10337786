"""Raw SI observations → clean hourly grid + quarantine, as one pure function.

Policy, so that nothing disappears silently:
- a row whose time or station is unusable, whose time is not on the hour (the grid is
  hourly: a 00:30 row once shifted a station's whole grid to :30), or which repeats a
  station-hour already seen, is dropped from the clean table and quarantined with its reason;
- a row with an unparsable or physically impossible value is quarantined with its reason
  and only that value is removed from the clean table (the rest of the hour is kept);
- every station gets a complete hourly grid; gaps of at most ``max_gap_hours`` are
  interpolated in time and flagged, longer gaps stay missing and are flagged too;
- ``interpolated`` says a DI input (temperature or humidity) was filled, so it tells whether
  the DI of an hour was observed; ``interpolated_other`` says only other fields were filled.

`clean_days` cleans a range of UTC days from the raw rows of those days and one day either
side: a gap that can be filled (at most ``max_gap_hours`` ≤ 24) then has both its ends in
view, so the day's rows are those the whole history gives, once the next day is in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MEASURED: tuple[str, ...] = (
    "temp_c",
    "dewpoint_c",
    "humidity_pct",
    "wind_dir_deg",
    "wind_speed_ms",
    "wind_gust_ms",
    "precip_mm",
    "pressure_hpa",
    "visibility_km",
)
RAW_COLUMNS: tuple[str, ...] = ("station", "time_utc", *MEASURED, "parse_error")
#: The raw table's provenance column: the start of the window a row was fetched for, so that
#: a row whose time cannot be read is quarantined with that day (not part of `RAW_COLUMNS`:
#: sources do not set it, `raw_weather` does)
FETCHED_FOR = "fetched_for"

#: Physically possible ranges (inclusive). Outside them a value is an error, not weather.
VALID_RANGES: dict[str, tuple[float, float]] = {
    "temp_c": (-60.0, 60.0),
    "dewpoint_c": (-80.0, 40.0),
    "humidity_pct": (0.0, 100.0),
    "wind_dir_deg": (0.0, 360.0),
    "wind_speed_ms": (0.0, 75.0),
    "wind_gust_ms": (0.0, 110.0),
    "precip_mm": (0.0, 400.0),
    "pressure_hpa": (870.0, 1085.0),
    "visibility_km": (0.0, 100.0),
}
#: The inputs of the discomfort index: ``interpolated`` flags these alone.
DI_INPUTS: tuple[str, ...] = ("temp_c", "humidity_pct")
#: Continuous quantities that may be interpolated across short gaps.
INTERPOLATED: tuple[str, ...] = (
    "temp_c",
    "dewpoint_c",
    "humidity_pct",
    "wind_speed_ms",
    "pressure_hpa",
    "visibility_km",
)
DEFAULT_MAX_GAP_HOURS = 3
#: Hours of raw context `clean_days` sees on each side of its days (one day).
CONTEXT_HOURS = 24
UTC_NS = pd.DatetimeTZDtype(unit="ns", tz="UTC")
FLAGS: tuple[str, ...] = ("observed", "interpolated", "interpolated_other", "gap")
CLEAN_COLUMNS: tuple[str, ...] = ("station", "time_utc", *MEASURED, *FLAGS)
QUARANTINE_COLUMNS: tuple[str, ...] = ("station", "time_utc", "reason", "action", *MEASURED)


@dataclass(frozen=True)
class CleaningResult:
    clean: pd.DataFrame
    quarantine: pd.DataFrame

    @property
    def quarantined_rows(self) -> int:
        return len(self.quarantine)


def _flag(reasons: pd.Series, mask: pd.Series | np.ndarray, reason: str | pd.Series) -> pd.Series:
    mask = np.asarray(mask, dtype=bool)
    addition = reason[mask] if isinstance(reason, pd.Series) else reason
    reasons = reasons.copy()
    reasons[mask] = np.where(reasons[mask] == "", addition, reasons[mask] + "; " + addition)
    return reasons


def short_gap_mask(missing: pd.Series, max_gap: int) -> np.ndarray:
    """True where a value is missing inside a run of at most ``max_gap`` missing hours
    that has an observation on both sides."""
    m = missing.to_numpy(dtype=bool)
    run_id = np.cumsum(np.r_[True, m[1:] != m[:-1]])
    run_len = pd.Series(run_id).map(pd.Series(run_id).value_counts()).to_numpy()
    inside = np.ones_like(m)
    if len(m):
        inside[run_id == run_id[0]] = False
        inside[run_id == run_id[-1]] = False
    return m & (run_len <= max_gap) & inside


def clean_observations(
    raw: pd.DataFrame, max_gap_hours: int = DEFAULT_MAX_GAP_HOURS
) -> CleaningResult:
    """Clean SI observations (see module docstring for the policy)."""
    missing_columns = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing_columns:
        raise ValueError(f"raw weather lacks columns {missing_columns}")
    raw = raw.reset_index(drop=True)  # quarantined rows are picked by position
    frame = raw.loc[:, list(RAW_COLUMNS)].copy()
    frame["time_utc"] = pd.to_datetime(frame["time_utc"], utc=True, errors="coerce").astype(UTC_NS)
    frame["parse_error"] = frame["parse_error"].fillna("").astype(str)
    for column in MEASURED:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)

    drop_reason = pd.Series("", index=frame.index, dtype=object)
    drop_reason = _flag(drop_reason, frame["time_utc"].isna(), "time_utc missing or unparsable")
    station = frame["station"].astype("string").str.strip()
    drop_reason = _flag(drop_reason, station.isna() | (station == ""), "station missing")
    times = frame["time_utc"]
    off_hour = times.notna() & (times != times.dt.floor("h"))
    if off_hour.any():
        clock = times.where(off_hour).dt.strftime("%H:%M:%S")  # NaT elsewhere: cheap
        drop_reason = _flag(
            drop_reason, off_hour, "not on the hour (" + clock + "): the grid is hourly"
        )
    usable = drop_reason == ""
    duplicate = frame.duplicated(["station", "time_utc"], keep="first") & usable
    drop_reason = _flag(drop_reason, duplicate, "duplicate station-hour (first kept)")

    value_reason = pd.Series("", index=frame.index, dtype=object)
    value_reason = _flag(value_reason, frame["parse_error"] != "", frame["parse_error"])
    for column, (low, high) in VALID_RANGES.items():
        values = frame[column]
        bad = (values < low) | (values > high)
        if bad.any():
            text = column + "=" + values.round(3).astype(str) + f" outside [{low:g}, {high:g}]"
            value_reason = _flag(value_reason, bad, text)
            frame.loc[bad, column] = np.nan

    dropped = drop_reason != ""
    flagged = (value_reason != "") & ~dropped
    quarantine = pd.concat(
        [
            raw.loc[dropped].assign(reason=drop_reason[dropped], action="row dropped"),
            raw.loc[flagged].assign(reason=value_reason[flagged], action="value removed"),
        ]
    )
    quarantine = _as_quarantine_table(quarantine)

    kept = frame.loc[~dropped].copy()
    kept["station"] = kept["station"].astype(str).str.strip()
    clean = _to_hourly_grid(kept, max_gap_hours)
    return CleaningResult(clean=clean, quarantine=quarantine)


def clean_days(
    raw: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    max_gap_hours: int = DEFAULT_MAX_GAP_HOURS,
) -> CleaningResult:
    """The clean and quarantined rows of [start, end), cleaned with the raw rows around them.

    ``raw`` holds the days and, where they exist, the day before and the day after. A gap at
    the end of the range stays open until the next day's raw rows are here; a station silent
    for the whole context has no rows in the range (see `build_features_valid_between`).
    """
    if max_gap_hours > CONTEXT_HOURS:
        raise ValueError(
            f"max_gap_hours={max_gap_hours}: a day is cleaned with {CONTEXT_HOURS} h of context "
            "on each side, so gaps longer than that cannot be filled the same way every day"
        )
    result = clean_observations(raw, max_gap_hours)
    quarantine = _between(result.quarantine, start, end)
    undated = result.quarantine[result.quarantine["time_utc"].isna()]
    fetched = _fetched_for(undated, pd.to_datetime(raw["time_utc"], utc=True, errors="coerce"))
    claimed = undated[fetched.between(start, end, inclusive="left")]
    if len(claimed):
        # a row whose time cannot be read belongs to no day: it is quarantined (once) with
        # the day whose fetch brought it
        quarantine = pd.concat([claimed, quarantine], ignore_index=True)
    return CleaningResult(clean=_between(result.clean, start, end), quarantine=quarantine)


def _fetched_for(undated: pd.DataFrame, raw_times: pd.Series) -> pd.Series:
    """The start of the window each undated quarantined row was fetched for (`FETCHED_FOR`,
    set by `raw_weather`); for rows stored without it, the earliest readable raw time,
    where the sources hand undated rows over (NaT if none: no day claims them)."""
    first = raw_times.min()
    if FETCHED_FOR not in undated:
        return pd.Series(first, index=undated.index, dtype=UTC_NS)
    return undated[FETCHED_FOR].astype(UTC_NS).fillna(first)


def _between(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    times = pd.to_datetime(frame["time_utc"], utc=True)
    return frame.loc[(times >= start) & (times < end)].reset_index(drop=True)


def _as_quarantine_table(rows: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=rows.index)
    out["station"] = rows["station"].astype("string").fillna("").astype(str)
    out["time_utc"] = pd.to_datetime(rows["time_utc"], utc=True, errors="coerce").astype(UTC_NS)
    out["reason"] = rows["reason"].astype(str)
    out["action"] = rows["action"].astype(str)
    for column in MEASURED:
        out[column] = pd.to_numeric(rows[column], errors="coerce").astype(float)
    if FETCHED_FOR in rows:  # where a row without a time is stored (see `write_partitions`)
        out[FETCHED_FOR] = pd.to_datetime(rows[FETCHED_FOR], utc=True).astype(UTC_NS)
    return out.sort_values(["time_utc", "station"], na_position="first").reset_index(drop=True)


def empty_clean() -> pd.DataFrame:
    """No hours, with the contract's column types: a day without a single observation (a
    station outage, the end of a source) is an empty day, not a failed schema check."""
    columns = {"station": pd.Series(dtype=str), "time_utc": pd.Series(dtype=UTC_NS)}
    columns |= {name: pd.Series(dtype=float) for name in MEASURED}
    columns |= {name: pd.Series(dtype=bool) for name in FLAGS}
    return pd.DataFrame(columns)[list(CLEAN_COLUMNS)]


def empty_quarantine() -> pd.DataFrame:
    return _as_quarantine_table(pd.DataFrame(columns=[*RAW_COLUMNS, "reason", "action"]))


def _to_hourly_grid(frame: pd.DataFrame, max_gap_hours: int) -> pd.DataFrame:
    grids = []
    for station, group in frame.groupby("station", sort=True):
        group = group.set_index("time_utc").sort_index()
        hours = pd.date_range(group.index.min(), group.index.max(), freq="h", name="time_utc")
        grid = group.reindex(hours)
        grid["observed"] = grid["station"].notna()
        grid["station"] = station
        filled_di = np.zeros(len(grid), dtype=bool)
        filled_other = np.zeros(len(grid), dtype=bool)
        for column in INTERPOLATED:
            fill = short_gap_mask(grid[column].isna(), max_gap_hours)
            if fill.any():
                interpolated = grid[column].interpolate(method="time", limit_area="inside")
                grid.loc[fill, column] = interpolated[fill]
                if column in DI_INPUTS:
                    filled_di |= fill
                else:
                    filled_other |= fill
        grid["interpolated"] = filled_di
        grid["interpolated_other"] = filled_other
        grid["gap"] = grid[list(DI_INPUTS)].isna().any(axis=1)
        grids.append(grid.reset_index())
    if not grids:
        return empty_clean()
    clean = pd.concat(grids, ignore_index=True)[list(CLEAN_COLUMNS)]
    return clean.astype({c: bool for c in FLAGS})


def station_coverage(clean: pd.DataFrame) -> pd.DataFrame:
    """Per station: hours observed, DI inputs filled, DI missing, other fields filled.

    An hour whose row arrived but lacked temperature or humidity counts as observed *and*
    as filled or missing, so the DI counts are what tell whether DI was measured.
    """
    flags = clean.assign(
        di_observed=~clean["interpolated"] & ~clean["gap"],
    ).groupby("station", sort=True)
    return pd.DataFrame(
        {
            "hours": flags.size(),
            "rows_received": flags["observed"].sum(),
            "di_observed": flags["di_observed"].sum(),
            "di_filled": flags["interpolated"].sum(),
            "di_missing": flags["gap"].sum(),
            "other_filled": flags["interpolated_other"].sum(),
        }
    ).reset_index()


def parse_measurements(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn a source's table (values may be strings) into the raw SI table.

    Missing values (None, NaN, "") stay missing; anything else that is not a number
    becomes missing *and* is named in ``parse_error``, so cleaning quarantines it.
    """
    out = pd.DataFrame(index=frame.index)
    out["station"] = frame["station"].astype("string").str.strip().astype(object)
    out["time_utc"] = pd.to_datetime(frame["time_utc"], utc=True, errors="coerce")
    errors = pd.Series("", index=frame.index, dtype=object)
    bad_time = out["time_utc"].isna() & frame["time_utc"].notna()
    if bad_time.any():  # the text of the bad ones only: formatting every time cost seconds
        reason = pd.Series("", index=frame.index, dtype=object)
        reason[bad_time] = "time_utc=" + frame.loc[bad_time, "time_utc"].astype(str) + " unparsable"
        errors = _flag(errors, bad_time, reason)
    for column in MEASURED:
        if column not in frame:
            out[column] = np.nan
            continue
        given = frame[column]
        text = given.astype("string").str.strip()
        blank = given.isna() | (text == "") | text.isna()
        values = pd.to_numeric(given.where(~blank), errors="coerce").astype(float)
        unparsable = values.isna() & ~blank
        if unparsable.any():
            errors = _flag(errors, unparsable, column + "=" + text.fillna("") + " unparsable")
        out[column] = values
    out["parse_error"] = errors.astype(str)
    out["time_utc"] = out["time_utc"].astype(UTC_NS)
    return out.reset_index(drop=True)
