"""Daily partitions derived from the data's own span, and a clear failure when they miss it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd


class DataOutsidePartitionsError(ValueError):
    """The source's data and the partitions do not overlap: nothing would be ingested."""


@dataclass(frozen=True)
class DaySpan:
    """Inclusive first and last UTC day."""

    first: date
    last: date

    @property
    def end(self) -> date:
        """The exclusive end Dagster's ``DailyPartitionsDefinition(end_date=...)`` wants."""
        return self.last + timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def __str__(self) -> str:
        return f"{self.first.isoformat()} … {self.last.isoformat()} ({self.days} days)"


def day_span(times: pd.Series) -> DaySpan:
    """The UTC days of the first and last valid timestamp."""
    valid = pd.to_datetime(times, utc=True, errors="coerce").dropna()
    if valid.empty:
        raise ValueError("no valid timestamp: the data has no time span")
    return DaySpan(valid.min().date(), valid.max().date())


def check_overlap(data: DaySpan, partitions: DaySpan) -> None:
    """Fail early, naming both spans, when no partition holds any of the data."""
    if data.last < partitions.first or data.first > partitions.last:
        raise DataOutsidePartitionsError(
            f"the weather data spans {data} but the partitions span {partitions}: no partition "
            "holds any of it. Partitions come from the data when the definitions load; reload "
            "them (restart dagster/comfort) after replacing the file, or set COMFORT_START_DATE"
        )


def outside(times: pd.Series, partitions: DaySpan) -> int:
    """Rows whose time falls outside every partition (they are counted, never silently lost)."""
    valid = pd.to_datetime(times, utc=True, errors="coerce").dropna()
    start = pd.Timestamp(partitions.first, tz="UTC")
    end = pd.Timestamp(partitions.end, tz="UTC")
    return int(((valid < start) | (valid >= end)).sum())
