"""A daily self-test of the production path: every step the service and the loop rely on,
in order; the first that fails is named in the notification and the run fails."""

import uuid
from collections.abc import Callable

import dagster as dg
import numpy as np
import pandas as pd

from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS
from comfort_assets.domain.comfort import discomfort_index
from comfort_assets.domain.features import (
    HISTORY_DAYS,
    OBSERVED,
    WINDOW_HOURS,
    feature_names,
    window_feature_matrix,
)
from comfort_assets.domain.schemas import CleanWeather, validate
from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.notifier import Alert, Notifier
from comfort_assets.resources.object_store import ObjectStore
from comfort_assets.resources.prediction_log import round_trip
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.resources.tracking import ExperimentTracker

#: A forecast outside this range is not a discomfort index any weather can produce.
PLAUSIBLE_DI = (0.0, 120.0)


def latest_day(clean: pd.DataFrame) -> pd.DataFrame:
    last = clean["time_utc"].max().floor("D")
    return clean[clean["time_utc"] >= last]


def known_window_forecast(registry: ModelRegistry, clean: pd.DataFrame) -> float:
    """The champion's forecast from the last complete window of its first station."""
    version = registry.champion()
    if version is None:
        raise RuntimeError("the registry has no champion")
    model, card = registry.load(version)
    stations = card.get("stations") or sorted(clean["station"].unique())
    rows = clean[clean["station"] == stations[0]].sort_values("time_utc")
    complete = rows.dropna(subset=["temp_c", "humidity_pct"])
    window = rows[rows["time_utc"] <= complete["time_utc"].max()].tail(WINDOW_HOURS)
    if len(window) < WINDOW_HOURS:
        raise RuntimeError(f"{stations[0]} has no complete {WINDOW_HOURS}-hour window")
    observations = {name: window[name].to_numpy(dtype=float) for name in OBSERVED}
    origin = window["time_utc"].iloc[-1]
    matrix = window_feature_matrix(observations, [origin.hour], model.horizon_h)
    names = feature_names(model.horizon_h)
    features = matrix[:, [names.index(n) for n in model.feature_names]]
    di_now = discomfort_index(observations["temp_c"][-1:], observations["humidity_pct"][-1:])
    forecast = float(model.predict_di(features, di_now)[0])
    if not (np.isfinite(forecast) and PLAUSIBLE_DI[0] <= forecast <= PLAUSIBLE_DI[1]):
        raise RuntimeError(f"{version} forecast {forecast} for a known window")
    return forecast


@dg.op(
    description="Data contract on the latest day, champion sha256 and a known window, object "
    "store, tracker and prediction store round trips.",
)
def self_test(
    context: dg.OpExecutionContext,
    registry: ModelRegistry,
    object_store: ObjectStore,
    tracker: ExperimentTracker,
    prediction_store: PredictionStore,
    notifier: Notifier,
) -> None:
    def latest_clean() -> pd.DataFrame:
        """The latest stored days of `clean_weather` as the assets stored them (reading them
        is part of the test): enough days for a forecast window."""
        io_manager = ObjectStoreIOManager(store=object_store)
        asset = dg.AssetKey("clean_weather")
        days = io_manager.stored_partitions(asset)[-(HISTORY_DAYS + 1) :]
        if not days:
            raise RuntimeError("clean_weather has no stored day")
        context = dg.build_input_context(
            asset_key=asset,
            asset_partitions_def=WEATHER_PARTITIONS,
            asset_partition_key_range=dg.PartitionKeyRange(days[0], days[-1]),
        )
        return io_manager.load_input(context)

    clean_weather = pd.DataFrame()

    def data_contract() -> str:
        nonlocal clean_weather
        clean_weather = latest_clean()
        report = validate(CleanWeather, latest_day(clean_weather))
        if not report.passed:
            raise RuntimeError(report.summary())
        return f"{len(latest_day(clean_weather))} rows of the latest day pass CleanWeather"

    def champion() -> str:
        version = registry.champion()
        if version is None:
            raise RuntimeError("the registry has no champion")
        registry.load(version)  # raises on a sha256 mismatch
        return f"{version} loads and matches its sha256"

    def known_window() -> str:
        return f"forecast {known_window_forecast(registry, clean_weather):.2f}"

    def store_round_trip() -> str:
        key, data = "self-test/probe", uuid.uuid4().bytes
        object_store.put_bytes(key, data)
        if object_store.get_bytes(key) != data:
            raise RuntimeError(f"{object_store.uri(key)} did not read back what was written")
        return object_store.uri(key)

    def tracker_round_trip() -> str:
        with tracker.run("self_test", "self-test") as run:
            run.summary({"self_test": 1})
            return run.url or tracker.mode

    def predictions_round_trip() -> str:
        round_trip(prediction_store)
        return "a probe row was written, read and rolled back"

    steps: list[tuple[str, Callable[[], str]]] = [
        ("data_contract", data_contract),
        ("champion_integrity", champion),
        ("known_window", known_window),
        ("object_store", store_round_trip),
        ("tracker", tracker_round_trip),
        ("prediction_store", predictions_round_trip),
    ]
    results = {}
    for name, step in steps:
        try:
            results[name] = step()
        except Exception as error:  # every failure is reported with the step it broke
            message = f"{type(error).__name__}: {error}"[:500]
            notifier.notify(
                Alert(
                    kind="self_test",
                    title=f"self-test failed at {name}",
                    check=f"self_test:{name}",
                    model_version=str(registry.champion()),
                    details={"error": message},
                )
            )
            raise dg.Failure(
                description=f"self-test failed at {name}: {message}",
                metadata={
                    "failed_step": name,
                    "passed_steps": ", ".join(results),
                    "notified": True,
                },
            ) from error
        context.log.info(f"self-test {name}: {results[name]}")
    context.add_output_metadata({name: dg.MetadataValue.text(v) for name, v in results.items()})


@dg.job(description="Daily: does everything the service and the monitoring loop need work?")
def self_test_job():
    self_test()


daily_self_test = dg.ScheduleDefinition(
    name="daily_self_test",
    job=self_test_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
)
