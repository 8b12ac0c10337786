"""The ingested weather `/forecast` builds its windows from, in process: the window it builds
is the one `request_payload` builds, the default is the newest hour, missing data is an error
naming the field, and new or rewritten objects are picked up (and only then re-read)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.serving.core import Unavailable, request_payload
from comfort_assets.serving.schemas import ForecastRequest
from comfort_assets.serving.weather import CLEAN_WEATHER, IngestedWeather
from comfort_assets_tests.serving_fixtures import store_clean_weather

JULY_8 = datetime(2013, 7, 8, 18, tzinfo=UTC)


@pytest.fixture(scope="module")
def clean(bundled_clean) -> pd.DataFrame:
    return bundled_clean.clean


def store_at(home: Path) -> LocalObjectStore:
    return LocalObjectStore(root=str(home / "store"))


def newest_complete_hour(clean: pd.DataFrame, station: str) -> pd.Timestamp:
    complete = clean[["temp_c", "humidity_pct"]].notna().all(axis=1)
    return clean.loc[(clean["station"] == station) & complete, "time_utc"].max()


def rejection(weather: IngestedWeather, station: str, until: datetime | None) -> dict:
    with pytest.raises(ValidationError) as caught:
        weather.request(station, until)
    (error,) = caught.value.errors()
    return error


def test_the_window_is_the_one_request_payload_builds(tmp_path, clean):
    store_clean_weather(tmp_path, clean)
    weather = IngestedWeather(store_at(tmp_path))
    expected = ForecastRequest.model_validate(request_payload(clean, "JFK", JULY_8))
    assert weather.request("JFK", JULY_8) == expected
    newest = weather.request("LGA", None)
    assert newest.observed_until == newest_complete_hour(clean, "LGA")


def test_no_window_names_the_field_and_why(tmp_path, clean):
    store_clean_weather(tmp_path, clean)
    weather = IngestedWeather(store_at(tmp_path))
    unknown = rejection(weather, "ZZZ", None)
    assert unknown["loc"] == ("station",) and "no ingested weather" in unknown["msg"]
    before = rejection(weather, "JFK", datetime(2012, 7, 8, 18, tzinfo=UTC))
    assert before["loc"] == ("time",) and "2013-01-01" in before["msg"]  # what there is
    first_hours = rejection(weather, "JFK", datetime(2013, 1, 2, 5, tzinfo=UTC))
    assert first_hours["loc"] == ("time",)
    assert "not a complete window" in first_hours["msg"] and "gap" in first_hours["msg"]


def test_new_data_is_picked_up_on_refresh_and_nothing_else_is_reread(tmp_path, clean):
    store = store_at(tmp_path)
    store_clean_weather(tmp_path, clean[clean["time_utc"] < pd.Timestamp("2013-07-01", tz="UTC")])
    weather = IngestedWeather(store)
    june = weather.request("JFK", None).observed_until
    assert june == pd.Timestamp("2013-06-30T23:00", tz="UTC")
    assert weather.refresh() is False  # nothing written since

    reads: list[str] = []
    reading = store.get_bytes
    object.__setattr__(store, "get_bytes", lambda key: reads.append(key) or reading(key))
    # a day stored on its own next to `__all__` (both layouts of the IO manager)
    day = clean[clean["time_utc"].dt.strftime("%Y-%m-%d") == "2013-07-01"]
    store.put_bytes(f"{CLEAN_WEATHER}2013-07-01.parquet", day.to_parquet(index=False))
    assert weather.refresh() is True
    assert reads == [f"{CLEAN_WEATHER}2013-07-01.parquet"]  # `__all__` was not re-read
    assert weather.request("JFK", None).observed_until == newest_complete_hour(day, "JFK")

    store_clean_weather(tmp_path, clean)  # `__all__` rewritten with the whole year
    assert weather.refresh() is True
    assert weather.request("JFK", None).observed_until == newest_complete_hour(clean, "JFK")
    assert weather.refresh() is False


def test_an_unreadable_object_keeps_the_weather_already_loaded(tmp_path, clean):
    store = store_at(tmp_path)
    store_clean_weather(tmp_path, clean)
    weather = IngestedWeather(store)
    store.put_bytes(f"{CLEAN_WEATHER}__all__.parquet", b"not parquet")
    assert weather.refresh() is False
    assert weather.problem is not None
    assert weather.request("JFK", JULY_8).observed_until == JULY_8


def test_weather_never_read_is_unavailable_not_missing(tmp_path):
    store = store_at(tmp_path)
    store.put_bytes(f"{CLEAN_WEATHER}__all__.parquet", b"not parquet")
    weather = IngestedWeather(store)
    with pytest.raises(Unavailable, match="cannot be read"):
        weather.request("JFK", None)
