"""Plain FastAPI apps for `bench/serving.py`: the Bento service's yardsticks, not a product.

Both call the same `Forecaster` as the Bento (champion, XGBoost, group-commit logging) once
per request, without batching:

    uvicorn --app-dir bench --factory serving_twins:fast_app --workers 1
    uvicorn --app-dir bench --factory serving_twins:naive_app --workers 1

`naive_app` builds each request's features with pandas (`build_features` on a one-station
DataFrame), the seed project's way; `fast_app` uses the NumPy window builder.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import numpy as np
import numpy.typing as npt
import pandas as pd
from fastapi import FastAPI, Request, Response
from pydantic import TypeAdapter, ValidationError

from comfort_assets.domain.features import OBSERVED, WINDOW_HOURS, build_features, feature_names
from comfort_assets.serving.core import Forecaster
from comfort_assets.serving.schemas import Forecast, ForecastRequest, PredictBody

_FORECASTS = TypeAdapter(list[Forecast])


def pandas_features(requests: Sequence[ForecastRequest], horizon: int) -> npt.NDArray:
    """The naive path: one DataFrame per request through the training-table builder."""
    rows = []
    for request in requests:
        hours = pd.date_range(end=request.observed_until, periods=WINDOW_HOURS, freq="h")
        frame = pd.DataFrame({"station": request.station, "time_utc": hours})
        for name in OBSERVED:
            values = getattr(request.observations, name)
            frame[name] = np.nan if values is None else np.array(values, dtype=float)
        built = build_features(frame, horizon)
        rows.append(built[feature_names(horizon)].iloc[-1].to_numpy(dtype=float))
    return np.vstack(rows)


def _app(naive: bool) -> FastAPI:
    forecaster = Forecaster.from_environment()
    features = pandas_features if naive else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        forecaster.close()

    app = FastAPI(
        title="comfort forecast (naive pandas)" if naive else "comfort forecast", lifespan=lifespan
    )

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        # the Bento's way: the strict contract validated straight from the JSON bytes
        try:
            body = PredictBody.model_validate_json(await request.body())
        except ValidationError as error:
            return Response(error.json(include_input=False), 400, media_type="application/json")
        forecasts, rows = forecaster.forecast(body.requests, features)
        if forecaster.writer is not None:
            await forecaster.writer.write(rows)
        return Response(_FORECASTS.dump_json(forecasts), media_type="application/json")

    @app.get("/readyz")
    async def ready() -> Response:
        return Response("\n")

    gc.freeze()
    return app


def fast_app() -> FastAPI:
    return _app(naive=False)


def naive_app() -> FastAPI:
    return _app(naive=True)
