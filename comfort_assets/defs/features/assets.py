"""Group `features`: forecast features and the chronological splits."""

import dagster as dg
import pandas as pd

from comfort_assets.checks import schema_check, schema_spec
from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS
from comfort_assets.domain.features import (
    DEFAULT_HORIZON,
    HISTORY_DAYS,
    build_features_valid_between,
    check_horizon,
)
from comfort_assets.domain.schemas import COMFORT_FEATURES
from comfort_assets.domain.splits import (
    DEFAULT_HOLDOUT_FRACTION,
    DEFAULT_VALIDATION_DAYS,
    chronological_split,
    resolve_windows,
)
from comfort_assets.metadata import table_metadata
from comfort_assets.resources.weather import WeatherSource


class FeatureConfig(dg.Config):
    horizon_h: int = DEFAULT_HORIZON
    """Forecast horizon in hours: 1, 3, 6 or 24."""


class SplitConfig(dg.Config):
    """Chronological split: explicit UTC dates, a named preset, or relative to the data."""

    preset: str = "auto"
    """``auto``: the source's named split if it has one (the bundled year's ``reference-2013``:
    train Jan–Aug, validate September, hold out Oct–Dec), else ``relative``."""
    train_end: str | None = None
    """With ``validation_end``: explicit dates (UTC), overriding the preset."""
    validation_end: str | None = None
    holdout_end: str | None = None
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION
    """Relative split: this share of the data's last days is the holdout …"""
    validation_days: int = DEFAULT_VALIDATION_DAYS
    """… and this many days before it are validation; everything earlier is training."""


@dg.asset(
    group_name="features",
    kinds={"pandas", "numpy"},
    partitions_def=WEATHER_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # keyed by target time: a day's rows are complete once the day is ingested
    metadata={"partition_expr": "valid_at_utc"},
    ins={
        "clean_weather": dg.AssetIn(
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-HISTORY_DAYS, end_offset=0, allow_nonexistent_upstream_partitions=True
            ),
            metadata={"allow_missing_partitions": True},
        )
    },
    check_specs=[
        schema_spec("comfort_features", blocking=True, description="ComfortFeatures contract")
    ],
)
def comfort_features(
    context: dg.AssetExecutionContext, config: FeatureConfig, clean_weather: pd.DataFrame
):
    """DI now, its changes, trends, daily cycle and calendar at each origin t; target DI(t+h).
    A partition holds the rows whose target time t+h falls on its day."""
    window = context.partition_time_window
    features = build_features_valid_between(
        clean_weather, check_horizon(config.horizon_h), window.start, window.end
    )
    unusable = features.loc[~features["usable"]]
    yield dg.Output(
        features,
        metadata={
            **table_metadata(features),
            "horizon_h": dg.MetadataValue.int(config.horizon_h),
            "usable_rows": dg.MetadataValue.int(int(features["usable"].sum())),
            "unusable_rows": dg.MetadataValue.int(len(unusable)),
            "unusable_without_target": dg.MetadataValue.int(
                int(unusable["di_target"].isna().sum())
            ),
        },
    )
    yield schema_check(features, COMFORT_FEATURES, asset_key="comfort_features")


@dg.multi_asset(
    outs={
        name: dg.AssetOut(group_name="features", kinds={"pandas"})
        for name in ("training_set", "validation_set", "holdout_set")
    },
    check_specs=[
        dg.AssetCheckSpec(
            "chronological",
            asset="holdout_set",
            blocking=True,
            description="train < validation < holdout in time, none empty, no target overlap",
        )
    ],
)
def chronological_splits(
    config: SplitConfig, weather: WeatherSource, comfort_features: pd.DataFrame
):
    """Time-ordered splits (never random: a random split leaks future weather); a row joins a
    split only if its target time is inside the split too, so no target crosses a boundary.
    The windows come from the data (or config), never from a fixed year."""
    windows, chosen = resolve_windows(
        comfort_features,
        preset=config.preset,
        source_preset=weather.split_preset,
        train_end=config.train_end,
        validation_end=config.validation_end,
        holdout_end=config.holdout_end,
        holdout_fraction=config.holdout_fraction,
        validation_days=config.validation_days,
    )
    splits = chronological_split(comfort_features, windows)
    split_metadata = {
        "split": dg.MetadataValue.text(chosen),
        "windows": dg.MetadataValue.text(windows.describe()),
    }
    for name, frame in splits.items():
        yield dg.Output(
            frame, output_name=f"{name}_set", metadata={**table_metadata(frame), **split_metadata}
        )
    problems = windows.problems(splits)
    yield dg.AssetCheckResult(
        asset_key="holdout_set",
        check_name="chronological",
        passed=not problems,
        metadata={
            **{f"{k}_rows": dg.MetadataValue.int(len(v)) for k, v in splits.items()},
            "problems": dg.MetadataValue.text("; ".join(problems) or "none"),
        },
    )
