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
    day_of = pd.to_datetime(frame[column], utc=True).dt.strftime("%Y-%m-%d")
    for day in days if days is not None else sorted(day_of.unique()):
        context = dg.build_output_context(
            asset_key=dg.AssetKey(asset), partition_key=day, asset_partitions_def=WEATHER_PARTITIONS
        )
        io_manager.handle_output(context, frame.loc[day_of == day].reset_index(drop=True))
