"""The page's only way to the forecast service: JSON over HTTP, every failure a `Problem`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from comfort_assets.ui.logic import Problem, http_problem, not_answering, unexpected_answer

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Answer:
    """The JSON the service sent back, or what went wrong."""

    data: Any = None
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def call(
    url: str,
    path: str,
    body: dict[str, Any],
    timeout: float = TIMEOUT_S,
    keys: tuple[str, ...] = (),
) -> Answer:
    """POST ``body`` to ``url + path`` (BentoML APIs are all POST with a JSON body). An
    answer must be an object holding ``keys`` (or a non-empty list of such objects): another
    server on that port is a problem to show, not a crash of the page."""
    try:
        response = requests.post(f"{url}{path}", json=body, timeout=timeout)
    except requests.ConnectionError:
        return Answer(problem=not_answering(url))
    except requests.Timeout:
        return Answer(problem=not_answering(url, f"no answer within {timeout:g} s"))
    except requests.RequestException as error:  # a malformed URL, say
        return Answer(problem=Problem(f"Cannot call {url}{path}: {error}"))
    try:
        data = response.json()
    except ValueError:
        data = response.text
    if response.status_code >= 400:
        return Answer(problem=http_problem(response.status_code, data, url))
    problem = unexpected_answer(data, keys, f"{url}{path}")
    return Answer(problem=problem) if problem else Answer(data=data)
