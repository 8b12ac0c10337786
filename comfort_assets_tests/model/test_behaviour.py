"""Behaviour tests of a trained model: directional expectations, invariance, minimum
functionality. They check what a correct forecaster must do, not a score, so they catch a
model (or a feature bug) that scores well on average but reacts to inputs the wrong way.

Each runs on real windows from the bundled year through the serving path
(`window_feature_matrix`); thresholds are fractions of windows, because a regression tree
ensemble is piecewise constant and a handful of windows may sit on a split edge.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from comfort_assets.domain.comfort import discomfort_index
from comfort_assets.domain.features import OBSERVED, WINDOW_HOURS, build_features, feature_names
from comfort_assets.domain.modeling import TrainingData
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.serving import schemas
from comfort_assets.serving.core import Forecaster, request_payload
from comfort_assets.serving.schemas import ForecastRequest
from comfort_assets_tests.model.conftest import HORIZON, Windows, forecast

#: A forecast "does not go down" if it falls by less than this (DI points): well below the
#: 0.1 DI resolution at which forecasts are read.
TOLERANCE = 0.05
#: Hours at the end of the window that a perturbation changes (the recent weather).
RECENT_HOURS = 6


def _changed(windows: Windows, name: str, delta: float, upper: float | None = None) -> Windows:
    values = windows.observations[name].copy()
    values[:, -RECENT_HOURS:] += delta
    if upper is not None:
        values = np.minimum(values, upper)
    return windows.replace(name, values)


# --- directional ------------------------------------------------------------------------
def test_hotter_recent_hours_do_not_lower_the_forecast(model, windows):
    """+2 °C over the last 6 h raises DI now; the forecast 3 h later must not fall.
    Measured: 1,199 of 1,200 windows (99.9 %), median rise 2.5 DI."""
    rise = forecast(model, _changed(windows, "temp_c", 2.0)) - forecast(model, windows)
    fraction = float(np.mean(rise >= -TOLERANCE))
    assert fraction >= 0.97, f"only {fraction:.1%} of windows did not lower the forecast"
    assert np.median(rise) > 1.0  # the perturbation matters, it is not absorbed


@pytest.mark.parametrize(
    ("direction", "required"),
    [(+1, 0.97), (-1, 0.90)],
    ids=["warm-raises-di", "cold-lowers-di"],
)
def test_more_humid_recent_hours_move_the_forecast_the_formula_s_way(
    model, windows, direction, required
):
    """+10 % humidity over the last 6 h. Thom's DI rises with humidity above 14.4 °C and
    falls below it (1.8·Ta − 26 changes sign), so the forecast must follow the sign of the
    formula's own change of DI now, where that change is at least 0.5 DI.
    Measured: warm 99.7 % of 389 windows; cold 92.2 % of 399 (in cold air the model partly
    reads humidity as a sign of coming warmth, hence the lower bar)."""
    humid = _changed(windows, "humidity_pct", 10.0, upper=100.0)
    temp = windows.observations["temp_c"][:, -1]
    di_now_change = discomfort_index(temp, humid.observations["humidity_pct"][:, -1]) - (
        discomfort_index(temp, windows.observations["humidity_pct"][:, -1])
    )
    selected = direction * di_now_change >= 0.5
    assert selected.sum() >= 200  # enough windows of that season in the sample
    moved = direction * (forecast(model, humid) - forecast(model, windows))
    fraction = float(np.mean(moved[selected] >= -TOLERANCE))
    assert fraction >= required, f"only {fraction:.1%} of windows followed the formula's sign"


# --- invariance -------------------------------------------------------------------------
def test_station_is_not_a_feature(model):
    assert "station" not in model.feature_names
    assert model.feature_names == feature_names(HORIZON)


@pytest.fixture(scope="module")
def forecaster(model, tmp_path_factory):
    """The service's `Forecaster` on this model (no threads: nothing logged, no reload)."""
    home = tmp_path_factory.mktemp("behaviour-home")
    registry = ModelRegistry(store=LocalObjectStore(root=str(home / "store")))
    version = registry.register(model, {"stations": ["EWR", "JFK", "LGA"]})
    registry.promote(version)
    previous = schemas._contract
    served = Forecaster(
        registry,
        PredictionStore(url=f"sqlite:///{home / 'predictions.db'}"),
        log_predictions=False,
        reload_seconds=0,
    )
    yield served
    served.close()
    schemas.set_contract(previous)


def _request(payload: dict) -> ForecastRequest:
    """Validated as the service validates a body: from JSON."""
    return ForecastRequest.model_validate_json(json.dumps(payload))


def test_station_label_does_not_change_the_forecast(forecaster, clean):
    """The same window sent as EWR, JFK or LGA gets the same forecast from the service."""
    origins = pd.date_range("2013-03-01T05:00", periods=24, freq="37h", tz="UTC")
    payloads = [request_payload(clean, "EWR", t) for t in origins]
    by_label = {}
    for label in ("EWR", "JFK", "LGA"):
        requests = [_request({**p, "station": label}) for p in payloads]
        forecasts, _ = forecaster.forecast(requests)
        by_label[label] = np.array([f.di_forecast for f in forecasts])
    assert np.array_equal(by_label["EWR"], by_label["JFK"])
    assert np.array_equal(by_label["EWR"], by_label["LGA"])
    # while another station's own weather at the same hours does change it
    jfk = [_request(request_payload(clean, "JFK", t)) for t in origins]
    jfk_forecasts = np.array([f.di_forecast for f in forecaster.forecast(jfk)[0]])
    assert not np.allclose(jfk_forecasts, by_label["JFK"])


def test_unused_columns_do_not_change_features_or_forecast(model, clean):
    """Measured dew point, gusts, precipitation and visibility are cleaned but not used: the
    `dewpoint_c` feature is computed from temperature and humidity, not read from the table."""
    unused = ["dewpoint_c", "wind_gust_ms", "precip_mm", "visibility_km"]
    assert not set(unused) & set(OBSERVED)
    spring = clean[clean["time_utc"] < pd.Timestamp("2013-05-01", tz="UTC")]
    rng = np.random.default_rng(1)
    noisy = spring.assign(
        **{c: spring[c] + rng.normal(0, 5, len(spring)) for c in unused},
    )
    names = feature_names(HORIZON)
    before, after = build_features(spring, HORIZON), build_features(noisy, HORIZON)
    pd.testing.assert_frame_equal(before[names], after[names])
    usable = before[before["usable"]]
    a = TrainingData.from_frame(usable, names)
    b = TrainingData.from_frame(after[after["usable"]], names)
    assert np.array_equal(
        model.predict_di(a.features, a.di_now), model.predict_di(b.features, b.di_now)
    )


# --- minimum functionality --------------------------------------------------------------
def test_steady_weather_is_forecast_close_to_its_level(model, features, clean):
    """97 h of constant weather (each a real observed state, at its real hour) has no trend
    and no daily cycle to extrapolate: the model should move it less than weather usually
    moves in 3 h. The band is the data's own: median |forecast − level| below the median
    real 3-h DI change, and none beyond its 95th percentile.
    Measured: median 1.10 vs 1.83, maximum 3.65 vs 6.04."""
    usable = features[features["usable"]]
    real_change = (usable["di_target"] - usable["di_now"]).abs()
    states = clean.dropna(subset=list(OBSERVED)).sample(600, random_state=0)
    steady = Windows(
        {
            n: np.repeat(states[n].to_numpy(dtype=float)[:, None], WINDOW_HOURS, axis=1)
            for n in OBSERVED
        },
        states["time_utc"].dt.hour.to_numpy().astype(float),
        states["station"].to_numpy(dtype=object),
    )
    level = discomfort_index(states["temp_c"].to_numpy(), states["humidity_pct"].to_numpy())
    moved = np.abs(forecast(model, steady) - level)
    assert np.median(moved) < real_change.median()
    assert moved.max() < real_change.quantile(0.95)
