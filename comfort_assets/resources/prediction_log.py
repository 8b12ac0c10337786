"""Reading the prediction store for monitoring (the forecasts valid in a time window) and
checking it works (a round trip that leaves nothing behind)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from comfort_assets.resources.prediction_store import PredictionStore


def read_valid_between(store: PredictionStore, start: datetime, end: datetime) -> pd.DataFrame:
    """Predictions whose ``valid_at`` is in [start, end), oldest first; ``features`` as dicts.

    An absent table (the service has not run yet) reads as no predictions, not an error.
    """
    table = store.schema
    query = (
        sa.select(table)
        .where(table.c.valid_at >= start, table.c.valid_at < end)
        .order_by(table.c.valid_at, table.c.station)
    )
    with store.engine.connect() as connection:
        if not sa.inspect(connection).has_table(table.name):
            rows = []
        else:
            rows = connection.execute(query).mappings().all()
    frame = pd.DataFrame(rows, columns=table.c.keys())
    for column in ("created_at", "valid_at", "feedback_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    # SQLite hands JSON back as text on some drivers
    frame["features"] = [json.loads(f) if isinstance(f, str) else f for f in frame["features"]]
    for column in ("prediction", "actual_di"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["horizon_h"] = frame["horizon_h"].astype("int64")
    return frame


def round_trip(store: PredictionStore) -> None:
    """Write a probe row, read it back and roll the transaction back, so the self-test
    proves the store works without leaving a forecast for monitoring to count."""
    table = store.schema
    probe_id = f"self-test-{uuid.uuid4().hex[:24]}"
    now = datetime.now(UTC)
    row = {
        "id": probe_id,
        "created_at": now,
        "station": "SELFTEST",
        "valid_at": now,
        "horizon_h": 0,
        "model_version": "self-test",
        "features": {},
        "prediction": 0.0,
    }
    store.create()
    with store.engine.connect() as connection:
        transaction = connection.begin()
        try:
            connection.execute(table.insert(), [row])
            found = connection.execute(sa.select(table.c.id).where(table.c.id == probe_id)).first()
        finally:
            transaction.rollback()
    if found is None:
        raise RuntimeError("a row written to the prediction store could not be read back")
