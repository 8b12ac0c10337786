"""Hyper-parameter search plans and time-ordered folds."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: (training rows, test rows) by position
Fold = tuple[np.ndarray, np.ndarray]
SEARCH_TYPES = ("random", "grid")
#: The default XGBoost search space; the default plan draws a few points so the whole
#: graph stays inside its time budget (`comfort tune --n-trials 30` searches more).
DEFAULT_SEARCH_SPACE: dict[str, list[float]] = {
    "max_depth": [4, 6, 8],
    "learning_rate": [0.03, 0.05, 0.1],
    "min_child_weight": [1, 5, 20],
    "subsample": [0.7, 0.9],
    "colsample_bytree": [0.6, 0.8, 1.0],
}
DEFAULT_TRIALS = 4
DEFAULT_FOLDS = 2


def search_plan(
    space: Mapping[str, Sequence[Any]], search_type: str, n_trials: int, seed: int
) -> list[dict[str, Any]]:
    """Parameter sets to try: the whole grid, or ``n_trials`` distinct random draws from it."""
    if search_type not in SEARCH_TYPES:
        raise ValueError(f"search_type must be one of {SEARCH_TYPES}, got {search_type!r}")
    if not space or any(len(v) == 0 for v in space.values()):
        raise ValueError("search space must name at least one value for every parameter")
    names = sorted(space)
    grid = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(space[n] for n in names))
    ]
    if search_type == "grid":
        return grid
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(grid), size=min(n_trials, len(grid)), replace=False)
    return [grid[i] for i in picks]


def expanding_folds(
    times: pd.Series, n_folds: int, min_train_fraction: float = 0.5, embargo_hours: int = 0
) -> list[Fold]:
    """Rolling-origin folds: each trains on everything before an origin and tests on the
    block after it. Origins split the time range after ``min_train_fraction`` evenly; a
    training row must end ``embargo_hours`` (the horizon) before the origin, so no target
    reaches into the test block."""
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    order = pd.to_datetime(times, utc=True)
    start, end = order.min(), order.max()
    first = start + (end - start) * min_train_fraction
    edges = [first + (end - first) * i / n_folds for i in range(n_folds + 1)]
    edges[-1] = end + pd.Timedelta(hours=1)
    folds = []
    for lo, hi in itertools.pairwise(edges):
        train = np.flatnonzero((order < lo - pd.Timedelta(hours=embargo_hours)).to_numpy())
        test = np.flatnonzero(((order >= lo) & (order < hi)).to_numpy())
        if len(train) and len(test):
            folds.append((train, test))
    return folds


def chronological_holdout(times: pd.Series, train_fraction: float, embargo_hours: int = 0) -> Fold:
    """First ``train_fraction`` of the time range for training, the rest for testing."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    order = pd.to_datetime(times, utc=True)
    cut = order.min() + (order.max() - order.min()) * train_fraction
    train = order < cut - pd.Timedelta(hours=embargo_hours)
    return np.flatnonzero(train.to_numpy()), np.flatnonzero((order >= cut).to_numpy())
