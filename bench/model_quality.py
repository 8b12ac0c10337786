"""Model quality on the reference split (train Jan–Aug, validate Sep, hold out Oct–Dec).

For every horizon: every baseline, every family (seed average), the tuned model and the
challenger chosen and scored by the same domain functions as the `evaluation_report` and
`challenger_model` assets, on the holdout, with the promotion rule against persistence.

    .venv/bin/python bench/model_quality.py [--horizons 1 3 6 24]

Prints a table per horizon; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from comfort_assets.domain.baselines import baseline_forecasts
from comfort_assets.domain.champion import judge_challenger
from comfort_assets.domain.cleaning import clean_observations
from comfort_assets.domain.evaluation import evaluate_holdout
from comfort_assets.domain.features import HORIZONS, build_features
from comfort_assets.domain.modeling import FAMILIES
from comfort_assets.domain.splits import SplitWindows, chronological_split
from comfort_assets.domain.training import search, select_challenger, train_candidates
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
    figures: dict[str, float | str | bool] = {}
    for horizon in args.horizons:
        started = time.perf_counter()
        splits = chronological_split(build_features(clean, horizon), windows)
        train, validation, holdout = splits["training"], splits["validation"], splits["holdout"]
        candidates = train_candidates(train, validation, FAMILIES, SEEDS)
        plan = search_plan(DEFAULT_SEARCH_SPACE, "random", DEFAULT_TRIALS, 0)
        tuned = search(train, validation, plan, n_folds=DEFAULT_FOLDS).model
        choice = select_challenger(candidates.models, tuned, validation)
        report = evaluate_holdout(choice, holdout, baseline_forecasts(clean, horizon))
        decision = judge_challenger(report.challenger, holdout)
        table = report.scores.rename(columns={"model": "forecast", "rmse": "holdout_rmse"})
        table = table[["forecast", "holdout_rmse", "validation_rmse", "skill"]]
        table["champion"] = (table["forecast"] == choice.name).map({True: "◀", False: ""})
        print(
            f"\nh = {horizon} h  ({len(train)} train / {len(validation)} validation / "
            f"{len(holdout)} holdout rows, {time.perf_counter() - started:.0f} s)"
        )
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"promotion against persistence and per station: {decision.reason}")
        figures[f"h{horizon}_champion_rmse"] = round(decision.challenger_rmse, 4)
        figures[f"h{horizon}_champion_skill"] = round(decision.skill, 4)
        figures[f"h{horizon}_champion"] = choice.name
        figures[f"h{horizon}_promoted"] = decision.promoted
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
