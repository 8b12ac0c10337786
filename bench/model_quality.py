"""Model quality on the reference split (train Jan–Aug, validate Sep, hold out Oct–Dec).

For every horizon: every baseline, every family (seed average), the tuned model and the
challenger chosen exactly as the `evaluation_report` asset chooses it, scored on the holdout.

    .venv/bin/python bench/model_quality.py [--horizons 1 3 6 24]

Prints a table per horizon; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from comfort_assets.domain.baselines import BASELINES, attach_baselines, baseline_forecasts
from comfort_assets.domain.cleaning import clean_observations
from comfort_assets.domain.features import HORIZONS, build_features
from comfort_assets.domain.metrics import rmse
from comfort_assets.domain.modeling import FAMILIES
from comfort_assets.domain.splits import SplitWindows, chronological_split
from comfort_assets.domain.training import search, select_challenger, split_data, train_candidates
from comfort_assets.domain.tuning import (
    DEFAULT_FOLDS,
    DEFAULT_SEARCH_SPACE,
    DEFAULT_TRIALS,
    search_plan,
)
from comfort_assets.resources.weather import BundledWeatherSource

SEEDS = (0, 1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=list(HORIZONS))
    args = parser.parse_args()
    raw = BundledWeatherSource().fetch(
        pd.Timestamp("2013-01-01", tz="UTC"), pd.Timestamp("2014-01-01", tz="UTC")
    )
    clean = clean_observations(raw).clean
    windows = SplitWindows.from_dates("2013-09-01", "2013-10-01")
    figures: dict[str, float] = {}
    for horizon in args.horizons:
        started = time.perf_counter()
        splits = chronological_split(build_features(clean, horizon), windows)
        train, validation, holdout = splits["training"], splits["validation"], splits["holdout"]
        models, _ = train_candidates(train, validation, FAMILIES, SEEDS)
        plan = search_plan(DEFAULT_SEARCH_SPACE, "random", DEFAULT_TRIALS, 0)
        tuned = search(train, validation, plan, n_folds=DEFAULT_FOLDS).model
        champion, contenders, validation_scores = select_challenger(models, tuned, validation)
        data = split_data(holdout)
        baselines = attach_baselines(
            holdout[["station", "time_utc", "di_target"]], baseline_forecasts(clean, horizon)
        )
        rows = [
            {
                "forecast": name,
                "holdout_rmse": rmse(data.di_target, m.predict_di(data.features, data.di_now)),
                "validation_rmse": validation_scores[name],
            }
            for name, m in contenders.items()
        ]
        for name in BASELINES:
            ok = baselines[name].notna().to_numpy()
            rows.append(
                {
                    "forecast": name,
                    "holdout_rmse": rmse(data.di_target[ok], baselines[name].to_numpy()[ok]),
                    "validation_rmse": float("nan"),
                }
            )
        table = pd.DataFrame(rows).sort_values("holdout_rmse", ignore_index=True)
        persistence = table.set_index("forecast").loc["persistence", "holdout_rmse"]
        champion_rmse = table.set_index("forecast").loc[champion, "holdout_rmse"]
        table["skill_vs_persistence"] = 1 - table["holdout_rmse"] / persistence
        table["champion"] = (table["forecast"] == champion).map({True: "◀", False: ""})
        print(
            f"\nh = {horizon} h  ({len(train)} train / {len(validation)} validation / "
            f"{len(holdout)} holdout rows, {time.perf_counter() - started:.0f} s)"
        )
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        figures[f"h{horizon}_champion_rmse"] = round(float(champion_rmse), 4)
        figures[f"h{horizon}_champion_skill"] = round(float(1 - champion_rmse / persistence), 4)
        figures[f"h{horizon}_champion"] = champion
        for row in table.itertuples():
            key = (
                row.forecast.replace(" (seed average)", "")
                .replace(" (tuned)", "_tuned")
                .replace(" ", "_")
            )
            figures[f"h{horizon}_{key}_rmse"] = round(float(row.holdout_rmse), 4)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
