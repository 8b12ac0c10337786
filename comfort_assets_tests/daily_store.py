"""Stand-in ingestion for tests: a table stored as the IO manager stores a daily asset."""

import dagster as dg
import pandas as pd

from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS
from comfort_assets.resources.io_manager import ObjectStoreIOManager


def store_daily(
    io_manager: ObjectStoreIOManager,
    asset: str,
    frame: pd.DataFrame,
    days: list[str] | None = None,
    column: str = "time_utc",
) -> None:
    """One object per UTC day of ``frame[column]`` (or per day of ``days``, empty ones too)."""
    if days is None:
        days = sorted(pd.to_datetime(frame[column], utc=True).dt.strftime("%Y-%m-%d").unique())
    windows = {day: WEATHER_PARTITIONS.time_window_for_partition_key(day) for day in days}
    io_manager.write_partitions(dg.AssetKey(asset), frame, column, windows)
