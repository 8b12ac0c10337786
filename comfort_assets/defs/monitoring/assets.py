"""Group `monitoring`: what the service predicted, what really happened, and whether the
champion still deserves its place.

One partition per UTC day (the ingestion partitions). The checks never block: a decayed
model keeps serving until a better one is promoted. `monitoring_retrain_sensor` reads their
results and asks for a retrain; every failed check is also sent to the notifier.
"""

import json
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS
from comfort_assets.defs.monitoring import plots
from comfort_assets.domain import monitoring as mon
from comfort_assets.metadata import markdown_table, rmse_value, table_metadata
from comfort_assets.resources.notifier import Alert, Notifier
from comfort_assets.resources.prediction_log import read_valid_between
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.resources.registry import ModelNotFoundError, ModelRegistry

GROUP = "monitoring"
#: Days of the prediction log a rolling evaluation may read (the weekly run reads them all).
HISTORY_DAYS = 28
#: Days of weather history behind the quality statistics (robust z-scores, stuck runs).
QUALITY_HISTORY_DAYS = 28

_LOG_WINDOW = dg.AssetIn(
    "prediction_log",
    partition_mapping=dg.TimeWindowPartitionMapping(
        start_offset=-(HISTORY_DAYS - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
    ),
    metadata={"allow_missing_partitions": True},
)


def _clean_days_back(days: int) -> dg.AssetIn:
    """`clean_weather` of the partition's day and the ``days`` before it."""
    return dg.AssetIn(
        "clean_weather",
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-days, end_offset=0, allow_nonexistent_upstream_partitions=True
        ),
        metadata={"allow_missing_partitions": True},
    )


class PerformanceConfig(dg.Config):
    window_days: int = Field(7, ge=1)
    """Rolling window of forecasts (by valid time) ending with the partition's day."""
    rmse_factor: float = Field(1.1, gt=0)
    """Decay when production RMSE exceeds the champion's latest holdout RMSE × this factor."""
    min_days: int = Field(7, ge=1)
    """Days of the champion's forecasts with actuals before its RMSE is judged against its
    holdout: a full window (one day's RMSE swings by ±40 % with the weather)."""
    min_skill: float = 0.0
    """Decay when skill against persistence at a station falls below this (0 = no better)."""
    min_rows: int = Field(24, ge=1)
    """Forecasts with actuals a station (or the whole) needs before it is judged."""


class DriftConfig(dg.Config):
    window_days: int = Field(7, ge=1)
    """Served inputs and ingested weather of this many days ending with the partition."""
    season_weeks: int = Field(4, ge=0)
    """The reference is the training data from the same weeks of the year, ± this."""
    z_threshold: float = Field(3.5, gt=0)
    """Drift: an input's mean moved beyond this many times the spread of same-length
    window means in the seasonal reference (ordinary days reach 3.3 in the bundled year)."""
    min_samples: int = Field(24, ge=1)
    """Served inputs (or ingested hours) a station needs before its drift is judged: one
    day of hourly forecasts."""
    max_out_of_domain_share: float = Field(0.1, ge=0, le=1)
    """A clear out-of-domain signal: more than this share of a station's served inputs lie
    outside the range the champion was trained on."""


class QualityConfig(dg.Config):
    min_completeness: float = Field(0.5, ge=0, le=1)
    """A station with fewer observed hours in the day than this share fails `day_complete`."""
    max_stuck_hours: int = Field(24, ge=1)
    """One temperature or humidity value repeated this long is a stuck sensor (the bundled
    year's longest honest run is 14 h)."""
    z_threshold: float = Field(6.0, gt=0)
    max_anomalies: int = Field(4, ge=1)
    """Anomalous hourly changes at one station in one day that make a burst (the bundled
    year's worst day has 3)."""


def _day(context: dg.AssetExecutionContext) -> tuple[pd.Timestamp, pd.Timestamp]:
    window = context.partition_time_window
    return pd.Timestamp(window.start).tz_convert("UTC"), pd.Timestamp(window.end).tz_convert("UTC")


def _unlogged_days(context: dg.AssetExecutionContext, start: pd.Timestamp, days: int) -> list[str]:
    """The window's days whose prediction_log was never materialized: the window reads the
    stored log, so a missed daily run would shrink it without a word."""
    window = [f"{day:%Y-%m-%d}" for day in pd.date_range(end=start, periods=days, freq="D")]
    first = context.assets_def.partitions_def.get_first_partition_key()
    logged = context.instance.get_materialized_partitions(dg.AssetKey("prediction_log"))
    return [day for day in window if day >= first and day not in logged]


def _later_cards(registry: ModelRegistry, version: str) -> list[dict[str, Any]]:
    """Cards of the versions registered after ``version`` (challengers judged against it)."""
    versions = registry.versions()
    later = versions[versions.index(version) + 1 :] if version in versions else []
    cards = []
    for name in later:
        try:
            cards.append(registry.card(name))
        except ModelNotFoundError:
            continue
    return cards


def _champion(registry: ModelRegistry) -> tuple[str, dict[str, Any]]:
    """The champion's version and card, or ("none", {}) before the first promotion."""
    version = registry.champion()
    if version is None:
        return "none", {}
    try:
        return version, registry.card(version)
    except ModelNotFoundError:
        return version, {}


def _check(
    finding: mon.Finding,
    asset: str,
    severity: dg.AssetCheckSeverity,
    notifier: Notifier,
    kind: str,
    extra: dict[str, dg.MetadataValue] | None = None,
) -> dg.AssetCheckResult:
    """A finding as a check result (figure, threshold, station and version in metadata, so
    the sensor can put them in its run tags); a failure is also notified. A finding that
    was not judged still passes (a check of a single `@dg.asset` must yield a result, and
    Dagster has no state between passed and failed), but says so first in its description
    and in ``judged`` metadata, and the asset's ``not_judged`` metadata says why."""
    if not finding.passed:
        notifier.notify(
            Alert(
                kind=kind,
                title=finding.message,
                check=f"{asset}:{finding.check}",
                figure=finding.figure,
                threshold=finding.threshold,
                station=finding.station,
                model_version=finding.model_version,
            )
        )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=finding.check,
        passed=finding.passed,
        severity=severity,
        description=(finding.message if finding.judged else f"not judged: {finding.message}")[
            :1000
        ],
        metadata={
            "judged": dg.MetadataValue.bool(finding.judged),
            "figure": dg.MetadataValue.float(_float(finding.figure)),
            "threshold": dg.MetadataValue.float(_float(finding.threshold)),
            "station": dg.MetadataValue.text(finding.station),
            "model_version": dg.MetadataValue.text(finding.model_version),
            "message": dg.MetadataValue.text(finding.message),
            **(extra or {}),
        },
    )


def _not_judged(*findings: mon.Finding) -> dict[str, dg.MetadataValue]:
    """Why checks passed without judging (too little data), for the asset's metadata."""
    reasons = [f"{f.check}: {f.message}" for f in findings if not f.judged]
    return {"not_judged": dg.MetadataValue.text("; ".join(reasons))} if reasons else {}


def _float(value: float) -> float:
    return float(value) if np.isfinite(value) else float("nan")


def _tested_weather(clean_weather: pd.DataFrame, card: dict[str, Any]) -> pd.DataFrame:
    """Drift features of the weather the champion was trained, validated and tested on: from
    its training window's start to its holdout's end (all of it if the card does not say).
    The holdout counts: the promotion gate saw the champion beat persistence there, so
    inputs like those are not outside what it is known to handle."""
    inputs = mon.weather_inputs(clean_weather)
    start, end = mon.reference_window(card)
    if start is not None:
        inputs = inputs[inputs["time_utc"] >= start]
    if end is not None:
        inputs = inputs[inputs["time_utc"] <= end]
    return inputs


@dg.asset(
    partitions_def=WEATHER_PARTITIONS,
    group_name=GROUP,
    kinds={"pandas", "sql"},
    metadata={"partition_expr": "valid_at"},
    # actuals at valid time (the day), persistence at the origin (up to a day earlier)
    ins={"clean_weather": _clean_days_back(1)},
)
def prediction_log(
    context: dg.AssetExecutionContext,
    prediction_store: PredictionStore,
    clean_weather: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """The day's forecasts (by valid time) from the prediction store, each joined with the DI
    that really happened (ingested weather at valid time, else the user's feedback) and with
    persistence (DI at the origin); forecasts still waiting for actuals are counted."""
    start, end = _day(context)
    predictions = read_valid_between(prediction_store, start, end)
    log = mon.join_actuals(predictions, clean_weather)
    log["features"] = [json.dumps(f) if not isinstance(f, str) else f for f in log["features"]]
    sources = log["actual_source"].value_counts()
    return dg.Output(
        log,
        metadata={
            **table_metadata(log.drop(columns=["features"]), time_column="valid_at"),
            "with_actuals": dg.MetadataValue.int(int(sources.get("weather", 0))),
            "with_feedback_only": dg.MetadataValue.int(int(sources.get("feedback", 0))),
            "waiting_for_actuals": dg.MetadataValue.int(int(sources.get("pending", 0))),
            "ratings": dg.MetadataValue.int(int(log["rating"].notna().sum())),
            "mean_rating": dg.MetadataValue.float(float(log["rating"].mean()))
            if log["rating"].notna().any()
            else dg.MetadataValue.text("none"),
            "model_versions": dg.MetadataValue.text(
                ", ".join(sorted(log["model_version"].unique())) or "none"
            ),
        },
    )


@dg.asset(
    partitions_def=WEATHER_PARTITIONS,
    group_name=GROUP,
    kinds={"pandas"},
    # the longest rolling window of forecasts, and the day before it for their origins
    ins={"prediction_log": _LOG_WINDOW, "clean_weather": _clean_days_back(HISTORY_DAYS)},
    check_specs=[
        dg.AssetCheckSpec(
            "rmse_vs_holdout",
            asset="production_performance",
            description="over a full week of its forecasts, production RMSE ≤ the champion's "
            "latest holdout RMSE × 1.1 (configurable)",
        ),
        dg.AssetCheckSpec(
            "skill_vs_persistence",
            asset="production_performance",
            description="every station with enough forecasts beats persistence on the same hours",
        ),
    ],
)
def production_performance(
    context: dg.AssetExecutionContext,
    config: PerformanceConfig,
    registry: ModelRegistry,
    notifier: Notifier,
    prediction_log: pd.DataFrame,
    clean_weather: pd.DataFrame,
):
    """Rolling RMSE, bias and skill against persistence on the same hours, overall and per
    station, per model version. Actuals are joined again, so forecasts whose weather arrived
    after their day was logged count too."""
    start, end = _day(context)
    window = prediction_log[
        prediction_log["valid_at"] >= end - pd.Timedelta(days=config.window_days)
    ].drop(columns=["actual", "actual_source", "persistence", "origin_utc"], errors="ignore")
    log = mon.join_actuals(window, clean_weather) if len(window) else prediction_log.iloc[:0]
    table = mon.performance_table(log)
    version, card = _champion(registry)
    holdout_rmse, holdout_source = mon.latest_holdout_rmse(
        version, card, _later_cards(registry, version)
    )
    rmse_finding = mon.rmse_decay(
        table,
        version,
        holdout_rmse,
        factor=config.rmse_factor,
        min_rows=config.min_rows,
        min_days=config.min_days,
    )
    skill_finding = mon.skill_decay(
        table, version, min_skill=config.min_skill, min_rows=config.min_rows
    )
    unlogged = _unlogged_days(context, start, config.window_days)
    metadata: dict[str, Any] = {
        "champion": dg.MetadataValue.text(version),
        "window": dg.MetadataValue.text(
            f"{config.window_days} days to {start.date()}"
            + (
                f"; prediction_log not materialized for {len(unlogged)} of them "
                f"({', '.join(unlogged[:3])}{' …' if len(unlogged) > 3 else ''}): their "
                "forecasts are not counted until it is"
                if unlogged
                else ""
            )
        ),
        "unlogged_days": dg.MetadataValue.int(len(unlogged)),
        "forecasts": dg.MetadataValue.int(len(log)),
        "performance": markdown_table(table) if len(table) else dg.MetadataValue.text("none"),
    }
    judged = table[table["rows"] > 0] if len(table) else table
    if len(judged):  # an empty chart says nothing: no forecast has its actual yet
        metadata["plot"] = dg.MetadataValue.md(plots.performance_plot(log))
    champion_all = judged[(judged["model_version"] == version) & (judged["station"] == mon.ALL)]
    # numbers keep one type from run to run, so that Dagster plots them over the days
    metadata["champion_forecasts_with_actuals"] = dg.MetadataValue.int(
        int(champion_all["rows"].iloc[0]) if len(champion_all) else 0
    )
    if len(champion_all):
        rmse, skill = champion_all["rmse"].iloc[0], champion_all["skill"].iloc[0]
        metadata["rmse"] = rmse_value(rmse)
        if np.isfinite(skill):
            metadata["skill_pct"] = dg.MetadataValue.float(round(float(skill) * 100, 1))
    metadata.update(_not_judged(rmse_finding, skill_finding))
    yield dg.Output(table, metadata=metadata)
    yield _check(
        rmse_finding,
        "production_performance",
        dg.AssetCheckSeverity.ERROR,
        notifier,
        "decay",
        {
            "holdout_rmse": dg.MetadataValue.float(_float(holdout_rmse)),
            "holdout_rmse_from": dg.MetadataValue.text(holdout_source),
        },
    )
    yield _check(
        skill_finding, "production_performance", dg.AssetCheckSeverity.ERROR, notifier, "decay"
    )


@dg.asset(
    partitions_def=WEATHER_PARTITIONS,
    group_name=GROUP,
    kinds={"pandas", "scipy"},
    ins={
        "prediction_log": _LOG_WINDOW,
        # the reference is the champion's training window, which may be the whole history:
        # every stored day is read (the one monitoring input that grows with the history)
        "clean_weather": dg.AssetIn(
            partition_mapping=dg.AllPartitionMapping(),
            metadata={"allow_missing_partitions": True},
        ),
    },
    check_specs=[
        dg.AssetCheckSpec(
            "seasonal_drift",
            asset="feature_drift",
            description="inputs match the same weeks of the training data (warns; never "
            "retrains alone)",
        ),
        dg.AssetCheckSpec(
            "input_domain",
            asset="feature_drift",
            description="served inputs lie inside the range the champion was trained on",
        ),
    ],
)
def feature_drift(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    registry: ModelRegistry,
    notifier: Notifier,
    prediction_log: pd.DataFrame,
    clean_weather: pd.DataFrame,
):
    """Per station and input: PSI and KS of the served inputs and of the ingested weather
    against the champion's training weather from the same weeks of the year (raw PSI
    against the whole window alongside, for reading), and the share of served inputs
    outside what the champion was trained on."""
    _, end = _day(context)
    since = end - pd.Timedelta(days=config.window_days)
    version, card = _champion(registry)
    reference = _tested_weather(clean_weather, card)
    served = prediction_log[prediction_log["valid_at"] >= since]
    served_inputs = mon.served_inputs(served) if len(served) else pd.DataFrame()
    ingested = mon.weather_inputs(
        clean_weather[(clean_weather["time_utc"] >= since) & (clean_weather["time_utc"] < end)]
    )
    options = {
        "weeks": config.season_weeks,
        "min_samples": config.min_samples,
        "z_threshold": config.z_threshold,
    }
    frames = [mon.drift_table(reference, ingested, source="ingested", **options)]
    domain = pd.DataFrame(columns=["station", "n", "out_of_domain_share"])
    if len(served_inputs) and len(reference):
        frames.insert(0, mon.drift_table(reference, served_inputs, source="served", **options))
        domain = mon.domain_table(reference, served_inputs, known_stations=card.get("stations", []))
    drift = (
        pd.concat([f for f in frames if len(f)], ignore_index=True)
        if len(reference)
        else (pd.DataFrame(columns=["source", "station", "feature", "psi", "drifted"]))
    )
    metadata: dict[str, Any] = {
        "champion": dg.MetadataValue.text(version),
        "reference_rows": dg.MetadataValue.int(len(reference)),
        "served_rows": dg.MetadataValue.int(len(served_inputs)),
        "drifted_pairs": dg.MetadataValue.int(int(drift["drifted"].sum()) if len(drift) else 0),
        "drift": markdown_table(drift) if len(drift) else dg.MetadataValue.text("none"),
        "domain": markdown_table(domain) if len(domain) else dg.MetadataValue.text("none"),
    }
    if len(drift):
        metadata["plot"] = dg.MetadataValue.md(plots.drift_plot(drift))
    drift_result = mon.drift_finding(drift, version, config.z_threshold)
    domain_result = mon.domain_finding(
        domain, version, max_share=config.max_out_of_domain_share, min_samples=config.min_samples
    )
    metadata.update(_not_judged(drift_result, domain_result))
    yield dg.Output(drift, metadata=metadata)
    yield _check(drift_result, "feature_drift", dg.AssetCheckSeverity.WARN, notifier, "drift")
    yield _check(domain_result, "feature_drift", dg.AssetCheckSeverity.ERROR, notifier, "drift")


@dg.asset(
    partitions_def=WEATHER_PARTITIONS,
    group_name=GROUP,
    kinds={"pandas"},
    ins={"clean_weather": _clean_days_back(QUALITY_HISTORY_DAYS)},
    check_specs=[
        dg.AssetCheckSpec(
            "day_complete",
            asset="data_quality_report",
            description="every station reported most hours of the day",
        ),
        dg.AssetCheckSpec(
            "stuck_di_input",
            asset="data_quality_report",
            description="no temperature or humidity sensor repeats one value for a day or more",
        ),
        dg.AssetCheckSpec(
            "anomaly_burst",
            asset="data_quality_report",
            description="no burst of anomalous hourly changes (robust z-score) at a station",
        ),
    ],
)
def data_quality_report(
    context: dg.AssetExecutionContext,
    config: QualityConfig,
    registry: ModelRegistry,
    notifier: Notifier,
    clean_weather: pd.DataFrame,
    weather_quarantine: pd.DataFrame,
):
    """Per station for the day: completeness, quarantined rows, the longest stuck run of a DI
    input, implausible jumps between consecutive hours, and anomalies against the station's
    last four weeks."""
    start, end = _day(context)
    history = clean_weather[
        (clean_weather["time_utc"] >= start - pd.Timedelta(days=QUALITY_HISTORY_DAYS))
        & (clean_weather["time_utc"] < end)
    ]
    version, card = _champion(registry)
    table = mon.quality_table(
        history,
        weather_quarantine,
        start,
        end,
        stations=card.get("stations", []),
        z_threshold=config.z_threshold,
    )
    metadata = {"day": dg.MetadataValue.text(str(start.date()))}
    if len(table):
        metadata["quality"] = markdown_table(table)
        metadata["plot"] = dg.MetadataValue.md(plots.quality_plot(table))
    if table.empty:  # no hours: the day is incomplete, and no sensor can be judged stuck
        nothing = [
            mon.Finding(name, True, np.nan, limit, mon.ALL, version, "no weather", judged=False)
            for name, limit in (
                ("stuck_di_input", config.max_stuck_hours),
                ("anomaly_burst", config.max_anomalies),
            )
        ]
        yield dg.Output(table, metadata={**metadata, **_not_judged(*nothing)})
        missing = mon.Finding(
            "day_complete",
            False,
            0.0,
            config.min_completeness,
            mon.ALL,
            version,
            f"no station has reported weather in the {QUALITY_HISTORY_DAYS} days to {start.date()}",
        )
        yield _check(
            missing, "data_quality_report", dg.AssetCheckSeverity.ERROR, notifier, "quality"
        )
        for finding in nothing:
            yield _check(
                finding, "data_quality_report", dg.AssetCheckSeverity.WARN, notifier, "quality"
            )
        return
    yield dg.Output(table, metadata=metadata)
    worst = table.sort_values("completeness").iloc[0]
    complete = mon.Finding(
        "day_complete",
        bool(worst["completeness"] >= config.min_completeness),
        float(worst["completeness"]),
        config.min_completeness,
        str(worst["station"]),
        version,
        f"{worst['station']} reported {int(worst['observed_hours'])} of "
        f"{int(worst['expected_hours'])} hours on {start.date()}",
    )
    stuck_hours = table[[f"stuck_{name}_hours" for name in mon.DI_INPUTS]].max(axis=1)
    stuck_row = table.loc[stuck_hours.idxmax()]
    stuck_column = max(mon.DI_INPUTS, key=lambda n: stuck_row[f"stuck_{n}_hours"])
    stuck = mon.Finding(
        "stuck_di_input",
        bool(stuck_hours.max() < config.max_stuck_hours),
        float(stuck_hours.max()),
        config.max_stuck_hours,
        str(stuck_row["station"]),
        version,
        f"{stuck_column} at {stuck_row['station']} repeated one value for "
        f"{int(stuck_hours.max())} h"
        if stuck_hours.max() > 0
        else f"no DI input repeated a value over {int(table['observed_hours'].sum())} "
        "observed station-hours",
    )
    # a jump no weather makes (a record stitched from two years) warns on its own, and is
    # then the figure (against none allowed): the bundled year has two, on one day
    burst_row = table.sort_values(["implausible_jumps", "anomalies"]).iloc[-1]
    jumps = int(burst_row["implausible_jumps"])
    burst = mon.Finding(
        "anomaly_burst",
        bool(burst_row["anomalies"] < config.max_anomalies and jumps == 0),
        float(jumps if jumps else burst_row["anomalies"]),
        0.0 if jumps else config.max_anomalies,
        str(burst_row["station"]),
        version,
        f"{int(burst_row['anomalies'])} anomalous hourly change(s) and "
        f"{jumps} implausible jump(s) at {burst_row['station']} on {start.date()}",
    )
    for finding, severity in (
        (complete, dg.AssetCheckSeverity.ERROR),
        (stuck, dg.AssetCheckSeverity.ERROR),
        (burst, dg.AssetCheckSeverity.WARN),
    ):
        yield _check(finding, "data_quality_report", severity, notifier, "quality")
