"""How the pipeline's core scales with the number of stations: cleaning (ingestion), features,
and an XGBoost fit, at 1×, 10× (and with ``--scales 1,10,100``, 100×) the bundled rows.

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
from comfort_assets.domain.cleaning import clean_observations
from comfort_assets.domain.features import build_features, feature_names
from comfort_assets.domain.modeling import TrainingData, fit_model
from comfort_assets.domain.splits import REFERENCE_2013, SplitWindows, chronological_split
from comfort_assets.resources.weather import BundledWeatherSource

HORIZON = 3
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
    return {
        "scale": scale,
        "raw_rows": rows,
        "stations": int(data["station"].nunique()),
        "seconds": sum(s["seconds"] for s in steps.values()),
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
                # a daily run ingests one day and retrains monthly: not this batch's shape
                "daily_run_seconds_100x": None,
                "results": list(results.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
