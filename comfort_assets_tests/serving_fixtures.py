"""Helpers for the serving tests: a champion in seconds, and a real `bentoml serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd

from comfort_assets.domain.features import build_features, feature_names
from comfort_assets.domain.modeling import TrainingData, fit_model
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.registry import ModelRegistry

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HORIZON = 3
SERVICE = "comfort_assets.serving.service:ComfortForecast"


def registry_at(home: Path) -> ModelRegistry:
    return ModelRegistry(store=LocalObjectStore(root=str(home / "store")))


def register_champion(home: Path, clean: pd.DataFrame, seed: int = 0, trees: int = 40) -> str:
    """Fit a small XGBoost on January–February, register it under ``home`` and promote it."""
    frame = build_features(clean[clean["time_utc"] < pd.Timestamp("2013-03-01", tz="UTC")])
    frame = frame[frame["usable"]]
    names = feature_names(HORIZON)
    cut = int(len(frame) * 0.8)
    model = fit_model(
        "xgboost",
        TrainingData.from_frame(frame.iloc[:cut], names),
        TrainingData.from_frame(frame.iloc[cut:], names),
        names,
        HORIZON,
        seed=seed,
        params={"n_estimators": trees, "max_depth": 3 + seed},
    )
    card = {
        "stations": sorted(frame["station"].unique().tolist()),
        "metrics": {"holdout_rmse": 1.0, "seed": seed},
        "training_window": {"start": "2013-01-05", "end": "2013-02-28"},
    }
    registry = registry_at(home)
    version = registry.register(model, card)
    registry.promote(version, "test champion")
    return version


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def bento_server(home: Path, target: str = SERVICE, **env: str) -> Iterator[str]:
    """`bentoml serve TARGET` in a subprocess on 127.0.0.1 with the registry and store under
    ``home`` (a built Bento's tag as TARGET serves its bundled champion); yields the URL."""
    port = free_port()
    environment = {
        **os.environ,
        "COMFORT_ENV": "local",
        "BENTOML_HOME": str(home / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "PYTHONPATH": str(PROJECT_ROOT),
        **env,
    }
    if target == SERVICE:
        environment["COMFORT_HOME"] = str(home)
    else:
        environment.pop("COMFORT_HOME", None)
    log = (home / f"bentoml-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError("bentoml serve exited:\n" + Path(log.name).read_text()[-3000:])
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"bentoml serve not ready after 90 s; see {log.name}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
