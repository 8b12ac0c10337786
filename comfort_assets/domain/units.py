"""Unit conversions into the one unit system every asset speaks: °C, m/s, mm, hPa, km."""

from __future__ import annotations

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
