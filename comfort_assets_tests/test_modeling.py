"""Serving an XGBoost ensemble fused (one booster, in ONNX Runtime) must not change a
forecast, whatever the batch size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from comfort_assets.domain.modeling import (
    OnnxTrees,
    TrainingData,
    average,
    fit_model,
)

FAST = {"n_estimators": 40, "learning_rate": 0.3, "early_stopping_rounds": 5}


def _data(seed: int, n: int = 400) -> TrainingData:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 5))
    features[rng.random(features.shape) < 0.1] = np.nan  # optional inputs go missing
    change = np.nan_to_num(features[:, 0]) * 2 - np.nan_to_num(features[:, 1]) ** 2
    return TrainingData(features, change + rng.normal(0, 0.1, n), rng.normal(20, 3, n))


@pytest.fixture(scope="module")
def ensemble():
    train, validation = _data(0), _data(1)
    names = [f"f{i}" for i in range(5)]
    members = [fit_model("xgboost", train, validation, names, 3, seed, FAST) for seed in (0, 1, 2)]
    return average(members)


@pytest.mark.parametrize("rows", [1, 64, 400])
def test_fused_ensemble_forecasts_the_members_mean(ensemble, rows):
    fused = ensemble.fused()
    assert len(ensemble.members) == 3 and len(fused.members) == 1
    x = _data(2).features[:rows]
    np.testing.assert_allclose(fused.predict_change(x), ensemble.predict_change(x), atol=1e-5)
    assert (fused.feature_names, fused.horizon_h, fused.seeds) == (
        ensemble.feature_names,
        ensemble.horizon_h,
        ensemble.seeds,
    )


def test_onnx_trees_split_each_tree_as_xgboost_does(ensemble):
    booster = ensemble.members[0]
    trees = OnnxTrees.from_booster(booster)
    x = _data(3).features
    x[:, 2] = np.inf  # beyond every threshold: always the right child
    x[0] = np.nan  # every value missing: always the default child
    x[1, 1] = -np.inf
    tree = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]
    root = tree["model"]["trees"][0]
    x[2:10, root["split_indices"][0]] = root["split_conditions"][0]  # a tie: not less: right
    np.testing.assert_allclose(trees.predict(x), booster.inplace_predict(x), atol=1e-5)
    assert trees.predict(x[:0]).shape == (0,)


def test_a_single_booster_is_served_by_onnx_other_families_as_they_are(ensemble):
    data = _data(0)
    ridge = fit_model("ridge", data, data, [f"f{i}" for i in range(5)], 3)
    single = fit_model("xgboost", data, _data(1), [f"f{i}" for i in range(5)], 3, 0, FAST)
    assert ridge.fused() is ridge
    (served,) = single.fused().members
    assert isinstance(served, OnnxTrees)
    x = _data(4).features
    np.testing.assert_allclose(served.predict(x), single.members[0].inplace_predict(x), atol=1e-5)


def test_a_mixed_ensemble_serves_each_booster_by_onnx_and_keeps_the_weights(ensemble):
    data = _data(0)
    ridge = fit_model("ridge", data, data, [f"f{i}" for i in range(5)], 3)
    mixed = average([ensemble, ridge])  # three boosters and a ridge: a quarter each
    served = mixed.fused()
    assert [type(m) for m in served.members] == [OnnxTrees] * 3 + [type(ridge.members[0])]
    x = _data(5).features
    np.testing.assert_allclose(served.predict_change(x), mixed.predict_change(x), atol=1e-5)


def test_a_booster_with_a_link_function_is_refused_not_served_wrong():
    data = _data(0)
    booster = xgb.train(
        {"objective": "reg:logistic", "max_depth": 2},
        xgb.DMatrix(data.features, label=(data.change > 0).astype(float)),
        num_boost_round=3,
    )
    with pytest.raises(ValueError, match="reg:logistic"):
        OnnxTrees.from_booster(booster)
