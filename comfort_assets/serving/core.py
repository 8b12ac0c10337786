"""What every serving front end shares: the champion, batched forecasts, prediction logging.

The Bento service and the benchmark's FastAPI twins call the same `Forecaster`, so a
comparison measures the framework, not different code. The Forecaster never raises on a
missing or broken champion or an unreachable store: it records the problem (logged once per
change), keeps retrying, and `problems()` tells readiness and callers why it cannot answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic_core import to_json

from comfort_assets.domain.comfort import discomfort_bands
from comfort_assets.domain.features import (
    OBSERVED,
    REQUIRED,
    WINDOW_HOURS,
    feature_names,
    window_feature_matrix,
)
from comfort_assets.domain.modeling import ForecastModel
from comfort_assets.resources.prediction_store import (
    PredictionStore,
    PredictionWriter,
    new_prediction_id,
)
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
#: Seconds between two looks at the champion pointer and the store.
DEFAULT_RELOAD_SECONDS = 2.0
#: Windows computed together at most (64 cost ~3.3 ms with a 4-member champion, in process).
MAX_BATCH_SIZE = 64
#: Batches of at most this many windows are computed in the event loop itself (with a
#: healthy SQLite store): the two thread wake-ups of a handoff cost ~0.35 ms on a small VM,
#: about a lone window's whole forecast, while batches of ~15 kept the loop from reading
#: requests for too long (docs/pitfalls.md).
INLINE_MAX_WINDOWS = 8
#: The longest a commit made in the event loop waits for another writer's SQLite lock
#: before the writer thread takes its rows (a commit itself takes ~0.1 ms).
INLINE_BUSY_MS = 5


class NoChampionError(RuntimeError):
    """The registry has no champion pointer yet."""


class Unavailable(RuntimeError):
    """The service cannot answer now (no valid champion, store unusable): a 503 with why."""


class ForecastFailed(RuntimeError):
    """One window failed inside the batch (a bug, not bad input): only its caller hears."""


def brief(error: BaseException) -> str:
    """One short line for logs and answers: never a traceback, never the input."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:200]}"


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
    # served as one tree ensemble in ONNX Runtime: one call per batch, not one per member
    columns = [built.index(name) for name in model.feature_names]
    return Champion(version, model.fused(), card, columns)


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
        self.champion: Champion | None = None
        self._champion_problem: str | None = None
        self._store_problem: str | None = None
        self._store_ok_at = 0.0
        self.refresh()
        self.check_store()
        self._also: list[Callable[[], object]] = []
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="champion-watcher", daemon=True)
        if reload_seconds > 0:
            self._watcher.start()

    @classmethod
    def from_environment(cls) -> Forecaster:
        """Registry and prediction store as Dagster finds them (COMFORT_HOME, COMFORT_ENV,
        COMFORT_PREDICTION_DB_URL); COMFORT_RELOAD_SECONDS (0 = never) and
        COMFORT_LOG_PREDICTIONS=0 (benchmarks only: nothing is logged) tune the rest."""
        from comfort_assets.deployment import number_setting, object_store, prediction_store

        return cls(
            ModelRegistry(store=object_store(resolve_env=True)),
            prediction_store(resolve_env=True),
            log_predictions=os.environ.get("COMFORT_LOG_PREDICTIONS", "1") != "0",
            reload_seconds=number_setting("COMFORT_RELOAD_SECONDS", DEFAULT_RELOAD_SECONDS),
        )

    # --- champion and store health ------------------------------------------------------
    def refresh(self) -> bool:
        """Load the champion if the pointer moved (or none is loaded yet); True if it
        changed. A version that fails to load (sha256, missing files, a bad pointer) is
        refused and the current one keeps serving; the failure is logged once per change."""
        try:
            current = self.champion.version if self.champion else None
            if current is not None and self.registry.champion() == current:
                self._champion_state(None)
                return False
            self.champion = load_champion(self.registry)
            set_contract(self.champion.contract)
        except Exception as error:
            self._champion_state(brief(error))
            return False
        self._champion_state(None)
        log.warning("champion loaded: now serving %s", self.champion.version)
        return True

    def _champion_state(self, problem: str | None) -> None:
        if problem == self._champion_problem:
            return
        self._champion_problem = problem
        serving = self.champion.version if self.champion else "nothing"
        if problem is not None:
            log.error("champion cannot be loaded (%s); serving %s", problem, serving)
        elif serving != "nothing":
            log.warning("champion pointer readable again; serving %s", serving)

    def check_store(self) -> None:
        """Can the prediction store be reached (and its table created)? After a failed
        commit, can it be written to (reachable is not enough: a read-only store answered
        every read while every commit failed)? Logged on change."""
        try:
            self.store.ping(write=self._commit_failed())
            problem = None
            self._store_ok_at = time.monotonic()
        except Exception as error:
            problem = brief(error)
        if problem != self._store_problem:
            if problem is None:
                log.warning("prediction store reachable again")
            else:
                log.error("prediction store unusable: %s", problem)
            self._store_problem = problem

    def _commit_failed(self) -> bool:
        """The last commit failed, and the store has not been found usable since."""
        return (
            self.writer is not None
            and self.writer.last_error is not None
            and self.writer.failed_at > self._store_ok_at
        )

    def problems(self) -> list[str]:
        """Why the service cannot answer /predict now; empty when it can (readiness)."""
        found = []
        if self.champion is None:
            found.append(f"no valid champion: {self._champion_problem}")
        if self._store_problem is not None:
            found.append(f"prediction store unusable: {self._store_problem}")
        elif self._commit_failed():
            error = self.writer.last_error  # type: ignore[union-attr]  # _commit_failed
            found.append(f"prediction store: last commit failed: {brief(error)}")
        return found

    def also_refresh(self, refresh: Callable[[], object]) -> None:
        """Call ``refresh`` on every reload tick too (it must not raise): one thread follows
        all the storage the service serves from."""
        self._also.append(refresh)

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            self.refresh()
            self.check_store()
            for refresh in self._also:
                refresh()

    def close(self) -> None:
        self._stop.set()
        if self.writer is not None:
            self.writer.close()

    def model_info(self) -> ModelInfo:
        champion = self.serving()
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
            pointer_problem=self._champion_problem,
        )

    def serving(self) -> Champion:
        champion = self.champion
        if champion is None:
            raise Unavailable(f"no valid champion: {self._champion_problem}")
        return champion

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
        """Forecasts and the prediction-store rows (features serialised once, as JSON) for
        a batch of validated requests."""
        champion = self.serving()
        model = champion.model
        horizon = model.horizon_h
        built = (features or self.features)(requests, horizon)
        x = built[:, champion.columns]
        di = model.predict_di(x, built[:, DI_NOW])
        bands = discomfort_bands(di)
        now = datetime.now(UTC)
        step = timedelta(hours=horizon)
        names = model.feature_names
        forecasts, rows = [], []
        for request, value, band, row in zip(requests, di.tolist(), bands, x.tolist(), strict=True):
            prediction_id = new_prediction_id()
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
                    # NaN (a missing optional input) is not JSON: store null; pydantic's
                    # serialiser, as it is ~5× faster than json.dumps on 40 floats
                    "features": to_json(
                        dict(zip(names, row, strict=True)), inf_nan_mode="null"
                    ).decode(),
                    "prediction": value,
                }
            )
        return forecasts, rows

    def forecast_each(
        self, requests: Sequence[ForecastRequest]
    ) -> tuple[list[Forecast | Exception], list[dict[str, Any]]]:
        """`forecast` on the batch; if the batch fails, each window alone, so that one
        window that breaks (a bug: input is validated before it gets here) fails only its
        own caller. A window the champion cannot answer (validated against the one before
        it) is its caller's 400. `Unavailable` concerns everyone and is raised."""
        contract = self.serving().contract
        refused = [contract.refusal(request) for request in requests]
        if any(refused):
            fitting = [r for r, error in zip(requests, refused, strict=True) if error is None]
            answered, rows = self.forecast_each(fitting) if fitting else ([], [])
            answers = iter(answered)
            return [error or next(answers) for error in refused], rows
        try:
            forecasts, rows = self.forecast(requests)
            return list(forecasts), rows
        except Unavailable:
            raise
        except Exception:
            if len(requests) == 1:
                log.exception("forecast failed for one window")
                return [ForecastFailed("the forecast failed; see the server log")], []
        results: list[Forecast | Exception] = []
        rows: list[dict[str, Any]] = []
        for request in requests:
            one, row = self.forecast_each([request])
            results += one
            rows += row
        return results, rows

    async def predict(self, requests: Sequence[ForecastRequest]) -> list[Forecast]:
        """Forecast, then answer only once the rows are committed (group commit)."""
        forecasts, rows = self.forecast(requests)
        if self.writer is not None:
            await self.writer.write(rows)
        return forecasts


class NaturalBatcher:
    """Batches whatever arrived while the previous batch was being computed.

    A lone caller is computed at once (no window to wait for company); under load the
    windows queued during one computation share the next feature matrix and model call.
    A large batch is computed on one worker thread, so the event loop keeps reading
    requests meanwhile; a small one (``inline_max``) in the loop itself when the store is a
    local file, because waking two threads would cost more than the work. A batch with
    others queued behind it hands its rows to the group-commit writer and frees the slot at
    once; the last batch of a burst commits its rows where it was computed. Either way each
    caller is answered only after the commit holding its row.
    """

    def __init__(
        self,
        forecaster: Forecaster,
        max_size: int = MAX_BATCH_SIZE,
        inline_max: int = INLINE_MAX_WINDOWS,
    ) -> None:
        self.forecaster = forecaster
        self.max_size = max_size
        self.inline_max = inline_max
        self._waiting: deque[tuple[ForecastRequest, asyncio.Future[Any]]] = deque()
        self._draining: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="forecast")

    async def predict(self, requests: Sequence[ForecastRequest]) -> list[Forecast]:
        """Forecasts in the order of ``requests``; raises `Unavailable` (503) or
        `ForecastFailed` (500, this caller only)."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in requests]
        self._waiting.extend(zip(requests, futures, strict=True))
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        outcomes = [await future for future in futures]
        commits = {id(commit): commit for _, commit in outcomes if commit is not None}
        for commit in commits.values():
            try:  # shared by the batch: a caller that times out must not cancel it for all
                await asyncio.shield(commit)
            except Exception as error:
                raise Unavailable(
                    f"prediction store: the forecast could not be logged ({brief(error)})"
                ) from error
        return [forecast for forecast, _ in outcomes]

    def _compute(
        self, requests: list[ForecastRequest], inline: bool = False
    ) -> tuple[list[Forecast | Exception], Future[None] | None]:
        """The forecasts, and the commit of their rows. With nobody waiting for the next
        batch the rows are committed right here, which saves two thread handoffs (in the
        event loop, waiting at most INLINE_BUSY_MS for a lock); otherwise the group-commit
        writer takes them and the next batch can start at once."""
        results, rows = self.forecaster.forecast_each(requests)
        writer = self.forecaster.writer
        if writer is None or not rows:
            return list(results), None
        if self._waiting:
            return list(results), writer.submit(rows)
        return list(results), writer.commit_here(rows, INLINE_BUSY_MS if inline else None)

    def _computes_inline(self, size: int) -> bool:
        """Compute this batch in the event loop? Only a small one, and only when its commit
        (made where it is computed: a small batch takes everything queued) is a local file
        write: a database across the network must not stall the loop, and a store whose
        last commit failed would likely fail this attempt too, after its INLINE_BUSY_MS
        wait, and hand the rows to the writer anyway."""
        writer = self.forecaster.writer
        local = writer is None or (writer.store.is_sqlite and writer.last_error is None)
        return size <= self.inline_max and local

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                size = min(len(self._waiting), self.max_size)
                batch = [self._waiting.popleft() for _ in range(size)]
                requests = [r for r, _ in batch]
                inline = False
                try:
                    inline = self._computes_inline(size)
                    if inline:
                        results, commit = self._compute(requests, inline=True)
                    else:
                        results, commit = await loop.run_in_executor(
                            self._thread, self._compute, requests
                        )
                except Exception as error:  # Unavailable: every caller of the batch hears it
                    results, commit = [error] * len(batch), None
                committed = None if commit is None else _in_loop(loop, commit)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the caller went away
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result((result, committed))
                if inline:  # let the loop read what arrived meanwhile: the next batch
                    await asyncio.sleep(0)
        finally:
            self._draining = None

    def close(self) -> None:
        self._thread.shutdown(wait=True)


def _in_loop(loop: asyncio.AbstractEventLoop, commit: Future[None]) -> asyncio.Future[None] | None:
    """An asyncio future for ``commit``, or None if it has already committed (nothing to
    wait for); one already done costs no thread wake-up."""
    if not commit.done():
        return asyncio.wrap_future(commit, loop=loop)
    if commit.exception() is None:
        return None
    failed = loop.create_future()
    failed.set_exception(commit.exception())
    return failed


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
