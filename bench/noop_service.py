"""The floors for `bench/serving.py`: BentoML services that answer a constant, with the same
settings as the comfort service (one worker, no access log, no tracing on the route,
BentoML's path-labelled metrics off). `NoopForecast` only parses the `/predict` body as
JSON: whatever the comfort service costs above it is ours, not the framework's.
`ValidatingForecast` also validates it as the comfort service does (`PredictBody` against
the champion's contract, behind the same `Guard`): what is left above that is the forecast,
the batching and the log.

    bentoml serve noop_service:NoopForecast --working-dir bench
    bentoml serve noop_service:ValidatingForecast --working-dir bench   # reads COMFORT_HOME
"""

from __future__ import annotations

from typing import Annotated, Any

import bentoml
from bentoml.validators import ContentType
from starlette.responses import Response

from comfort_assets.serving.guard import MAX_BODY_BYTES, REQUEST_TIMEOUT_S, Guard, Readiness
from comfort_assets.serving.schemas import PredictBody, set_contract

_ANSWER = b'[{"di_forecast": 0.0}]'
#: The comfort service's settings that bear on speed.
SETTINGS: dict[str, Any] = {
    "workers": 1,
    "traffic": {"timeout": REQUEST_TIMEOUT_S},
    "logging": {"access": {"enabled": False}},
    "tracing": {"excluded_urls": ["/predict"]},
    "metrics": {"enabled": False},
}


@bentoml.service(name="noop_forecast", **SETTINGS)
class NoopForecast:
    @bentoml.api
    async def predict(
        self, requests: list[dict[str, Any]]
    ) -> Annotated[list[dict[str, Any]], ContentType("application/json")]:
        return Response(_ANSWER, media_type="application/json")


ready = Readiness()


@bentoml.service(name="validating_forecast", **SETTINGS)
class ValidatingForecast:
    def __init__(self) -> None:
        from comfort_assets.deployment import object_store
        from comfort_assets.resources.registry import ModelRegistry
        from comfort_assets.serving.core import load_champion

        set_contract(load_champion(ModelRegistry(store=object_store(resolve_env=True))).contract)
        ready.problems = list  # nothing stops it answering: an empty list of problems

    @bentoml.api
    async def predict(
        self, body: PredictBody, /
    ) -> Annotated[list[dict[str, Any]], ContentType("application/json")]:
        return Response(_ANSWER, media_type="application/json")


ValidatingForecast.add_asgi_middleware(Guard, readiness=ready, max_body=MAX_BODY_BYTES)
