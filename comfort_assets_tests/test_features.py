import numpy as np
import pandas as pd
import pytest

from comfort_assets.domain.cleaning import clean_days, clean_observations
from comfort_assets.domain.comfort import discomfort_index
from comfort_assets.domain.features import (
    HISTORY_DAYS,
    OBSERVED,
    WINDOW_HOURS,
    build_features,
    build_features_valid_between,
    feature_names,
    window_feature_matrix,
)


def _series(hours: int = 300, station: str = "X", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    return pd.DataFrame(
        {
            "station": station,
            "time_utc": pd.date_range("2013-06-01", periods=hours, freq="h", tz="UTC"),
            "temp_c": 22 + 6 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, hours),
            "humidity_pct": np.clip(
                60 + 20 * np.cos(2 * np.pi * t / 24) + rng.normal(0, 2, hours), 5, 100
            ),
            "pressure_hpa": 1010 + rng.normal(0, 1, hours),
            "wind_speed_ms": np.abs(rng.normal(3, 1, hours)),
            "wind_dir_deg": rng.uniform(0, 360, hours),
        }
    )


@pytest.mark.parametrize("horizon", [1, 3, 6, 24])
def test_target_is_di_at_t_plus_h(horizon):
    series = _series()
    features = build_features(series, horizon)
    di = discomfort_index(series["temp_c"].to_numpy(), series["humidity_pct"].to_numpy())
    assert np.allclose(features["di_target"].to_numpy()[:-horizon], di[horizon:])
    assert features["di_target"].iloc[-horizon:].isna().all()
    assert (features["valid_at_utc"] - features["time_utc"] == pd.Timedelta(hours=horizon)).all()
    assert np.allclose(features["di_now"].dropna(), di[WINDOW_HOURS - 1 :])


def test_features_at_t_use_nothing_after_t():
    series = _series()
    before = build_features(series, 3)
    origin = WINDOW_HOURS + 50
    changed = series.copy()
    changed.loc[origin + 1 :, list(OBSERVED)] += 7.0
    after = build_features(changed, 3)
    names = feature_names(3)
    # every row up to and including the origin is unchanged; the target did change
    pd.testing.assert_frame_equal(before.loc[:origin, names], after.loc[:origin, names])
    assert not np.isclose(before.loc[origin, "di_target"], after.loc[origin, "di_target"])


def test_first_rows_without_a_full_window_are_kept_but_not_usable():
    features = build_features(_series(), 3)
    assert not features.loc[: WINDOW_HOURS - 2, "usable"].any()
    assert features.loc[WINDOW_HOURS - 1 : len(features) - 4, "usable"].all()


def test_gap_in_the_window_makes_the_row_unusable():
    series = _series()
    series.loc[100, "temp_c"] = np.nan
    features = build_features(series, 3)
    affected = features.loc[100 : 100 + WINDOW_HOURS - 1]
    assert not affected["usable"].any()
    assert features.loc[100 + WINDOW_HOURS, "usable"]


def test_single_window_batch_and_series_paths_agree():
    series = pd.concat([_series(station="A", seed=1), _series(station="B", seed=2)])
    training = build_features(series, 6).set_index(["station", "time_utc"])
    origins = [("A", WINDOW_HOURS + 3), ("A", 250), ("B", 180)]
    windows, hours, expected = [], [], []
    for station, index in origins:
        block = series[series["station"] == station].iloc[index - WINDOW_HOURS + 1 : index + 1]
        windows.append({name: block[name].to_numpy() for name in OBSERVED})
        stamp = block["time_utc"].iloc[-1]
        hours.append(stamp.hour)
        expected.append(training.loc[(station, stamp), feature_names(6)].to_numpy(dtype=float))
    batch = window_feature_matrix(
        {name: np.stack([w[name] for w in windows]) for name in OBSERVED}, np.array(hours), 6
    )
    for i, window in enumerate(windows):
        single = window_feature_matrix(window, hours[i], 6)
        assert np.allclose(single[0], expected[i], equal_nan=True)
        assert np.allclose(batch[i], expected[i], equal_nan=True)


def test_wrong_window_length_and_horizon_are_named():
    with pytest.raises(ValueError, match="shape"):
        window_feature_matrix({"temp_c": np.ones(10), "humidity_pct": np.ones(10)}, 0, 3)
    with pytest.raises(ValueError, match="horizon"):
        build_features(_series(), 5)


def test_a_hole_in_the_time_grid_is_refused():
    series = _series().drop(index=50)
    with pytest.raises(ValueError, match="hourly grid"):
        build_features(series, 3)


def test_hotter_and_more_humid_window_never_lowers_current_di():
    series = _series()
    base = build_features(series, 3)
    hotter = series.assign(
        temp_c=series["temp_c"] + 2, humidity_pct=np.minimum(series["humidity_pct"] + 5, 100)
    )
    warm = build_features(hotter, 3)
    usable = base["usable"]
    assert (warm.loc[usable, "di_now"] >= base.loc[usable, "di_now"]).all()


def test_optional_observations_may_be_absent_but_required_ones_may_not():
    series = _series().drop(columns=["wind_dir_deg", "pressure_hpa"])
    features = build_features(series, 3)
    assert features["usable"].sum() > 0
    assert features["wind_u"].isna().all() and features["pressure_change_3h"].isna().all()
    with pytest.raises(ValueError, match="humidity_pct"):
        build_features(_series().drop(columns=["humidity_pct"]), 3)


# --- daily partitions: a day built from its neighbours equals the whole history -----------
def _day_of_clean(raw: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """clean_weather's partition ``day``: the raw rows of the day and its neighbours."""
    times = pd.to_datetime(raw["time_utc"], utc=True)
    near = raw[(times >= day - pd.Timedelta(days=1)) & (times < day + pd.Timedelta(days=2))]
    return clean_days(near, day, day + pd.Timedelta(days=1)).clean


def _day_of_features(raw: pd.DataFrame, day: pd.Timestamp, horizon: int) -> pd.DataFrame:
    """comfort_features' partition ``day`` from the clean partitions it maps to."""
    history = [day - pd.Timedelta(days=d) for d in range(HISTORY_DAYS, -1, -1)]
    clean = pd.concat([_day_of_clean(raw, d) for d in history], ignore_index=True)
    return build_features_valid_between(clean, horizon, day, day + pd.Timedelta(days=1))


def _by_key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["station", "time_utc"]).reset_index(drop=True)


@pytest.mark.parametrize("horizon", [3, 24])
def test_a_day_of_features_equals_the_whole_history_build(bundled_raw, bundled_clean, horizon):
    """Days at both ends of the year, around its longest gaps and through the year."""
    whole = build_features(bundled_clean.clean, horizon)
    days = pd.to_datetime(
        ["2013-01-01", "2013-01-02", "2013-01-05", "2013-01-06", "2013-12-30", "2013-12-31"]
        + [f"2013-{month:02d}-15" for month in range(2, 13)],
        utc=True,
    )
    for day in days:
        mine = _day_of_features(bundled_raw, day, horizon)
        valid_at = whole["valid_at_utc"]
        expected = whole[(valid_at >= day) & (valid_at < day + pd.Timedelta(days=1))]
        assert len(mine) == len(expected), day
        pd.testing.assert_frame_equal(_by_key(mine), _by_key(expected))


def test_every_day_of_clean_weather_equals_the_whole_history_cleaning(bundled_raw, bundled_clean):
    days = pd.date_range("2013-01-01", "2013-12-31", freq="D", tz="UTC")
    daily = pd.concat([_day_of_clean(bundled_raw, d) for d in days], ignore_index=True)
    pd.testing.assert_frame_equal(_by_key(daily), _by_key(bundled_clean.clean), check_dtype=False)


def test_a_station_silent_for_days_leaves_missing_hours_not_a_broken_grid(bundled_raw):
    """Silent longer than cleaning's context: while it is silent its days have no rows to
    learn from either way; once it reports again the hours between are put back as missing,
    so the days after equal the whole history's."""
    times = pd.to_datetime(bundled_raw["time_utc"], utc=True)
    silent = (bundled_raw["station"] == "EWR") & (times >= pd.Timestamp("2013-07-09", tz="UTC"))
    silent &= times < pd.Timestamp("2013-07-12", tz="UTC")
    raw = bundled_raw[~silent].reset_index(drop=True)
    whole = build_features(clean_observations(raw).clean, 3)
    for day in pd.date_range("2013-07-09", "2013-07-16", freq="D", tz="UTC"):
        mine = _day_of_features(raw, day, 3)
        valid_at = whole["valid_at_utc"]
        expected = whole[(valid_at >= day) & (valid_at < day + pd.Timedelta(days=1))]
        if day < pd.Timestamp("2013-07-12", tz="UTC"):
            mine, expected = mine[mine["usable"]], expected[expected["usable"]]
        pd.testing.assert_frame_equal(_by_key(mine), _by_key(expected))


def test_gaps_longer_than_a_day_of_context_are_refused(bundled_raw):
    day = pd.Timestamp("2013-07-01", tz="UTC")
    with pytest.raises(ValueError, match="max_gap_hours=25"):
        clean_days(bundled_raw, day, day + pd.Timedelta(days=1), max_gap_hours=25)
