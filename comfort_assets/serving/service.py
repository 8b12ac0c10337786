"""The Bento service: the registry's champion behind adaptive batching, every forecast logged.

    bentoml serve comfort_assets.serving.service:ComfortForecast   # or `bentoml serve .`

Endpoints (BentoML APIs are POST with a JSON body):
- ``/predict``: ``{"requests": [ForecastRequest, ...]}`` → ``[Forecast, ...]``; requests from
  concurrent callers are batched together (one feature matrix, one XGBoost call, one commit).
- ``/feedback``: ``{"prediction_id", "actual_di"?, "rating"?}``; 404 for an unknown id.
- ``/model_info``: version, metrics, training window of the model being served.
- BentoML's own ``/livez``, ``/readyz`` and ``/metrics`` stay on.

Configuration is the environment's, as for Dagster: COMFORT_HOME / COMFORT_ENV pick the
registry, COMFORT_PREDICTION_DB_URL the store, COMFORT_RELOAD_SECONDS how often the champion
pointer is checked (a new champion is served without a restart).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Annotated

import bentoml
from bentoml.exceptions import InvalidArgument, NotFound
from bentoml.validators import ContentType
from pydantic import Field

from comfort_assets.serving.core import Forecaster
from comfort_assets.serving.schemas import (
    ActualDI,
    FeedbackAck,
    Forecast,
    ForecastRequest,
    ModelInfo,
    Rating,
)

#: Batch limits: 64 windows cost ~2.6 ms to predict with the 4-member champion; the latency
#: budget is generous so a burst is queued rather than answered 503 (STACK.md).
MAX_BATCH_SIZE = 64
MAX_LATENCY_MS = 1000


@bentoml.service(
    name="comfort_forecast",
    workers=1,
    traffic={"timeout": 5},
    logging={"access": {"enabled": False}},
    # OpenTelemetry cost a third of the event loop even unsampled (STACK.md)
    tracing={"excluded_urls": ["/predict", "/feedback", "/model_info"]},
    metrics={"enabled": True},
)
class ComfortForecast:
    """Forecast DI(t+h) for stations with recent hourly observations."""

    def __init__(self) -> None:
        self.forecaster = Forecaster.from_environment()
        # the model and imports are long-lived: keep them out of every GC pass (STACK.md)
        gc.freeze()

    @bentoml.api(
        batchable=True,
        batch_dim=0,
        max_batch_size=MAX_BATCH_SIZE,
        max_latency_ms=MAX_LATENCY_MS,
    )
    async def predict(
        self, requests: Annotated[list[ForecastRequest], Field(min_length=1, max_length=1024)]
    ) -> Annotated[list[Forecast], ContentType("application/json")]:
        return await self.forecaster.predict(requests)

    @bentoml.api
    async def feedback(
        self, prediction_id: str, actual_di: ActualDI = None, rating: Rating = None
    ) -> FeedbackAck:
        """Attach the observed DI and/or a comfort rating to a prediction (idempotent)."""
        if actual_di is None and rating is None:
            raise InvalidArgument("feedback needs actual_di and/or rating")
        store = self.forecaster.store
        row = await asyncio.to_thread(store.record_feedback, prediction_id, actual_di, rating)
        if row is None:
            raise NotFound(f"prediction_id {prediction_id!r}: no such prediction")
        return FeedbackAck(
            prediction_id=prediction_id,
            actual_di=row["actual_di"],
            rating=row["rating"],
            feedback_at=row["feedback_at"],
        )

    @bentoml.api
    async def model_info(self) -> ModelInfo:
        return self.forecaster.model_info()

    @bentoml.on_shutdown
    def close(self) -> None:
        self.forecaster.close()
