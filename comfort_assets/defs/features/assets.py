"""Group `features`: forecast features and the chronological splits."""

import dagster as dg
import pandas as pd

from comfort_assets.checks import schema_check, schema_spec
from comfort_assets.domain.features import DEFAULT_HORIZON, build_features, check_horizon
from comfort_assets.domain.schemas import COMFORT_FEATURES
from comfort_assets.domain.splits import SplitWindows, chronological_split
from comfort_assets.metadata import table_metadata


class FeatureConfig(dg.Config):
    horizon_h: int = DEFAULT_HORIZON
    """Forecast horizon in hours: 1, 3, 6 or 24."""


class SplitConfig(dg.Config):
    """Reference split: train Jan–Aug, validate September, hold out Oct–Dec (dates are UTC)."""

    train_end: str = "2013-09-01"
    validation_end: str = "2013-10-01"
    holdout_end: str | None = None


@dg.asset(
    group_name="features",
    kinds={"pandas", "numpy"},
    check_specs=[
        schema_spec("comfort_features", blocking=True, description="ComfortFeatures contract")
    ],
)
def comfort_features(config: FeatureConfig, clean_weather: pd.DataFrame):
    """DI now, its changes, trends, daily cycle and calendar at each origin t; target DI(t+h)."""
    features = build_features(clean_weather, check_horizon(config.horizon_h))
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
def chronological_splits(config: SplitConfig, comfort_features: pd.DataFrame):
    """Time-ordered splits (never random: a random split leaks future weather); a row joins a
    split only if its target time is inside the split too, so no target crosses a boundary."""
    windows = SplitWindows.from_dates(config.train_end, config.validation_end, config.holdout_end)
    splits = chronological_split(comfort_features, windows)
    for name, frame in splits.items():
        yield dg.Output(frame, output_name=f"{name}_set", metadata=table_metadata(frame))
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
