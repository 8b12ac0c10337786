"""Chronological splits with an embargo: a row belongs to a split only if both its origin
and its target time fall inside it."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import pandas as pd

SPLITS = ("training", "validation", "holdout")


@dataclass(frozen=True)
class SplitWindows:
    train_end: pd.Timestamp
    validation_end: pd.Timestamp
    holdout_end: pd.Timestamp | None = None

    @classmethod
    def from_dates(
        cls, train_end: str, validation_end: str, holdout_end: str | None = None
    ) -> SplitWindows:
        def ts(value: str) -> pd.Timestamp:
            stamp = pd.Timestamp(value)
            return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")

        windows = cls(ts(train_end), ts(validation_end), ts(holdout_end) if holdout_end else None)
        if not windows.train_end < windows.validation_end:
            raise ValueError(
                f"train_end {train_end} must be before validation_end {validation_end}"
            )
        if windows.holdout_end is not None and not windows.validation_end < windows.holdout_end:
            raise ValueError(
                f"validation_end {validation_end} must be before holdout_end {holdout_end}"
            )
        return windows

    def problems(self, splits: dict[str, pd.DataFrame]) -> list[str]:
        """What is wrong with a set of splits (empty means fine)."""
        found = [f"{name} split is empty" for name in SPLITS if splits[name].empty]
        for earlier, later in pairwise(SPLITS):
            a, b = splits[earlier], splits[later]
            if len(a) and len(b) and a["valid_at_utc"].max() > b["time_utc"].min():
                found.append(f"{earlier} targets reach into {later}")
        return found


def chronological_split(features: pd.DataFrame, windows: SplitWindows) -> dict[str, pd.DataFrame]:
    usable = features.loc[features["usable"]]
    origin, target = usable["time_utc"], usable["valid_at_utc"]
    end = (
        windows.holdout_end
        if windows.holdout_end is not None
        else pd.Timestamp.max.tz_localize("UTC")
    )
    masks = {
        "training": target < windows.train_end,
        "validation": (origin >= windows.train_end) & (target < windows.validation_end),
        "holdout": (origin >= windows.validation_end) & (target < end),
    }
    return {name: usable.loc[mask].reset_index(drop=True) for name, mask in masks.items()}
