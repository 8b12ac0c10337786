"""Times that cannot slip: a source's timestamps become UTC only when their zone is known.

A timestamp needs a zone: an ISO 8601 offset (``Z``, ``+09:00``) on the value, or a declared
IANA zone for the whole file. A naive timestamp without a declared zone is refused, never
taken as UTC (that silently shifts local-time data by hours). ``24:00`` (the hour-ending
convention's last hour of a day) is read as 00:00 of the next day.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

_OFFSET = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"
_DATE_TIME = r"^\d{4}-\d\d-\d\d(?:[T ]\d\d(?::\d\d){0,2}(?:\.\d+)?)?"
_HOUR_24 = r"^(\d{4}-\d\d-\d\d)[T ]24:00(?::00)?(.*)$"
_HOUR_24_AT = r"^\d{4}-\d\d-\d\d[T ]24:00"


class TimeZoneError(ValueError):
    """Timestamps whose zone is unknown or contradictory."""


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeZoneError(
            f"timezone {name!r} is not an IANA zone name (e.g. UTC, Asia/Seoul, America/New_York)"
        ) from None
    return name


def _hour_24_to_next_day(text: pd.Series) -> pd.Series:
    """'2021-03-01 24:00' → '2021-03-02 00:00' (same offset suffix)."""
    if not text.str.contains(_HOUR_24_AT, regex=True).fillna(False).any():
        return text  # the usual case: a vectorised search, not a Python one per row
    parts = text.str.extract(_HOUR_24)
    is_24 = parts[0].notna()
    if not is_24.any():
        return text
    next_day = (pd.to_datetime(parts.loc[is_24, 0]) + pd.Timedelta(days=1)).dt.strftime("%Y-%m-%d")
    out = text.copy()
    out[is_24] = next_day + "T00:00" + parts.loc[is_24, 1].fillna("")
    return out


def parse_times(
    text: pd.Series,
    stations: pd.Series,
    *,
    timezone: str | None,
    column: str = "time_utc",
) -> pd.Series:
    """Source time text → UTC timestamps: a datetime series when every time parses (the
    usual case: no Python object per row), else an object series in which a value that does
    not parse is handed on as ``"<column>=<text>"`` so that cleaning quarantines it by name.

    Raises `TimeZoneError` naming the stations when times carry no zone and none is
    declared, or when a file mixes times with and without an offset.
    """
    if timezone is not None:
        check_timezone(timezone)
    text = _hour_24_to_next_day(text.astype("string").str.strip())
    present = text.notna() & (text != "")
    has_offset = text.str.contains(_OFFSET, regex=True).fillna(False).astype(bool) & present
    # text that is no date-time at all is not "naive": it is unparsable and quarantined
    looks_like_time = text.str.contains(_DATE_TIME, regex=True).fillna(False).astype(bool)
    naive = present & looks_like_time & ~has_offset
    if naive.any() and has_offset.any():
        raise TimeZoneError(
            f"column {column} mixes times with and without a UTC offset "
            f"(e.g. {text[has_offset].iloc[0]!r} and {text[naive].iloc[0]!r}); "
            "write every time with its offset"
        )
    if naive.any() and timezone is None:
        names = ", ".join(sorted(stations[naive].astype("string").fillna("?").unique())[:10])
        raise TimeZoneError(
            f"station(s) {names}, column {column}: times have no zone "
            f"(e.g. {text[naive].iloc[0]!r}); they would be read as UTC and shift local data by "
            "hours. Write ISO 8601 with an offset (2021-07-01T09:00+09:00) or declare the file's "
            "timezone (COMFORT_WEATHER_TIMEZONE=Asia/Seoul, FileWeatherSource(timezone=...))"
        )
    if timezone is not None and naive.any():
        local = pd.to_datetime(text.where(naive), format="ISO8601", errors="coerce")
        utc = local.dt.tz_localize(
            check_timezone(timezone), ambiguous="NaT", nonexistent="NaT"
        ).dt.tz_convert("UTC")
    else:
        utc = pd.to_datetime(text.where(present), format="ISO8601", utc=True, errors="coerce")
    bad = utc.isna() & present
    if not bad.any():
        return utc
    out = pd.Series(list(utc), index=text.index, dtype=object)
    local_times = timezone is not None and not has_offset.any()
    reason = " unparsable or not a local time (DST)" if local_times else " unparsable"
    out[bad] = column + "=" + text[bad] + reason
    out[~present] = None
    return out
