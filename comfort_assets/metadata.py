"""Small helpers every asset module uses for materialization metadata, and the code version
a model card records."""

from __future__ import annotations

import html
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import dagster as dg
import pandas as pd


def table_metadata(
    frame: pd.DataFrame, time_column: str = "time_utc"
) -> dict[str, dg.MetadataValue]:
    """Row count, time span, stations and a preview: the UI tells the story without logs."""
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "dagster/column_schema": column_schema(frame),
    }
    if time_column in frame and len(frame) and frame[time_column].notna().any():
        metadata["time_span"] = dg.MetadataValue.text(
            f"{frame[time_column].min().isoformat()} … {frame[time_column].max().isoformat()}"
        )
    if "station" in frame:
        stations = sorted(frame["station"].dropna().astype(str).unique())
        metadata["stations"] = dg.MetadataValue.text(", ".join(stations[:20]))
    metadata["preview"] = dg.MetadataValue.md(frame.head(5).to_markdown(index=False))
    return metadata


def column_schema(frame: pd.DataFrame) -> dg.MetadataValue:
    """The table's columns and types, shown as the asset page's column schema."""
    columns = [
        dg.TableColumn(name=str(name), type=str(dtype)) for name, dtype in frame.dtypes.items()
    ]
    return dg.MetadataValue.table_schema(dg.TableSchema(columns=columns))


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4f") -> dg.MetadataValue:
    """A table as Markdown metadata (scores to four decimals). Text cells are escaped: a
    station named ``<img …>`` in a user's file rendered as markup, its cell empty, and a
    ``|`` would split a cell."""
    text = frame.copy()
    for column in text.columns:
        if not pd.api.types.is_numeric_dtype(text[column]):
            text[column] = text[column].map(_cell)
    return dg.MetadataValue.md(text.to_markdown(index=False, floatfmt=floatfmt))


def _cell(value: object) -> object:
    if not isinstance(value, str):
        return value
    return html.escape(value, quote=False).replace("|", "\\|").replace("\n", " ")


def rmse_value(value: float) -> dg.MetadataValue:
    """An RMSE (or any score) rounded to four digits."""
    return dg.MetadataValue.float(round(float(value), 4))


def percent(value: float) -> dg.MetadataValue:
    """A skill as readable text: 0.3141 → "31.4 %"."""
    return dg.MetadataValue.text(f"{value * 100:.1f} %")


def code_version() -> str:
    """The installed package version plus the git commit, recorded in every model card."""
    try:
        package = version("comfort-assets")
    except PackageNotFoundError:
        package = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{package}+{commit}" if commit else package
