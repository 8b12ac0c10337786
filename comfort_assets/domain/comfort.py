"""The KMA discomfort index (불쾌지수, Thom's THI), its bands, and feels-like temperature."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt

from comfort_assets.domain.units import ArrayLike


class DiscomfortBand(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    VERY_HIGH = "very high"


#: Lower edges of the bands: < 68 low, 68–75 normal, 75–80 high, >= 80 very high.
BAND_EDGES: tuple[float, float, float] = (68.0, 75.0, 80.0)
BANDS: tuple[DiscomfortBand, ...] = tuple(DiscomfortBand)


def discomfort_index(temp_c: ArrayLike, humidity_pct: ArrayLike) -> ArrayLike:
    """DI = 1.8·Ta − 0.55·(1 − RH/100)·(1.8·Ta − 26) + 32, Ta in °C, RH in %."""
    return 1.8 * temp_c - 0.55 * (1.0 - humidity_pct / 100.0) * (1.8 * temp_c - 26.0) + 32.0


def discomfort_band(di: float) -> DiscomfortBand:
    """The KMA band of one DI value; NaN has no band and is an error."""
    if not np.isfinite(di):
        raise ValueError(f"discomfort index must be finite, got {di!r}")
    return BANDS[int(np.searchsorted(BAND_EDGES, di, side="right"))]


def discomfort_bands(di: npt.NDArray[np.float64]) -> npt.NDArray[np.object_]:
    """Vectorised `discomfort_band`; NaN maps to None."""
    di = np.asarray(di, dtype=float)
    labels = np.array([b.value for b in BANDS], dtype=object)
    out = labels[np.searchsorted(BAND_EDGES, np.nan_to_num(di), side="right")]
    out[~np.isfinite(di)] = None
    return out


def dewpoint_c(temp_c: ArrayLike, humidity_pct: ArrayLike) -> ArrayLike:
    """Magnus formula (Alduchov & Eskridge constants), °C; humidity 0 gives -inf → NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.log(np.asarray(humidity_pct, dtype=float) / 100.0) + 17.625 * temp_c / (
            243.04 + temp_c
        )
        dew = 243.04 * gamma / (17.625 - gamma)
    return np.where(np.isfinite(dew), dew, np.nan)


def wind_chill(temp_c: ArrayLike, wind_speed_ms: ArrayLike) -> ArrayLike:
    """Environment Canada / NWS wind chill (°C); defined for Ta ≤ 10 °C and wind ≥ 4.8 km/h."""
    v = np.power(np.asarray(wind_speed_ms, dtype=float) * 3.6, 0.16)
    return 13.12 + 0.6215 * temp_c - 11.37 * v + 0.3965 * temp_c * v


def apparent_temperature(
    temp_c: ArrayLike, humidity_pct: ArrayLike, wind_speed_ms: ArrayLike
) -> ArrayLike:
    """Steadman's apparent temperature (Australian BoM form), shade, °C."""
    vapour_hpa = humidity_pct / 100.0 * 6.105 * np.exp(17.27 * temp_c / (237.7 + temp_c))
    return temp_c + 0.33 * vapour_hpa - 0.70 * wind_speed_ms - 4.00


#: Wind chill applies at or below this air temperature, apparent temperature above it.
WIND_CHILL_MAX_C = 10.0
#: Below this wind speed (4.8 km/h) wind chill is undefined and air temperature is used.
WIND_CHILL_MIN_WIND_MS = 4.8 / 3.6


def feels_like(
    temp_c: ArrayLike, humidity_pct: ArrayLike, wind_speed_ms: ArrayLike
) -> npt.NDArray[np.float64]:
    """Year-round feels-like temperature: wind chill when cold, apparent temperature otherwise."""
    t = np.asarray(temp_c, dtype=float)
    rh = np.asarray(humidity_pct, dtype=float)
    ws = np.asarray(wind_speed_ms, dtype=float)
    cold = t <= WIND_CHILL_MAX_C
    chill = np.where(ws >= WIND_CHILL_MIN_WIND_MS, wind_chill(t, ws), t)
    return np.where(cold, chill, apparent_temperature(t, rh, ws))
