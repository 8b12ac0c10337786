"""The floor for `bench/serving.py`: a BentoML service that parses the `/predict` body and
answers a constant, with the same settings as the comfort service (one worker, no access
log, no tracing on the route, BentoML's path-labelled metrics off). Whatever the comfort
service costs above this is ours, not the framework's.

    bentoml serve noop_service:NoopForecast --working-dir bench
"""

from __future__ import annotations

from typing import Annotated, Any

import bentoml
from bentoml.validators import ContentType
from starlette.responses import Response

_ANSWER = b'[{"di_forecast": 0.0}]'


@bentoml.service(
    name="noop_forecast",
    workers=1,
    traffic={"timeout": 10},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": ["/predict"]},
    metrics={"enabled": False},
)
class NoopForecast:
    @bentoml.api
    async def predict(
        self, requests: list[dict[str, Any]]
    ) -> Annotated[list[dict[str, Any]], ContentType("application/json")]:
        return Response(_ANSWER, media_type="application/json")
