"""Group `ingestion`: raw hourly weather per day → clean hourly grid + quarantine."""

import dagster as dg
import pandas as pd

from comfort_assets.checks import schema_check, schema_spec
from comfort_assets.deployment import weather_partitions
from comfort_assets.domain.cleaning import clean_observations
from comfort_assets.domain.schemas import CleanWeather, RawWeather, WeatherQuarantine
from comfort_assets.metadata import table_metadata
from comfort_assets.resources.weather import WeatherSource

WEATHER_PARTITIONS = weather_partitions()


class CleaningConfig(dg.Config):
    max_gap_hours: int = 3
    """Gaps of at most this many hours are interpolated; longer gaps stay missing."""


@dg.asset(
    partitions_def=WEATHER_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingestion",
    kinds={"pandas"},
    metadata={"partition_expr": "time_utc"},
    check_specs=[schema_spec("raw_weather", blocking=True, description="RawWeather contract")],
)
def raw_weather(context: dg.AssetExecutionContext, weather: WeatherSource):
    """Hourly observations in SI units, one partition per UTC day, as the source gave them."""
    window = context.partition_time_window
    raw = weather.fetch(window.start, window.end)
    # validate before anything reads the columns, so a broken source fails the check by name
    check = schema_check(raw, RawWeather, asset_key="raw_weather")
    parse_errors = raw["parse_error"] if "parse_error" in raw else pd.Series(dtype=str)
    yield dg.Output(
        raw,
        metadata={
            **table_metadata(raw),
            "source": dg.MetadataValue.text(weather.name),
            "partitions": dg.MetadataValue.int(len(context.partition_keys)),
            "unparsable_rows": dg.MetadataValue.int(int((parse_errors != "").sum())),
        },
    )
    yield check


@dg.multi_asset(
    outs={
        "clean_weather": dg.AssetOut(group_name="ingestion", kinds={"pandas"}),
        "weather_quarantine": dg.AssetOut(group_name="ingestion", kinds={"pandas"}),
    },
    ins={"raw_weather": dg.AssetIn(metadata={"allow_missing_partitions": True})},
    check_specs=[
        schema_spec("clean_weather", blocking=True, description="CleanWeather contract"),
        schema_spec("weather_quarantine", blocking=False, description="every row has a reason"),
    ],
)
def clean_weather(config: CleaningConfig, raw_weather: pd.DataFrame):
    """Hourly grid per station, duplicates removed, short gaps interpolated; rejected rows
    go to `weather_quarantine` with their reason."""
    result = clean_observations(raw_weather, max_gap_hours=config.max_gap_hours)
    clean, quarantine = result.clean, result.quarantine
    yield dg.Output(
        clean,
        output_name="clean_weather",
        metadata={
            **table_metadata(clean),
            "raw_rows": dg.MetadataValue.int(len(raw_weather)),
            "quarantined_rows": dg.MetadataValue.int(len(quarantine)),
            "interpolated_hours": dg.MetadataValue.int(int(clean["interpolated"].sum())),
            "gap_hours": dg.MetadataValue.int(int(clean["gap"].sum())),
        },
    )
    reasons = quarantine["reason"].str.split(";").str[0].str.split("=").str[0].value_counts()
    yield dg.Output(
        quarantine,
        output_name="weather_quarantine",
        metadata={
            **table_metadata(quarantine),
            "quarantined_rows": dg.MetadataValue.int(len(quarantine)),
            "by_reason": dg.MetadataValue.json({str(k): int(v) for k, v in reasons.items()}),
        },
    )
    yield schema_check(clean, CleanWeather, asset_key="clean_weather")
    yield schema_check(quarantine, WeatherQuarantine, asset_key="weather_quarantine")
