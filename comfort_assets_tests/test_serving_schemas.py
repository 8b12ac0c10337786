"""The window check's fast path accepts only what the full check accepts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from comfort_assets.domain.cleaning import VALID_RANGES
from comfort_assets.domain.features import OBSERVED, WINDOW_HOURS
from comfort_assets.serving import schemas
from comfort_assets.serving.schemas import _check_window, _plainly_valid


def _accepted(values: list, name: str) -> bool:
    try:
        _check_window(values, name)
    except ValueError:
        return False
    return True


def _windows(name: str) -> list[list]:
    """Plain windows and every kind of bad one: gaps, NaN, ±inf, out of range, fractions."""
    low, high = VALID_RANGES[name]
    rng = np.random.default_rng(0)
    plain = rng.uniform(max(low, 2.0), high, WINDOW_HOURS).tolist()
    windows = [plain, [int(v) for v in plain], [None] * WINDOW_HOURS, [0.5] * WINDOW_HOURS]
    for i in (0, 50, WINDOW_HOURS - 1):
        for bad in (None, math.nan, math.inf, -math.inf, low - 1, high + 1, 1e308):
            windows.append([*plain[:i], bad, *plain[i + 1 :]])
    windows.append([1e308] * WINDOW_HOURS)
    return windows


@pytest.mark.parametrize("name", OBSERVED)
def test_the_fast_path_never_accepts_what_the_full_check_refuses(name):
    outcomes = [(_plainly_valid(w, name), _accepted(w, name)) for w in _windows(name)]
    assert all(full for fast, full in outcomes if fast)
    assert outcomes[0] == (True, True)  # a plain window takes the fast path


def test_the_document_says_what_each_error_answer_holds():
    spec = {
        "paths": {
            "/predict": {"post": {"responses": {"200": {}}}},
            "/readyz": {"get": {"responses": {"200": {}}}},
        },
        "components": {
            "schemas": {"InvalidArgument": {"properties": {"detail": {"type": "string"}}}}
        },
    }
    documented = schemas.document_errors(spec)
    post = documented["paths"]["/predict"]["post"]["responses"]
    assert {"408", "413", "415", "503"} <= set(post)
    error = post["503"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert documented["components"]["schemas"][error]["required"] == ["error"]
    detail = documented["components"]["schemas"]["InvalidArgument"]["properties"]["detail"]
    assert detail["type"] == "array"  # pydantic's list of field errors, not a string
    readyz = documented["paths"]["/readyz"]["get"]["responses"]["503"]
    body = readyz["content"]["application/json"]["schema"]  # JSON, as the guard answers
    assert set(body["required"]) == {"ready", "problems"}


def test_the_document_is_openapi_30_as_it_says():
    odd_example = {"anyOf": ["x", {"type": "null"}], "root_input": 1}
    spec = {
        "components": {
            "schemas": {
                "Body": {
                    "type": "object",
                    "root_input": True,
                    "example": odd_example,
                    "properties": {
                        "rating": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                        "horizon_h": {
                            "anyOf": [{"type": "integer", "enum": [3]}, {"type": "null"}],
                            "title": "Horizon H",
                        },
                        "window": {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]},
                        "either": {
                            "anyOf": [{"type": "string"}, {"$ref": "#/x"}, {"type": "null"}]
                        },
                        "nothing": {"anyOf": [{"type": "null"}]},
                        "root_input": {"type": "boolean", "default": False},
                        "hours": {
                            "type": "array",
                            "items": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                        },
                    },
                }
            }
        },
        "paths": {
            "/predict": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"anyOf": [{"$ref": "#/B"}, {"type": "null"}]}
                            }
                        }
                    }
                },
                "summary": "not an operation",
            }
        },
    }
    converted = schemas.as_openapi_30(spec)
    body = converted["components"]["schemas"]["Body"]
    fields = body["properties"]
    assert "root_input" not in body and body["x-root-input"] is True
    assert body["example"] == {"anyOf": ["x", {"type": "null"}], "root_input": 1}  # a value
    assert fields["root_input"] == {"type": "boolean", "default": False}  # a field's name
    assert fields["rating"] == {"type": "integer", "nullable": True}
    assert fields["horizon_h"] == {
        "title": "Horizon H",
        "type": "integer",
        "enum": [3, None],
        "nullable": True,
    }
    assert fields["window"] == {"allOf": [{"$ref": "#/x"}], "nullable": True}
    assert fields["either"] == {
        "anyOf": [
            {"type": "string", "nullable": True},
            {"allOf": [{"$ref": "#/x"}], "nullable": True},
        ]
    }
    assert fields["nothing"] == {"nullable": True}
    assert fields["hours"]["items"] == {"type": "number", "nullable": True}
    body = converted["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"allOf": [{"$ref": "#/B"}], "nullable": True}


def test_the_services_document_passes_an_openapi_30_validator():
    """BentoML's document of the real service, as the guard serves it: client generators
    refuse a document that fails this."""
    from openapi_spec_validator import OpenAPIV30SpecValidator

    from comfort_assets.serving.service import ComfortForecast

    raw = json.loads(json.dumps(ComfortForecast.openapi_spec.asdict(), default=str))
    text = json.dumps(raw)  # what BentoML hands over: 3.1's null type, its own keyword
    assert '{"type": "null"}' in text and '"root_input": true' in text
    served = schemas.served_document(raw)
    assert [error.message for error in OpenAPIV30SpecValidator(served).iter_errors()] == []


def test_the_document_admits_the_nulls_the_service_answers_and_takes():
    """BentoML's copy of a body schema under its path drops every optional field's null;
    the served document must accept the answers the service really gives."""
    from openapi_schema_validator import OAS30Validator

    from comfort_assets.serving.service import ComfortForecast

    raw = json.loads(json.dumps(ComfortForecast.openapi_spec.asdict(), default=str))
    served = schemas.served_document(raw)

    def schema(path: str, part: str) -> dict:
        operation = served["paths"][path]["post"]
        body = operation["requestBody"] if part == "request" else operation["responses"][part]
        # a document of its own, so that its references resolve
        return {**body["content"]["application/json"]["schema"], "components": served["components"]}

    ack = {
        "prediction_id": "0" * 32,
        "actual_di": 70.5,
        "rating": None,
        "feedback_at": "2026-12-07T20:00:00Z",
    }
    assert OAS30Validator(schema("/feedback", "200")).is_valid(ack)
    assert OAS30Validator(schema("/feedback", "request")).is_valid(
        {"prediction_id": "0" * 32, "actual_di": None, "rating": 3}
    )
    assert OAS30Validator(schema("/forecast", "request")).is_valid({"station": "JFK", "time": None})
    assert not OAS30Validator(schema("/feedback", "200")).is_valid({**ack, "rating": "3"})
