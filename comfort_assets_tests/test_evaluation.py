"""The evaluation core: champion scoring, the station rule on real scores, the model card,
benchmark folds and the per-month breakdown (tiny ridge models on three months of data)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from comfort_assets.domain.baselines import baseline_forecasts
from comfort_assets.domain.benchmark import benchmark_pool, benchmark_schemes, run_benchmark
from comfort_assets.domain.card import model_card
from comfort_assets.domain.champion import (
    judge_challenger,
    station_scores,
    unscorable_reason,
)
from comfort_assets.domain.evaluation import evaluate_holdout, rmse_by_month
from comfort_assets.domain.features import build_features
from comfort_assets.domain.modeling import ForecastModel
from comfort_assets.domain.splits import SplitWindows, chronological_split
from comfort_assets.domain.training import ChallengerChoice, select_challenger, train_candidates

SPRING = pd.Timestamp("2013-04-01", tz="UTC")


@pytest.fixture(scope="module")
def clean(bundled_clean) -> pd.DataFrame:
    return bundled_clean.clean[bundled_clean.clean["time_utc"] < SPRING]


@pytest.fixture(scope="module")
def splits(clean) -> dict[str, pd.DataFrame]:
    windows = SplitWindows.from_dates("2013-02-15", "2013-03-01")
    return chronological_split(build_features(clean, 3), windows)


@pytest.fixture(scope="module")
def ridge(splits) -> ForecastModel:
    candidates = train_candidates(splits["training"], splits["validation"], ["ridge"], [0])
    return next(iter(candidates.models.values()))


def test_a_champion_of_another_horizon_or_with_missing_features_cannot_be_scored(ridge, splits):
    holdout = splits["holdout"]
    assert unscorable_reason(ridge, holdout) is None
    six_hours = replace(ridge, horizon_h=6)
    assert "6 h" in unscorable_reason(six_hours, holdout)
    renamed = replace(ridge, feature_names=[*ridge.feature_names[:-1], "dew_point_trend_9h"])
    assert "dew_point_trend_9h" in unscorable_reason(renamed, holdout)


def test_an_unscorable_champion_is_named_and_persistence_is_the_bar(ridge, splits):
    decision = judge_challenger(
        ridge, splits["holdout"], "weather-predictor-001", replace(ridge, horizon_h=6)
    )
    assert decision.champion_rmse is None
    assert decision.reason.startswith("champion weather-predictor-001 cannot be scored: ")
    assert decision.promoted == (decision.challenger_rmse < decision.persistence_rmse)
    assert decision.champion_now == ("" if decision.promoted else "weather-predictor-001")


def test_champion_scored_on_the_same_holdout_and_an_equal_challenger_loses(ridge, splits):
    decision = judge_challenger(ridge, splits["holdout"], "weather-predictor-001", ridge)
    assert decision.champion_rmse == pytest.approx(decision.challenger_rmse)
    assert not decision.promoted and "better than champion" in decision.reason
    assert replace(decision, version="weather-predictor-002").champion_now == (
        "weather-predictor-001"
    )
    first = judge_challenger(ridge, splits["holdout"])
    assert first.promoted and first.reason.startswith("first model")
    assert {s.station for s in first.stations} == {"EWR", "JFK", "LGA"}
    assert all(s.rows == 741 for s in first.stations)


def test_station_scores_count_rows_and_score_each_station():
    holdout = pd.DataFrame(
        {
            "station": ["A", "A", "B", "B", "B"],
            "di_target": [70.0, 72.0, 60.0, 60.0, 60.0],
            "di_now": [70.0, 70.0, 61.0, 59.0, 60.0],
        }
    )
    scores = {s.station: s for s in station_scores(holdout, np.array([70, 72, 63, 63, 63.0]))}
    assert scores["A"].rows == 2 and scores["A"].challenger_rmse == 0
    assert scores["A"].persistence_rmse == pytest.approx(np.sqrt(2))
    assert scores["B"].rows == 3 and scores["B"].challenger_rmse == pytest.approx(3)


def test_the_card_records_the_decision_and_the_ensemble_members(ridge, splits, clean):
    choice = ChallengerChoice(
        "ensemble",
        {"ensemble": ridge},
        {"ensemble": 1.5},
        ("xgboost (seed average)", "random_forest (seed average)"),
    )
    report = evaluate_holdout(choice, splits["holdout"], baseline_forecasts(clean, 3))
    report = replace(report, wandb_runs=("offline:a", "offline:b"))
    decision = judge_challenger(ridge, splits["holdout"], "weather-predictor-001", ridge)
    card = model_card(report, decision, splits["training"], splits["holdout"], "1.0+abc", "r1")
    assert card["promotion"] == {
        "promoted": False,
        "reason": decision.reason,
        "champion_before": "weather-predictor-001",
        "champion_rmse": decision.champion_rmse,
    }
    assert card["members"] == ["xgboost (seed average)", "random_forest (seed average)"]
    assert card["model_choice"] == "ensemble" and card["stations"] == ["EWR", "JFK", "LGA"]
    assert card["metrics"]["holdout_rmse"] == decision.challenger_rmse
    assert card["metrics"]["skill_vs_persistence"] == pytest.approx(decision.skill)
    assert card["training_window"]["end"] < card["holdout_window"]["start"]
    assert card["code_version"] == "1.0+abc" and card["dagster_run_id"] == "r1"
    assert card["wandb_runs"] == ["offline:a", "offline:b"] and card["window_hours"] == 97


def test_holdout_report_scores_contenders_and_baselines_and_breaks_down_by_month(
    ridge, splits, clean
):
    choice = select_challenger({ridge.name: ridge}, None, splits["validation"])
    assert choice.name == "ridge (seed average)" and choice.members == ()
    report = evaluate_holdout(choice, splits["holdout"], baseline_forecasts(clean, 3))
    assert set(report.scores["model"]) >= {
        "ridge (seed average)",
        "persistence",
        "persistence_daily_cycle",
        "climatology",
    }
    assert (
        report.challenger_scores["rmse"]
        < report.scores.set_index("model").loc["persistence", "rmse"]
    )
    assert list(report.by_month.index) == ["03"]
    assert list(report.by_month.columns) == ["ridge (seed average)", "persistence"]
    assert report.by_month.iloc[0, 0] == pytest.approx(report.challenger_scores["rmse"])


def test_rmse_by_month_splits_rows_by_their_origin_month():
    frame = pd.DataFrame(
        {"time_utc": pd.to_datetime(["2013-10-31T23:00", "2013-11-01T00:00"], utc=True)}
    )
    actual = np.array([70.0, 60.0])
    table = rmse_by_month(frame, actual, {"a": np.array([71.0, 60.0]), "b": actual + 2})
    assert list(table.index) == ["10", "11"]
    assert table.loc["10", "a"] == 1 and table.loc["11", "a"] == 0
    assert (table["b"] == 2).all()


def test_benchmark_folds_train_only_on_the_past(splits):
    pool = benchmark_pool(splits["holdout"], splits["training"], splits["validation"])
    assert pool["time_utc"].is_monotonic_increasing
    schemes = benchmark_schemes(pool, [0.8, 0.6], cv_folds=3)
    assert [s.name for s in schemes] == ["80/20", "60/40", "rolling-origin CV (3 folds)"]
    assert [len(s.folds) for s in schemes] == [1, 1, 3]
    for scheme in schemes:
        for train, test in scheme.folds:
            # the embargo: no training target (origin + 3 h) reaches the test block
            assert pool["valid_at_utc"].iloc[train].max() <= pool["time_utc"].iloc[test].min()
    seen = []
    report = run_benchmark(pool, schemes, ["ridge"], on_fold=lambda s, f: seen.append(s))
    assert seen == ["80/20", "60/40", *["rolling-origin CV (3 folds)"] * 3]
    assert set(report["model"]) == {"ridge", "ensemble", "persistence"}
    by_model = report[report["split"] == "80/20"].set_index("model")["rmse"]
    assert by_model["ridge"] == pytest.approx(by_model["ensemble"])
    assert by_model["ridge"] < by_model["persistence"]
