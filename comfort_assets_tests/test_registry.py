"""The model registry on the local store and on a real S3-compatible server."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from dagster_aws.s3 import S3Resource

from comfort_assets.domain.modeling import TrainingData, fit_model
from comfort_assets.resources.object_store import LocalObjectStore, S3ObjectStore
from comfort_assets.resources.registry import (
    ModelIntegrityError,
    ModelNotFoundError,
    ModelRegistry,
)


@pytest.fixture(params=["local", "s3"])
def registry(request, tmp_path) -> ModelRegistry:
    if request.param == "local":
        return ModelRegistry(store=LocalObjectStore(root=str(tmp_path / "store")))
    store = S3ObjectStore(
        s3=S3Resource(endpoint_url=request.getfixturevalue("s3_endpoint")),
        bucket=request.getfixturevalue("s3_bucket"),
    )
    return ModelRegistry(store=store)


@pytest.fixture(scope="module")
def small_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4))
    y = x[:, 0] - 0.5 * x[:, 1] + rng.normal(0, 0.1, 600)
    train = TrainingData(x[:500], y[:500], np.zeros(500))
    validation = TrainingData(x[500:], y[500:], np.zeros(100))
    model = fit_model(
        "xgboost", train, validation, ["a", "b", "c", "d"], 3, seed=0, params={"n_estimators": 50}
    )
    return model, validation


def test_register_load_round_trip_keeps_predictions(registry, small_model):
    model, validation = small_model
    version = registry.register(model, {"metrics": {"holdout_rmse": 1.0}, "stations": ["X"]})
    assert version == "weather-predictor-001"
    loaded, card = registry.load(version)
    assert np.allclose(
        loaded.predict_change(validation.features), model.predict_change(validation.features)
    )
    assert card["feature_names"] == ["a", "b", "c", "d"]
    assert set(card["sha256"]) == {"model.json", "member-0.ubj"}
    assert registry.versions() == [version]


def test_concurrent_registrations_never_share_a_version(registry, small_model):
    model, _ = small_model
    with ThreadPoolExecutor(max_workers=6) as pool:
        versions = list(pool.map(lambda i: registry.register(model, {"run": i}), range(6)))
    assert sorted(versions) == [f"weather-predictor-{n:03d}" for n in range(1, 7)]
    assert registry.versions() == sorted(versions)


def test_tampered_model_is_refused(registry, small_model):
    model, _ = small_model
    version = registry.register(model, {})
    registry.store.put_bytes(f"models/{version}/member-0.ubj", b"not the model")
    with pytest.raises(ModelIntegrityError, match=r"member-0\.ubj: sha256 .* does not match"):
        registry.load(version)


def test_promote_and_rollback_move_only_the_pointer(registry, small_model):
    model, _ = small_model
    first, second, third = (registry.register(model, {}) for _ in range(3))
    with pytest.raises(ModelNotFoundError):
        registry.rollback()
    registry.promote(first)
    registry.promote(second)
    registry.promote(third)
    assert registry.champion() == third
    assert registry.rollback()["version"] == second
    assert registry.rollback()["version"] == first
    with pytest.raises(ModelNotFoundError, match="no previous champion"):
        registry.rollback()
    assert registry.rollback(third)["version"] == third
    assert registry.versions() == [first, second, third]  # nothing was deleted


def test_unknown_version_is_a_clear_error(registry):
    with pytest.raises(ModelNotFoundError, match="weather-predictor-042"):
        registry.load("weather-predictor-042")
    with pytest.raises(ValueError, match="not a model version name"):
        registry.promote("latest")


def test_the_pointer_only_ever_names_a_model_that_loads(registry, small_model):
    """A card listing no file, or not a file a member needs, and a missing file: each was
    promoted, and the Bento build failed with the champion already moved."""
    import json

    model, _ = small_model
    good, unlisted, missing = (registry.register(model, {}) for _ in range(3))
    registry.promote(good)
    card = registry.card(unlisted)
    del card["sha256"]["member-0.ubj"]
    registry.store.put_bytes(f"models/{unlisted}/card.json", json.dumps(card).encode())
    card = registry.card(missing)
    card["sha256"]["calibration.bin"] = "0" * 64  # listed, never written
    registry.store.put_bytes(f"models/{missing}/card.json", json.dumps(card).encode())
    for version in (unlisted, missing):
        with pytest.raises(ModelIntegrityError, match=version):
            registry.promote(version)
        with pytest.raises(ModelIntegrityError, match=version):
            registry.rollback(version)
    assert registry.champion() == good


def test_a_damaged_history_is_not_carried_on(registry, small_model):
    import json

    model, _ = small_model
    first, second = (registry.register(model, {}) for _ in range(2))
    damaged = {"version": first, "history": [None, 5, first]}
    registry.store.put_bytes("models/champion.json", json.dumps(damaged).encode())
    assert registry.promote(second)["history"] == [first, first]
    registry.store.put_bytes("models/champion.json", b'{"version": 3, "history": 5}')
    assert registry.promote(first)["history"] == []
