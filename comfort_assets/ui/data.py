"""What the page reads from storage: ingested weather and monitoring reports from the object
store (the asset IO manager's layout ``assets/<asset>/<partition>.<suffix>``), past
predictions from the prediction store. Missing data is an empty answer, never an error."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from comfort_assets.resources.object_store import ObjectStore
from comfort_assets.resources.prediction_store import PredictionStore

ASSET_PREFIX = "assets"
UNPARTITIONED = "__all__"
SUFFIXES = ("parquet", "json")
#: The monitoring assets whose latest materialization the page shows when present.
MONITORING_ASSETS = ("production_performance", "feature_drift", "data_quality_report")


def partitions(store: ObjectStore, asset: str) -> list[str]:
    """Partition keys (or ``__all__``) stored for an asset, sorted."""
    prefix = f"{ASSET_PREFIX}/{asset}/"
    names = (key[len(prefix) :].rpartition(".") for key in store.list_keys(prefix))
    return sorted({stem for stem, _, suffix in names if suffix in SUFFIXES and "/" not in stem})


def read_asset(store: ObjectStore, asset: str, partition: str = UNPARTITIONED) -> Any | None:
    """One stored materialization (a DataFrame from Parquet, else the JSON), or None."""
    for suffix in SUFFIXES:
        key = f"{ASSET_PREFIX}/{asset}/{partition}.{suffix}"
        if store.exists(key):
            data = store.get_bytes(key)
            return pd.read_parquet(io.BytesIO(data)) if suffix == "parquet" else json.loads(data)
    return None


def as_utc(moment: datetime) -> pd.Timestamp:
    """Naive means UTC, as in the service's contract."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def clean_weather(store: ObjectStore, start: datetime, end: datetime) -> pd.DataFrame:
    """Ingested clean weather from ``start`` to ``end`` (inclusive), all stations.

    The one place the page gets observations: it could ask the service instead later."""
    start_ts, end_ts = (as_utc(moment) for moment in (start, end))
    days = pd.date_range(start_ts.floor("D"), end_ts.floor("D"), freq="D")
    found = (read_asset(store, "clean_weather", f"{day:%Y-%m-%d}") for day in days)
    frames = [frame for frame in found if frame is not None]
    if not frames:
        return pd.DataFrame(columns=["station", "time_utc", "temp_c", "humidity_pct"])
    clean = pd.concat(frames, ignore_index=True)
    clean["time_utc"] = pd.to_datetime(clean["time_utc"], utc=True)
    inside = (clean["time_utc"] >= start_ts) & (clean["time_utc"] <= end_ts)
    return clean.loc[inside].sort_values(["station", "time_utc"]).reset_index(drop=True)


def recent_predictions(
    store: PredictionStore, since: datetime, limit: int = 500
) -> tuple[pd.DataFrame, int]:
    """The newest ``limit`` predictions created since ``since`` (oldest first), and how
    many there are in all; empty if none were logged (no table yet: the service creates it
    on its first start)."""
    try:
        return store.newest(since, limit)
    except sa.exc.SQLAlchemyError:
        return pd.DataFrame(columns=[c.name for c in store.schema.columns]), 0


def monitoring_reports(store: ObjectStore) -> dict[str, tuple[str, Any]]:
    """For each monitoring asset that has been materialized: its latest partition and value."""
    reports = {}
    for asset in MONITORING_ASSETS:
        keys = partitions(store, asset)
        if not keys:
            continue
        latest = UNPARTITIONED if UNPARTITIONED in keys else keys[-1]
        value = read_asset(store, asset, latest)
        if value is not None:
            reports[asset] = (latest, value)
    return reports
