"""Weather sources that call public HTTP APIs: KMA ASOS (data.go.kr) and Open-Meteo.

Each connector is split in two: a pure ``parse_*`` function that turns one recorded-shape
response into the raw SI table (unit-testable without a network), and a resource whose
``fetch`` does the HTTP, paging and error mapping. Values are converted to SI where they
are numbers and passed through untouched where they are not, so `parse_measurements`
names them in ``parse_error`` and cleaning quarantines them; no row is dropped here
except those outside the requested window.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import dagster as dg
import numpy as np
import pandas as pd
import requests
from pydantic import PrivateAttr
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from comfort_assets.domain import units
from comfort_assets.domain.cleaning import RAW_COLUMNS, parse_measurements
from comfort_assets.resources.weather import WeatherSource, as_utc

#: Query parameters that carry a credential, masked in every message.
_SECRET_PARAMETER = re.compile(r"((?:serviceKey|service_key|api_key|apikey)=)[^&\s'\"]+", re.I)
#: Shorter secrets are masked only where a parameter carries them.
MIN_MASKED_SECRET = 6
#: urllib3 loggers whose records carry request URLs, and so the key.
_URL_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")

#: Answers worth asking again: rate limiting, and a gateway or server failing for a moment.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

#: KMA publishes times in Korea Standard Time, which has had no daylight saving since 1988.
KST_OFFSET = timedelta(hours=9)
KMA_TIME_FORMAT = "%Y-%m-%d %H:%M"
KMA_MAX_PAGE_SIZE = 999
#: KMA result codes with a meaning of their own.
KMA_OK, KMA_NO_DATA, KMA_NOT_YET_SERVED = "00", "03", "99"

OPEN_METEO_TIME_FORMAT = "%Y-%m-%dT%H:%M"
METRE_TO_KM = 1e-3
FOOT_TO_KM = 0.3048e-3

_ERROR_SNIPPET_CHARS = 200

Converter = Callable[[np.ndarray], np.ndarray] | None


class WeatherSourceError(RuntimeError):
    """A weather API refused or failed a request; ``code`` is the API's own code if any.

    Messages never contain credentials, so they are safe to log and to show in Dagster.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------
# shared helpers


def _empty_raw() -> pd.DataFrame:
    return parse_measurements(
        pd.DataFrame({"station": pd.Series(dtype=object), "time_utc": pd.Series(dtype=object)})
    )


def _concat_raw(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return _empty_raw()
    return pd.concat(frames, ignore_index=True).loc[:, list(RAW_COLUMNS)]


def _local_times_to_utc(text: pd.Series, fmt: str, offset: timedelta, field: str) -> pd.Series:
    """Parse local wall-clock times strictly and shift them to UTC.

    A time that does not match ``fmt`` is handed on as ``"<field>=<text>"``: unparsable on
    purpose, so `parse_measurements` flags it instead of guessing (a lenient parser would
    read ``2024/07/01 09:00`` as UTC and be silently 9 h off).
    """
    text = text.astype("string").str.strip()
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    utc = (parsed - offset).dt.tz_localize("UTC")
    out = pd.Series(list(utc), index=text.index, dtype=object)
    bad = utc.isna() & text.notna() & (text != "")
    out[bad] = field + "=" + text[bad]
    out[text.isna() | (text == "")] = None
    return out


def _convert(values: pd.Series, convert: Converter) -> pd.Series:
    """Apply a unit conversion to the values that are numbers; leave the rest as given."""
    if convert is None:
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    ok = numbers.notna()
    out = values.astype(object).copy()
    out[ok] = convert(numbers[ok].to_numpy(dtype=float))
    return out


def _in_window(raw: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Keep ``[start, end)``; rows whose time is unusable came with this response, so they
    stay and cleaning quarantines them."""
    times = raw["time_utc"]
    keep = times.isna() | ((times >= start) & (times < end))
    return raw.loc[keep].reset_index(drop=True)


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_SNIPPET_CHARS else text[:_ERROR_SNIPPET_CHARS] + "…"


class _RedactingFilter(logging.Filter):
    """Scrubs secrets from records of one logger (urllib3 logs full URLs at DEBUG)."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class _HttpWeatherSource(WeatherSource):
    """One `requests.Session` per resource instance, created on first use.

    A connection error or a `RETRY_STATUSES` answer is asked again up to ``max_retries``
    times (urllib3's `Retry`): one rate-limited or flaky answer must not fail a partition,
    but a service that stays down must fail it soon. The waits are ``Retry-After`` if the
    service sends one, else 0, 2, 4 … x ``retry_backoff_seconds``; each is capped at
    ``max_retry_wait_seconds``, so a failure costs at most 6 s of waiting by default.
    """

    base_url: str
    timeout_seconds: float = 30.0
    max_retries: int = 3
    retry_backoff_seconds: float = 0.5
    max_retry_wait_seconds: int = 2

    _session: requests.Session | None = PrivateAttr(default=None)

    def _http(self) -> requests.Session:
        if self._session is None:
            retry = Retry(
                total=self.max_retries,
                backoff_factor=self.retry_backoff_seconds,
                backoff_max=self.max_retry_wait_seconds,
                status_forcelist=RETRY_STATUSES,
                allowed_methods=frozenset({"GET"}),
                respect_retry_after_header=True,
                retry_after_max=self.max_retry_wait_seconds,
                # the last answer is returned, so its status and body make the error
                raise_on_status=False,
            )
            session = requests.Session()
            adapter = HTTPAdapter(max_retries=retry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session = session
        return self._session

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _secrets(self) -> tuple[str, ...]:
        return ()

    def _redact(self, text: str) -> str:
        """Secrets out of a message: each query parameter that carries one, and the secret
        wherever else it appears (if it is long enough that masking it cannot garble the
        message: a one-letter key turned "retries exceeded" into "retries e***ceeded")."""
        if not self._secrets():
            return text
        text = _SECRET_PARAMETER.sub(r"\1***", text)
        for secret in self._secrets():
            if len(secret) >= MIN_MASKED_SECRET:
                text = text.replace(secret, "***")
        return text

    def _error(self, message: str, code: str | None = None) -> WeatherSourceError:
        return WeatherSourceError(self._redact(message), code=code)

    @contextlib.contextmanager
    def _redacted_logs(self) -> Iterator[None]:
        if not self._secrets():
            yield
            return
        logs = [logging.getLogger(name) for name in _URL_LOGGERS]
        redactor = _RedactingFilter(self._redact)
        for log in logs:
            log.addFilter(redactor)
        try:
            yield
        finally:
            for log in logs:
                log.removeFilter(redactor)

    def _get(self, what: str, params: Mapping[str, Any]) -> requests.Response:
        """GET ``base_url``, retried as the class says; transport errors left after the
        retries become `WeatherSourceError` without the original exception attached,
        because its text holds the full URL."""
        try:
            with self._redacted_logs():
                return self._http().get(
                    self.base_url,
                    params=dict(params),
                    timeout=self.timeout_seconds,
                )
        except requests.RequestException as exc:
            raise self._error(f"{what}: request failed: {type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------------------------------
# KMA ASOS hourly (data.go.kr AsosHourlyInfoService/getWthrDataList)

#: KMA item field → (SI column, conversion of the numeric value).
KMA_FIELDS: dict[str, tuple[str, Converter]] = {
    "ta": ("temp_c", None),
    "td": ("dewpoint_c", None),
    "hm": ("humidity_pct", None),
    "wd": ("wind_dir_deg", None),
    "ws": ("wind_speed_ms", None),
    "rn": ("precip_mm", None),
    "ps": ("pressure_hpa", None),  # sea-level pressure; "pa" is station pressure
    "vs": ("visibility_km", units.decametres_to_km),
}


def parse_kma_items(items: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """KMA ASOS hourly items (all strings, "" = missing, ``tm`` in KST) → raw SI table.

    There is no gust in ASOS hourly, so ``wind_gust_ms`` is missing.
    """
    if not items:
        return _empty_raw()
    table = pd.DataFrame.from_records(list(items))
    for field in ("tm", "stnId", *KMA_FIELDS):
        if field not in table:
            table[field] = None
    frame = pd.DataFrame(index=table.index)
    frame["station"] = table["stnId"].astype("string").str.strip()
    frame["time_utc"] = _local_times_to_utc(table["tm"], KMA_TIME_FORMAT, KST_OFFSET, "tm")
    for field, (column, convert) in KMA_FIELDS.items():
        frame[column] = _convert(table[field], convert)
    return parse_measurements(frame)


def _kma_total(body: Mapping[str, Any], what: str) -> int:
    """``totalCount``, which KMA sends as a number or a string of digits."""
    total = body.get("totalCount")
    if total is None:
        raise WeatherSourceError(f"{what}: malformed KMA response: totalCount is missing")
    try:
        count = int(str(total).strip())
    except ValueError:
        raise WeatherSourceError(
            f"{what}: malformed KMA response: totalCount is not a number: {total!r}"
        ) from None
    if count < 0:
        raise WeatherSourceError(f"{what}: malformed KMA response: totalCount is {count}")
    return count


def _kma_items(body: Mapping[str, Any], what: str) -> list[Mapping[str, Any]]:
    items = body.get("items")
    if items is None or items == "":  # "" when a page is empty
        return []
    if not isinstance(items, Mapping):
        raise WeatherSourceError(
            f"{what}: malformed KMA response: items is not an object: {_snippet(repr(items))}"
        )
    item = items.get("item")
    if isinstance(item, Mapping):  # a single item is sometimes not wrapped in a list
        return [item]
    if not item:
        return []
    if not isinstance(item, list) or not all(isinstance(i, Mapping) for i in item):
        raise WeatherSourceError(
            f"{what}: malformed KMA response: items.item is not a list of objects: "
            f"{_snippet(repr(item))}"
        )
    return item


def _hour_range_kst(start: pd.Timestamp, end: pd.Timestamp) -> tuple[datetime, datetime] | None:
    """First and last whole hour (KST, inclusive, as KMA wants) inside UTC ``[start, end)``."""
    first = start.ceil("h")
    last = end.ceil("h") - pd.Timedelta(hours=1)
    if last < first:
        return None

    def to_kst(ts: pd.Timestamp) -> datetime:
        return (ts.to_pydatetime() + KST_OFFSET).replace(tzinfo=None)

    return to_kst(first), to_kst(last)


class KmaAsosWeatherSource(_HttpWeatherSource):
    """KMA ASOS hourly observations (Korea), via data.go.kr.

    KMA serves data only up to yesterday (KST). ``service_key`` may be given in either the
    "Encoding" or the "Decoding" form data.go.kr shows; it never appears in errors or logs.
    """

    service_key: str
    station_ids: list[int]
    base_url: str = "https://apis.data.go.kr/1360000/AsosHourlyInfoService/getWthrDataList"
    page_size: int = KMA_MAX_PAGE_SIZE

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        for name, value in super().__repr_args__():
            yield name, ("***" if name == "service_key" else value)

    def _decoded_key(self) -> str:
        # requests URL-encodes parameters; an already encoded key would be encoded twice
        # and KMA would answer SERVICE_KEY_IS_NOT_REGISTERED_ERROR
        return unquote(self.service_key) if "%" in self.service_key else self.service_key

    def _secrets(self) -> tuple[str, ...]:
        decoded = self._decoded_key()
        forms = {self.service_key, decoded, quote_plus(decoded), quote(decoded, safe="")}
        return tuple(sorted((f for f in forms if f), key=len, reverse=True))

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        if not 1 <= self.page_size <= KMA_MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{KMA_MAX_PAGE_SIZE}, got {self.page_size}")
        start_ts, end_ts = as_utc(start), as_utc(end)
        hours = _hour_range_kst(start_ts, end_ts)
        if hours is None:
            return _empty_raw()
        frames = [
            parse_kma_items(self._fetch_station(station, *hours)) for station in self.station_ids
        ]
        return _in_window(_concat_raw(frames), start_ts, end_ts)

    def _fetch_station(self, station: int, first: datetime, last: datetime) -> list[Mapping]:
        """All items for one station, page by page until ``totalCount`` items are read."""
        what = f"KMA ASOS station {station} {first:%Y-%m-%d %H:00}..{last:%Y-%m-%d %H:00} KST"
        params = {
            "serviceKey": self._decoded_key(),
            "numOfRows": self.page_size,
            "dataType": "JSON",
            "dataCd": "ASOS",
            "dateCd": "HR",
            "startDt": f"{first:%Y%m%d}",
            "startHh": f"{first:%H}",
            "endDt": f"{last:%Y%m%d}",
            "endHh": f"{last:%H}",
            "stnIds": str(station),
        }
        items: list[Mapping] = []
        page = 1
        while True:
            body = self._kma_page(what, {**params, "pageNo": page})
            total = _kma_total(body, f"{what} page {page}")
            page_items = _kma_items(body, f"{what} page {page}")
            items.extend(page_items)
            if not items and not total:
                # as for resultCode 03: a silent empty day is worse than a failed partition
                raise self._error(
                    f"{what}: the service returned no observations (resultCode 00, "
                    "totalCount 0); check the station id and the window"
                )
            if len(items) >= total:
                return items
            if not page_items:
                raise self._error(
                    f"{what}: page {page} was empty after {len(items)} of {total} items"
                )
            if page >= math.ceil(total / self.page_size) + 1:
                raise self._error(f"{what}: {len(items)} of {total} items after {page} pages")
            page += 1

    def _kma_page(self, what: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        response = self._get(what, params)
        content = response.content.lstrip()
        if content.startswith(b"<"):  # key errors come as XML even when JSON was asked for
            raise self._xml_error(what, response.status_code, content)
        if response.status_code >= 400:
            raise self._error(
                f"{what}: HTTP {response.status_code}: {_snippet(response.text)}",
                code=str(response.status_code),
            )
        try:
            payload = response.json()
            header = payload["response"]["header"]
            code, message = str(header["resultCode"]), str(header.get("resultMsg", ""))
        except (ValueError, KeyError, TypeError):
            raise self._error(
                f"{what}: response is not KMA JSON: {_snippet(response.text)}"
            ) from None
        if code != KMA_OK:
            raise self._result_error(what, code, message)
        body = payload["response"].get("body")
        if not isinstance(body, Mapping):
            raise self._error(
                f"{what}: malformed KMA response: response.body is missing or not an object: "
                f"{_snippet(response.text)}"
            )
        return body

    def _result_error(self, what: str, code: str, message: str) -> WeatherSourceError:
        text = f"{what}: KMA resultCode {code} ({message})"
        if code == KMA_NO_DATA:
            # a silent empty day is worse than a failed partition
            text += ": no observations for this station and window; check the station id"
        elif code == KMA_NOT_YET_SERVED:
            text += ": KMA serves ASOS data only up to yesterday (KST); ask for an earlier window"
        return self._error(text, code=code)

    def _xml_error(self, what: str, status: int, content: bytes) -> WeatherSourceError:
        try:
            root = ET.fromstring(content)
        except ET.ParseError:
            text = _snippet(content.decode(errors="replace"))
            return self._error(f"{what}: HTTP {status}, unreadable XML: {text}")

        def find(tag: str) -> str:
            node = root.find(f".//{tag}")
            return (node.text or "").strip() if node is not None else ""

        if find("resultCode"):  # the JSON header, served as XML
            return self._result_error(what, find("resultCode"), find("resultMsg"))
        auth, reason, err = find("returnAuthMsg"), find("returnReasonCode"), find("errMsg")
        return self._error(
            f"{what}: HTTP {status}: {err or 'service error'}: {auth or 'no returnAuthMsg'} "
            f"(returnReasonCode {reason or '?'})",
            code=reason or None,
        )


# ---------------------------------------------------------------------------------------
# Open-Meteo archive / forecast

_TEMPERATURE: dict[str, Converter] = {"°C": None, "°F": units.fahrenheit_to_celsius}
_WIND: dict[str, Converter] = {
    "km/h": units.kmh_to_ms,
    "m/s": None,
    "mp/h": units.mph_to_ms,
    "kn": lambda v: v * units.KNOT_TO_MS,
}
#: Open-Meteo hourly variable → (SI column, {unit in ``hourly_units`` → conversion}).
OPEN_METEO_HOURLY: dict[str, tuple[str, dict[str, Converter]]] = {
    "temperature_2m": ("temp_c", _TEMPERATURE),
    "relative_humidity_2m": ("humidity_pct", {"%": None}),
    "dew_point_2m": ("dewpoint_c", _TEMPERATURE),
    "wind_speed_10m": ("wind_speed_ms", _WIND),
    "wind_direction_10m": ("wind_dir_deg", {"°": None}),
    "wind_gusts_10m": ("wind_gust_ms", _WIND),
    "precipitation": ("precip_mm", {"mm": None, "inch": units.inches_to_mm}),
    "pressure_msl": ("pressure_hpa", {"hPa": None}),
    "visibility": (
        "visibility_km",
        {"m": lambda v: v * METRE_TO_KM, "ft": lambda v: v * FOOT_TO_KM},
    ),
}


def _open_meteo_what(station: str, window: str) -> str:
    return f"Open-Meteo station {station} {window}".rstrip()


def parse_open_meteo(payload: Mapping[str, Any], station: str, window: str = "") -> pd.DataFrame:
    """One Open-Meteo response (column-wise ``hourly`` arrays, ``null`` = missing) → raw SI
    table for ``station``; ``window`` (the dates asked for) only names the request in errors.

    Units are read from ``hourly_units``, never assumed; an unknown unit is an error
    rather than a guess. Times are local wall-clock times; ``utc_offset_seconds`` maps
    them to UTC. A variable absent from ``hourly`` stays missing; one that is present but
    not an array, like no times at all, is an error: the run must not go on with no rows.
    """
    what = _open_meteo_what(station, window)
    hourly = payload.get("hourly")
    if not isinstance(hourly, Mapping) or not isinstance(hourly.get("time"), list):
        raise WeatherSourceError(f"{what}: hourly.time is missing or not a list")
    times = hourly["time"]
    if not times:
        raise WeatherSourceError(
            f"{what}: the service returned no observations (hourly.time is empty)"
        )
    hourly_units = payload.get("hourly_units") or {}
    if not isinstance(hourly_units, Mapping):
        raise WeatherSourceError(f"{what}: hourly_units is not an object")
    offset_seconds = payload.get("utc_offset_seconds") or 0
    try:
        offset = timedelta(seconds=int(offset_seconds))
    except (TypeError, ValueError, OverflowError):
        raise WeatherSourceError(
            f"{what}: utc_offset_seconds is not a number: {offset_seconds!r}"
        ) from None
    frame = pd.DataFrame(index=pd.RangeIndex(len(times)))
    frame["station"] = station
    frame["time_utc"] = _local_times_to_utc(
        pd.Series(times, dtype=object), OPEN_METEO_TIME_FORMAT, offset, "time"
    )
    for variable, (column, converters) in OPEN_METEO_HOURLY.items():
        if variable not in hourly:
            continue
        values = hourly[variable]
        if not isinstance(values, list):
            raise WeatherSourceError(
                f"{what}: hourly.{variable} is not a list: {_snippet(repr(values))}"
            )
        if len(values) != len(times):
            raise WeatherSourceError(
                f"{what}: hourly.{variable} has {len(values)} values for {len(times)} times"
            )
        unit = hourly_units.get(variable)
        if unit not in converters:
            raise WeatherSourceError(
                f"{what}: unknown unit {unit!r} for hourly.{variable} "
                f"(known: {', '.join(converters)})"
            )
        frame[column] = _convert(pd.Series(values, dtype=object), converters[unit])
    return parse_measurements(frame)


class OpenMeteoWeatherSource(_HttpWeatherSource):
    """Open-Meteo hourly data for named points: the archive by default; point ``base_url``
    at ``https://api.open-meteo.com/v1/forecast`` for the forecast API (same shape).

    ``stations`` maps a station id to ``[latitude, longitude]``. One request per station.
    """

    stations: dict[str, list[float]]
    base_url: str = "https://archive-api.open-meteo.com/v1/archive"

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = as_utc(start), as_utc(end)
        if end_ts <= start_ts:
            return _empty_raw()
        last_day = end_ts - pd.Timedelta(1, "ns")
        frames = []
        window = f"{start_ts:%Y-%m-%d}..{last_day:%Y-%m-%d} UTC"
        for station, coordinates in sorted(self.stations.items()):
            latitude, longitude = _coordinates(station, coordinates)
            params = {
                "latitude": latitude,
                "longitude": longitude,
                "start_date": f"{start_ts:%Y-%m-%d}",
                "end_date": f"{last_day:%Y-%m-%d}",
                "hourly": ",".join(OPEN_METEO_HOURLY),
                "timezone": "GMT",
            }
            payload = self._open_meteo_payload(_open_meteo_what(station, window), params)
            frames.append(parse_open_meteo(payload, station, window))
        return _in_window(_concat_raw(frames), start_ts, end_ts)

    def _open_meteo_payload(self, what: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        response = self._get(what, params)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, Mapping) and payload.get("error"):
            raise self._error(
                f"{what}: HTTP {response.status_code}: Open-Meteo says: "
                f"{payload.get('reason', 'no reason given')}",
                code=str(response.status_code),
            )
        if not response.ok:
            raise self._error(
                f"{what}: HTTP {response.status_code}: {_snippet(response.text)}",
                code=str(response.status_code),
            )
        if not isinstance(payload, Mapping):
            raise self._error(f"{what}: response is not a JSON object: {_snippet(response.text)}")
        return payload


def _coordinates(station: str, coordinates: Sequence[float]) -> tuple[float, float]:
    if len(coordinates) != 2:
        raise ValueError(f"station {station}: expected [latitude, longitude], got {coordinates}")
    latitude, longitude = (float(c) for c in coordinates)
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValueError(f"station {station}: ({latitude}, {longitude}) is not a coordinate")
    return latitude, longitude
