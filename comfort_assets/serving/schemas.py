"""The serving contract: request and response models, validated at the boundary.

Field names, window length and required variables come from the feature builder
(`OBSERVED`, `REQUIRED`, `WINDOW_HOURS`) and the physical ranges from the Pandera
clean-weather contract (`VALID_RANGES`), so the API cannot drift from training. Every
problem is a pydantic error naming the field (``loc``) and the reason (``msg``); BentoML
answers those with 400. Validation is strict and complete before a request joins a batch:
JSON numbers only (no booleans, no numeric strings), no unknown fields, and a window whose
forecast time cannot be represented is refused here, never inside the batch. Stations and
horizon depend on the loaded champion: the service publishes them with `set_contract`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from comfort_assets.domain.cleaning import VALID_RANGES
from comfort_assets.domain.comfort import discomfort_index
from comfort_assets.domain.features import OBSERVED, REQUIRED, WINDOW_HOURS
from comfort_assets.resources.prediction_store import RATING_RANGE
from comfort_assets.serving.guard import BODY_TIMEOUT_S, MAX_BODY_BYTES

#: What a value outside its range usually means.
UNIT_HINTS: dict[str, str] = {
    "temp_c": "wrong units? °F instead of °C?",
    "humidity_pct": "wrong units? a fraction instead of %?",
    "pressure_hpa": "wrong units? kPa or inHg instead of hPa?",
    "wind_speed_ms": "wrong units? km/h or knots instead of m/s?",
    "wind_dir_deg": "wrong units? degrees run 0–360",
}
_DI_CORNERS = discomfort_index(
    np.array(VALID_RANGES["temp_c"])[:, None], np.array(VALID_RANGES["humidity_pct"])[None, :]
)
#: The DI any physically possible observation can give; feedback outside it is an error.
DI_RANGE: tuple[float, float] = (float(_DI_CORNERS.min()), float(_DI_CORNERS.max()))
#: Windows a forecast can be made for: from the first year of digital hourly records to an
#: hour past the server's clock (the newest hour may be stamped a little ahead).
EARLIEST_OBSERVED = datetime(1950, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(hours=1)
#: Requests per `/predict` call (the OpenAPI document says so too).
MAX_REQUESTS_PER_CALL = 64
#: Strict JSON: numbers must be finite numbers (no NaN, Infinity or 1e999 tokens), unknown
#: fields are errors.
STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
#: Unknown fields named one error each; beyond that, one error for them all (a 1-MiB body of
#: 100,000 unknown keys got a 14-MB answer, and four at once stalled the service 0.8 s).
MAX_UNKNOWN_FIELD_ERRORS = 3
#: An ISO 8601 date-time: a date and a time (a bare number would be read as Unix seconds).
_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _few_unknown_fields(cls: type[BaseModel], data: Any) -> Any:
    """Before a strict model reads a JSON object: many unknown fields are one error, named
    by the first few and counted, instead of one error (and its answer) for each."""
    if isinstance(data, dict) and len(data) > MAX_UNKNOWN_FIELD_ERRORS:
        unknown = [name for name in data if name not in cls.model_fields]
        if len(unknown) > MAX_UNKNOWN_FIELD_ERRORS:
            named = ", ".join(repr(str(name)[:40]) for name in unknown[:MAX_UNKNOWN_FIELD_ERRORS])
            more = len(unknown) - MAX_UNKNOWN_FIELD_ERRORS
            raise ValueError(f"unknown fields are not permitted: {named} and {more} more")
    return data


#: The check every strict body model runs first.
few_unknown_fields = model_validator(mode="before")(classmethod(_few_unknown_fields))


@dataclass(frozen=True)
class ServingContract:
    """What the loaded champion accepts."""

    version: str
    stations: frozenset[str]
    horizon_h: int

    def station_problem(self, station: str) -> str | None:
        if station in self.stations:
            return None
        return (
            f"unknown station {station!r}: {self.version} was trained for {sorted(self.stations)}"
        )

    def horizon_problem(self, horizon: int | None) -> str | None:
        if horizon is None or horizon == self.horizon_h:
            return None
        return f"{self.version} forecasts {self.horizon_h} h ahead, not {horizon} h"

    def refusal(self, request: ForecastRequest) -> ValidationError | None:
        """The 400 for a request this champion cannot answer: one validated against the
        champion before it (the pointer moved while the request waited for its batch)."""
        for name, problem in (
            ("station", self.station_problem(request.station)),
            ("horizon_h", self.horizon_problem(request.horizon_h)),
        ):
            if problem is not None:
                return field_error("ForecastRequest", name, problem)
        return None


_contract: ServingContract | None = None
#: The served OpenAPI document's title (its version is the champion's).
DOCUMENT_TITLE = "Comfort forecast: the discomfort index (불쾌지수) hours ahead"


def set_contract(contract: ServingContract) -> None:
    global _contract
    _contract = contract


def document_contract(spec: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with what the loaded champion accepts: its version, stations (as
    an enum, in `/predict` and `/forecast` bodies) and horizon (all change with the champion,
    so they are filled in when served).
    The title and description replace BentoML's ("comfort_forecast:dev", version "None");
    the description repeats the title as its heading, the one BentoML's Swagger page shows."""
    if _contract is None:
        return spec
    spec["info"] = {
        "title": DOCUMENT_TITLE,
        "version": _contract.version,
        "description": (
            f"# {DOCUMENT_TITLE}\n\nForecasts the discomfort index (Thom's THI) "
            f"{_contract.horizon_h} h ahead at {', '.join(sorted(_contract.stations))} from the "
            f"last {WINDOW_HOURS} hourly observations, with the champion model "
            f"{_contract.version}. `/predict` forecasts and logs each forecast, `/forecast` "
            "does the same for a station from the ingested weather, `/feedback` "
            "attaches what was observed or felt to one, `/model_info` describes the model that "
            "answers."
        ),
    }
    request = spec.get("components", {}).get("schemas", {}).get("ForecastRequest")
    if request is None:
        return spec
    properties = request["properties"]
    properties["station"]["enum"] = sorted(_contract.stations)
    properties["horizon_h"] = {
        "anyOf": [{"type": "integer", "enum": [_contract.horizon_h]}, {"type": "null"}],
        "default": None,
        "description": f"{_contract.horizon_h} (the champion's horizon) if given",
    }
    forecast = spec.get("paths", {}).get("/forecast", {}).get("post")
    if forecast is not None:
        body = forecast["requestBody"]["content"]["application/json"]["schema"]
        if "$ref" in body:
            body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
        body["properties"]["station"]["enum"] = sorted(_contract.stations)
    return spec


def served_document(spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's OpenAPI document as the service serves it at ``/docs.json``."""
    return as_openapi_30(document_errors(document_contract(bodies_by_reference(spec))))


def bodies_by_reference(spec: dict[str, Any]) -> dict[str, Any]:
    """Each API's body and answer schema as a reference to its copy in the components.
    BentoML writes those schemas twice, and the copy under the path drops the null of every
    optional field (``actual_di``, ``rating``, ``time``, ``family``, …): a client generated
    from it refused a feedback answer with ``"rating": null``."""
    components = spec.get("components", {}).get("schemas", {})
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for body in (
                operation.get("requestBody", {}),
                *operation.get("responses", {}).values(),
            ):
                for media in body.get("content", {}).values():
                    title = media.get("schema", {}).get("title")
                    if title in components:
                        media["schema"] = {"$ref": f"#/components/schemas/{title}"}
    return spec


#: The answers every POST route can give besides 200 and BentoML's 400/404/500, by status.
_ERROR_ANSWERS: dict[str, str] = {
    "408": "Request Timeout: the body did not arrive within "
    f"{BODY_TIMEOUT_S:g} s of the request's head",
    "413": f"Payload Too Large: the body is over the service's limit ({MAX_BODY_BYTES >> 20} MiB)",
    "415": "Unsupported Media Type: the body is not UTF-8 JSON sent as application/json, "
    "or it is compressed",
    "503": "Service Unavailable: no usable champion, or the prediction store cannot log "
    "the forecast (nothing was answered without being logged)",
}


_NOT_READY = {
    "description": "Not ready: why the service cannot answer (no usable champion, or a "
    "prediction store that cannot be used)",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["ready", "problems"],
                "properties": {
                    "ready": {"type": "boolean", "enum": [False]},
                    "problems": {"type": "array", "items": {"type": "string"}},
                },
            }
        }
    },
}


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """The error answers as the service gives them. BentoML documents a 400's `detail` as
    a string, where it is pydantic's list of errors (each naming its field in `loc`), and
    leaves out the guard's 413 and 415 and the 503 of a service that cannot answer; a
    client generated from the document would misread every one of them."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["FieldError"] = {
        "type": "object",
        "title": "FieldError",
        "required": ["loc", "msg"],
        "properties": {
            "loc": {
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "description": "where: the path to the field, e.g. requests, 0, station",
            },
            "msg": {"type": "string", "description": "why"},
            "type": {"type": "string"},
        },
    }
    if "InvalidArgument" in schemas:
        schemas["InvalidArgument"]["properties"]["detail"] = {
            "type": "array",
            "items": {"$ref": "#/components/schemas/FieldError"},
            "title": "Error Detail",
        }
    schemas["Error"] = {
        "type": "object",
        "title": "Error",
        "required": ["error"],
        "properties": {"error": {"type": "string", "title": "Message"}},
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            answers = operation.setdefault("responses", {})
            if method == "post":
                for status, description in _ERROR_ANSWERS.items():
                    answers.setdefault(status, {"description": description, "content": error})
            elif path == "/readyz":
                answers.setdefault("503", _NOT_READY)
            if path == "/feedback":
                answers.setdefault(
                    "409",
                    {
                        "description": "Conflict: an actual_di sent before the forecast's "
                        "valid_at (the hour has not come yet); nothing of the request is "
                        "stored",
                        "content": error,
                    },
                )
    return spec


def as_openapi_30(spec: dict[str, Any]) -> dict[str, Any]:
    """The document as the OpenAPI 3.0 it says it is. Pydantic writes an optional field as
    ``anyOf: [X, {type: null}]`` (JSON Schema, valid only in 3.1) and BentoML marks each body
    schema ``root_input``, a keyword 3.0 refuses: client generators and validators reject
    the document for either. Only schemas are rewritten (never an example, a default or a
    property's name): an optional field becomes X with 3.0's ``nullable: true`` (and null in
    its enum, if it has one); the mark becomes the extension ``x-root-input`` (BentoML's own
    client reads ``/schema.json``, not this document)."""
    for schema in spec.get("components", {}).get("schemas", {}).values():
        _schema_30(schema)
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            answers = operation.get("responses", {}).values()
            for body in (operation.get("requestBody", {}), *answers):
                for media in body.get("content", {}).values():
                    _schema_30(media.get("schema"))
            for parameter in operation.get("parameters", []):
                _schema_30(parameter.get("schema"))
    return spec


_NULL = {"type": "null"}


def _schema_30(schema: Any) -> None:
    if not isinstance(schema, dict):
        return
    if "root_input" in schema:
        schema["x-root-input"] = schema.pop("root_input")
    for key in ("anyOf", "oneOf"):
        choices = schema.get(key)
        if not isinstance(choices, list) or _NULL not in choices:
            continue
        rest = [choice for choice in choices if choice != _NULL]
        if len(rest) > 1 or "discriminator" in schema:
            schema[key] = [_nullable(choice) for choice in rest]
            continue
        del schema[key]
        if rest and "$ref" in rest[0]:  # 3.0 ignores a $ref's siblings: wrap it
            schema["allOf"] = rest
        elif rest:
            schema.update({k: v for k, v in rest[0].items() if k not in schema or k == "type"})
        _admit_null(schema)
    for key in ("items", "additionalProperties", "not"):
        _schema_30(schema.get(key))
    for key in ("allOf", "anyOf", "oneOf"):
        for choice in schema.get(key, []):
            _schema_30(choice)
    for field in schema.get("properties", {}).values():
        _schema_30(field)


def _nullable(branch: dict[str, Any]) -> dict[str, Any]:
    """One branch of a choice that also admits null: 3.0 says so next to a ``type``."""
    out = {"allOf": [branch]} if "$ref" in branch else dict(branch)
    _admit_null(out)
    return out


def _admit_null(schema: dict[str, Any]) -> None:
    """3.0's way to admit null: ``nullable``, and null among the values of an enum."""
    schema["nullable"] = True
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]


def _check_window(values: list[float | None], name: str) -> list[float | None]:
    """One observed variable: exactly WINDOW_HOURS hourly values, complete if required,
    inside the physical range."""
    if len(values) != WINDOW_HOURS:
        few = "too few" if len(values) < WINDOW_HOURS else "too many"
        raise ValueError(
            f"{few} hours: got {len(values)} hourly values, need exactly {WINDOW_HOURS} "
            "(oldest first, the last one at observed_until)"
        )
    if _plainly_valid(values, name):  # most windows: pure Python, 4× faster than below
        return values
    array = np.array(values, dtype=float)  # None → NaN
    finite = np.isfinite(array)
    if name in REQUIRED and not finite.all():
        hours = np.flatnonzero(~finite)
        raise ValueError(
            f"gap: no finite value at hour index {hours[:5].tolist()}"
            f"{' …' if len(hours) > 5 else ''} ({len(hours)} missing); a required variable "
            "needs every hour (index 0 is the oldest)"
        )
    low, high = VALID_RANGES[name]
    outside = finite & ((array < low) | (array > high))
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"value {array[i]:g} at hour index {i} is outside [{low:g}, {high:g}] "
            f"({int(outside.sum())} such values) — {UNIT_HINTS.get(name, 'wrong units?')}"
        )
    if name == "humidity_pct" and finite.any() and np.nanmax(array) <= 1.0:
        raise ValueError(f"every value is ≤ 1 — {UNIT_HINTS['humidity_pct']}")
    return values


def _plainly_valid(values: list[float | None], name: str) -> bool:
    """True if `_check_window` would accept ``values`` (of the right length); False means
    that it must look closer (and may still accept)."""
    present = [v for v in values if v is not None]
    if not present:
        return name not in REQUIRED
    low, high = VALID_RANGES[name]
    return (
        (len(present) == len(values) or name not in REQUIRED)
        and math.isfinite(sum(present))  # no NaN or ±inf
        and low <= min(present)
        and max(present) <= high
        and (name != "humidity_pct" or max(present) > 1.0)
    )


def _window_schema(name: str) -> dict[str, Any]:
    """What the OpenAPI document says about one variable (our own messages stay the errors)."""
    low, high = VALID_RANGES[name]
    number = {"type": "number", "minimum": low, "maximum": high}
    return {
        "minItems": WINDOW_HOURS,
        "maxItems": WINDOW_HOURS,
        "items": number if name in REQUIRED else {"anyOf": [number, {"type": "null"}]},
    }


def _observations_model() -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (
            list[float | None] if name in REQUIRED else list[float | None] | None,
            Field(
                ... if name in REQUIRED else None,
                fail_fast=True,  # one error per variable, not one per hour (a 1-MiB body of
                # `true` gave a 33-MB answer)
                description=f"exactly {WINDOW_HOURS} hourly values, oldest first, in "
                f"[{VALID_RANGES[name][0]:g}, {VALID_RANGES[name][1]:g}]"
                + (", every hour present" if name in REQUIRED else "; may be omitted or null"),
                json_schema_extra=_window_schema(name),
            ),
        )
        for name in OBSERVED
    }

    def check(cls: type[BaseModel], value: Any, info: Any) -> Any:
        return value if value is None else _check_window(value, info.field_name)

    return create_model(
        "Observations",
        __config__=STRICT,
        __doc__="Hourly observations in SI units (the names carry the unit).",
        __validators__={
            "check": field_validator(*OBSERVED)(check),
            "few_unknown_fields": few_unknown_fields,
        },
        **fields,
    )


Observations = _observations_model()


def _known_station(station: str) -> str:
    if _contract is not None and (problem := _contract.station_problem(station)):
        raise ValueError(problem)
    return station


def _iso_text(value: Any) -> Any:
    """An ISO 8601 date-time string (or a datetime from Python; None where it is optional)."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE_TIME.match(value):
        raise ValueError("must be an ISO 8601 date-time string, e.g. 2013-07-08T18:00:00Z")
    return value


def _observed_hour(moment: datetime | None) -> datetime | None:
    """The UTC hour a window ends at: naive means UTC, on the hour, from the past (None
    where it is optional: the default)."""
    if moment is None:
        return None
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC time
        raise ValueError("outside the representable range of times") from None
    latest = datetime.now(UTC) + FUTURE_SLACK
    if not EARLIEST_OBSERVED <= moment <= latest:
        why = (
            "observations come from the past"
            if moment > latest
            else "before the first hourly records a forecast can be made from"
        )
        raise ValueError(
            f"{moment.isoformat().replace('+00:00', 'Z')} is outside "
            f"[{EARLIEST_OBSERVED:%Y-%m-%d}, now + {FUTURE_SLACK.seconds // 3600} h]: {why}"
        )
    if (moment.minute, moment.second, moment.microsecond) != (0, 0, 0):
        raise ValueError(f"must be on the hour (hourly observations), got {moment:%H:%M:%S}")
    return moment


class ForecastRequest(BaseModel):
    """One station's recent hourly observations; the forecast is for observed_until + h."""

    model_config = STRICT
    few_unknown_fields = few_unknown_fields

    station: str = Field(
        min_length=1,
        max_length=32,
        description="a station the champion was trained for (listed by /model_info)",
    )
    observed_until: datetime = Field(
        description="UTC time of the last (newest) hour, on the hour; naive means UTC; "
        f"from {EARLIEST_OBSERVED:%Y-%m-%d} to an hour past the server's clock",
        strict=False,  # an ISO string from Python too; `iso_text` refuses numbers
    )
    observations: Observations  # type: ignore[valid-type]
    horizon_h: int | None = Field(
        None, description="must equal the champion's horizon (/model_info) if given"
    )

    known_station = field_validator("station")(_known_station)
    iso_text = field_validator("observed_until", mode="before")(_iso_text)
    on_the_hour_and_in_range = field_validator("observed_until")(_observed_hour)

    @field_validator("horizon_h")
    @classmethod
    def champion_horizon(cls, horizon: int | None) -> int | None:
        if _contract is not None and (problem := _contract.horizon_problem(horizon)):
            raise ValueError(problem)
        return horizon


class PredictBody(BaseModel):
    """The `/predict` body: ``{"requests": [...]}``, answered in the same order."""

    model_config = STRICT
    few_unknown_fields = few_unknown_fields

    requests: list[ForecastRequest] = Field(
        min_length=1,
        max_length=MAX_REQUESTS_PER_CALL,
        fail_fast=True,  # the first bad window's errors, not every window's
        description=f"1 to {MAX_REQUESTS_PER_CALL} windows; a bad one fails the call with a "
        "400 naming requests.<index> and the field",
    )


#: The example the OpenAPI document shows for `/forecast` (a window of the bundled data).
FORECAST_EXAMPLE = {"station": "JFK", "time": "2013-07-08T18:00:00Z"}


class ForecastBody(BaseModel):
    """The `/forecast` body: a station, and the hour its window ends at; the service takes
    the observations from the weather the pipeline ingested."""

    model_config = ConfigDict(**STRICT, json_schema_extra={"example": FORECAST_EXAMPLE})
    few_unknown_fields = few_unknown_fields

    station: str = Field(
        min_length=1,
        max_length=32,
        description="a station the champion was trained for (listed by /model_info)",
    )
    time: datetime | None = Field(
        None,
        description=f"UTC time of the newest hour of the {WINDOW_HOURS}-hour window, on the "
        "hour; naive means UTC; the forecast is for time + h. Default: the station's newest "
        "ingested hour with temperature and humidity",
        strict=False,  # an ISO string from Python too; `iso_text` refuses numbers
    )

    known_station = field_validator("station")(_known_station)
    iso_text = field_validator("time", mode="before")(_iso_text)
    on_the_hour_and_in_range = field_validator("time")(_observed_hour)


def field_error(title: str, field: str, reason: str) -> ValidationError:
    """A 400 naming ``field`` and ``reason``, shaped like every other validation error, for
    what only the service can find out (e.g. that it has no weather for that hour)."""
    return ValidationError.from_exception_data(
        title,
        [{"type": "value_error", "loc": (field,), "input": None, "ctx": {"error": reason}}],
    )


class Forecast(BaseModel):
    prediction_id: str
    station: str
    observed_until: datetime
    valid_at: datetime
    horizon_h: int
    di_forecast: float
    band: str
    model_version: str


class FeedbackAck(BaseModel):
    prediction_id: str
    actual_di: float | None
    rating: int | None
    feedback_at: datetime


#: Prediction ids are what `/predict` hands out: 32 lowercase hex digits.
PredictionId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$", max_length=32)]


class FeedbackBody(BaseModel):
    """Feedback on one prediction: the observed DI at valid_at and/or a felt-comfort rating
    (at least one of the two). Sending the same feedback twice leaves the same row."""

    model_config = STRICT
    few_unknown_fields = few_unknown_fields

    prediction_id: PredictionId = Field(description="as returned by /predict (32 hex digits)")
    actual_di: float | None = Field(
        None, ge=DI_RANGE[0], le=DI_RANGE[1], description="observed DI at valid_at"
    )
    rating: int | None = Field(
        None,
        ge=RATING_RANGE[0],
        le=RATING_RANGE[1],
        description="felt comfort: 1 comfortable … 5 very uncomfortable",
    )

    @model_validator(mode="after")
    def something_to_record(self) -> FeedbackBody:
        if self.actual_di is None and self.rating is None:
            raise ValueError("feedback needs actual_di and/or rating")
        return self


class ModelInfo(BaseModel):
    version: str
    family: str | None
    horizon_h: int
    window_hours: int
    stations: list[str]
    feature_names: list[str]
    metrics: dict[str, Any]
    training_window: dict[str, Any] | None
    registered_at: str | None
    loaded_at: datetime
    observation_fields: dict[str, bool] = Field(description="name → required")
    pointer_problem: str | None = Field(
        None,
        description="why the version the champion pointer names cannot be served (a file "
        "missing or failing its sha256, an unreadable pointer); null when the served version "
        "is the one it names",
    )
