"""What the forecast page computes, as plain functions: the request body, the service's
answer turned into what the page shows, errors turned into sentences, and the rolling
error of past predictions. No Streamlit, no HTTP, no storage here."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from comfort_assets.domain.comfort import (
    BAND_EDGES,
    BANDS,
    DiscomfortBand,
    discomfort_index,
    feels_like,
)
from comfort_assets.serving.core import request_payload

SERVICE_ENV = "COMFORT_SERVICE_URL"
DEFAULT_SERVICE = "http://127.0.0.1:3000"
SERVICE_TARGET = "comfort_assets.serving.service:ComfortForecast"
#: Hours of observed DI drawn before the forecast point.
HISTORY_HOURS = 48
#: Predictions per point of the rolling error.
ROLLING_WINDOW = 24
#: One colour per KMA band, from comfortable to very uncomfortable.
BAND_COLOURS: dict[str, str] = {
    DiscomfortBand.LOW: "#2e7d32",
    DiscomfortBand.NORMAL: "#f9a825",
    DiscomfortBand.HIGH: "#ef6c00",
    DiscomfortBand.VERY_HIGH: "#c62828",
}
#: What a band means to a person (KMA's guidance, shortened).
BAND_MEANINGS: dict[str, str] = {
    DiscomfortBand.LOW: "comfortable for almost everyone",
    DiscomfortBand.NORMAL: "about half of people feel discomfort",
    DiscomfortBand.HIGH: "most people feel discomfort",
    DiscomfortBand.VERY_HIGH: "nearly everyone feels discomfort",
}
#: A felt band sent as feedback becomes this DI: the middle of the band (the open-ended
#: bands take a middle as wide as their neighbour).
BAND_MIDPOINTS: dict[str, float] = {
    DiscomfortBand.LOW: BAND_EDGES[0] - (BAND_EDGES[1] - BAND_EDGES[0]) / 2,
    DiscomfortBand.NORMAL: (BAND_EDGES[0] + BAND_EDGES[1]) / 2,
    DiscomfortBand.HIGH: (BAND_EDGES[1] + BAND_EDGES[2]) / 2,
    DiscomfortBand.VERY_HIGH: BAND_EDGES[2] + (BAND_EDGES[2] - BAND_EDGES[1]) / 2,
}


class InputProblem(ValueError):
    """Something the user typed or picked cannot become a request; the message says why."""


def service_url(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """``--service URL`` after ``streamlit run app.py --``, else ``COMFORT_SERVICE_URL``,
    else the local default; without a trailing slash."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--service", default=None)
    known, _ = parser.parse_known_args(list(argv))
    url = known.service or environ.get(SERVICE_ENV) or DEFAULT_SERVICE
    return url.rstrip("/")


def serve_command(url: str) -> str:
    """The README's command that starts the service the page is pointed at."""
    port = urlsplit(url).port or 3000
    return f".venv/bin/bentoml serve {SERVICE_TARGET} --port {port}"


# --- the request ----------------------------------------------------------------------
def payload_from_weather(clean: pd.DataFrame, station: str, observed_until: datetime) -> dict:
    """One `/predict` request from the ingested clean weather (the service's own builder)."""
    known = sorted(set(clean["station"])) if not clean.empty else []
    if station not in known:
        raise InputProblem(f"no ingested weather for station {station!r} (have: {known or 'none'})")
    return request_payload(clean, station, observed_until)


def payload_from_text(text: str) -> dict:
    """A pasted request: one `/predict` request object, or a whole ``{"requests": [one]}``
    body. The service validates the values; this only checks the shape."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputProblem(
            f"the pasted text is not JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    if isinstance(body, dict) and "requests" in body:
        requests = body["requests"]
        if not isinstance(requests, list) or len(requests) != 1:
            raise InputProblem("paste one request: 'requests' must hold exactly one object")
        body = requests[0]
    if not isinstance(body, dict):
        raise InputProblem("paste a JSON object with station, observed_until and observations")
    missing = [key for key in ("station", "observed_until", "observations") if key not in body]
    if missing:
        raise InputProblem(f"the pasted request has no {', '.join(missing)}")
    return body


def predict_body(payload: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """`/predict` is batchable: one request goes in a list under ``requests``."""
    return {"requests": [dict(payload)]}


def feedback_body(
    prediction_id: str,
    actual_di: float | None = None,
    felt_band: str | None = None,
    rating: int | None = None,
) -> dict[str, Any]:
    """`/feedback` body: a measured DI wins over a felt band (sent as its middle)."""
    if actual_di is None and felt_band:
        if felt_band not in BAND_MIDPOINTS:
            raise InputProblem(f"unknown band {felt_band!r}; one of {list(BAND_MIDPOINTS)}")
        actual_di = BAND_MIDPOINTS[felt_band]
    if actual_di is None and rating is None:
        raise InputProblem("give the DI you observed, the band you felt, or a rating")
    body: dict[str, Any] = {"prediction_id": prediction_id}
    if actual_di is not None:
        body["actual_di"] = round(float(actual_di), 2)
    if rating is not None:
        body["rating"] = int(rating)
    return body


# --- the answer -----------------------------------------------------------------------
@dataclass(frozen=True)
class ForecastView:
    """Everything the page shows about one forecast."""

    prediction_id: str
    station: str
    observed_until: pd.Timestamp
    valid_at: pd.Timestamp
    horizon_h: int
    di: float
    band: str
    colour: str
    meaning: str
    model_version: str
    #: Observed DI per hour before the forecast (time_utc, di), oldest first.
    history: pd.DataFrame
    temp_c: float | None
    feels_like_c: float | None


def observed_frame(payload: Mapping[str, Any]) -> pd.DataFrame:
    """The request's hourly observations with their times and DI, oldest first."""
    observations = payload["observations"]
    end = pd.Timestamp(payload["observed_until"])
    end = end.tz_localize("UTC") if end.tz is None else end.tz_convert("UTC")
    hours = len(observations["temp_c"])
    frame = pd.DataFrame(
        {
            name: pd.array(values if values is not None else [None] * hours, dtype="Float64")
            for name, values in observations.items()
        }
    ).astype(float)
    frame.insert(0, "time_utc", pd.date_range(end=end, periods=hours, freq="h"))
    frame["di"] = discomfort_index(frame["temp_c"], frame["humidity_pct"])
    return frame


def _last_finite(series: pd.Series | None) -> float | None:
    if series is None:
        return None
    finite = series.dropna()
    return float(finite.iloc[-1]) if len(finite) else None


#: What a forecast in the `/predict` answer holds, as `forecast_view` reads it.
FORECAST_KEYS = (
    "prediction_id",
    "station",
    "observed_until",
    "valid_at",
    "horizon_h",
    "di_forecast",
    "band",
    "model_version",
)


def forecast_view(payload: Mapping[str, Any], forecast: Mapping[str, Any]) -> ForecastView:
    """The service's forecast (one element of the `/predict` answer) with the observed DI
    history and the feels-like temperature at the last observed hour."""
    observed = observed_frame(payload)
    temp = _last_finite(observed["temp_c"])
    humidity = _last_finite(observed["humidity_pct"])
    wind = _last_finite(observed.get("wind_speed_ms"))
    feels = (
        float(feels_like(temp, humidity, wind if wind is not None else 0.0))
        if temp is not None and humidity is not None
        else None
    )
    band = str(forecast["band"])
    return ForecastView(
        prediction_id=str(forecast["prediction_id"]),
        station=str(forecast["station"]),
        observed_until=pd.Timestamp(forecast["observed_until"]).tz_convert("UTC"),
        valid_at=pd.Timestamp(forecast["valid_at"]).tz_convert("UTC"),
        horizon_h=int(forecast["horizon_h"]),
        di=float(forecast["di_forecast"]),
        band=band,
        colour=BAND_COLOURS.get(band, "#616161"),
        meaning=BAND_MEANINGS.get(band, ""),
        model_version=str(forecast["model_version"]),
        history=observed[["time_utc", "di"]].tail(HISTORY_HOURS).reset_index(drop=True),
        temp_c=temp,
        feels_like_c=feels,
    )


def chart_frame(view: ForecastView) -> pd.DataFrame:
    """Rows to draw: the observed DI (kind ``observed``) and the forecast point."""
    observed = view.history.assign(kind="observed")
    point = pd.DataFrame({"time_utc": [view.valid_at], "di": [view.di], "kind": ["forecast"]})
    return pd.concat([observed, point], ignore_index=True)


def band_edges_near(values: pd.Series, margin: float = 4.0) -> pd.DataFrame:
    """The band edges within ``margin`` of the values drawn, labelled, so a winter chart is
    not squashed under lines it never reaches."""
    low, high = values.min() - margin, values.max() + margin
    rows = [
        {"di": edge, "label": f"{band} from {edge:g}"}
        for band, edge in zip(BANDS[1:], BAND_EDGES, strict=True)
        if low <= edge <= high
    ]
    return pd.DataFrame(rows, columns=["di", "label"])


def observed_di_at(clean: pd.DataFrame, station: str, moment: pd.Timestamp) -> float | None:
    """The DI the ingested weather shows for a station at one hour, if it has that hour."""
    if clean.empty:
        return None
    row = clean[(clean["station"] == station) & (clean["time_utc"] == moment)]
    if row.empty:
        return None
    value = float(discomfort_index(row["temp_c"].iloc[0], row["humidity_pct"].iloc[0]))
    return value if math.isfinite(value) else None


# --- errors ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """A failed call, in words: a headline and one line per field at fault."""

    title: str
    lines: tuple[str, ...] = ()


def not_answering(url: str, reason: str = "connection refused") -> Problem:
    return Problem(
        f"The forecast service at {url} is not answering ({reason}).",
        (f"Start it with: {serve_command(url)}",),
    )


def _field(loc: Sequence[Any]) -> str:
    """``["requests", 0, "observations", "temp_c"]`` → ``observations.temp_c``."""
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "requests" and isinstance(parts[1], int):
        parts = parts[2:]
    return ".".join(str(p) for p in parts) or "body"


def _reason(message: str) -> str:
    return message.removeprefix("Value error, ")


def http_problem(status: int, body: Any, url: str) -> Problem:
    """A 4xx/5xx answer: the fields and reasons the service named, else its error text."""
    errors: list[str] = []
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        errors = [
            f"{_field(item.get('loc', ()))}: {_reason(str(item.get('msg', '')))}"
            for item in body["detail"]
            if isinstance(item, dict)
        ]
    elif isinstance(body, dict) and isinstance(body.get("detail"), str):
        errors = [body["detail"]]
    elif isinstance(body, dict) and "error" in body:
        errors = [str(body["error"])]
    elif isinstance(body, list):
        errors = [str(i.get("error", i)) if isinstance(i, dict) else str(i) for i in body]
    elif body:
        errors = [str(body)[:500]]
    if status == 404:
        title = f"Not found ({status})"
    elif 400 <= status < 500:
        title = f"The service refused the input ({status})"
    else:
        title = f"The forecast service at {url} failed ({status})"
    return Problem(title, tuple(errors))


# --- past predictions -----------------------------------------------------------------
def with_actuals(predictions: pd.DataFrame, clean: pd.DataFrame) -> pd.DataFrame:
    """Predictions joined to the DI the ingested weather shows at their valid-at hour;
    ``error`` = prediction − actual (NaN while the hour is not ingested yet)."""
    out = predictions.copy()
    if clean.empty:
        out["actual"] = np.nan
    else:
        actual = clean[["station", "time_utc"]].assign(
            actual=discomfort_index(clean["temp_c"], clean["humidity_pct"])
        )
        out = out.merge(
            actual.rename(columns={"time_utc": "valid_at"}),
            on=["station", "valid_at"],
            how="left",
        )
    out["error"] = out["prediction"] - out["actual"]
    return out


def rolling_error(joined: pd.DataFrame, window: int = ROLLING_WINDOW) -> pd.DataFrame:
    """Rolling RMSE and MAE over the last ``window`` predictions that have an actual,
    in valid-at order (a point needs at least a quarter of the window)."""
    scored = joined.dropna(subset=["error"]).sort_values("valid_at")
    minimum = max(1, window // 4)
    squared = scored["error"].pow(2).rolling(window, min_periods=minimum).mean()
    absolute = scored["error"].abs().rolling(window, min_periods=minimum).mean()
    return pd.DataFrame(
        {
            "valid_at": scored["valid_at"].to_numpy(),
            "rmse": np.sqrt(squared.to_numpy()),
            "mae": absolute.to_numpy(),
        }
    ).dropna()


def summary(joined: pd.DataFrame) -> dict[str, Any]:
    """Counts and overall errors of the predictions shown."""
    errors = joined["error"].dropna()
    return {
        "predictions": len(joined),
        "with_actual": len(errors),
        "rmse": float(np.sqrt((errors**2).mean())) if len(errors) else None,
        "mae": float(errors.abs().mean()) if len(errors) else None,
        "bias": float(errors.mean()) if len(errors) else None,
        "rated": int(joined["rating"].notna().sum()) if "rating" in joined else 0,
    }


# --- monitoring -------------------------------------------------------------------------
def unexpected_answer(data: Any, keys: tuple[str, ...], where: str) -> Problem | None:
    """A `Problem` if a 2xx answer is not an object with ``keys`` (nor a non-empty list of
    them), as from another server on the service's port; None if it is."""
    if not keys:
        return None
    first = data[0] if isinstance(data, list) and data else data
    missing = [key for key in keys if not isinstance(first, dict) or key not in first]
    if not missing:
        return None
    return Problem(
        f"{where} answered, but not as the forecast service does",
        (f"the answer has no {', '.join(missing)}", "is the URL that of `bentoml serve`?"),
    )


def report_headline(value: Any) -> str:
    """One sentence on a monitoring report (production performance, feature drift, data
    quality), read from its columns; a report of another shape is only counted."""
    if not isinstance(value, pd.DataFrame):
        return "a report (not a table)"
    if value.empty:
        return "an empty report: nothing to judge that day"
    columns = set(value.columns)
    if {"model_version", "station", "rmse", "rows"} <= columns:
        overall = value[value["station"] == "ALL"]
        lines = []
        for row in overall.itertuples():
            skill = getattr(row, "skill", float("nan"))
            if not row.rows or not math.isfinite(row.rmse):
                lines.append(f"{row.model_version}: no forecast with an actual yet")
                continue
            lines.append(
                f"{row.model_version}: RMSE {row.rmse:.2f} over {row.rows} forecasts"
                + (f", skill {skill:+.0%} vs persistence" if math.isfinite(skill) else "")
            )
        return "; ".join(lines) or f"{len(value)} rows, none over all stations"
    if "drifted" in columns:
        drifted = value[value["drifted"].astype(bool)]
        names = [
            "/".join(str(row[c]) for c in ("source", "station", "feature") if c in columns)
            for _, row in drifted.head(5).iterrows()
        ]
        more = " …" if len(drifted) > 5 else ""
        return f"{len(drifted)} of {len(value)} inputs drifted" + (
            f": {', '.join(names)}{more}" if names else ""
        )
    if {"expected_hours", "observed_hours"} <= columns:
        quarantined = int(value["quarantined_rows"].sum()) if "quarantined_rows" in columns else 0
        return (
            f"{int(value['observed_hours'].sum())} of {int(value['expected_hours'].sum())} "
            f"station-hours observed, {quarantined} rows quarantined"
        )
    return f"{len(value)} rows"
