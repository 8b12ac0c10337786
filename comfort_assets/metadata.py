"""Small helpers every asset module uses for materialization metadata."""

from __future__ import annotations

import dagster as dg
import pandas as pd


def table_metadata(
    frame: pd.DataFrame, time_column: str = "time_utc"
) -> dict[str, dg.MetadataValue]:
    """Row count, time span, stations and a preview: the UI tells the story without logs."""
    metadata: dict[str, dg.MetadataValue] = {"dagster/row_count": dg.MetadataValue.int(len(frame))}
    if time_column in frame and len(frame) and frame[time_column].notna().any():
        metadata["time_span"] = dg.MetadataValue.text(
            f"{frame[time_column].min().isoformat()} … {frame[time_column].max().isoformat()}"
        )
    if "station" in frame:
        stations = sorted(frame["station"].dropna().astype(str).unique())
        metadata["stations"] = dg.MetadataValue.text(", ".join(stations[:20]))
    metadata["preview"] = dg.MetadataValue.md(frame.head(5).to_markdown(index=False))
    return metadata


def markdown_table(frame: pd.DataFrame) -> dg.MetadataValue:
    """A score table as Markdown metadata, four decimals."""
    return dg.MetadataValue.md(frame.to_markdown(index=False, floatfmt=".4f"))
