"""Serving pieces in process: champion reload, integrity, the contract; and the `bento` asset."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dagster as dg
import httpx
import numpy as np
import pandas as pd
import pytest

from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.resources.registry import ModelIntegrityError
from comfort_assets.serving.app_fastapi import pandas_features
from comfort_assets.serving.core import Forecaster, NoChampionError, request_payload
from comfort_assets.serving.schemas import ForecastRequest
from comfort_assets_tests.serving_fixtures import (
    bento_server,
    register_champion,
    registry_at,
)

ORIGIN = pd.Timestamp("2013-02-10T06:00", tz="UTC")


@pytest.fixture(scope="module")
def clean(bundled_clean) -> pd.DataFrame:
    return bundled_clean.clean


@pytest.fixture
def home(tmp_path, clean) -> Path:
    register_champion(tmp_path, clean, seed=0, trees=20)
    return tmp_path


def forecaster(home: Path) -> Forecaster:
    store = PredictionStore(url=f"sqlite:///{home / 'predictions.db'}")
    return Forecaster(registry_at(home), store, reload_seconds=0)


def requests_for(clean: pd.DataFrame, n: int) -> list[ForecastRequest]:
    return [
        ForecastRequest.model_validate(
            request_payload(clean, ["EWR", "JFK", "LGA"][i % 3], ORIGIN + pd.Timedelta(hours=i))
        )
        for i in range(n)
    ]


def test_refresh_follows_the_pointer_not_the_newest_file(home, clean):
    served = forecaster(home)
    try:
        first = served.champion.version
        registry = registry_at(home)
        newer = register_champion(home, clean, seed=1, trees=20)
        registry.rollback()  # newest file is `newer`, but the pointer is back on `first`
        assert not served.refresh() and served.champion.version == first
        registry.promote(newer)
        assert served.refresh() and served.champion.version == newer
    finally:
        served.close()


def test_a_tampered_champion_is_refused_and_the_old_one_keeps_serving(home, clean):
    served = forecaster(home)
    try:
        first = served.champion.version
        newer = register_champion(home, clean, seed=1, trees=20)
        member = home / "store" / "models" / newer / "member-0.ubj"
        member.write_bytes(member.read_bytes() + b"tampered")
        with pytest.raises(ModelIntegrityError):
            served.refresh()
        assert served.champion.version == first
    finally:
        served.close()


def test_no_champion_is_a_clear_error(tmp_path):
    with pytest.raises(NoChampionError, match="comfort run"):
        forecaster(tmp_path)


def test_batched_numpy_and_per_request_pandas_features_agree(home, clean):
    served = forecaster(home)
    try:
        requests = requests_for(clean, 7)
        batched = served.features(requests, 3)
        assert np.allclose(batched, pandas_features(requests, 3), equal_nan=True)
        forecasts = asyncio.run(served.predict(requests))
        singles = [asyncio.run(served.predict([r]))[0].di_forecast for r in requests]
        assert np.allclose([f.di_forecast for f in forecasts], singles)
        assert served.store.count() == 14
    finally:
        served.close()


@pytest.mark.slow
def test_bento_asset_builds_a_bento_that_serves_the_champion(home, clean, monkeypatch):
    from comfort_assets.defs.serving.assets import bento

    monkeypatch.setenv("COMFORT_HOME", str(home))
    monkeypatch.setenv("BENTOML_HOME", str(home / "bentoml"))
    registry = registry_at(home)
    version = registry.champion()
    result = bento(dg.build_asset_context(), registry=registry)
    tag = result.metadata["bento_tag"].value
    assert tag == f"comfort_forecast:{version}"
    bento_src = Path(result.metadata["path"].value) / "src"
    assert (bento_src / ".comfort" / "store" / "models" / version / "card.json").exists()

    # `bentoml serve TAG` with no COMFORT_HOME serves the bundled champion
    monkeypatch.delenv("COMFORT_HOME")
    with bento_server(home, target=tag) as url:
        response = httpx.post(
            f"{url}/predict",
            json={"requests": [request_payload(clean, "JFK", ORIGIN)]},
            timeout=30,
        )
    assert response.status_code == 200, response.text
    assert response.json()[0]["model_version"] == version
    assert (bento_src / ".comfort" / "predictions.db").exists()
