"""Units that cannot slip: judge each station's columns against what real weather looks like.

A pooled "mostly out of range" test misses plausible-but-wrong units (humidity as a fraction,
wind in km/h, °F at a cold station: most values still fall inside the °C range), so every
rule here looks at one station and one column at a time. °F at a cold station is told by the
station's own humidity, which fits its temperature and dew point only when they are read as
°F; without a dew point a winter in °F looks like a warm climate's °C and is not detected.
A finding names the station, the column, the evidence and the likely unit. ``error``
findings block ingestion; ``warning`` findings are weaker evidence, reported in metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from comfort_assets.domain.cleaning import VALID_RANGES
from comfort_assets.domain.units import fahrenheit_to_celsius

#: Hottest reliably recorded air temperature is 56.7 °C; above it an hourly value is not °C.
RECORD_TEMP_C = 57.0
#: A wet-bulb temperature above 35 °C has never been sustained anywhere: humid heat beyond it
#: in a share of hours means the temperatures are not °C (a cold humid station in °F).
MAX_WET_BULB_C = 35.0
#: No real surface station has a median wind this strong (the windiest sites sit near 10 m/s).
MAX_MEDIAN_WIND_MS = 12.0
#: Medians between this and the maximum are possible at windy sites but typical of knots.
KNOTS_LIKELY_MEDIAN_MS = 8.0
MAX_MEDIAN_GUST_MS = 25.0
#: Sea-level pressure medians of real stations.
SEA_LEVEL_MEDIAN_HPA = (960.0, 1050.0)
#: Humidity as a fraction: this share of finite values at most ``FRACTION_MAX``; a sentinel
#: (999) or a stray percent value (100) in a year of fractions must not decide.
FRACTION_MAX = 1.5
FRACTION_SHARE = 0.95
#: Median gap (percentage points) between the humidity column and the humidity temperature
#: and dew point imply, read as °C, above which °F is judged; °F must also fit this many
#: times better. Consistent files fit within rounding (0.04 points on the 2013 NYC data).
HUMIDITY_MISFIT_PCT = 3.0
FAHRENHEIT_FIT_RATIO = 3.0
#: Fewer values than this say too little about a station's units.
MIN_VALUES = 12
#: Share of values outside the physical range above which a column is in the wrong unit.
OUT_OF_RANGE_SHARE = 0.2


@dataclass(frozen=True)
class UnitFinding:
    station: str
    column: str
    severity: str  # "error" blocks, "warning" is reported
    likely_unit: str
    evidence: str

    def message(self) -> str:
        return f"station {self.station}, column {self.column}: {self.evidence} — {self.likely_unit}"


def _fraction_share(values: pd.Series) -> float:
    finite = values[np.isfinite(values.to_numpy(dtype=float))]
    return float((finite <= FRACTION_MAX).mean()) if len(finite) else 0.0


def is_fraction(values: pd.Series) -> bool:
    """Humidity as a fraction (0–1): judged by the share of values, not the maximum, so one
    sentinel or stray percent value cannot hide a year of fractions."""
    return _fraction_share(values) >= FRACTION_SHARE


def _humidity(values: pd.Series) -> tuple[str, str, str] | None:
    if is_fraction(values):
        return (
            "error",
            "a fraction (0–1), not percent? declare humidity_pct=fraction or multiply by 100",
            f"{_fraction_share(values):.1%} of {len(values)} values ≤ {FRACTION_MAX:g} "
            f"(median {values.median():.3g})",
        )
    return None


def _wind(values: pd.Series, limit: float, warn: float | None) -> tuple[str, str, str] | None:
    median = float(values.median())
    if median > limit:
        return (
            "error",
            "km/h sent as m/s? declare the unit (km/h, knots, mph) or convert",
            f"median {median:.1f} m/s, above any real site's ({limit:g} m/s)",
        )
    if warn is not None and median > warn:
        return (
            "warning",
            "knots? a very windy site, or wind in knots sent as m/s",
            f"median {median:.1f} m/s (typical sites 2–6 m/s)",
        )
    return None


def wet_bulb_c(temp_c: pd.Series, humidity_pct: pd.Series) -> pd.Series:
    """Stull's (2011) wet-bulb temperature from air temperature and relative humidity."""
    t, rh = temp_c.to_numpy(dtype=float), humidity_pct.clip(0, 100).to_numpy(dtype=float)
    wet = (
        t * np.arctan(0.151977 * np.sqrt(rh + 8.313659))
        + np.arctan(t + rh)
        - np.arctan(rh - 1.676331)
        + 0.00391838 * rh**1.5 * np.arctan(0.023101 * rh)
        - 4.686035
    )
    return pd.Series(wet, index=temp_c.index)


def implied_humidity_pct(temp_c: pd.Series, dewpoint_c: pd.Series) -> pd.Series:
    """Magnus formula: the relative humidity a temperature and a dew point imply."""
    return 100 * np.exp(
        17.62 * dewpoint_c / (243.12 + dewpoint_c) - 17.62 * temp_c / (243.12 + temp_c)
    )


def _humidity_misfit(
    values: pd.Series, dewpoint: pd.Series | None, humidity: pd.Series | None
) -> tuple[float, float, bool] | None:
    """Median gaps between the humidity column and the humidity implied by temperature and
    dew point read as °C and read as °F, and whether the dew point fits best in °F too."""
    if dewpoint is None or humidity is None:
        return None
    rows = pd.concat([values, dewpoint, humidity], axis=1, join="inner").dropna()
    if len(rows) < MIN_VALUES:
        return None
    temp, dew, rh = (rows.iloc[:, i] for i in range(3))
    as_c = float((rh - implied_humidity_pct(temp, dew)).abs().median())
    from_f = fahrenheit_to_celsius(temp)
    both_f = float((rh - implied_humidity_pct(from_f, fahrenheit_to_celsius(dew))).abs().median())
    temp_only_f = float((rh - implied_humidity_pct(from_f, dew)).abs().median())
    return as_c, min(both_f, temp_only_f), both_f <= temp_only_f


def _temperature(
    values: pd.Series, humidity: pd.Series | None, dewpoint: pd.Series | None
) -> tuple[str, str, str] | None:
    if values.median() > 200:
        return ("error", "kelvin? declare temp_c=K", f"median {values.median():.1f}")
    likely = "°F? declare temp_c=degF or convert to °C"
    winter = "no sub-zero value" if values.min() >= 0 else f"min {values.min():.1f}"
    summary = f"max {values.max():.1f}, median {values.median():.1f}, {winter}"
    beyond = float((values > RECORD_TEMP_C).mean())
    if beyond >= 0.01:
        return (
            "error",
            likely,
            f"{beyond:.1%} of hours above {RECORD_TEMP_C:g} °C, hotter than any recorded "
            f"temperature ({summary})",
        )
    if humidity is not None:
        both = pd.concat([values, humidity], axis=1, join="inner").dropna()
        if len(both) >= MIN_VALUES:
            wet = wet_bulb_c(both.iloc[:, 0], both.iloc[:, 1])
            humid_heat = float((wet > MAX_WET_BULB_C).mean())
            if humid_heat >= 0.01:
                return (
                    "error",
                    likely,
                    f"{humid_heat:.1%} of hours with a wet-bulb temperature above "
                    f"{MAX_WET_BULB_C:g} °C if these were °C, a humid heat never sustained "
                    f"anywhere ({summary})",
                )
    misfit = _humidity_misfit(values, dewpoint, humidity)
    if misfit is not None:
        as_c, as_f, dew_in_f = misfit
        if as_c >= HUMIDITY_MISFIT_PCT and as_f * FAHRENHEIT_FIT_RATIO <= as_c:
            declare = "temp_c=degF, dewpoint_c=degF" if dew_in_f else "temp_c=degF"
            return (
                "error",
                f"°F? declare {declare} or convert to °C",
                f"the humidity fits temperature and dew point read as °F (median gap "
                f"{as_f:.1f} points), not as °C ({as_c:.1f} points) ({summary})",
            )
    return None


def _pressure(values: pd.Series) -> tuple[str, str, str] | None:
    median = float(values.median())
    low, high = SEA_LEVEL_MEDIAN_HPA
    if low <= median <= high:
        return None
    if 85 <= median <= 110:
        likely = "kPa? declare pressure_hpa=kPa"
    elif 25 <= median <= 33:
        likely = "inHg? declare pressure_hpa=inHg"
    elif median > 50_000:
        likely = "Pa? declare pressure_hpa=Pa"
    elif 400 <= median < low:
        likely = "station-level pressure, not reduced to sea level? send sea-level pressure"
    else:
        likely = "wrong unit?"
    return ("error", likely, f"median {median:g}, outside the sea-level range {low:g}–{high:g}")


def _out_of_range(column: str, values: pd.Series) -> tuple[str, str, str] | None:
    low, high = VALID_RANGES[column]
    outside = float(((values < low) | (values > high)).mean())
    if outside > OUT_OF_RANGE_SHARE:
        return (
            "error",
            "wrong units?",
            f"{outside:.0%} of values outside [{low:g}, {high:g}] (median {values.median():g})",
        )
    return None


def _judge(
    column: str, values: pd.Series, humidity: pd.Series | None, dewpoint: pd.Series | None
) -> tuple[str, str, str] | None:
    if column == "humidity_pct":
        found = _humidity(values)
    elif column == "wind_speed_ms":
        found = _wind(values, MAX_MEDIAN_WIND_MS, KNOTS_LIKELY_MEDIAN_MS)
    elif column == "wind_gust_ms":
        found = _wind(values, MAX_MEDIAN_GUST_MS, None)
    elif column == "temp_c":
        found = _temperature(values, humidity, dewpoint)
    elif column == "dewpoint_c":
        found = _temperature(values, None, None)
    elif column == "pressure_hpa":
        found = _pressure(values)
    else:
        found = None
    return found or _out_of_range(column, values)


def judge_units(raw: pd.DataFrame) -> list[UnitFinding]:
    """Every unit finding, per station and column (stations with too few values are skipped)."""
    findings = []
    stations = raw["station"].astype("string").fillna("?")
    for station, rows in raw.groupby(stations, sort=True):
        humidity = dewpoint = None
        if "humidity_pct" in rows:
            humidity = pd.to_numeric(rows["humidity_pct"], errors="coerce")
            # a fraction is judged on its own; as percent it would hide humid heat
            if is_fraction(humidity):
                humidity = humidity * 100
        if "dewpoint_c" in rows:
            dewpoint = pd.to_numeric(rows["dewpoint_c"], errors="coerce")
        for column in VALID_RANGES:
            if column not in rows:
                continue
            values = pd.to_numeric(rows[column], errors="coerce").dropna()
            if len(values) < MIN_VALUES:
                continue
            found = _judge(column, values, humidity, dewpoint)
            if found:
                severity, likely, evidence = found
                findings.append(UnitFinding(str(station), column, severity, likely, evidence))
    return findings


def findings_table(findings: list[UnitFinding]) -> pd.DataFrame:
    return pd.DataFrame(
        [vars(f) for f in findings],
        columns=["station", "column", "severity", "likely_unit", "evidence"],
    )
