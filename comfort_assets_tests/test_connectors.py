"""KMA ASOS and Open-Meteo connectors against recorded-shape responses served locally.

A real HTTP server on 127.0.0.1 answers from `fixtures/`, so the HTTP code, paging,
error mapping and parsing are exercised end to end without touching the network.
"""

from __future__ import annotations

import copy
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest

from comfort_assets.domain.cleaning import RAW_COLUMNS, UTC_NS, clean_observations
from comfort_assets.domain.schemas import RawWeather, validate
from comfort_assets.resources.connectors import (
    RETRY_STATUSES,
    KmaAsosWeatherSource,
    OpenMeteoWeatherSource,
    WeatherSourceError,
    parse_kma_items,
    parse_open_meteo,
)

FIXTURES = Path(__file__).parent / "fixtures"
# shaped like a data.go.kr key: "Decoding" form, and the "Encoding" form data.go.kr also shows
DECODED_KEY = "Ab3+xYz/Secret9Key=="
ENCODED_KEY = "Ab3%2BxYz%2FSecret9Key%3D%3D"

Reply = tuple[int, str, bytes]
Route = Callable[[dict[str, str]], Reply]
#: What the fetches below ask for, as the errors name it.
KMA_WINDOW = "2024-07-01 09:00..2024-07-02 08:00 KST"
OPEN_METEO_WINDOW = "2024-07-01..2024-07-01 UTC"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_bytes(name))


def as_json(status: int, payload: object) -> Reply:
    return status, "application/json;charset=UTF-8", json.dumps(payload).encode()


def from_file(name: str, status: int = 200) -> Reply:
    kind = "text/xml;charset=UTF-8" if name.endswith(".xml") else "application/json;charset=UTF-8"
    return status, kind, fixture_bytes(name)


def failing_first(replies: list[Reply], then: Route) -> Route:
    """Answer with ``replies`` in turn, then as ``then``: a service failing for a moment."""
    pending = list(replies)
    return lambda query: pending.pop(0) if pending else then(query)


@dataclass
class FakeApi:
    """What the local server knows: how to answer, and every query it was sent."""

    url: str
    route: Route = lambda query: (404, "text/plain", b"no route")
    #: sent with every answer, e.g. ``Retry-After``
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        return [query[name] for query in self.requests]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            fake.requests.append(query)
            status, content_type, body = fake.route(query)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in fake.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def kma_pages(query: dict[str, str]) -> Reply:
    return from_file(f"kma/page{query['pageNo']}.json")


def kma(api: FakeApi, **overrides: object) -> KmaAsosWeatherSource:
    config: dict = {
        "service_key": ENCODED_KEY,
        "station_ids": [108],
        "base_url": api.url,
        "page_size": 2,
        "timeout_seconds": 5,
        "retry_backoff_seconds": 0,  # retries still happen, without the waits
    }
    return KmaAsosWeatherSource(**{**config, **overrides})


def open_meteo(api: FakeApi, **stations: list[float]) -> OpenMeteoWeatherSource:
    return OpenMeteoWeatherSource(
        stations=stations or {"seoul": [37.57, 126.97]},
        base_url=api.url,
        timeout_seconds=5,
        retry_backoff_seconds=0,
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def assert_raw_table(raw: pd.DataFrame) -> None:
    assert list(raw.columns) == list(RAW_COLUMNS)
    assert raw["time_utc"].dtype == UTC_NS
    report = validate(RawWeather, raw)
    assert report.passed, report.summary()


def assert_key_hidden(text: str) -> None:
    for form in (DECODED_KEY, ENCODED_KEY, "Secret9Key"):
        assert form not in text


# --- KMA ASOS ---------------------------------------------------------------------------


def test_kma_pages_until_total_count_and_sends_kst_window(api: FakeApi) -> None:
    api.route = kma_pages
    raw = kma(api).fetch(utc(2024, 6, 30, 15), utc(2024, 7, 1, 15))

    assert api.values("pageNo") == ["1", "2", "3"]
    assert set(api.values("numOfRows")) == {"2"}
    first = api.requests[0]
    # UTC [2024-06-30 15:00, 2024-07-01 15:00) is KST 2024-07-01 00:00..23:00 inclusive
    assert (first["startDt"], first["startHh"]) == ("20240701", "00")
    assert (first["endDt"], first["endHh"]) == ("20240701", "23")
    assert first["stnIds"] == "108"
    assert (first["dataType"], first["dataCd"], first["dateCd"]) == ("JSON", "ASOS", "HR")
    # the "Encoding" form of the key is decoded once, so it is not encoded twice on the wire
    assert first["serviceKey"] == DECODED_KEY

    assert len(raw) == 5
    assert_raw_table(raw)
    assert set(raw["station"]) == {"108"}
    assert raw["time_utc"].tolist() == list(
        pd.date_range("2024-07-01", periods=5, freq="h", tz="UTC")
    )


def test_kma_converts_kst_to_utc_and_units() -> None:
    items = fixture_json("kma/page1.json")["response"]["body"]["items"]["item"]
    raw = parse_kma_items(items)

    first = raw.iloc[0]
    assert first["time_utc"] == pd.Timestamp("2024-07-01T00:00Z")  # "2024-07-01 09:00" KST
    assert first["temp_c"] == pytest.approx(24.8)
    assert first["dewpoint_c"] == pytest.approx(23.2)
    assert first["humidity_pct"] == pytest.approx(91)
    assert first["wind_speed_ms"] == pytest.approx(1.9)
    assert first["wind_dir_deg"] == pytest.approx(200)
    assert first["precip_mm"] == pytest.approx(0.5)
    assert first["pressure_hpa"] == pytest.approx(1004.3)  # ps (sea level), not pa (998.1)
    assert first["visibility_km"] == pytest.approx(14.6)  # vs "1460" x 10 m
    assert raw["wind_gust_ms"].isna().all()
    assert first["parse_error"] == ""


def test_kma_blank_is_missing_and_garbage_is_named(api: FakeApi) -> None:
    api.route = kma_pages
    raw = kma(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2)).set_index("time_utc")

    blank = raw.loc[pd.Timestamp("2024-07-01T01:00Z")]  # hm ""
    assert np.isnan(blank["humidity_pct"])
    assert blank["parse_error"] == ""
    garbage = raw.loc[pd.Timestamp("2024-07-01T02:00Z")]  # ta "ab"
    assert np.isnan(garbage["temp_c"])
    assert "temp_c=ab" in garbage["parse_error"]
    assert garbage["humidity_pct"] == pytest.approx(85)  # the rest of the hour survives

    result = clean_observations(raw.reset_index())
    assert result.quarantine["reason"].str.contains("temp_c=ab").sum() == 1


def test_kma_unparsable_time_is_flagged_not_guessed() -> None:
    items = fixture_json("kma/page1.json")["response"]["body"]["items"]["item"]
    bad = [{**items[0], "tm": "2024/07/01 09:00"}]
    raw = parse_kma_items(bad)
    assert pd.isna(raw.loc[0, "time_utc"])
    assert "tm=2024/07/01 09:00" in raw.loc[0, "parse_error"]


def test_kma_keeps_only_the_requested_window(api: FakeApi) -> None:
    api.route = kma_pages  # the fake ignores the window, so extra hours come back
    raw = kma(api).fetch(utc(2024, 7, 1, 1), utc(2024, 7, 1, 3))
    assert raw["time_utc"].tolist() == [
        pd.Timestamp("2024-07-01T01:00Z"),
        pd.Timestamp("2024-07-01T02:00Z"),
    ]
    assert (api.requests[0]["startHh"], api.requests[0]["endHh"]) == ("10", "11")


def test_kma_several_stations_one_request_series_each(api: FakeApi) -> None:
    api.route = kma_pages
    kma(api, station_ids=[108, 159]).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    assert api.values("stnIds") == ["108"] * 3 + ["159"] * 3


def test_kma_empty_window_makes_no_request(api: FakeApi) -> None:
    raw = kma(api).fetch(utc(2024, 7, 1, 0, 10), utc(2024, 7, 1, 0, 50))
    assert api.requests == []
    assert len(raw) == 0
    assert_raw_table(raw)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("kma/error_03.json", ["resultCode 03", "NO_DATA", "108"]),
        ("kma/error_99.json", ["resultCode 99", "전날 자료까지 제공됩니다", "up to yesterday"]),
        (
            "kma/key_not_registered.xml",
            ["SERVICE_KEY_IS_NOT_REGISTERED_ERROR", "returnReasonCode 30", "SERVICE ERROR"],
        ),
    ],
)
def test_kma_errors_are_clear_and_hide_the_key(
    api: FakeApi, reply: str, expected: list[str]
) -> None:
    api.route = lambda query: from_file(reply)
    with pytest.raises(WeatherSourceError) as caught:
        kma(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    message = str(caught.value)
    for text in expected:
        assert text in message
    assert "JSONDecodeError" not in message
    assert_key_hidden(message)
    assert caught.value.__cause__ is None


def test_kma_http_5xx_names_the_status(api: FakeApi) -> None:
    api.route = lambda query: (502, "text/html", b"<html><body>Bad Gateway</body></html>")
    with pytest.raises(WeatherSourceError, match="HTTP 502"):
        kma(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    api.route = lambda query: (500, "text/plain", b"Unexpected errors")
    with pytest.raises(WeatherSourceError, match="HTTP 500: Unexpected errors") as caught:
        kma(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    assert caught.value.code == "500"


def test_kma_short_page_is_an_error_not_a_silent_partial(api: FakeApi) -> None:
    def short(query: dict[str, str]) -> Reply:
        if query["pageNo"] == "1":
            return from_file("kma/page1.json")
        payload = fixture_json("kma/page2.json")
        payload["response"]["body"]["items"] = ""
        return as_json(200, payload)

    api.route = short
    with pytest.raises(WeatherSourceError, match="page 2 was empty after 2 of 5 items"):
        kma(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))


def test_kma_transport_error_is_retried_and_hides_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = KmaAsosWeatherSource(
        service_key=ENCODED_KEY,
        station_ids=[108],
        base_url=f"http://127.0.0.1:{port}/x",
        max_retries=2,
        retry_backoff_seconds=0,
    )
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with pytest.raises(WeatherSourceError, match="request failed: ConnectionError") as caught:
        source.fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    assert caplog.text.count("Retrying (") == 2
    assert_key_hidden(caplog.text)
    assert_key_hidden(str(caught.value))
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_short_key_is_hidden_without_garbling_the_error() -> None:
    """Masking a one-letter key everywhere turned "retries exceeded" into "e***ceeded"."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = KmaAsosWeatherSource(
        service_key="x",
        station_ids=[108],
        base_url=f"http://127.0.0.1:{port}/x",
        retry_backoff_seconds=0,
    )
    with pytest.raises(WeatherSourceError) as caught:
        source.fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    message = str(caught.value)
    assert "serviceKey=x" not in message and "serviceKey=***" in message
    assert "exceeded" in message


def test_kma_key_stays_out_of_logs_and_repr(api: FakeApi, caplog: pytest.LogCaptureFixture) -> None:
    api.route = kma_pages
    caplog.set_level(logging.DEBUG, logger="urllib3")
    source = kma(api)
    source.fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    assert "pageNo=3" in caplog.text  # urllib3 did log the request line …
    assert_key_hidden(caplog.text)  # … with the key scrubbed
    assert_key_hidden(repr(source))
    assert logging.getLogger("urllib3.connectionpool").filters == []
    assert logging.getLogger("urllib3.util.retry").filters == []


def test_kma_rate_limit_is_retried_after_retry_after(api: FakeApi) -> None:
    too_many = (429, "text/plain", b"Too Many Requests")
    api.route = failing_first([too_many, too_many], kma_pages)
    api.headers = {"Retry-After": "0"}
    raw = kma(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    assert api.values("pageNo") == ["1", "1", "1", "2", "3"]
    assert len(raw) == 5


def test_kma_gives_up_after_bounded_retries_and_hides_the_key(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.route = lambda query: (503, "text/plain", b"Service Unavailable")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with pytest.raises(WeatherSourceError, match="HTTP 503: Service Unavailable") as caught:
        kma(api, max_retries=2).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    assert len(api.requests) == 3  # the first attempt and two retries
    assert caught.value.code == "503"
    assert_key_hidden(str(caught.value))
    assert "Incremented Retry" in caplog.text  # urllib3 logged each retry with the URL …
    assert_key_hidden(caplog.text)  # … with the key scrubbed


def test_kma_default_retries_are_bounded(api: FakeApi) -> None:
    api.route = lambda query: (500, "text/plain", b"Unexpected errors")
    with pytest.raises(WeatherSourceError, match="HTTP 500"):
        kma(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    assert len(api.requests) == 4


def kma_body(change: Callable[[dict], object]) -> Route:
    """Page 1 of the recorded answer, its ``body`` changed by ``change``."""
    payload = fixture_json("kma/page1.json")
    change(payload["response"]["body"])
    return lambda query: as_json(200, payload)


def test_kma_empty_answer_is_an_error_naming_station_and_window(api: FakeApi) -> None:
    api.route = kma_body(lambda body: body.update(items="", totalCount=0))
    with pytest.raises(WeatherSourceError) as caught:
        kma(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    message = str(caught.value)
    assert "the service returned no observations" in message
    assert f"KMA ASOS station 108 {KMA_WINDOW}" in message
    assert_key_hidden(message)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda body: body.update(totalCount="abc"), "totalCount is not a number: 'abc'"),
        (lambda body: body.pop("totalCount"), "totalCount is missing"),
        (lambda body: body.update(totalCount="-1"), "totalCount is -1"),
        (lambda body: body.update(items=["a"]), "items is not an object"),
        (lambda body: body.update(items={"item": "abc"}), "items.item is not a list of objects"),
        (lambda body: body.update(items={"item": [1, 2]}), "items.item is not a list of objects"),
        (lambda body: body.clear(), "totalCount is missing"),
    ],
)
def test_kma_malformed_body_is_an_error_with_context(
    api: FakeApi, change: Callable[[dict], object], expected: str
) -> None:
    api.route = kma_body(change)
    with pytest.raises(WeatherSourceError) as caught:
        kma(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    message = str(caught.value)
    assert f"KMA ASOS station 108 {KMA_WINDOW} page 1: malformed KMA response" in message
    assert expected in message
    assert_key_hidden(message)


@pytest.mark.parametrize("body", [None, "", []])
def test_kma_missing_body_is_an_error_with_context(api: FakeApi, body: object) -> None:
    payload = fixture_json("kma/page1.json")
    payload["response"]["body"] = body
    api.route = lambda query: as_json(200, payload)
    with pytest.raises(WeatherSourceError) as caught:
        kma(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    message = str(caught.value)
    assert f"KMA ASOS station 108 {KMA_WINDOW}" in message
    assert "response.body is missing or not an object" in message


# --- Open-Meteo -------------------------------------------------------------------------


def test_open_meteo_archive_request_and_conversions(api: FakeApi) -> None:
    api.route = lambda query: from_file("open_meteo/archive_gmt_kmh.json")
    raw = open_meteo(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))

    (query,) = api.requests
    assert (query["latitude"], query["longitude"]) == ("37.57", "126.97")
    assert (query["start_date"], query["end_date"]) == ("2024-07-01", "2024-07-01")
    assert query["timezone"] == "GMT"
    assert query["hourly"].split(",") == [
        "temperature_2m",
        "relative_humidity_2m",
        "dew_point_2m",
        "wind_speed_10m",
        "wind_direction_10m",
        "wind_gusts_10m",
        "precipitation",
        "pressure_msl",
        "visibility",
    ]

    assert len(raw) == 24
    assert_raw_table(raw)
    assert set(raw["station"]) == {"seoul"}
    first = raw.iloc[0]
    assert first["time_utc"] == pd.Timestamp("2024-07-01T00:00Z")
    assert first["wind_speed_ms"] == pytest.approx(10.0)  # 36 km/h
    assert first["wind_gust_ms"] == pytest.approx(15.0)  # 54 km/h
    assert raw.loc[1, "wind_speed_ms"] == pytest.approx(2.0)  # 7.2 km/h
    assert first["visibility_km"] == pytest.approx(24.14)  # 24140 m
    assert first["temp_c"] == pytest.approx(22.0)
    assert first["pressure_hpa"] == pytest.approx(1004.0)
    assert raw.loc[23, "precip_mm"] == pytest.approx(1.2)
    assert np.isnan(raw.loc[5, "temp_c"])  # null
    assert raw["wind_gust_ms"].iloc[1:].isna().all()
    assert (raw["parse_error"] == "").all()


def test_open_meteo_window_is_half_open(api: FakeApi) -> None:
    api.route = lambda query: from_file("open_meteo/archive_gmt_kmh.json")
    raw = open_meteo(api).fetch(utc(2024, 7, 1, 3), utc(2024, 7, 1, 6))
    assert raw["time_utc"].tolist() == list(pd.date_range("2024-07-01T03:00Z", periods=3, freq="h"))
    (query,) = api.requests
    assert (query["start_date"], query["end_date"]) == ("2024-07-01", "2024-07-01")


def test_open_meteo_honours_utc_offset_and_passes_m_s_through() -> None:
    raw = parse_open_meteo(fixture_json("open_meteo/forecast_seoul_ms.json"), "seoul")
    # local 09:00 at utc_offset_seconds 32400 (+9 h) is 00:00 UTC
    assert raw["time_utc"].tolist() == list(pd.date_range("2024-07-01T00:00Z", periods=6, freq="h"))
    assert raw["wind_speed_ms"].tolist() == pytest.approx([2.5, 3.0, 3.4, 3.9, 4.1, 4.0])
    assert raw.loc[0, "wind_gust_ms"] == pytest.approx(5.6)
    assert raw.loc[0, "visibility_km"] == pytest.approx(12.0)
    assert np.isnan(raw.loc[3, "visibility_km"])
    assert np.isnan(raw.loc[4, "temp_c"])


@pytest.mark.parametrize(
    ("unit", "given", "expected"),
    [("kn", 10.0, 5.144444), ("mp/h", 10.0, 4.4704), ("km/h", 18.0, 5.0)],
)
def test_open_meteo_wind_units(unit: str, given: float, expected: float) -> None:
    payload = fixture_json("open_meteo/forecast_seoul_ms.json")
    payload["hourly_units"]["wind_speed_10m"] = unit
    payload["hourly"]["wind_speed_10m"][0] = given
    raw = parse_open_meteo(payload, "seoul")
    assert raw.loc[0, "wind_speed_ms"] == pytest.approx(expected, rel=1e-6)


def test_open_meteo_inch_precipitation_is_converted() -> None:
    payload = fixture_json("open_meteo/forecast_seoul_ms.json")
    payload["hourly_units"]["precipitation"] = "inch"
    payload["hourly"]["precipitation"][0] = 0.5
    raw = parse_open_meteo(payload, "seoul")
    assert raw.loc[0, "precip_mm"] == pytest.approx(12.7)


def test_open_meteo_unknown_unit_is_an_error(api: FakeApi) -> None:
    payload = copy.deepcopy(fixture_json("open_meteo/archive_gmt_kmh.json"))
    payload["hourly_units"]["wind_gusts_10m"] = "bft"
    api.route = lambda query: as_json(200, payload)
    with pytest.raises(WeatherSourceError, match=r"unknown unit 'bft' for hourly\.wind_gusts_10m"):
        open_meteo(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))


def test_open_meteo_400_reason_is_surfaced(api: FakeApi) -> None:
    api.route = lambda query: from_file("open_meteo/error_400.json", status=400)
    with pytest.raises(WeatherSourceError) as caught:
        open_meteo(api).fetch(utc(1900, 1, 1), utc(1900, 1, 2))
    assert "HTTP 400" in str(caught.value)
    assert "out of allowed range from 1940-01-01" in str(caught.value)
    assert caught.value.code == "400"
    assert len(api.requests) == 1  # a refused request is not asked again


def test_open_meteo_other_status_is_an_error(api: FakeApi) -> None:
    api.route = lambda query: (503, "text/html", b"Service Unavailable")
    with pytest.raises(WeatherSourceError, match="HTTP 503: Service Unavailable"):
        open_meteo(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))


def test_open_meteo_one_request_per_station(api: FakeApi) -> None:
    api.route = lambda query: from_file("open_meteo/archive_gmt_kmh.json")
    raw = open_meteo(api, busan=[35.1, 129.03], seoul=[37.57, 126.97]).fetch(
        utc(2024, 7, 1), utc(2024, 7, 1, 2)
    )
    assert api.values("latitude") == ["35.1", "37.57"]
    assert raw["station"].tolist() == ["busan", "busan", "seoul", "seoul"]


def test_open_meteo_mismatched_arrays_are_an_error() -> None:
    payload = fixture_json("open_meteo/forecast_seoul_ms.json")
    payload["hourly"]["pressure_msl"] = payload["hourly"]["pressure_msl"][:-1]
    with pytest.raises(WeatherSourceError, match="pressure_msl has 5 values for 6 times"):
        parse_open_meteo(payload, "seoul")


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_open_meteo_transient_answers_are_retried(api: FakeApi, status: int) -> None:
    failure = (status, "text/plain", b"try again")
    api.route = failing_first(
        [failure, failure], lambda query: from_file("open_meteo/archive_gmt_kmh.json")
    )
    api.headers = {"Retry-After": "0"}
    raw = open_meteo(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    assert len(api.requests) == 3
    assert len(raw) == 24


def test_open_meteo_retry_after_is_honoured_up_to_the_cap(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rate limit asking for an hour waits ``max_retry_wait_seconds``, not an hour."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)  # urllib3 waits with time.sleep
    api.route = failing_first(
        [(429, "text/plain", b"Too Many Requests")],
        lambda query: from_file("open_meteo/archive_gmt_kmh.json"),
    )
    api.headers = {"Retry-After": "3600"}
    source = OpenMeteoWeatherSource(
        stations={"seoul": [37.57, 126.97]},
        base_url=api.url,
        retry_backoff_seconds=0,  # so a wait can only come from Retry-After
        max_retry_wait_seconds=1,
    )
    raw = source.fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    assert len(api.requests) == 2
    assert len(raw) == 24
    assert waits == [1]


def test_open_meteo_gives_up_after_bounded_retries(api: FakeApi) -> None:
    api.route = lambda query: (503, "text/html", b"Service Unavailable")
    with pytest.raises(WeatherSourceError) as caught:
        open_meteo(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    assert len(api.requests) == 4  # the first attempt and three retries
    assert f"Open-Meteo station seoul {OPEN_METEO_WINDOW}: HTTP 503" in str(caught.value)


def open_meteo_changed(change: Callable[[dict], object]) -> Route:
    """The recorded archive answer changed by ``change``."""
    payload = fixture_json("open_meteo/archive_gmt_kmh.json")
    change(payload)
    return lambda query: as_json(200, payload)


def test_open_meteo_empty_answer_is_an_error_naming_station_and_window(api: FakeApi) -> None:
    def no_hours(payload: dict) -> None:
        for variable in payload["hourly"]:
            payload["hourly"][variable] = []

    api.route = open_meteo_changed(no_hours)
    with pytest.raises(WeatherSourceError) as caught:
        open_meteo(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    message = str(caught.value)
    assert f"Open-Meteo station seoul {OPEN_METEO_WINDOW}" in message
    assert "the service returned no observations" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda payload: payload["hourly"].update(temperature_2m=None),
            "hourly.temperature_2m is not a list: None",
        ),
        (
            lambda payload: payload["hourly"].update(visibility="24140"),
            "hourly.visibility is not a list: '24140'",
        ),
        (
            lambda payload: payload["hourly"].update(time=None),
            "hourly.time is missing or not a list",
        ),
        (lambda payload: payload.pop("hourly"), "hourly.time is missing or not a list"),
        (lambda payload: payload.update(hourly=[]), "hourly.time is missing or not a list"),
        (lambda payload: payload.update(hourly_units=["°C"]), "hourly_units is not an object"),
        (
            lambda payload: payload.update(utc_offset_seconds="abc"),
            "utc_offset_seconds is not a number: 'abc'",
        ),
    ],
)
def test_open_meteo_malformed_payload_is_an_error_with_context(
    api: FakeApi, change: Callable[[dict], object], expected: str
) -> None:
    api.route = open_meteo_changed(change)
    with pytest.raises(WeatherSourceError) as caught:
        open_meteo(api).fetch(utc(2024, 7, 1), utc(2024, 7, 2))
    message = str(caught.value)
    assert f"Open-Meteo station seoul {OPEN_METEO_WINDOW}: " in message
    assert expected in message
