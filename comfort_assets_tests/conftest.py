"""Shared fixtures: offline settings, real data, a real S3-compatible server, and the whole
graph materialized once."""

from __future__ import annotations

import os
import re
import subprocess
import sys

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from comfort_assets.domain.cleaning import CleaningResult, clean_observations
from comfort_assets.resources.weather import BundledWeatherSource

YEAR_START = pd.Timestamp("2013-01-01", tz="UTC")
YEAR_END = pd.Timestamp("2014-01-01", tz="UTC")


@pytest.fixture(scope="session")
def bundled_raw() -> pd.DataFrame:
    return BundledWeatherSource().fetch(YEAR_START, YEAR_END)


@pytest.fixture(scope="session")
def bundled_clean(bundled_raw: pd.DataFrame) -> CleaningResult:
    return clean_observations(bundled_raw)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto in server mode on 127.0.0.1: a real HTTP S3 API, not an in-process mock."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    import boto3

    name = "comfort-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def pipeline_home(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """README command (a) on a fresh home, once per session: the graph takes minutes, and
    both the pipeline tests and the Dagster UI's browser tests need it materialized."""
    home = tmp_path_factory.mktemp("comfort-home")
    env = {
        **os.environ,
        "COMFORT_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "WANDB_MODE": "offline",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "comfort_assets.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # a shared 2-core machine can be several times slower than usual
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    # what the user saw, for the tests of the CLI's output
    (home / "comfort-run.out").write_text(completed.stdout)
    return home, env
