"""How the pipeline's core scales with the number of stations: cleaning (ingestion), features,
and an XGBoost fit, at 1×, 10× (and with ``--scales 1,10,100``, 100×) the bundled rows; and
the daily incremental run (one day's raw → clean → features from the daily partitions it maps
to) at each size and at one and three years of history.

    .venv/bin/python bench/scale.py [--scales 1,10] [--engine local|dask]

Synthetic stations are the three real ones with a per-station offset (temperature ± 3 °C,
humidity ± 10 %, seeded), so cleaning meets the real defects and the features a real daily
cycle. The fit uses fixed, shorter settings than production (200 rounds at learning rate 0.1)
so that the time per row is comparable across scales. Peak RSS per step is sampled from
/proc every 20 ms. Runs the Python functions the assets call, not Dagster (the per-step
process and IO overhead is measured by bench/pipeline.py). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from comfort_assets.domain import distributed
from comfort_assets.domain.cleaning import clean_days, clean_observations
from comfort_assets.domain.features import (
    HISTORY_DAYS,
    build_features,
    build_features_valid_between,
    feature_names,
)
from comfort_assets.domain.modeling import TrainingData, fit_model
from comfort_assets.domain.splits import REFERENCE_2013, SplitWindows, chronological_split
from comfort_assets.resources.weather import BundledWeatherSource

HORIZON = 3
DAY = pd.Timedelta(days=1)
#: the bundled year's last day with observations: the daily run of a year's history
LAST_DAY = pd.Timestamp("2013-12-30", tz="UTC")
FIT_PARAMS = {"n_estimators": 200, "learning_rate": 0.1, "early_stopping_rounds": 20}
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def measured(step: Callable[[], Any]) -> tuple[Any, float, float]:
    """The step's result, wall seconds and peak RSS (GB) while it ran."""
    peak = [_rss_bytes()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        result = step()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return result, seconds, max(peak[0], _rss_bytes()) / 1e9


def synthetic_raw(raw: pd.DataFrame, scale: int, seed: int = 0) -> pd.DataFrame:
    """``scale`` copies of the real stations, each shifted by its own offsets."""
    rng = np.random.default_rng(seed)
    copies = []
    for copy in range(scale):
        frame = raw.copy()
        if copy:
            frame["station"] = frame["station"] + f"_{copy:03d}"
            frame["temp_c"] = frame["temp_c"] + rng.uniform(-3, 3)
            frame["humidity_pct"] = (frame["humidity_pct"] * rng.uniform(0.9, 1.1)).clip(0, 100)
            frame["dewpoint_c"] = np.nan  # no longer consistent with the shifted values
        copies.append(frame)
    return pd.concat(copies, ignore_index=True)


def by_day(frame: pd.DataFrame) -> dict[pd.Timestamp, pd.DataFrame]:
    """A table split as the IO manager stores a daily asset: one frame per UTC day."""
    days = pd.to_datetime(frame["time_utc"], utc=True).dt.floor("D")
    return {day: part.reset_index(drop=True) for day, part in frame.groupby(days)}


def daily_run(
    raw: dict[pd.Timestamp, pd.DataFrame],
    clean: dict[pd.Timestamp, pd.DataFrame],
    day: pd.Timestamp,
) -> pd.DataFrame:
    """One day as the daily partitions run it: the day cleaned from its raw neighbours, then
    the features of the day from the clean days before it (already stored) and the new one."""
    near = [raw[d] for d in (day - DAY, day, day + DAY) if d in raw]
    fresh = clean_days(pd.concat(near, ignore_index=True), day, day + DAY).clean
    before = [clean[day - k * DAY] for k in range(HISTORY_DAYS, 0, -1) if day - k * DAY in clean]
    return build_features_valid_between(
        pd.concat([*before, fresh], ignore_index=True), HORIZON, day, day + DAY
    )


def history_years(raw: pd.DataFrame, years: int) -> pd.DataFrame:
    """The bundled year repeated ``years`` times, one year later each time (2013 onwards)."""
    shifted = [
        raw.assign(time_utc=pd.to_datetime(raw["time_utc"], utc=True) + pd.Timedelta(days=365 * y))
        for y in range(years)
    ]
    return pd.concat(shifted, ignore_index=True)


def day_at_history(raw: pd.DataFrame, years: int) -> dict[str, float]:
    """The last day's cost with ``years`` of history: the daily partitions' incremental run
    against rebuilding clean weather and features from the whole history (the old shape)."""
    data = history_years(raw, years)
    last = LAST_DAY + pd.Timedelta(days=365 * (years - 1))
    _, rebuild, _ = measured(lambda: build_features(clean_observations(data).clean, HORIZON))
    raw_days, clean_days_ = by_day(data), by_day(clean_observations(data).clean)
    _, incremental, _ = measured(lambda: daily_run(raw_days, clean_days_, last))
    print(f"  {years} year(s) of history: a day {incremental:.2f} s, a rebuild {rebuild:.1f} s")
    return {"years": years, "incremental_s": incremental, "full_rebuild_s": rebuild}


def run_scale(raw: pd.DataFrame, scale: int, engine: str) -> dict[str, Any]:
    data = synthetic_raw(raw, scale)
    rows = len(data)
    steps: dict[str, dict[str, float]] = {}

    def record(name: str, step: Callable[[], Any], n: int) -> Any:
        result, seconds, peak = measured(step)
        steps[name] = {"seconds": seconds, "rows_per_s": n / seconds, "peak_rss_gb": peak}
        print(
            f"  {scale:>4}× {name:<9} {seconds:8.1f} s {n / seconds:12,.0f} rows/s {peak:6.2f} GB"
        )
        return result

    clean = record("ingestion", lambda: clean_observations(data).clean, rows)
    features = record("features", lambda: build_features(clean, HORIZON), len(clean))
    names = feature_names(HORIZON)
    splits = chronological_split(features, SplitWindows.preset(REFERENCE_2013))
    train, validation = (
        TrainingData.from_frame(splits[k], names) for k in ("training", "validation")
    )

    def fit():
        if engine == "local":
            return fit_model("xgboost", train, validation, names, HORIZON, params=FIT_PARAMS)
        with distributed.dask_client() as client:
            return distributed.fit_xgboost_dask(
                client, train, validation, names, HORIZON, params=FIT_PARAMS
            )

    record("training", fit, len(train.change))
    raw_days, clean_by_day = by_day(data), by_day(clean)
    _, daily, daily_peak = measured(lambda: daily_run(raw_days, clean_by_day, LAST_DAY))
    day_rows = len(raw_days[LAST_DAY])
    print(
        f"  {scale:>4}× daily run {daily:8.2f} s ({day_rows:,} raw rows that day)"
        f" {daily_peak:6.2f} GB"
    )
    return {
        "scale": scale,
        "raw_rows": rows,
        "stations": int(data["station"].nunique()),
        "seconds": sum(s["seconds"] for s in steps.values()),
        "daily_run_seconds": daily,
        "peak_rss_gb": max(s["peak_rss_gb"] for s in steps.values()),
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10", help="comma-separated multiples, e.g. 1,10,100")
    parser.add_argument("--engine", choices=distributed.ENGINES, default="local")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    raw = BundledWeatherSource().fetch(
        pd.Timestamp("2013-01-01", tz="UTC"), pd.Timestamp("2014-01-01", tz="UTC")
    )
    print(f"bundled: {len(raw):,} raw rows, 3 stations; training engine {args.engine}")
    results = {scale: run_scale(raw, scale, args.engine) for scale in scales}
    history = [day_at_history(raw, years) for years in (1, 3)]

    def figure(scale: int, key: str) -> float | None:
        return round(results[scale][key], 3) if scale in results else None

    print(
        json.dumps(
            {
                "engine": args.engine,
                "seconds_1x": figure(1, "seconds"),
                "seconds_10x": figure(10, "seconds"),
                "seconds_100x": figure(100, "seconds"),
                "peak_rss_gb_100x": figure(100, "peak_rss_gb"),
                "daily_run_seconds_1x": figure(1, "daily_run_seconds"),
                "daily_run_seconds_10x": figure(10, "daily_run_seconds"),
                "daily_run_seconds_100x": figure(100, "daily_run_seconds"),
                "day_at_history": history,
                "results": list(results.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
