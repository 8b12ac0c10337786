"""The serving contract: request and response models, validated at the boundary.

Field names, window length and required variables come from the feature builder
(`OBSERVED`, `REQUIRED`, `WINDOW_HOURS`) and the physical ranges from the Pandera
clean-weather contract (`VALID_RANGES`), so the API cannot drift from training. Every
problem is a pydantic error naming the field (``loc``) and the reason (``msg``); BentoML
answers those with 400. Stations and horizon depend on the loaded champion: the service
publishes them with `set_contract`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from comfort_assets.domain.cleaning import VALID_RANGES
from comfort_assets.domain.comfort import discomfort_index
from comfort_assets.domain.features import OBSERVED, REQUIRED, WINDOW_HOURS
from comfort_assets.resources.prediction_store import RATING_RANGE

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


@dataclass(frozen=True)
class ServingContract:
    """What the loaded champion accepts."""

    version: str
    stations: frozenset[str]
    horizon_h: int


_contract: ServingContract | None = None


def set_contract(contract: ServingContract) -> None:
    global _contract
    _contract = contract


def _check_window(values: list[float | None], name: str) -> list[float | None]:
    """One observed variable: exactly WINDOW_HOURS hourly values, complete if required,
    inside the physical range."""
    if len(values) != WINDOW_HOURS:
        few = "too few" if len(values) < WINDOW_HOURS else "too many"
        raise ValueError(
            f"{few} hours: got {len(values)} hourly values, need exactly {WINDOW_HOURS} "
            "(oldest first, the last one at observed_until)"
        )
    array = np.array(values, dtype=float)  # None → NaN
    finite = np.isfinite(array)
    if name in REQUIRED and not finite.all():
        hours = np.flatnonzero(~finite)
        raise ValueError(
            f"gap: no finite value at hour index {hours[:5].tolist()}"
            f"{' …' if len(hours) > 5 else ''} ({len(hours)} missing); a required variable "
            "needs every hour (index 0 is the oldest)"
        )
    if np.isinf(array).any():
        raise ValueError(f"non-finite value at hour index {np.flatnonzero(np.isinf(array))[0]}")
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


def _observations_model() -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (
            list[float | None] if name in REQUIRED else list[float | None] | None,
            Field(
                ... if name in REQUIRED else None,
                description=f"{WINDOW_HOURS} hourly values, oldest first"
                + ("" if name in REQUIRED else "; may be omitted or contain nulls"),
            ),
        )
        for name in OBSERVED
    }

    def check(cls: type[BaseModel], value: Any, info: Any) -> Any:
        return value if value is None else _check_window(value, info.field_name)

    return create_model(
        "Observations",
        __config__=ConfigDict(extra="forbid"),
        __doc__="Hourly observations in SI units (the names carry the unit).",
        __validators__={"check": field_validator(*OBSERVED)(check)},
        **fields,
    )


Observations = _observations_model()


class ForecastRequest(BaseModel):
    """One station's recent hourly observations; the forecast is for observed_until + h."""

    model_config = ConfigDict(extra="forbid")

    station: str = Field(min_length=1, max_length=32)
    observed_until: datetime = Field(
        description="UTC time of the last (newest) hour, on the hour; naive means UTC"
    )
    observations: Observations  # type: ignore[valid-type]
    horizon_h: int | None = Field(None, description="must equal the champion's horizon if given")

    @field_validator("station")
    @classmethod
    def known_station(cls, station: str) -> str:
        if _contract is not None and station not in _contract.stations:
            raise ValueError(
                f"unknown station {station!r}: {_contract.version} was trained for "
                f"{sorted(_contract.stations)}"
            )
        return station

    @field_validator("observed_until")
    @classmethod
    def on_the_hour(cls, moment: datetime) -> datetime:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        if (moment.minute, moment.second, moment.microsecond) != (0, 0, 0):
            raise ValueError(f"must be on the hour (hourly observations), got {moment:%H:%M:%S}")
        return moment

    @field_validator("horizon_h")
    @classmethod
    def champion_horizon(cls, horizon: int | None) -> int | None:
        if horizon is not None and _contract is not None and horizon != _contract.horizon_h:
            raise ValueError(
                f"{_contract.version} forecasts {_contract.horizon_h} h ahead, not {horizon} h"
            )
        return horizon


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


ActualDI = Annotated[
    float | None, Field(ge=DI_RANGE[0], le=DI_RANGE[1], description="observed DI at valid_at")
]
Rating = Annotated[
    int | None,
    Field(
        ge=RATING_RANGE[0],
        le=RATING_RANGE[1],
        description="felt comfort: 1 comfortable … 5 very uncomfortable",
    ),
]


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
