"""Monitoring statistics on crafted cases and on the bundled 2013 weather."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from comfort_assets.domain import monitoring as mon
from comfort_assets.domain.comfort import discomfort_index

UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


@pytest.fixture(scope="module")
def inputs(bundled_clean) -> pd.DataFrame:
    return mon.weather_inputs(bundled_clean.clean)


def weeks_of(frame: pd.DataFrame, start: str, end: str) -> list[pd.DataFrame]:
    return [
        frame[(frame["time_utc"] >= s) & (frame["time_utc"] < s + pd.Timedelta(days=7))]
        for s in pd.date_range(start, end, freq="7D", tz=UTC)
    ]


# --- drift ------------------------------------------------------------------------------
def test_psi_is_zero_for_the_same_sample_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    reference = rng.normal(20, 5, 5000)
    assert mon.psi(reference, reference) == pytest.approx(0, abs=1e-9)
    assert mon.psi(reference, rng.normal(20, 5, 2000)) < 0.05
    assert mon.psi(reference, reference + 15) > 5
    statistic, pvalue = mon.ks(reference, reference + 15)
    assert statistic > 0.8 and pvalue < 1e-10


def test_seasonal_reference_takes_the_same_weeks_or_the_nearest_season(inputs):
    ewr = inputs[inputs["station"] == "EWR"]
    july = ewr[(ewr["time_utc"] >= ts("2013-07-08")) & (ewr["time_utc"] < ts("2013-07-15"))]
    matched = mon.seasonal_reference(ewr, july["time_utc"], weeks=2)
    months = set(matched["time_utc"].dt.month)
    assert months <= {6, 7, 8} and len(matched) > 24 * 7 * 4
    spring = ewr[ewr["time_utc"] < ts("2013-06-01")]
    nearest = mon.seasonal_reference(spring, july["time_utc"], weeks=2, min_rows=300)
    assert len(nearest) == 300 and nearest["time_utc"].min() >= ts("2013-05-01")


def test_ordinary_weeks_do_not_drift_against_their_season_but_do_against_a_fixed_reference(
    inputs,
):
    """Raw PSI against the whole training window flags nearly every week; the seasonally
    matched shift, judged against how much ordinary weeks vary, flags none (measured)."""
    reference = inputs[inputs["time_utc"] < ts("2013-09-01")]
    raw = seasonal = 0
    weeks = weeks_of(inputs, "2013-01-08", "2013-08-20")
    for week in weeks:
        table = mon.drift_table(reference, week, source="ingested")
        raw += bool((table["raw_psi"] > 0.25).any())
        seasonal += bool(table["drifted"].any())
    assert raw >= 0.9 * len(weeks)
    assert seasonal <= 0.1 * len(weeks)


def test_a_climate_the_model_never_saw_drifts_within_one_day(inputs):
    reference = inputs[inputs["time_utc"] < ts("2013-09-01")]
    day = inputs[
        (inputs["station"] == "EWR")
        & (inputs["time_utc"] >= ts("2013-01-10"))
        & (inputs["time_utc"] < ts("2013-01-11"))
    ].copy()
    day["station"] = "HOT"
    day["temp_c"] += 15
    table = mon.drift_table(reference, day, source="served", min_samples=24)
    temp = table.set_index("feature").loc["temp_c"]
    assert temp["drifted"] and temp["shift"] > 10 and temp["shift_z"] > 3.5
    finding = mon.drift_finding(table, "weather-predictor-001")
    assert not finding.passed and finding.station == "HOT"


def test_spring_to_summer_drift_alone_never_asks_for_a_retrain(inputs):
    """A champion trained on January–May sees June and July: its inputs drift (a season it
    never saw) and the drift check warns, but drift alone is not a reason to retrain."""
    reference = inputs[inputs["time_utc"] < ts("2013-06-01")]
    for week in weeks_of(inputs, "2013-06-01", "2013-07-25"):
        finding = mon.drift_finding(mon.drift_table(reference, week, source="ingested"), "v")
        assert mon.retrain_reason([] if finding.passed else [finding.check]) is None


def test_input_domain_flags_a_much_hotter_station_not_a_normal_one(inputs):
    reference = inputs[inputs["time_utc"] < ts("2013-09-01")]
    july = inputs[
        (inputs["time_utc"] >= ts("2013-07-10")) & (inputs["time_utc"] < ts("2013-07-11"))
    ]
    hot = july[july["station"] == "EWR"].assign(station="HOT")
    hot["temp_c"] += 15
    hot["humidity_pct"] = (hot["humidity_pct"] + 20).clip(upper=100)
    hot["di_now"] = discomfort_index(hot["temp_c"].to_numpy(), hot["humidity_pct"].to_numpy())
    table = mon.domain_table(reference, pd.concat([july, hot]), known_stations=["EWR", "JFK"])
    shares = table.set_index("station")["out_of_domain_share"]
    assert shares["HOT"] > 0.5 and shares[["EWR", "JFK", "LGA"]].max() == 0
    assert not table.set_index("station").loc["HOT", "known_station"]
    finding = mon.domain_finding(table, "v", max_share=0.1, min_samples=24)
    assert not finding.passed and finding.station == "HOT" and finding.figure > 0.5
    quiet = mon.domain_finding(mon.domain_table(reference, july), "v")
    assert quiet.passed and quiet.judged
    few = mon.domain_finding(table, "v", min_samples=10_000)
    assert few.passed and not few.judged and "not judged" in few.message
    nothing = mon.drift_finding(pd.DataFrame(columns=["drifted", "shift_z"]), "v")
    assert nothing.passed and not nothing.judged


# --- performance ------------------------------------------------------------------------
def _log(actual, prediction, persistence, station="JFK", version="v1", pending=0):
    """Hourly forecasts from 2013-07-01 (so 24 rows cover one day)."""
    n = len(actual)
    return pd.DataFrame(
        {
            "valid_at": pd.date_range("2013-07-01", periods=n + pending, freq="h", tz=UTC),
            "station": [station] * (n + pending),
            "model_version": [version] * (n + pending),
            "actual": [*actual, *[np.nan] * pending],
            "prediction": [*prediction, *[70.0] * pending],
            "persistence": [*persistence, *[70.0] * pending],
            "actual_source": ["weather"] * n + ["pending"] * pending,
        }
    )


def test_performance_per_station_and_version_with_skill_against_persistence():
    actual = np.full(30, 70.0)
    good = _log(actual, actual + 1.0, actual + 2.0, station="JFK", pending=5)
    bad = _log(actual, actual + 3.0, actual + 2.0, station="HOT")
    table = mon.performance_table(pd.concat([good, bad])).set_index("station")
    assert table.loc["JFK", "rmse"] == pytest.approx(1.0)
    assert table.loc["JFK", "skill"] == pytest.approx(0.5)
    assert table.loc["JFK", "pending"] == 5 and table.loc["JFK", "rows"] == 30
    assert table.loc["HOT", "skill"] == pytest.approx(-0.5)
    assert table.loc["HOT", "bias"] == pytest.approx(3.0)
    assert table.loc[mon.ALL, "rows"] == 60
    assert table.loc["JFK", "days"] == 2  # 30 hourly forecasts from midnight


def test_an_hour_asked_for_again_and_again_counts_once():
    """A client retrying one badly forecast hour thirty times must not make a station look
    decayed on its own: each model's station-hour counts once, its newest forecast."""
    actual = np.full(24, 70.0)
    day = _log(actual, actual + 1.0, actual + 2.0).assign(
        created_at=pd.Timestamp("2013-07-01", tz=UTC)
    )
    retried = pd.concat([day.iloc[[5]]] * 30).assign(
        prediction=80.0, created_at=pd.Timestamp("2013-07-02", tz=UTC)
    )
    table = mon.performance_table(pd.concat([day, retried])).set_index("station")
    assert table.loc["JFK", "rows"] == 24
    expected = np.sqrt((23 * 1.0**2 + 10.0**2) / 24)  # the newest forecast of hour 5 counts
    assert table.loc["JFK", "rmse"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("production_rmse", "passed"), [(2.0, True), (2.19, True), (2.21, False), (3.0, False)]
)
def test_the_seed_rule_rmse_above_holdout_times_1_1(production_rmse, passed):
    actual = np.full(48, 70.0)
    table = mon.performance_table(_log(actual, actual + production_rmse, actual + 5))
    finding = mon.rmse_decay(table, "v1", holdout_rmse=2.0, factor=1.1)
    assert finding.passed is passed
    assert finding.threshold == pytest.approx(2.2)
    assert finding.figure == pytest.approx(production_rmse)
    assert "v1" in finding.message


def test_the_seed_rule_waits_for_a_full_window_of_days():
    """One bad day is not judged when the rule asks for a week; the same errors over a
    week are, and a week as good as the holdout stays quiet."""
    day, week = np.full(24, 70.0), np.full(24 * 7, 70.0)
    one_day = mon.performance_table(_log(day, day + 3.0, day + 5))
    finding = mon.rmse_decay(one_day, "v1", holdout_rmse=2.0, min_days=7)
    assert finding.passed and not finding.judged and np.isnan(finding.figure)
    assert "1 day(s)" in finding.message and "not judged" in finding.message
    assert not mon.rmse_decay(one_day, "v1", holdout_rmse=2.0, min_days=1).passed
    bad_week = mon.performance_table(_log(week, week + 3.0, week + 5))
    finding = mon.rmse_decay(bad_week, "v1", holdout_rmse=2.0, min_days=7)
    assert not finding.passed and finding.figure == pytest.approx(3.0)
    assert "7 days" in finding.message
    good_week = mon.performance_table(_log(week, week + 2.0, week + 5))
    assert mon.rmse_decay(good_week, "v1", holdout_rmse=2.0, min_days=7).passed


def _card(version, holdout_rmse, judged=None, champion_rmse=None, holdout_end=None):
    """A model card; ``judged``: the champion it was judged against on a holdout ending
    ``holdout_end``, which scored that champion ``champion_rmse``."""
    card = {"version": version, "metrics": {"holdout_rmse": holdout_rmse}}
    if judged:
        card["promotion"] = {
            "promoted": False,
            "champion_before": judged,
            "champion_rmse": champion_rmse,
        }
        card["holdout_window"] = {"start": "2013-01-01", "end": holdout_end}
    return card


def test_the_champions_holdout_rmse_is_the_freshest_the_promotion_gate_measured():
    champion = _card("v1", 2.0)
    assert mon.latest_holdout_rmse("v1", champion, []) == (2.0, "v1's own holdout")
    later = [
        _card("v3", 2.4, judged="v1", champion_rmse=2.5, holdout_end="2013-11-27T02:00:00+00:00"),
        _card("v2", 2.2, judged="v1", champion_rmse=2.3, holdout_end="2013-11-13T02:00:00+00:00"),
        _card("v4", 1.9, judged="v0", champion_rmse=9.9, holdout_end="2013-12-27T02:00:00+00:00"),
        {"version": "v5", "metrics": {"holdout_rmse": 2.1}},  # a card of older code
    ]
    figure, source = mon.latest_holdout_rmse("v1", champion, later)
    assert figure == 2.5 and "2013-11-27" in source and "v3" in source
    # a challenger that could not score the champion (another horizon) leaves the figure
    unscored = _card("v6", 2.0, judged="v1", champion_rmse=None, holdout_end="2013-12-30")
    assert mon.latest_holdout_rmse("v1", champion, [unscored])[0] == 2.0


def test_the_reference_window_runs_from_training_to_the_end_of_the_holdout():
    card = {
        "training_window": {"start": "2013-01-05T00:00:00+00:00", "end": "2013-03-04T02:00:00"},
        "holdout_window": {"start": "2013-03-18T00:00:00+00:00", "end": "2013-04-01T02:00:00"},
    }
    assert mon.reference_window(card) == (ts("2013-01-05"), ts("2013-04-01 02:00"))
    del card["holdout_window"]
    assert mon.reference_window(card) == (ts("2013-01-05"), ts("2013-03-04 02:00"))
    assert mon.reference_window({}) == (None, None)


def test_decay_is_not_judged_on_too_few_forecasts():
    actual = np.full(5, 70.0)
    table = mon.performance_table(_log(actual, actual + 9, actual))
    for finding in (mon.rmse_decay(table, "v1", 2.0), mon.skill_decay(table, "v1", min_rows=24)):
        assert finding.passed and not finding.judged
    assert mon.rmse_decay(table, "v1", 2.0, min_rows=5).judged


def test_skill_decay_names_the_worst_station():
    actual = np.full(30, 70.0)
    table = mon.performance_table(
        pd.concat(
            [
                _log(actual, actual + 1, actual + 2, station="JFK"),
                _log(actual, actual + 2.1, actual + 2, station="HOT"),
            ]
        )
    )
    finding = mon.skill_decay(table, "v1", min_skill=0.0)
    assert not finding.passed and finding.station == "HOT" and finding.figure < 0


def test_actuals_come_from_the_weather_then_feedback_else_pending():
    clean = pd.DataFrame(
        {
            "station": ["JFK"] * 3,
            "time_utc": pd.date_range("2013-07-01 00:00", periods=3, freq="h", tz=UTC),
            "temp_c": [30.0, 31.0, 32.0],
            "humidity_pct": [50.0, 50.0, 50.0],
        }
    )
    predictions = pd.DataFrame(
        {
            "station": ["JFK", "JFK", "JFK"],
            "valid_at": pd.to_datetime(
                ["2013-07-01 02:00", "2013-07-01 06:00", "2013-07-01 07:00"], utc=True
            ),
            "horizon_h": [2, 3, 3],
            "features": [{"di_now": 1.0}, '{"di_now": 77.5}', {"di_now": None}],
            "prediction": [80.0, 80.0, 80.0],
            "actual_di": [np.nan, 79.0, np.nan],
        }
    )
    log = mon.join_actuals(predictions, clean)
    assert log["actual_source"].tolist() == ["weather", "feedback", "pending"]
    assert log["actual"].iloc[0] == pytest.approx(discomfort_index(32.0, 50.0))
    # persistence is DI at the origin (valid_at − h) from the weather, else the logged di_now
    assert log["persistence"].iloc[0] == pytest.approx(discomfort_index(30.0, 50.0))
    assert log["persistence"].iloc[1] == pytest.approx(77.5)
    assert np.isnan(log["persistence"].iloc[2])


# --- the retraining rule ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("failed", "retrain"),
    [
        ([], False),
        (["seasonal_drift"], False),
        (["rmse_vs_holdout"], True),
        (["skill_vs_persistence", "seasonal_drift"], True),
        (["input_domain"], True),
    ],
)
def test_drift_alone_never_retrains(failed, retrain):
    assert (mon.retrain_reason(failed) is not None) is retrain


# --- data quality -----------------------------------------------------------------------
def test_run_lengths_and_robust_z():
    assert mon.run_lengths([1, 1, 1, 2, np.nan, np.nan, 3]).tolist() == [3, 3, 3, 1, 0, 0, 1]
    z = mon.robust_z([0, 1, -1, 0, 1, -1, 0, 50])
    assert abs(z[-1]) > 20 and np.abs(z[:-1]).max() < 2


def _quality(clean: pd.DataFrame, day: str, quarantine: pd.DataFrame | None = None):
    start = ts(day)
    history = clean[
        (clean["time_utc"] >= start - pd.Timedelta(days=28))
        & (clean["time_utc"] < start + pd.Timedelta(days=1))
    ]
    empty = pd.DataFrame(columns=["station", "time_utc", "reason"])
    return mon.quality_table(
        history, quarantine if quarantine is not None else empty, start,
        start + pd.Timedelta(days=1),
    ).set_index("station")  # fmt: skip


def test_a_clean_day_is_complete_unstuck_and_quiet(bundled_clean):
    table = _quality(bundled_clean.clean, "2013-07-10")
    assert (table["completeness"] == 1).all()
    assert table["stuck_temp_c_hours"].max() < 24 and table["anomalies"].max() < 4
    assert table["implausible_jumps"].sum() == 0


def test_anomalies_wait_for_a_week_of_history(bundled_clean):
    """On the data's first day a z-score against that day alone flagged ordinary changes."""
    first = _quality(bundled_clean.clean, "2013-01-01")
    assert (first["anomalies"] == 0).all() and (first["history_hours"] == 0).all()
    week = _quality(bundled_clean.clean, "2013-01-09")
    assert (week["history_hours"] >= mon.MIN_ANOMALY_HISTORY_HOURS).all()


def test_quality_finds_the_real_spike_a_stuck_sensor_a_missing_day_and_a_burst(bundled_clean):
    clean = bundled_clean.clean.copy()
    # the bundled data's own defect: JFK reads −10.5 °C at 02Z on 9 May between 13.9 and 14.0
    spike = _quality(clean, "2013-05-09")
    assert spike.loc["JFK", "implausible_jumps"] >= 2 and spike.loc["JFK", "anomalies"] >= 2

    hours = clean["time_utc"]
    ewr = clean["station"] == "EWR"
    stuck = clean.copy()
    stuck.loc[ewr & (hours >= ts("2013-07-08")), "humidity_pct"] = 63.0
    assert _quality(stuck, "2013-07-10").loc["EWR", "stuck_humidity_pct_hours"] >= 48

    missing = clean.copy()
    day = (hours >= ts("2013-07-10")) & (hours < ts("2013-07-11"))
    missing.loc[ewr & day, ["temp_c", "humidity_pct"]] = np.nan
    missing.loc[ewr & day, "observed"] = False
    table = _quality(missing, "2013-07-10")
    assert table.loc["EWR", "completeness"] == 0 and table.loc["EWR", "missing_di_hours"] == 24

    burst = clean.copy()
    noon = pd.date_range("2013-07-10 08:00", periods=6, freq="2h", tz=UTC)
    burst.loc[ewr & hours.isin(noon), "temp_c"] += 12  # a record stitched from another day
    assert _quality(burst, "2013-07-10").loc["EWR", "anomalies"] >= 4
