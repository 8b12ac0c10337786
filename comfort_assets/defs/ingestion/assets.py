"""Group `ingestion`: raw hourly weather per day → clean hourly grid + quarantine."""

from datetime import datetime

import dagster as dg
import pandas as pd

from comfort_assets.checks import schema_check, schema_spec
from comfort_assets.deployment import weather_partitions
from comfort_assets.domain.cleaning import FETCHED_FOR, clean_days, station_coverage
from comfort_assets.domain.partitions import DaySpan, check_overlap, outside
from comfort_assets.domain.schemas import CleanWeather, RawWeather, WeatherQuarantine
from comfort_assets.domain.units_check import findings_table, judge_units
from comfort_assets.metadata import markdown_table, table_metadata
from comfort_assets.resources.weather import WeatherSource

WEATHER_PARTITIONS = weather_partitions()


def _partitions_span() -> DaySpan:
    keys = WEATHER_PARTITIONS.get_partition_keys()
    return DaySpan(pd.Timestamp(keys[0]).date(), pd.Timestamp(keys[-1]).date())


def _units_check(raw: pd.DataFrame, judged: str) -> dg.AssetCheckResult:
    """Units judged per station and column; an error blocks, a warning is only reported."""
    findings = judge_units(raw)
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    metadata: dict[str, dg.MetadataValue] = {
        "judged": dg.MetadataValue.text(judged),
        "errors": dg.MetadataValue.int(len(errors)),
        "warnings": dg.MetadataValue.int(len(warnings)),
        "summary": dg.MetadataValue.text(
            "; ".join(f.message() for f in findings) or "every station's units look right"
        ),
    }
    if findings:
        metadata["findings"] = markdown_table(findings_table(findings), floatfmt="g")
    return dg.AssetCheckResult(
        asset_key="raw_weather",
        check_name="units",
        passed=not errors,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description="; ".join(f.message() for f in errors)[:1000] or None,
    )


class CleaningConfig(dg.Config):
    max_gap_hours: int = 3
    """Gaps of at most this many hours (≤ 24) are interpolated; longer gaps stay missing."""


@dg.asset(
    partitions_def=WEATHER_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingestion",
    kinds={"pandas"},
    metadata={"partition_expr": "time_utc"},
    check_specs=[
        schema_spec("raw_weather", blocking=True, description="RawWeather contract"),
        dg.AssetCheckSpec(
            "units",
            asset="raw_weather",
            blocking=True,
            description="per station and column: humidity in %, wind in m/s, °C, sea-level hPa",
        ),
    ],
)
def raw_weather(context: dg.AssetExecutionContext, weather: WeatherSource):
    """Hourly observations in SI units, one partition per UTC day, as the source gave them."""
    partitions = _partitions_span()
    data_span = weather.span()
    if data_span is not None:
        check_overlap(data_span, partitions)
    whole = weather.whole()
    raw = _fetched(weather, context, per_day=whole is None)
    # validate before anything reads the columns, so a broken source fails the check by name
    check = schema_check(raw, RawWeather, asset_key="raw_weather")
    parse_errors = raw["parse_error"] if "parse_error" in raw else pd.Series(dtype=str)
    metadata = {
        **table_metadata(raw),
        "source": dg.MetadataValue.text(weather.name),
        "partitions": dg.MetadataValue.int(len(context.partition_keys)),
        "partitions_span": dg.MetadataValue.text(str(partitions)),
        "unparsable_rows": dg.MetadataValue.int(int((parse_errors != "").sum())),
    }
    if whole is not None and data_span is not None:
        metadata["data_span"] = dg.MetadataValue.text(str(data_span))
        metadata["rows_outside_partitions"] = dg.MetadataValue.int(
            outside(whole["time_utc"], partitions)
        )
    yield dg.Output(raw, metadata=metadata)
    yield check
    # a day says little about °F or km/h: file-backed sources are judged as a whole
    if whole is not None:
        yield _units_check(whole, f"the whole source ({len(whole)} rows)")
    else:
        yield _units_check(raw, f"the fetched window ({len(raw)} rows)")


def _fetched(
    weather: WeatherSource, context: dg.AssetExecutionContext, per_day: bool
) -> pd.DataFrame:
    """The run's rows, each with the start of the day it was fetched for (`FETCHED_FOR`):
    a row whose time cannot be read is stored and quarantined with that day. An API answers
    each day's fetch with its own such rows, so a run of several days that holds any fetches
    again day by day to tell (rare: the API sent a malformed time); a file hands them over
    with the window of its first hour, the run's first day."""
    window = context.partition_time_window
    raw = weather.fetch(window.start, window.end)
    days = [WEATHER_PARTITIONS.time_window_for_partition_key(k) for k in context.partition_keys]
    if per_day and len(days) > 1 and raw["time_utc"].isna().any():
        return pd.concat(
            [weather.fetch(d.start, d.end).assign(**{FETCHED_FOR: _utc(d.start)}) for d in days],
            ignore_index=True,
        )
    return raw.assign(**{FETCHED_FOR: _utc(window.start)})


def _utc(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(moment).tz_convert("UTC")


@dg.multi_asset(
    outs={
        name: dg.AssetOut(
            group_name="ingestion", kinds={"pandas"}, metadata={"partition_expr": "time_utc"}
        )
        for name in ("clean_weather", "weather_quarantine")
    },
    ins={
        "raw_weather": dg.AssetIn(
            # the day before and the day after (when it exists) close a short gap at either end
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=1, allow_nonexistent_upstream_partitions=True
            ),
            metadata={"allow_missing_partitions": True},
        )
    },
    partitions_def=WEATHER_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[
        schema_spec("clean_weather", blocking=True, description="CleanWeather contract"),
        schema_spec("weather_quarantine", blocking=False, description="every row has a reason"),
    ],
)
def clean_weather(
    context: dg.AssetExecutionContext, config: CleaningConfig, raw_weather: pd.DataFrame
):
    """Hourly grid per station, duplicates removed, short gaps interpolated; rejected rows
    go to `weather_quarantine` with their reason. A day is cleaned from its raw rows and its
    neighbours', so a day run costs a day, not the history."""
    window = context.partition_time_window
    result = clean_days(raw_weather, window.start, window.end, config.max_gap_hours)
    clean, quarantine = result.clean, result.quarantine
    raw_times = pd.to_datetime(raw_weather["time_utc"], utc=True)
    raw_rows = int(((raw_times >= window.start) & (raw_times < window.end)).sum())
    yield dg.Output(
        clean,
        output_name="clean_weather",
        metadata={
            **table_metadata(clean),
            "raw_rows": dg.MetadataValue.int(raw_rows),
            "raw_rows_with_neighbours": dg.MetadataValue.int(len(raw_weather)),
            "quarantined_rows": dg.MetadataValue.int(len(quarantine)),
            "interpolated_hours": dg.MetadataValue.int(int(clean["interpolated"].sum())),
            "interpolated_other_hours": dg.MetadataValue.int(
                int(clean["interpolated_other"].sum())
            ),
            "gap_hours": dg.MetadataValue.int(int(clean["gap"].sum())),
            "coverage_by_station": markdown_table(station_coverage(clean), floatfmt="g"),
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
