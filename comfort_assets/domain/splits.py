"""Chronological splits with an embargo: a row belongs to a split only if both its origin
and its target time fall inside it."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import pandas as pd

SPLITS = ("training", "validation", "holdout")
#: The bundled year's reference split (train Jan–Aug, validate September, hold out Oct–Dec):
#: the measured figures are quoted on it, so it stays fixed.
REFERENCE_2013 = "reference-2013"
PRESETS: dict[str, tuple[str, str]] = {REFERENCE_2013: ("2013-09-01", "2013-10-01")}
DEFAULT_HOLDOUT_FRACTION = 0.25
DEFAULT_VALIDATION_DAYS = 30


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

    @classmethod
    def preset(cls, name: str) -> SplitWindows:
        if name not in PRESETS:
            raise ValueError(f"unknown split preset {name!r} (known: {', '.join(PRESETS)})")
        return cls.from_dates(*PRESETS[name])

    @classmethod
    def relative(
        cls,
        first: pd.Timestamp,
        last: pd.Timestamp,
        holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
        validation_days: int = DEFAULT_VALIDATION_DAYS,
    ) -> SplitWindows:
        """The last ``holdout_fraction`` of the whole days from ``first`` to ``last`` is the
        holdout, the ``validation_days`` before it validation, everything earlier training."""
        if not 0 < holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
        if validation_days < 1:
            raise ValueError(f"validation_days must be at least 1, got {validation_days}")
        first, end = first.floor("D"), last.floor("D") + pd.Timedelta(days=1)
        days = (end - first).days
        holdout_days = max(1, round(days * holdout_fraction))
        validation_end = end - pd.Timedelta(days=holdout_days)
        train_end = validation_end - pd.Timedelta(days=validation_days)
        # a training window shorter than the validation one cannot teach much
        if (train_end - first).days < validation_days:
            raise ValueError(
                f"the data spans {days} days ({first:%Y-%m-%d} … {last:%Y-%m-%d}): too short for "
                f"{holdout_days} holdout days, {validation_days} validation days and at least "
                f"as many training days; give more data or explicit split dates"
            )
        return cls(train_end, validation_end, None)

    def describe(self) -> str:
        holdout_end = "end" if self.holdout_end is None else f"{self.holdout_end:%Y-%m-%d}"
        return (
            f"train < {self.train_end:%Y-%m-%d} ≤ validation < {self.validation_end:%Y-%m-%d} "
            f"≤ holdout < {holdout_end}"
        )

    def problems(self, splits: dict[str, pd.DataFrame]) -> list[str]:
        """What is wrong with a set of splits (empty means fine)."""
        found = [f"{name} split is empty" for name in SPLITS if splits[name].empty]
        for earlier, later in pairwise(SPLITS):
            a, b = splits[earlier], splits[later]
            if len(a) and len(b) and a["valid_at_utc"].max() > b["time_utc"].min():
                found.append(f"{earlier} targets reach into {later}")
        return found


def resolve_windows(
    features: pd.DataFrame,
    *,
    preset: str,
    source_preset: str | None,
    train_end: str | None = None,
    validation_end: str | None = None,
    holdout_end: str | None = None,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    validation_days: int = DEFAULT_VALIDATION_DAYS,
) -> tuple[SplitWindows, str]:
    """The windows a split config means, and how they were chosen.

    Explicit dates win; else a named preset; ``auto`` takes the source's own preset if it
    has one (the bundled year's reference split) and a relative split of the data otherwise.
    """
    if (train_end is None) != (validation_end is None):
        raise ValueError("give both train_end and validation_end, or neither")
    if train_end is not None and validation_end is not None:
        return SplitWindows.from_dates(train_end, validation_end, holdout_end), "dates"
    name = source_preset if preset == "auto" else preset
    if name is not None and name != "relative":
        return SplitWindows.preset(name), name
    if features.empty:
        raise ValueError("no features: the relative split needs data to measure")
    windows = SplitWindows.relative(
        features["time_utc"].min(),
        features["time_utc"].max(),
        holdout_fraction=holdout_fraction,
        validation_days=validation_days,
    )
    return windows, f"relative (last {holdout_fraction:.0%} of days, {validation_days} before)"


def chronological_split(features: pd.DataFrame, windows: SplitWindows) -> dict[str, pd.DataFrame]:
    """Usable rows by split, in station and origin order whatever order the daily
    partitions were stored in, so a fit does not depend on how the features were built."""
    usable = features.loc[features["usable"]].sort_values(["station", "time_utc"])
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
