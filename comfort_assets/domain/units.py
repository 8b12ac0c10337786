"""Unit conversions into the one unit system every asset speaks: °C, m/s, mm, hPa, km."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

ArrayLike = float | npt.NDArray[np.float64]

MPH_TO_MS = 0.44704
KMH_TO_MS = 1 / 3.6
INCH_TO_MM = 25.4
MILE_TO_KM = 1.609344


def fahrenheit_to_celsius(value: ArrayLike) -> ArrayLike:
    return (value - 32.0) * 5.0 / 9.0


def mph_to_ms(value: ArrayLike) -> ArrayLike:
    return value * MPH_TO_MS


def kmh_to_ms(value: ArrayLike) -> ArrayLike:
    return value * KMH_TO_MS


def inches_to_mm(value: ArrayLike) -> ArrayLike:
    return value * INCH_TO_MM


def miles_to_km(value: ArrayLike) -> ArrayLike:
    return value * MILE_TO_KM


def decametres_to_km(value: ArrayLike) -> ArrayLike:
    """KMA ASOS reports visibility in units of 10 m."""
    return value / 100.0


KNOT_TO_MS = 1852.0 / 3600.0


def _scale(factor: float) -> Callable[[ArrayLike], ArrayLike]:
    return lambda value: value * factor


#: Units a source may declare per SI column; each converts into that column's SI unit.
DECLARED_UNITS: dict[str, dict[str, Callable[[ArrayLike], ArrayLike] | None]] = {
    "temp_c": {
        "degC": None,
        "degF": fahrenheit_to_celsius,
        "K": lambda v: v - 273.15,
    },
    "humidity_pct": {"percent": None, "fraction": _scale(100.0)},
    "wind_speed_ms": {
        "m/s": None,
        "km/h": kmh_to_ms,
        "knots": _scale(KNOT_TO_MS),
        "mph": mph_to_ms,
    },
    "pressure_hpa": {"hPa": None, "kPa": _scale(10.0), "Pa": _scale(0.01), "inHg": _scale(33.8639)},
    "precip_mm": {"mm": None, "in": inches_to_mm},
    "visibility_km": {"km": None, "m": _scale(1e-3), "mi": miles_to_km},
}
DECLARED_UNITS["dewpoint_c"] = DECLARED_UNITS["temp_c"]
DECLARED_UNITS["wind_gust_ms"] = DECLARED_UNITS["wind_speed_ms"]


def convert_declared(column: str, values: ArrayLike, unit: str) -> ArrayLike:
    """Convert ``values`` of SI column ``column`` from a declared ``unit`` into SI."""
    known = DECLARED_UNITS.get(column)
    if known is None:
        raise ValueError(f"column {column} takes no declared unit ({sorted(DECLARED_UNITS)} do)")
    if unit not in known:
        raise ValueError(f"unit {unit!r} for {column} is unknown (known: {', '.join(known)})")
    convert = known[unit]
    return values if convert is None else convert(values)


def parse_declarations(text: str) -> dict[str, str]:
    """``"temp_c=degF, wind_speed_ms=km/h"`` → ``{"temp_c": "degF", …}``, each one checked."""
    units = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        column, sep, unit = (part.strip() for part in pair.partition("="))
        if not sep or not column or not unit:
            raise ValueError(f"unit declaration {pair!r} is not column=unit (e.g. temp_c=degF)")
        convert_declared(column, 0.0, unit)
        units[column] = unit
    return units
