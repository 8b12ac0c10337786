"""Guards that keep a forecast honest, each shown to refuse what it must refuse:
skops loading only expected types, past-only baselines, and the split embargo."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from comfort_assets.domain.baselines import BASELINES, baseline_forecasts
from comfort_assets.domain.features import HORIZONS, build_features
from comfort_assets.domain.modeling import ForecastModel, TrainingData, fit_model
from comfort_assets.domain.splits import SplitWindows, chronological_split
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.registry import ModelRegistry

NAMES = ["a", "b", "c", "d"]


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(store=LocalObjectStore(root=str(tmp_path / "store")))


@pytest.fixture(scope="module")
def data() -> tuple[TrainingData, TrainingData]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(NAMES)))
    y = x[:, 0] - 0.5 * x[:, 1] + rng.normal(0, 0.1, 300)
    return TrainingData(x[:240], y[:240], np.zeros(240)), TrainingData(
        x[240:], y[240:], np.zeros(60)
    )


class Member:
    """A class of our own: nothing in a model file should ever need it."""

    def predict(self, features):
        return features[:, 0]


def _model_with(member) -> ForecastModel:
    return ForecastModel(family="ridge", feature_names=NAMES, horizon_h=3, members=[member])


# --- skops: only the types the model families produce are loaded --------------------------
@pytest.mark.parametrize("family", ["ridge", "random_forest"])
def test_scikit_learn_models_round_trip_through_skops(registry, data, family):
    train, validation = data
    model = fit_model(family, train, validation, NAMES, 3, seed=0, params={})
    version = registry.register(model, {})
    loaded, card = registry.load(version)
    assert set(card["sha256"]) == {"model.json", "member-0.skops"}
    assert np.allclose(
        loaded.predict_change(validation.features), model.predict_change(validation.features)
    )


@pytest.mark.parametrize(
    ("member", "named"),
    [
        (make_pipeline(FunctionTransformer(func=os.system), Ridge()), "system"),
        (Member(), "comfort_assets_tests.test_guards.Member"),
    ],
    ids=["os-system-in-a-pipeline", "own-class"],
)
def test_registry_refuses_a_skops_member_with_an_unexpected_type(registry, member, named):
    """The files are the registered ones (their sha256 matches): the type check refuses."""
    version = registry.register(_model_with(member), {})
    with pytest.raises(ValueError, match=rf"refusing to load unexpected types \[.*{named}"):
        registry.load(version)


def test_registry_refuses_a_numpy_function_reference(registry):
    member = make_pipeline(FunctionTransformer(func=np.load), Ridge())
    version = registry.register(_model_with(member), {})
    with pytest.raises(ValueError, match="refusing to load unexpected types"):
        registry.load(version)


# --- baselines use nothing after their origin ---------------------------------------------
@pytest.fixture(scope="module")
def summer(bundled_clean) -> pd.DataFrame:
    clean = bundled_clean.clean
    keep = (clean["time_utc"] >= pd.Timestamp("2013-06-01", tz="UTC")) & (
        clean["time_utc"] < pd.Timestamp("2013-08-01", tz="UTC")
    )
    return clean.loc[keep].reset_index(drop=True)


@pytest.mark.parametrize("horizon", HORIZONS)
def test_baseline_forecast_issued_at_t_ignores_weather_after_t(summer, horizon):
    origin = pd.Timestamp("2013-07-15T12:00", tz="UTC")
    later = summer["time_utc"] > origin
    changed = summer.assign(
        temp_c=summer["temp_c"].where(~later, summer["temp_c"] + 6.0),
        humidity_pct=summer["humidity_pct"].where(~later, 100.0),
    )
    before, after = baseline_forecasts(summer, horizon), baseline_forecasts(changed, horizon)
    issued = before["time_utc"] <= origin
    pd.testing.assert_frame_equal(before.loc[issued], after.loc[issued])
    # the change is visible to forecasts issued after the origin: the check could fail
    for name in BASELINES:
        assert not np.allclose(
            before.loc[~issued, name], after.loc[~issued, name], equal_nan=True
        ), name


# --- the split embargo --------------------------------------------------------------------
WINDOWS = SplitWindows.from_dates("2013-09-01", "2013-10-01", "2013-12-01")


@pytest.fixture(scope="module", params=[3, 24], ids=["h3", "h24"])
def features(bundled_clean, request) -> pd.DataFrame:
    return build_features(bundled_clean.clean, request.param)


def _keys(frame: pd.DataFrame) -> set[tuple[str, pd.Timestamp]]:
    return set(zip(frame["station"], frame["time_utc"], strict=True))


def test_no_row_has_its_target_across_a_split_boundary(features):
    splits = chronological_split(features, WINDOWS)
    bounds = {
        "training": (None, WINDOWS.train_end),
        "validation": (WINDOWS.train_end, WINDOWS.validation_end),
        "holdout": (WINDOWS.validation_end, WINDOWS.holdout_end),
    }
    for name, (start, end) in bounds.items():
        split = splits[name]
        assert len(split), name
        assert split["usable"].all(), name
        assert (split["valid_at_utc"] < end).all(), name
        if start is not None:
            assert (split["time_utc"] >= start).all(), name
    assert WINDOWS.problems(splits) == []

    # the rows that straddle a boundary are in no split; every other usable row is in one
    usable = features[features["usable"]]
    straddling = pd.Series(False, index=usable.index)
    for boundary in (WINDOWS.train_end, WINDOWS.validation_end, WINDOWS.holdout_end):
        straddling |= (usable["time_utc"] < boundary) & (usable["valid_at_utc"] >= boundary)
    horizon = int(usable["horizon_h"].iloc[0])
    assert straddling.sum() == 3 * 3 * horizon  # three stations, three boundaries
    placed = [_keys(split) for split in splits.values()]
    assert not _keys(usable[straddling]) & set().union(*placed)
    inside = usable[~straddling & (usable["valid_at_utc"] < WINDOWS.holdout_end)]
    assert sum(len(p) for p in placed) == len(inside)


def test_a_target_reaching_into_the_next_split_is_reported(features):
    splits = chronological_split(features, WINDOWS)
    usable = features[features["usable"]]
    leak = usable[
        (usable["time_utc"] < WINDOWS.train_end) & (usable["valid_at_utc"] > WINDOWS.train_end)
    ].head(1)
    leaky = {**splits, "training": pd.concat([splits["training"], leak], ignore_index=True)}
    assert WINDOWS.problems(leaky) == ["training targets reach into validation"]
