"""`COMFORT_ENV=production` end to end on real local servers: the definitions load, every
resource resolves from the environment, and data makes a round trip through the S3-compatible
object store (moto server) and the PostgreSQL prediction store. Nothing is fetched from KMA.

Each check runs in a fresh process, as `dagster`/`dg` and the Bento service would: the
deployment reads the environment when the definitions are imported.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql://postgres@127.0.0.1:5432"

#: Runs in the production process; prints one JSON line with what it saw.
ROUND_TRIP = r"""
import json, uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd

from comfort_assets import deployment
from comfort_assets.definitions import defs
from comfort_assets.domain.modeling import TrainingData, fit_model
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.resources.registry import ModelRegistry

seen = {"resources": sorted(defs.resources)}
seen["executor"] = defs.resolve_implicit_global_asset_job_def().executor_def.name
with dg.build_resources(defs.resources) as resolved:
    seen["types"] = {k: type(getattr(resolved, k)).__name__ for k in seen["resources"]}
    seen["bucket"] = resolved.object_store.bucket
    seen["weather_key"] = resolved.weather.service_key
    seen["prediction_url"] = resolved.prediction_store.url

    # registry through Dagster's resolved resource; read back the way the CLI and service do
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    data = TrainingData(x, x[:, 0] + rng.normal(0, 0.1, 200), np.zeros(200))
    model = fit_model("xgboost", data, data, ["a", "b", "c"], 3, params={"n_estimators": 20})
    version = resolved.registry.register(model, {"stations": ["108"]})
    resolved.registry.promote(version, "production round trip")
outside = ModelRegistry(store=deployment.object_store(resolve_env=True))
loaded, card = outside.load(outside.champion())
seen["champion"] = outside.champion()
seen["same_predictions"] = bool(
    np.allclose(loaded.predict_change(x), model.predict_change(x))
)
seen["model_uri"] = outside.store.uri(f"models/{version}/card.json")

# a real Dagster run: the IO manager writes to S3, an asset writes to PostgreSQL
prediction_id = uuid.uuid4().hex

@dg.asset
def probe() -> pd.DataFrame:
    return pd.DataFrame({"di": [70.5, 71.0, 72.25]})

@dg.asset
def probe_logged(probe: pd.DataFrame, prediction_store: PredictionStore) -> dict:
    prediction_store.create()
    now = datetime.now(UTC)
    prediction_store.insert([{
        "id": prediction_id, "created_at": now - timedelta(hours=4), "station": "108",
        "valid_at": now - timedelta(hours=1), "horizon_h": 3,
        "model_version": "weather-predictor-001", "features": {"di_now": 70.5},
        "prediction": float(probe["di"].mean()),
    }])
    return {"rows": len(probe)}

result = dg.materialize(
    [probe, probe_logged], resources=defs.resources, instance=dg.DagsterInstance.ephemeral()
)
seen["run_success"] = result.success
store = deployment.object_store(resolve_env=True)
seen["probe_written"] = store.exists("assets/probe/__all__.parquet")
seen["probe_logged"] = json.loads(store.get_bytes("assets/probe_logged/__all__.json"))
predictions = deployment.prediction_store(resolve_env=True)
row = predictions.record_feedback(prediction_id, actual_di=71.5, rating=3)
seen["feedback"] = {k: row[k] for k in ("prediction", "actual_di", "rating")}
seen["count"] = predictions.count()
print(json.dumps(seen))
"""


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own, dropped afterwards: the production table name is fixed."""
    if not _postgres_reachable():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 (CI starts it)")
    name = f"comfort_production_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"{POSTGRES.replace('postgresql', 'postgresql+psycopg')}/postgres")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def production_env(s3_endpoint, s3_bucket, database, tmp_path) -> dict[str, str]:
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "COMFORT_ENV": "production",
        "COMFORT_S3_BUCKET": s3_bucket,
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "COMFORT_PREDICTION_DB_URL": database,
        "KMA_SERVICE_KEY": "dummy",
        "COMFORT_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "WANDB_MODE": "disabled",
        "PYTHONPATH": str(PROJECT_ROOT),
    }


@pytest.mark.slow
def test_dg_check_defs_passes_in_production(production_env):
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=PROJECT_ROOT,
        env=production_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    assert "All definitions loaded successfully" in completed.stdout + completed.stderr


@pytest.mark.slow
def test_production_resources_round_trip_through_s3_and_postgresql(production_env):
    completed = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP],
        cwd=PROJECT_ROOT,
        env=production_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    seen = json.loads(completed.stdout.strip().splitlines()[-1])
    bucket, database = (
        production_env["COMFORT_S3_BUCKET"],
        production_env["COMFORT_PREDICTION_DB_URL"],
    )

    assert {"weather", "object_store", "io_manager", "registry", "prediction_store"} <= set(
        seen["resources"]
    )
    assert seen["types"]["weather"] == "KmaAsosWeatherSource"
    assert seen["types"]["object_store"] == "S3ObjectStore"
    assert seen["types"]["prediction_store"] == "PredictionStore"
    assert seen["executor"] == "multiprocess"
    # dg.EnvVar resolved from the environment, not from code or run config
    assert seen["bucket"] == bucket
    assert seen["weather_key"] == "dummy"
    assert seen["prediction_url"] == database

    assert seen["champion"] == "weather-predictor-001"
    assert seen["same_predictions"]
    assert seen["model_uri"].startswith(f"s3://{bucket}/")

    assert seen["run_success"]
    assert seen["probe_written"]
    assert seen["probe_logged"] == {"rows": 3}
    assert seen["feedback"] == {"prediction": pytest.approx(71.25), "actual_di": 71.5, "rating": 3}
    assert seen["count"] == 1
