import pytest

from comfort_assets.domain.promotion import (
    StationScore,
    decide_promotion,
    next_version,
    version_name,
    version_number,
    worst_station,
)
from comfort_assets.domain.tuning import chronological_holdout, expanding_folds, search_plan


def test_version_names():
    assert version_name(1) == "weather-predictor-001"
    assert version_name(1234) == "weather-predictor-1234"
    assert version_number("weather-predictor-006") == 6
    assert next_version([]) == "weather-predictor-001"
    assert (
        next_version(["weather-predictor-002", "weather-predictor-010", "other"])
        == "weather-predictor-011"
    )
    with pytest.raises(ValueError):
        version_name(0)


def test_first_model_is_promoted_only_if_it_beats_persistence():
    assert decide_promotion(2.2, 3.1).promote
    refused = decide_promotion(3.2, 3.1)
    assert not refused.promote and "persistence" in refused.reason


def test_better_challenger_wins_by_the_margin():
    assert decide_promotion(2.0, 3.1, champion_rmse=2.2, margin=0.01).promote
    close = decide_promotion(2.19, 3.1, champion_rmse=2.2, margin=0.01)
    assert not close.promote and "1.0%" in close.reason
    assert decide_promotion(2.19, 3.1, champion_rmse=2.2, margin=0.0).promote


def test_worse_challenger_loses_and_equal_is_not_better():
    assert not decide_promotion(2.3, 3.1, champion_rmse=2.2).promote
    assert not decide_promotion(2.2, 3.1, champion_rmse=2.2, margin=0.0).promote


def test_challenger_worse_than_persistence_never_wins_even_against_a_bad_champion():
    decision = decide_promotion(3.2, 3.1, champion_rmse=4.0)
    assert not decision.promote and "persistence" in decision.reason


def test_a_station_where_the_challenger_is_worse_than_persistence_blocks_promotion():
    stations = [
        StationScore("EWR", 2208, 2.0, 3.0),
        StationScore("JFK", 2208, 3.05, 3.0),
        StationScore("LGA", 2208, 2.1, 3.1),
    ]
    decision = decide_promotion(2.4, 3.03, champion_rmse=2.6, stations=stations)
    assert not decision.promote
    assert "JFK" in decision.reason and "3.0500" in decision.reason and "3.0000" in decision.reason
    assert "2208 holdout rows" in decision.reason
    # even the first model must respect every station
    assert not decide_promotion(2.4, 3.03, stations=stations).promote


def test_a_station_with_too_few_rows_does_not_block_and_equal_is_not_worse():
    stations = [StationScore("EWR", 2208, 2.0, 3.0), StationScore("NEW", 120, 4.0, 3.0)]
    assert decide_promotion(2.1, 3.0, champion_rmse=2.5, stations=stations).promote
    assert not decide_promotion(
        2.1, 3.0, champion_rmse=2.5, stations=stations, min_station_rows=100
    ).promote
    assert worst_station([StationScore("EWR", 500, 3.0, 3.0)]) is None


def test_the_worst_station_is_named_when_several_are_worse():
    stations = [StationScore("A", 300, 3.1, 3.0), StationScore("B", 300, 3.5, 3.0)]
    assert worst_station(stations).station == "B"


def test_an_unscorable_champion_is_explained_in_the_decision():
    decision = decide_promotion(2.2, 3.1, champion_note="champion weather-predictor-001 cannot")
    assert decision.promote and decision.reason.startswith("champion weather-predictor-001 cannot")


def test_search_plans():
    space = {"a": [1, 2, 3], "b": [0.1, 0.2]}
    assert len(search_plan(space, "grid", 1, 0)) == 6
    draws = search_plan(space, "random", 4, seed=7)
    assert len(draws) == 4 and len({tuple(d.items()) for d in draws}) == 4
    assert draws == search_plan(space, "random", 4, seed=7)
    with pytest.raises(ValueError, match="search_type"):
        search_plan(space, "bayes", 4, 0)


def test_folds_are_time_ordered_with_an_embargo():
    import pandas as pd

    times = pd.Series(pd.date_range("2013-01-01", periods=1000, freq="h", tz="UTC"))
    folds = expanding_folds(times, 3, min_train_fraction=0.5, embargo_hours=3)
    assert len(folds) == 3
    for train, test in folds:
        assert times[train].max() + pd.Timedelta(hours=3) < times[test].min()
    train, test = chronological_holdout(times, 0.8, embargo_hours=3)
    assert times[train].max() < times[test].min() - pd.Timedelta(hours=3)
    assert len(test) == pytest.approx(200, abs=2)
