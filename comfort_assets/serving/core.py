"""What every serving front end shares: the champion, batched forecasts, prediction logging.

The Bento service and the benchmark's FastAPI apps call the same `Forecaster`, so a
comparison measures the framework, not different code.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from comfort_assets.domain.comfort import discomfort_bands
from comfort_assets.domain.features import (
    OBSERVED,
    REQUIRED,
    WINDOW_HOURS,
    feature_names,
    window_feature_matrix,
)
from comfort_assets.domain.modeling import ForecastModel
from comfort_assets.resources.prediction_store import PredictionStore, PredictionWriter
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.serving.schemas import (
    Forecast,
    ForecastRequest,
    ModelInfo,
    ServingContract,
    set_contract,
)

log = logging.getLogger(__name__)

DI_NOW = feature_names().index("di_now")
SWITCH_INTERVAL_S = 0.0005
#: Seconds between two looks at the champion pointer.
DEFAULT_RELOAD_SECONDS = 2.0


class NoChampionError(RuntimeError):
    """The registry has no champion pointer yet."""


@dataclass(frozen=True)
class Champion:
    """A loaded, sha256-verified champion; replaced as a whole on reload."""

    version: str
    model: ForecastModel
    card: dict[str, Any]
    #: Where each of the model's features sits in the builder's matrix.
    columns: list[int]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def contract(self) -> ServingContract:
        return ServingContract(
            version=self.version,
            stations=frozenset(self.card.get("stations", [])),
            horizon_h=self.model.horizon_h,
        )


def load_champion(registry: ModelRegistry) -> Champion:
    """The version the champion pointer names (never "the newest file"), sha256-checked."""
    version = registry.champion()
    if version is None:
        raise NoChampionError("the registry has no champion yet: run `comfort run` first")
    model, card = registry.load(version)
    if "stations" not in card:
        raise ValueError(f"{version}: the model card lists no stations")
    built = feature_names(model.horizon_h)
    missing = [name for name in model.feature_names if name not in built]
    if missing:
        raise ValueError(f"{version} needs features the builder no longer makes: {missing}")
    return Champion(version, model, card, [built.index(name) for name in model.feature_names])


class Forecaster:
    """Holds the champion, follows its pointer, forecasts batches, logs every prediction."""

    def __init__(
        self,
        registry: ModelRegistry,
        store: PredictionStore,
        log_predictions: bool = True,
        reload_seconds: float = DEFAULT_RELOAD_SECONDS,
    ) -> None:
        self.registry = registry
        self.store = store
        self.writer = PredictionWriter(store) if log_predictions else None
        if self.writer is not None:
            # The writer thread must get the GIL back from a busy event loop soon after its
            # commit; at the default 5 ms switch interval that handoff alone cost a quarter
            # of the throughput at concurrency 8 (bench/serving.py).
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.reload_seconds = reload_seconds
        self._install(load_champion(registry))
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="champion-watcher", daemon=True)
        if reload_seconds > 0:
            self._watcher.start()

    @classmethod
    def from_environment(cls) -> Forecaster:
        """Registry and prediction store as Dagster finds them (COMFORT_HOME, COMFORT_ENV,
        COMFORT_PREDICTION_DB_URL); COMFORT_RELOAD_SECONDS (0 = never) and
        COMFORT_LOG_PREDICTIONS=0 (benchmarks only: nothing is logged) tune the rest."""
        from comfort_assets.deployment import object_store, prediction_store

        return cls(
            ModelRegistry(store=object_store(resolve_env=True)),
            prediction_store(resolve_env=True),
            log_predictions=os.environ.get("COMFORT_LOG_PREDICTIONS", "1") != "0",
            reload_seconds=float(os.environ.get("COMFORT_RELOAD_SECONDS", DEFAULT_RELOAD_SECONDS)),
        )

    # --- champion ----------------------------------------------------------------------
    def _install(self, champion: Champion) -> None:
        for member in champion.model.members:
            if hasattr(member, "set_param"):
                # one worker on a small machine: XGBoost's own thread pool would fight the
                # event loop and the load for the cores (its gain on 64 rows is ~10 %)
                member.set_param({"nthread": 1})
        self.champion = champion
        set_contract(champion.contract)

    def refresh(self) -> bool:
        """Load the champion if the pointer moved; True if it changed. A model that fails
        its sha256 check is refused and the current one keeps serving."""
        version = self.registry.champion()
        if version is None or version == self.champion.version:
            return False
        self._install(load_champion(self.registry))
        log.warning("champion reloaded: now serving %s", self.champion.version)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            try:
                self.refresh()
            except Exception:
                log.exception("champion reload failed; still serving %s", self.champion.version)

    def close(self) -> None:
        self._stop.set()
        if self.writer is not None:
            self.writer.close()

    def model_info(self) -> ModelInfo:
        champion = self.champion
        card = champion.card
        return ModelInfo(
            version=champion.version,
            family=card.get("model_choice", card.get("family")),
            horizon_h=champion.model.horizon_h,
            window_hours=WINDOW_HOURS,
            stations=sorted(champion.contract.stations),
            feature_names=champion.model.feature_names,
            metrics=card.get("metrics", {}),
            training_window=card.get("training_window"),
            registered_at=card.get("registered_at"),
            loaded_at=champion.loaded_at,
            observation_fields={name: name in REQUIRED for name in OBSERVED},
        )

    # --- forecasting -------------------------------------------------------------------
    def features(self, requests: Sequence[ForecastRequest], horizon: int) -> npt.NDArray:
        """The training feature builder on a batch of windows (NumPy, no pandas)."""
        observations = {}
        for name in OBSERVED:
            rows = [getattr(r.observations, name) for r in requests]
            if all(row is None for row in rows):
                continue
            observations[name] = np.array(
                [[np.nan] * WINDOW_HOURS if row is None else row for row in rows], dtype=float
            )
        hours = np.fromiter((r.observed_until.hour for r in requests), float, len(requests))
        return window_feature_matrix(observations, hours, horizon)

    def forecast(
        self,
        requests: Sequence[ForecastRequest],
        features: Callable[[Sequence[ForecastRequest], int], npt.NDArray] | None = None,
    ) -> tuple[list[Forecast], list[dict[str, Any]]]:
        """Forecasts and the prediction-store rows for a batch of validated requests."""
        champion = self.champion
        model = champion.model
        horizon = model.horizon_h
        built = (features or self.features)(requests, horizon)
        x = built[:, champion.columns]
        di = model.predict_di(x, built[:, DI_NOW])
        bands = discomfort_bands(di)
        now = datetime.now(UTC)
        step = timedelta(hours=horizon)
        forecasts, rows = [], []
        for request, value, band, row in zip(requests, di.tolist(), bands, x, strict=True):
            prediction_id = uuid.uuid4().hex
            valid_at = request.observed_until + step
            forecasts.append(
                Forecast(
                    prediction_id=prediction_id,
                    station=request.station,
                    observed_until=request.observed_until,
                    valid_at=valid_at,
                    horizon_h=horizon,
                    di_forecast=value,
                    band=band,
                    model_version=champion.version,
                )
            )
            rows.append(
                {
                    "id": prediction_id,
                    "created_at": now,
                    "station": request.station,
                    "valid_at": valid_at,
                    "horizon_h": horizon,
                    "model_version": champion.version,
                    # NaN (a missing optional input) is not JSON: store null
                    "features": {
                        name: v if v == v else None
                        for name, v in zip(model.feature_names, row.tolist(), strict=True)
                    },
                    "prediction": value,
                }
            )
        return forecasts, rows

    async def predict(self, requests: Sequence[ForecastRequest]) -> list[Forecast]:
        """Forecast, then answer only once the rows are committed (group commit)."""
        forecasts, rows = self.forecast(requests)
        if self.writer is not None:
            await self.writer.write(rows)
        return forecasts


def request_payload(clean: Any, station: str, observed_until: datetime) -> dict[str, Any]:
    """A `/predict` request body for one window of a clean-weather table (tests, benchmarks,
    and anyone replaying history): the WINDOW_HOURS hours ending at ``observed_until``."""
    import pandas as pd

    end = pd.Timestamp(observed_until)
    end = end.tz_localize("UTC") if end.tz is None else end.tz_convert("UTC")
    hours = pd.date_range(end - pd.Timedelta(hours=WINDOW_HOURS - 1), end, freq="h")
    rows = clean[clean["station"] == station].set_index("time_utc").reindex(hours)
    observations = {
        name: [None if pd.isna(v) else float(v) for v in rows[name]]
        for name in OBSERVED
        if name in rows
    }
    return {"station": station, "observed_until": end.isoformat(), "observations": observations}
