"""The Bento service through a real `bentoml serve` on 127.0.0.1 (one server per session):
forecasts (sent windows and ingested weather), the strict contract, bounded resources,
feedback, metrics, and concurrency."""

from __future__ import annotations

import asyncio
import copy
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator

from comfort_assets.domain.comfort import discomfort_band
from comfort_assets.domain.features import OBSERVED, REQUIRED, WINDOW_HOURS, build_features
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.serving.core import request_payload
from comfort_assets.serving.guard import MAX_BODY_BYTES
from comfort_assets.serving.schemas import DOCUMENT_TITLE, MAX_REQUESTS_PER_CALL
from comfort_assets_tests.serving_fixtures import (
    bento_server,
    register_champion,
    registry_at,
    store_clean_weather,
)

pytestmark = pytest.mark.slow

ORIGIN = pd.Timestamp("2013-07-01T15:00", tz="UTC")


@pytest.fixture(scope="session")
def serving_clean(bundled_clean) -> pd.DataFrame:
    return bundled_clean.clean


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory, serving_clean) -> Path:
    home = tmp_path_factory.mktemp("serving-home")
    register_champion(home, serving_clean, seed=0)
    store_clean_weather(home, serving_clean)
    return home


@pytest.fixture(scope="session")
def server(serving_home) -> Iterator[str]:
    with bento_server(serving_home, COMFORT_RELOAD_SECONDS="0.5") as url:
        yield url


@pytest.fixture(scope="session")
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def store(serving_home) -> PredictionStore:
    return PredictionStore(url=f"sqlite:///{serving_home / 'predictions.db'}")


@pytest.fixture(scope="session")
def body(serving_clean) -> dict[str, Any]:
    return request_payload(serving_clean, "JFK", ORIGIN)


def served_version(client: httpx.Client) -> str:
    return client.post("/model_info", json={}).json()["version"]


def test_single_request_is_forecast_and_logged(client, body, store, serving_home, serving_clean):
    response = client.post("/predict", json={"requests": [body]})
    assert response.status_code == 200, response.text
    (forecast,) = response.json()
    version = served_version(client)
    assert forecast["model_version"] == version
    assert forecast["station"] == "JFK" and forecast["horizon_h"] == 3
    assert pd.Timestamp(forecast["valid_at"]) == ORIGIN + pd.Timedelta(hours=3)
    assert forecast["band"] == discomfort_band(forecast["di_forecast"]).value

    # the same number as the training path: build_features on the table, the champion's model
    model, _ = registry_at(serving_home).load(version)
    table = build_features(serving_clean[serving_clean["station"] == "JFK"])
    row = table[table["time_utc"] == ORIGIN]
    expected = model.predict_di(
        row[model.feature_names].to_numpy(dtype=float), row["di_now"].to_numpy()
    )
    assert forecast["di_forecast"] == pytest.approx(float(expected[0]), abs=1e-4)

    logged = store.get(forecast["prediction_id"])
    assert logged is not None
    assert logged["model_version"] == version and logged["station"] == "JFK"
    assert logged["prediction"] == pytest.approx(forecast["di_forecast"])
    assert logged["features"]["di_now"] == pytest.approx(float(row["di_now"].iloc[0]))
    assert logged["actual_di"] is None and logged["rating"] is None


def test_batch_request_keeps_order(client, serving_clean):
    origins = [ORIGIN + pd.Timedelta(hours=k) for k in range(0, 30, 6)]
    stations = ["EWR", "JFK", "LGA", "JFK", "EWR"]
    bodies = [request_payload(serving_clean, s, t) for s, t in zip(stations, origins, strict=True)]
    response = client.post("/predict", json={"requests": bodies})
    assert response.status_code == 200, response.text
    forecasts = response.json()
    assert [f["station"] for f in forecasts] == stations
    assert [pd.Timestamp(f["observed_until"]) for f in forecasts] == origins
    assert len({f["prediction_id"] for f in forecasts}) == len(bodies)
    singles = [
        client.post("/predict", json={"requests": [b]}).json()[0]["di_forecast"] for b in bodies
    ]
    assert np.allclose([f["di_forecast"] for f in forecasts], singles)


def test_optional_observations_may_be_missing(client, body):
    request = copy.deepcopy(body)
    for name in OBSERVED:
        if name not in REQUIRED:
            request["observations"].pop(name)
    response = client.post("/predict", json={"requests": [request]})
    assert response.status_code == 200, response.text
    assert np.isfinite(response.json()[0]["di_forecast"])


def test_forecast_of_the_newest_ingested_hour_is_logged(client, store, serving_clean):
    response = client.post("/forecast", json={"station": "JFK"})
    assert response.status_code == 200, response.text
    forecast = response.json()
    jfk = serving_clean[serving_clean["station"] == "JFK"]
    newest = jfk.loc[jfk[list(REQUIRED)].notna().all(axis=1), "time_utc"].max()
    assert pd.Timestamp(forecast["observed_until"]) == newest
    assert pd.Timestamp(forecast["valid_at"]) == newest + pd.Timedelta(hours=3)
    assert forecast["station"] == "JFK" and forecast["model_version"] == served_version(client)
    assert forecast["band"] == discomfort_band(forecast["di_forecast"]).value
    logged = store.get(forecast["prediction_id"])
    assert logged is not None and logged["station"] == "JFK"
    assert logged["model_version"] == forecast["model_version"]
    assert logged["prediction"] == pytest.approx(forecast["di_forecast"])
    assert pd.to_datetime(logged["valid_at"], utc=True) == newest + pd.Timedelta(hours=3)


@pytest.mark.parametrize(
    "time", ["2013-07-08T18:00:00Z", "2013-07-08T18:00:00", "2013-07-09T03:00:00+09:00"]
)
def test_forecast_at_a_time_is_predict_on_the_window_request_payload_builds(
    client, store, serving_clean, time
):
    hour = pd.Timestamp("2013-07-08T18:00", tz="UTC")
    forecast = client.post("/forecast", json={"station": "JFK", "time": time})
    assert forecast.status_code == 200, forecast.text
    window = request_payload(serving_clean, "JFK", hour)
    (predicted,) = client.post("/predict", json={"requests": [window]}).json()
    answer = forecast.json()
    assert pd.Timestamp(answer["observed_until"]) == hour
    assert answer["model_version"] == predicted["model_version"]
    assert answer["di_forecast"] == pytest.approx(predicted["di_forecast"], abs=1e-9)
    logged = store.get(answer["prediction_id"])
    assert logged["features"] == store.get(predicted["prediction_id"])["features"]


BAD_FORECASTS = {
    "unknown station": ({"station": "ZZZ"}, "station", "unknown station"),
    "a time with no data": (
        {"station": "JFK", "time": "2012-07-08T18:00:00Z"},
        "time",
        "no ingested weather",
    ),
    "an incomplete window": (
        {"station": "JFK", "time": "2013-01-02T05:00:00Z"},
        "time",
        "not a complete window",
    ),
    "after the newest hour": (
        {"station": "JFK", "time": "2013-12-31T05:00:00Z"},
        "time",
        "gap",
    ),
    "not on the hour": ({"station": "JFK", "time": "2013-07-08T18:30:00Z"}, "time", "on the hour"),
    "a number for a time": ({"station": "JFK", "time": 1373306400}, "time", "ISO 8601"),
    "Unix seconds as text": ({"station": "JFK", "time": "1373306400"}, "time", "ISO 8601"),
    "a date without a time": ({"station": "JFK", "time": "2013-07-08"}, "time", "ISO 8601"),
    "the future": ({"station": "JFK", "time": "2999-07-08T18:00:00Z"}, "time", "outside"),
    "no station": ({"time": "2013-07-08T18:00:00Z"}, "station", "Field required"),
    "unknown field": ({"station": "JFK", "observations": {}}, "observations", "Extra inputs"),
}


@pytest.mark.parametrize("case", list(BAD_FORECASTS))
def test_no_forecast_window_is_a_4xx_naming_field_and_reason(client, store, case):
    body, field, reason = BAD_FORECASTS[case]
    before = store.count()
    response = client.post("/forecast", json=body)
    assert 400 <= response.status_code < 500, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == [field], error
    assert reason in error["msg"], error
    assert store.count() == before


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict], None]:
    def mutate(request: dict) -> None:
        target = request
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _set_hour(name: str, hour: int, value: Any) -> Callable[[dict], None]:
    return lambda request: request["observations"][name].__setitem__(hour, value)


def _scale(name: str, factor: float) -> Callable[[dict], None]:
    def mutate(request: dict) -> None:
        values = request["observations"][name]
        request["observations"][name] = [None if v is None else v * factor for v in values]

    return mutate


def _truncate(request: dict) -> None:
    request["observations"]["temp_c"] = request["observations"]["temp_c"][-24:]


BAD_INPUTS = {
    "too few hours": (_truncate, "temp_c", "too few hours"),
    "gap": (_set_hour("humidity_pct", 10, None), "humidity_pct", "gap"),
    "out of range (°F)": (_set_hour("temp_c", 50, 95.0), "temp_c", "°F"),
    "non-numeric": (_set_hour("temp_c", 3, "warm"), "temp_c", "valid number"),
    "unknown station": (_set(("station",), "ZZZ"), "station", "unknown station"),
    "wrong units (kPa)": (_scale("pressure_hpa", 0.1), "pressure_hpa", "kPa"),
    "wrong units (fraction)": (_scale("humidity_pct", 0.01), "humidity_pct", "fraction"),
    "missing required": (
        lambda r: r["observations"].pop("temp_c"),
        "temp_c",
        "Field required",
    ),
    "wrong horizon": (_set(("horizon_h",), 24), "horizon_h", "3 h ahead"),
    "not on the hour": (
        _set(("observed_until",), "2013-07-01T15:30:00Z"),
        "observed_until",
        "on the hour",
    ),
    "unknown field": (
        _set(("observations", "temp_f"), [70.0] * WINDOW_HOURS),
        "temp_f",
        "Extra inputs",
    ),
    "unknown field in a request": (_set(("note",), "x" * 10_000), "note", "Extra inputs"),
    "boolean temperature": (_set_hour("temp_c", 7, True), "temp_c", "valid number"),
    "numeric string": (_set_hour("temp_c", 7, "21.5"), "temp_c", "valid number"),
    "boolean horizon": (_set(("horizon_h",), True), "horizon_h", "valid integer"),
    "end of the calendar": (
        _set(("observed_until",), "9999-12-31T21:00:00Z"),
        "observed_until",
        "outside",
    ),
    "start of the calendar": (
        _set(("observed_until",), "0001-01-01T00:00:00+01:00"),
        "observed_until",
        "representable",
    ),
    "year 1900": (_set(("observed_until",), "1900-07-01T15:00:00Z"), "observed_until", "outside"),
    "Unix seconds as text": (_set(("observed_until",), "1372377600"), "observed_until", "ISO 8601"),
    "NaN": (_set_hour("pressure_hpa", 5, math.nan), "pressure_hpa", "finite number"),
    "Infinity": (_set_hour("temp_c", 5, math.inf), "temp_c", "finite number"),
    "year 2999": (_set(("observed_until",), "2999-07-01T15:00:00Z"), "observed_until", "outside"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_4xx_naming_field_and_reason(client, body, case):
    mutate, field, reason = BAD_INPUTS[case]
    request = copy.deepcopy(body)
    mutate(request)
    good = copy.deepcopy(body)
    response = client.post(  # json.dumps writes NaN and Infinity as JavaScript does
        "/predict",
        content=json.dumps({"requests": [good, request]}),
        headers={"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][:2] == ["requests", 1]
    assert field in error["loc"], error
    assert reason in error["msg"], error


def test_a_body_full_of_mistakes_gets_a_short_answer(client, body):
    """The first bad window's first mistake per variable, not one error per hour of every
    window (a 1-MiB body of `true` once got a 33-MB answer)."""
    wrong = copy.deepcopy(body)
    wrong["observations"] = {name: [True] * WINDOW_HOURS for name in body["observations"]}
    response = client.post("/predict", json={"requests": [wrong] * MAX_REQUESTS_PER_CALL})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert {tuple(e["loc"][:2]) for e in detail} == {("requests", 0)}
    assert len(detail) == len(body["observations"]) and len(response.content) < 10_000


@pytest.mark.parametrize("route", ["/predict", "/feedback", "/window"])
def test_many_unknown_fields_are_one_short_error(client, body, route):
    """Unknown keys by the tens of thousands (100,000 fit in 1 MiB) got one error each:
    a 14-MB answer."""
    junk = {f"k{i}": 0 for i in range(60_000)}
    if route == "/window":  # inside one window's observations
        window = copy.deepcopy(body)
        window["observations"].update(junk)
        route, sent, where = "/predict", {"requests": [window]}, ["requests", 0, "observations"]
    elif route == "/predict":
        sent, where = {"requests": [body], **junk}, []
    else:
        sent, where = {"prediction_id": "0" * 32, "rating": 3, **junk}, []
    response = client.post(route, json=sent)
    assert response.status_code == 400
    (error,) = response.json()["detail"]
    assert error["loc"] == where
    assert "'k0', 'k1', 'k2' and 59997 more" in error["msg"]
    assert len(response.content) < 2_000


def test_a_null_time_means_the_newest_hour(client):
    response = client.post("/forecast", json={"station": "JFK", "time": None})
    assert response.status_code == 200, response.text


def test_malformed_bodies_are_4xx(client, body):
    assert client.post("/predict", json={"requests": []}).status_code == 400
    assert client.post("/predict", json={}).status_code == 400
    response = client.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    too_many = client.post("/predict", json={"requests": [body] * (MAX_REQUESTS_PER_CALL + 1)})
    assert too_many.status_code == 400 and "requests" in too_many.text
    extra = client.post("/predict", json={"requests": [body], "padding": "x" * 100_000})
    assert extra.status_code == 400 and "padding" in extra.text
    assert "xxxx" not in extra.text  # the input is not echoed


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "multipart/form-data; boundary=x", "text/plain"]
)
def test_a_body_that_is_not_json_is_a_415(client, body, content_type):
    for path in ("/predict", "/forecast", "/feedback", "/model_info"):
        response = client.post(path, content=b"--x--", headers={"content-type": content_type})
        assert response.status_code == 415, (path, response.text)
        assert "application/json" in response.json()["error"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"content-type": "application/json; charset=utf-16"}, "charset"),
        ({"content-type": "application/json", "content-encoding": "gzip"}, "Content-Encoding"),
    ],
)
def test_a_body_in_another_charset_or_encoding_is_a_415(client, body, headers, reason):
    response = client.post("/predict", content=json.dumps({"requests": [body]}), headers=headers)
    assert response.status_code == 415 and reason in response.json()["error"]
    plain = {"content-type": "application/json; charset=UTF-8"}
    accepted = client.post("/predict", content=json.dumps({"requests": [body]}), headers=plain)
    assert accepted.status_code == 200, accepted.text


def test_bodies_over_the_limit_are_a_413_and_others_are_served(client, body):
    huge = b'{"requests": [], "x": "' + b"a" * (MAX_BODY_BYTES + 10) + b'"}'
    declared = client.post("/predict", content=huge, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "limit" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
        yield huge[: len(huge) // 2]
        yield huge[len(huge) // 2 :]

    chunked = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert client.post("/predict", json={"requests": [body]}).status_code == 200


def test_feedback_round_trip_is_idempotent_and_404s_unknown_ids(client, body, store):
    prediction_id = client.post("/predict", json={"requests": [body]}).json()[0]["prediction_id"]
    feedback = {"prediction_id": prediction_id, "actual_di": 74.2}
    first = client.post("/feedback", json=feedback)
    second = client.post("/feedback", json=feedback)
    assert first.status_code == second.status_code == 200, first.text
    assert first.json()["actual_di"] == second.json()["actual_di"] == 74.2
    answered_at = pd.Timestamp(first.json()["feedback_at"])  # with its zone, as every time
    assert answered_at.tz is not None and answered_at.utcoffset() == pd.Timedelta(0)
    rated = client.post("/feedback", json={"prediction_id": prediction_id, "rating": 4})
    assert rated.status_code == 200
    row = store.get(prediction_id)
    assert row["actual_di"] == 74.2 and row["rating"] == 4 and row["feedback_at"] is not None

    unknown_id = "0123456789abcdef" * 2
    unknown = client.post("/feedback", json={"prediction_id": unknown_id, "actual_di": 70.0})
    assert unknown.status_code == 404 and unknown.json()["error"].startswith(
        "prediction_id …89abcdef"
    )
    assert unknown_id not in unknown.text  # never echoed in full
    empty = client.post("/feedback", json={"prediction_id": prediction_id})
    assert empty.status_code == 400 and "actual_di" in empty.text
    bad_rating = client.post("/feedback", json={"prediction_id": prediction_id, "rating": 9})
    assert bad_rating.status_code == 400 and "rating" in bad_rating.text
    for bad in ({"rating": True}, {"rating": "4"}, {"actual_di": "74.2"}, {"note": "x"}):
        response = client.post("/feedback", json={"prediction_id": prediction_id, **bad})
        assert response.status_code == 400 and next(iter(bad)) in response.text, response.text
    huge_id = client.post("/feedback", json={"prediction_id": "a" * 1_000_000, "rating": 3})
    assert huge_id.status_code == 400 and "prediction_id" in huge_id.text
    assert len(huge_id.text) < 1000  # neither the answer nor (see below) the log echoes it


def test_an_actual_before_the_valid_hour_is_a_409_and_a_rating_is_welcome(client, body, store):
    this_hour = pd.Timestamp.now(tz="UTC").floor("h")
    current = {**body, "observed_until": this_hour.isoformat()}
    prediction_id = client.post("/predict", json={"requests": [current]}).json()[0]["prediction_id"]
    early = client.post("/feedback", json={"prediction_id": prediction_id, "actual_di": 70.0})
    assert early.status_code == 409, early.text
    assert early.json()["error"].startswith("actual_di: this forecast is valid at")
    assert store.get(prediction_id)["actual_di"] is None
    rated = client.post("/feedback", json={"prediction_id": prediction_id, "rating": 3})
    assert rated.status_code == 200 and rated.json()["rating"] == 3


def test_model_info_and_health_endpoints(client, serving_home):
    info = client.post("/model_info", json={}).json()
    registry = registry_at(serving_home)
    assert info["version"] == registry.champion()
    assert info["stations"] == ["EWR", "JFK", "LGA"] and info["window_hours"] == WINDOW_HOURS
    assert "holdout_rmse" in info["metrics"] and info["training_window"]["start"] == "2013-01-05"
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'comfort_http_request_duration_seconds_count{route="/model_info",status="200"}' in (
        metrics.text
    )


def test_the_openapi_document_states_the_contract(client):
    document = client.get("/docs.json").json()
    assert document["info"]["title"] == DOCUMENT_TITLE
    assert document["info"]["version"] == served_version(client)
    assert "3 h ahead at EWR, JFK, LGA" in document["info"]["description"]
    schemas = document["components"]["schemas"]
    request = schemas["ForecastRequest"]["properties"]
    assert request["station"]["enum"] == ["EWR", "JFK", "LGA"]
    assert request["horizon_h"]["enum"] == [3, None] and request["horizon_h"]["nullable"]
    temp = schemas["Observations"]["properties"]["temp_c"]
    assert temp["minItems"] == temp["maxItems"] == WINDOW_HOURS
    assert (temp["items"]["minimum"], temp["items"]["maximum"]) == (-60, 60)
    assert "at least one of the two" in document["paths"]["/feedback"]["post"]["description"]
    forecast = document["paths"]["/forecast"]["post"]["requestBody"]["content"]
    reference = forecast["application/json"]["schema"]["$ref"]  # BentoML's copy lost nulls
    body = schemas[reference.rsplit("/", 1)[1]]
    assert body["properties"]["station"]["enum"] == ["EWR", "JFK", "LGA"]
    assert body["properties"]["time"]["nullable"] is True
    assert body["additionalProperties"] is False and "naive means UTC" in str(body)
    assert [error.message for error in OpenAPIV30SpecValidator(document).iter_errors()] == []


def test_unknown_paths_do_not_grow_the_metrics(client):
    client.get("/no-such-path-warmup")
    client.get("/metrics")  # its own series exist from here on
    before = client.get("/metrics").text
    for i in range(200):
        assert client.get(f"/random-{i}-{uuid.uuid4().hex}").status_code == 404
    after = client.get("/metrics").text
    series = [line for line in after.splitlines() if line and not line.startswith("#")]
    assert len(series) == len([x for x in before.splitlines() if x and not x.startswith("#")])
    assert "random-" not in after and 'route="other",status="404"' in after


@pytest.mark.parametrize("name", ["content-type", "content-encoding"])
def test_a_header_the_guard_checks_given_twice_is_a_415(client, body, name):
    """The guard read the last copy and BentoML the first: a plain body labelled gzip, then
    identity, was accepted."""
    second = "application/json" if name == "content-type" else "identity"
    headers = [("content-type", "application/json"), (name, "gzip"), (name, second)]
    if name == "content-type":
        headers = headers[1:]
    response = client.post("/predict", content=json.dumps({"requests": [body]}), headers=headers)
    assert response.status_code == 415 and "more than once" in response.json()["error"]


def test_unknown_paths_and_methods_are_json_errors(client):
    for method, path, status in [
        ("GET", "/no-such-path", 404),
        ("GET", "/predict", 405),
        ("POST", "/readyz", 405),
        ("DELETE", "/metrics", 405),
    ]:
        response = client.request(method, path)
        assert response.status_code == status, (method, path)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"], (method, path)


def test_a_405_says_what_is_allowed_and_head_answers_as_get(client):
    refused = client.post("/readyz")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    document = client.get("/docs.json")
    head = client.head("/docs.json")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(document.content)


def test_rejections_the_guard_makes_are_logged_too(client, body, serving_home):
    too_large = client.post(
        "/predict",
        content=b" " * (MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )
    assert too_large.status_code == 413
    text = client.post("/feedback", content=b"{}", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    unknown = client.post("/feedback", json={"prediction_id": "f" * 32, "rating": 3})
    assert unknown.status_code == 404
    time.sleep(0.3)
    log = "".join(p.read_text() for p in serving_home.glob("bentoml-*.log"))
    for line in ("rejected /predict: 413", "rejected /feedback: 415", "rejected /feedback: 404"):
        assert any(line in logged and "[INFO]" in logged for logged in log.splitlines()), line


def test_client_errors_are_one_info_line_without_the_input(client, body, serving_home):
    request = copy.deepcopy(body)
    request["station"] = "Q" * 20  # an unknown station, short enough to reach the check
    marker = uuid.uuid4().hex
    request["observations"]["temp_c"][0] = marker  # a string where a number belongs
    assert client.post("/predict", json={"requests": [request]}).status_code == 400
    time.sleep(0.3)
    log = "".join(p.read_text() for p in serving_home.glob("bentoml-*.log"))
    assert marker not in log
    lines = [line for line in log.splitlines() if "rejected /predict" in line]
    assert lines and all("[INFO]" in line for line in lines), lines
    assert any("requests.0.station" in line and "(+1 more)" in line for line in lines)
    assert "Traceback" not in log and "[ERROR]" not in log
    assert "a" * 1000 not in log  # the 1 MB prediction_id of the feedback test


def test_poisoned_requests_cause_no_collateral_errors(server, serving_clean, store):
    """Rounds of 31 valid windows and 1 poisoned one (each its own call), 32 in flight: the
    poisoned ones are 400s, every valid one is answered and logged."""
    valid = [
        request_payload(serving_clean, ["EWR", "JFK", "LGA"][i % 3], ORIGIN + pd.Timedelta(hours=i))
        for i in range(31)
    ]
    poisons = []
    for when in ("9999-12-31T21:00:00Z", "0001-01-01T00:00:00+01:00", "2999-01-01T00:00:00Z"):
        poison = copy.deepcopy(valid[0])
        poison["observed_until"] = when
        poisons.append(poison)
    boolean = copy.deepcopy(valid[1])
    boolean["observations"]["temp_c"][5] = True
    poisons.append(boolean)
    rounds = 20
    calls = [(b, True) for _ in range(rounds) for b in valid]
    calls += [(poisons[r % len(poisons)], False) for r in range(rounds)]
    random.Random(0).shuffle(calls)

    async def send_all() -> list[tuple[bool, httpx.Response]]:
        in_flight = asyncio.Semaphore(32)
        async with httpx.AsyncClient(base_url=server, timeout=60) as http:

            async def send(request: dict, ok: bool) -> tuple[bool, httpx.Response]:
                async with in_flight:
                    return ok, await http.post("/predict", json={"requests": [request]})

            return await asyncio.gather(*(send(b, ok) for b, ok in calls))

    results = asyncio.run(send_all())
    good = Counter(r.status_code for ok, r in results if ok)
    bad = Counter(r.status_code for ok, r in results if not ok)
    assert good == {200: 31 * rounds}, good
    assert bad == {400: rounds}, bad
    ids = {r.json()[0]["prediction_id"] for ok, r in results if ok}
    assert ids <= set(store.read()["id"])


def test_2000_concurrent_requests_give_2000_rows(server, body, store):
    before = store.count()

    async def send_all() -> list[httpx.Response]:
        in_flight = asyncio.Semaphore(32)  # 32 concurrent clients; a timeout starts at sending
        async with httpx.AsyncClient(base_url=server, timeout=60) as http:

            async def send() -> httpx.Response:
                async with in_flight:
                    return await http.post("/predict", json={"requests": [body]})

            return await asyncio.gather(*(send() for _ in range(2000)))

    responses = asyncio.run(send_all())
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 2000}, statuses
    ids = {r.json()[0]["prediction_id"] for r in responses}
    assert len(ids) == 2000
    assert store.count() == before + 2000
    # every acknowledged id is in the store (not just the right number of rows)
    logged = set(store.read()["id"])
    assert ids <= logged


def test_champion_change_reaches_the_running_service(client, body, serving_home, serving_clean):
    before = served_version(client)
    new = register_champion(serving_home, serving_clean, seed=1, trees=30)
    assert new != before
    deadline = time.monotonic() + 30
    while served_version(client) != new:
        assert time.monotonic() < deadline, "the service did not pick up the new champion"
        time.sleep(0.2)
    forecast = client.post("/predict", json={"requests": [body]}).json()[0]
    assert forecast["model_version"] == new
