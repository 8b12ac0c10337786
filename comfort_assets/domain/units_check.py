"""Units that cannot slip: judge each station's columns against what real weather looks like.

A pooled "mostly out of range" test misses plausible-but-wrong units (humidity as a fraction,
wind in km/h, °F at a cold station: most values still fall inside the °C range), so every
rule here looks at one station and one column at a time. A finding names the station, the
column, the evidence and the likely unit. ``error`` findings block ingestion; ``warning``
findings are weaker evidence, reported in metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from comfort_assets.domain.cleaning import VALID_RANGES

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


def _humidity(values: pd.Series) -> tuple[str, str, str] | None:
    if values.max() <= 1.5:
        return (
            "error",
            "a fraction (0–1), not percent? declare humidity_pct=fraction or multiply by 100",
            f"all {len(values)} values ≤ 1.5 (max {values.max():.3g})",
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


def _temperature(values: pd.Series, humidity: pd.Series | None) -> tuple[str, str, str] | None:
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
    column: str, values: pd.Series, humidity: pd.Series | None
) -> tuple[str, str, str] | None:
    if column == "humidity_pct":
        found = _humidity(values)
    elif column == "wind_speed_ms":
        found = _wind(values, MAX_MEDIAN_WIND_MS, KNOTS_LIKELY_MEDIAN_MS)
    elif column == "wind_gust_ms":
        found = _wind(values, MAX_MEDIAN_GUST_MS, None)
    elif column == "temp_c":
        found = _temperature(values, humidity)
    elif column == "dewpoint_c":
        found = _temperature(values, None)
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
        humidity = None
        if "humidity_pct" in rows:
            humidity = pd.to_numeric(rows["humidity_pct"], errors="coerce")
            # a fraction is judged on its own; as percent it would hide humid heat
            if humidity.max() <= 1.5:
                humidity = humidity * 100
        for column in VALID_RANGES:
            if column not in rows:
                continue
            values = pd.to_numeric(rows[column], errors="coerce").dropna()
            if len(values) < MIN_VALUES:
                continue
            found = _judge(column, values, humidity)
            if found:
                severity, likely, evidence = found
                findings.append(UnitFinding(str(station), column, severity, likely, evidence))
    return findings


def findings_table(findings: list[UnitFinding]) -> pd.DataFrame:
    return pd.DataFrame(
        [vars(f) for f in findings],
        columns=["station", "column", "severity", "likely_unit", "evidence"],
    )
