"""The Bento service: the registry's champion, natural batching, every forecast logged.

    bentoml serve comfort_assets.serving.service:ComfortForecast   # or `bentoml serve .`

Endpoints (BentoML APIs are POST with a JSON body, at most 1 MiB: a larger one is a 413):
- ``/predict``: ``{"requests": [ForecastRequest, ...]}`` (1–64) → ``[Forecast, ...]``. Every
  window is validated before it joins a batch; windows from concurrent callers share one
  feature matrix, one model call and one commit, and a lone caller never waits for company.
- ``/forecast``: ``{"station", "time"?}`` → ``Forecast``: the service builds the window itself
  from the ingested ``clean_weather`` (the 97 hours ending at ``time``; by default the
  station's newest hour with temperature and humidity), so a caller sends no observations;
  then as ``/predict`` (validated, batched, logged). No such window is a 400 naming
  ``station`` or ``time``. The weather is held in memory and re-read on the reload tick
  when its objects change.
- ``/feedback``: ``{"prediction_id", "actual_di"?, "rating"?}``; 404 for an unknown id.
- ``/model_info``: version, metrics, training window of the model being served.
- ``/livez`` (the process is up), ``/readyz`` (200, or 503 with the reasons: no valid
  champion, prediction store unusable), ``/metrics`` (requests by route and status).

A start without a valid champion or a reachable store does not crash: the service stays up,
answers 503 with the reason on ``/readyz`` and ``/predict``, and becomes ready by itself when
the champion or the store appears (checked every COMFORT_RELOAD_SECONDS). SIGTERM drains:
requests in flight are answered (and their rows committed) before the worker exits.

Configuration is the environment's, as for Dagster: COMFORT_HOME / COMFORT_ENV pick the
registry and the object store the ingested weather is read from, COMFORT_PREDICTION_DB_URL
the store, COMFORT_RELOAD_SECONDS how often the champion pointer and the weather are checked
(a new champion or new data is served without a restart), COMFORT_SERVING_WORKERS the number
of worker processes (default 1).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from typing import Annotated

import bentoml
from bentoml.validators import ContentType
from pydantic import TypeAdapter
from starlette.responses import JSONResponse, Response

from comfort_assets.deployment import (
    SettingError,
    number_setting,
    object_store,
    prediction_store,
    whole_number_setting,
)
from comfort_assets.resources.prediction_store import ActualTooEarly
from comfort_assets.serving.core import (
    DEFAULT_RELOAD_SECONDS,
    Forecaster,
    ForecastFailed,
    NaturalBatcher,
    Unavailable,
    brief,
)
from comfort_assets.serving.guard import (
    CLIENT_ERROR,
    MAX_BODY_BYTES,
    REQUEST_TIMEOUT_S,
    Guard,
    Readiness,
    bound_connections,
    die_with_parent,
    quiet_client_errors,
    read_before_closing,
)
from comfort_assets.serving.schemas import (
    FeedbackAck,
    FeedbackBody,
    Forecast,
    ForecastBody,
    ModelInfo,
    PredictBody,
)
from comfort_assets.serving.weather import IngestedWeather

log = logging.getLogger(__name__)
_FORECASTS = TypeAdapter(list[Forecast])
try:  # read when `bentoml serve` imports this: a bad value is one line and an exit, not a
    # worker that fails its start and is restarted forever
    WORKERS = whole_number_setting("COMFORT_SERVING_WORKERS", 1, minimum=1)
    number_setting("COMFORT_RELOAD_SECONDS", DEFAULT_RELOAD_SECONDS)
    # malformed, not unreachable: a store that cannot be reached keeps the service up (503)
    object_store(resolve_env=True)
    prediction_store(resolve_env=True)
except SettingError as error:
    sys.exit(f"comfort service: {error}")
readiness = Readiness()
quiet_client_errors()


def _error(status: int, error: Exception | str) -> Response:
    """An error answer as the document states it (``Error``: ``{"error": why}``)."""
    return JSONResponse({"error": str(error)}, status_code=status)


@bentoml.service(
    name="comfort_forecast",
    workers=WORKERS,
    traffic={"timeout": REQUEST_TIMEOUT_S},
    logging={"access": {"enabled": False}},
    # OpenTelemetry cost a third of the event loop even unsampled
    tracing={
        "excluded_urls": ["/predict", "/forecast", "/feedback", "/model_info", "/readyz", "/livez"]
    },
    # BentoML labels its metrics with the raw path; `Guard` serves bounded ones instead
    metrics={"enabled": False},
)
class ComfortForecast:
    """Forecast DI(t+h) for stations with recent hourly observations."""

    def __init__(self) -> None:
        die_with_parent()
        read_before_closing()
        bound_connections()
        self.forecaster = Forecaster.from_environment()
        self.batcher = NaturalBatcher(self.forecaster)
        # the same object store as the registry: COMFORT_HOME / COMFORT_ENV pick both
        self.weather = IngestedWeather(self.forecaster.registry.store)
        self.forecaster.also_refresh(self.weather.refresh)
        readiness.problems = self.forecaster.problems
        # the model and imports are long-lived: keep them out of every GC pass
        gc.freeze()

    @bentoml.api
    async def predict(
        self, body: PredictBody, /
    ) -> Annotated[list[Forecast], ContentType("application/json")]:
        """Forecast DI at observed_until + h for each window, in order; each forecast is
        committed to the prediction store before the answer."""
        try:
            forecasts = await self.batcher.predict(body.requests)
        except Unavailable as error:
            return _error(503, error)
        except ForecastFailed as error:
            return _error(500, error)
        return Response(_FORECASTS.dump_json(forecasts), media_type="application/json")

    @bentoml.api
    async def forecast(self, body: ForecastBody, /) -> Forecast:
        """Forecast DI at time + h for a station from the weather the pipeline ingested: the
        window of the hours up to `time` (default: the station's newest hour with temperature
        and humidity), then exactly as /predict (validated, batched, committed to the
        prediction store before the answer). 400 naming `station` or `time` when there is no
        such complete window."""
        try:
            request = self.weather.request(body.station, body.time)
            (forecast,) = await self.batcher.predict([request])
        except Unavailable as error:
            return _error(503, error)
        except ForecastFailed as error:
            return _error(500, error)
        return forecast

    @bentoml.api
    async def feedback(self, body: FeedbackBody, /) -> FeedbackAck:
        """Attach feedback to a prediction: the observed DI at valid_at (`actual_di`) and/or
        a felt-comfort `rating`, at least one of the two. Idempotent: the same feedback twice
        leaves the same row, a later value replaces an earlier one. 404 for an unknown id;
        409 for an `actual_di` sent before the forecast's valid_at."""
        store = self.forecaster.store
        try:
            row = await asyncio.to_thread(
                store.record_feedback, body.prediction_id, body.actual_di, body.rating
            )
        except ActualTooEarly as error:
            log.info("rejected /feedback: 409 %s", error, extra=CLIENT_ERROR)
            return _error(409, error)
        except Exception as error:  # the store, not the caller: 503, and never the id
            log.warning("feedback not recorded: prediction store: %s", brief(error))
            return _error(503, f"prediction store: {brief(error)}")
        if row is None:  # BentoML's NotFound answers a list, not the documented object
            why = f"prediction_id …{body.prediction_id[-8:]}: no such prediction"
            log.info("rejected /feedback: 404 %s", why, extra=CLIENT_ERROR)
            return _error(404, why)
        return FeedbackAck(
            prediction_id=body.prediction_id,
            actual_di=row["actual_di"],
            rating=row["rating"],
            feedback_at=row["feedback_at"],
        )

    @bentoml.api
    async def model_info(self) -> ModelInfo:
        try:
            return self.forecaster.model_info()
        except Unavailable as error:
            return _error(503, error)

    @bentoml.on_shutdown
    def close(self) -> None:
        self.batcher.close()
        self.forecaster.close()


ComfortForecast.add_asgi_middleware(Guard, readiness=readiness, max_body=MAX_BODY_BYTES)
