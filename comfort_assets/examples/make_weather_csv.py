"""Write a two-station hourly weather CSV for any year, derived from the bundled real data.

    python -m comfort_assets.examples.make_weather_csv my.csv --year 2021

``HUMID`` is a hot humid station (JFK's 2013 series warmed and moistened) and ``COAST`` a
cold windy coastal one (EWR's series cooled); both keep the real weather's day-to-day and
daily variability, gaps and defects. Columns are SI, times ISO 8601 UTC (``Z``), which is
what ``COMFORT_SOURCE=file`` reads without options. ``COAST`` starts on 1 January and
``HUMID`` ends on 31 December, so the file covers the whole year.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from comfort_assets.domain.cleaning import MEASURED
from comfort_assets.resources.weather import BundledWeatherSource

BUNDLED_YEAR = 2013


@dataclass(frozen=True)
class Climate:
    source_station: str
    shift_days: int
    temp_scale: float
    temp_offset: float
    humidity_scale: float
    humidity_offset: float
    wind_scale: float
    pressure_offset: float


CLIMATES = {
    "HUMID": Climate("JFK", 1, 0.55, 18.0, 0.6, 40.0, 0.8, -6.0),
    "COAST": Climate("EWR", 0, 0.6, -6.0, 0.75, 25.0, 1.4, 2.0),
}


def dewpoint_c(temp_c: pd.Series, humidity_pct: pd.Series) -> pd.Series:
    """Magnus formula: the dew point that goes with a temperature and a humidity."""
    gamma = np.log(humidity_pct.clip(lower=1.0) / 100.0) + 17.62 * temp_c / (243.12 + temp_c)
    return 243.12 * gamma / (17.62 - gamma)


def derive_stations(bundled: pd.DataFrame, year: int) -> pd.DataFrame:
    """Two stations of very different climates for ``year`` from the bundled SI table."""
    year_shift = pd.Timestamp(f"{year}-01-01", tz="UTC") - pd.Timestamp(
        f"{BUNDLED_YEAR}-01-01", tz="UTC"
    )
    frames = []
    for name, c in CLIMATES.items():
        rows = bundled.loc[bundled["station"] == c.source_station].copy()
        rows["station"] = name
        rows["time_utc"] = rows["time_utc"] + year_shift + pd.Timedelta(days=c.shift_days)
        rows["temp_c"] = rows["temp_c"] * c.temp_scale + c.temp_offset
        rows["humidity_pct"] = (rows["humidity_pct"] * c.humidity_scale + c.humidity_offset).clip(
            upper=100.0
        )
        rows["dewpoint_c"] = dewpoint_c(rows["temp_c"], rows["humidity_pct"])
        for column in ("wind_speed_ms", "wind_gust_ms"):
            rows[column] = rows[column] * c.wind_scale
        rows["pressure_hpa"] = rows["pressure_hpa"] + c.pressure_offset
        frames.append(rows)
    table = pd.concat(frames, ignore_index=True)
    out = table.loc[:, ["station", "time_utc", *MEASURED]]
    out[list(MEASURED)] = out[list(MEASURED)].round(3)
    out["time_utc"] = table["time_utc"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.sort_values(["time_utc", "station"]).reset_index(drop=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m comfort_assets.examples.make_weather_csv", description=__doc__
    )
    parser.add_argument("out", help="CSV file to write")
    parser.add_argument("--year", type=int, default=2021, help="calendar year of the series")
    args = parser.parse_args(argv)
    if not 1950 <= args.year <= 2100:
        print(f"make_weather_csv: --year {args.year} is not in 1950..2100", file=sys.stderr)
        return 2
    bundled = BundledWeatherSource().whole()
    table = derive_stations(bundled, args.year)
    try:
        table.to_csv(args.out, index=False)
    except OSError as error:  # a folder, a missing folder, no permission: one line
        print(f"make_weather_csv: cannot write {args.out}: {error.strerror}", file=sys.stderr)
        return 2
    span = f"{table['time_utc'].iloc[0]} … {table['time_utc'].iloc[-1]}"
    print(f"wrote {len(table)} rows, stations HUMID and COAST, {span} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
