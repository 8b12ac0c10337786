"""Helpers for the serving tests: a champion in seconds, and a real `bentoml serve`."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import dagster as dg
import httpx
import pandas as pd

from comfort_assets.domain.features import build_features, feature_names
from comfort_assets.domain.modeling import TrainingData, fit_model
from comfort_assets.processes import stop_process_group
from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.registry import ModelRegistry

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HORIZON = 3
SERVICE = "comfort_assets.serving.service:ComfortForecast"


def bench_module(name: str) -> ModuleType:
    """A module from `bench/` (not an installed package), e.g. the FastAPI twins."""
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def store_clean_weather(home: Path, clean: pd.DataFrame) -> None:
    """``clean`` as the `clean_weather` asset under ``home``, written by the asset IO manager
    as `comfort run` leaves it (what `/forecast` reads)."""
    io_manager = ObjectStoreIOManager(store=LocalObjectStore(root=str(home / "store")))
    io_manager.handle_output(dg.build_output_context(asset_key=dg.AssetKey("clean_weather")), clean)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    url: str
    process: subprocess.Popen
    log: Path


@contextmanager
def bento_process(
    home: Path, target: str = SERVICE, wait_for: str = "/readyz", **env: str
) -> Iterator[Served]:
    """`bentoml serve TARGET` in a subprocess on 127.0.0.1 with the registry and store under
    ``home`` (a built Bento's tag as TARGET serves its bundled champion), once ``wait_for``
    answers 200; stopped with SIGTERM (then SIGKILL) at the end."""
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
    log_path = home / f"bentoml-{port}.log"
    log = log_path.open("wb")
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
                raise RuntimeError("bentoml serve exited:\n" + log_path.read_text()[-3000:])
            try:
                if httpx.get(f"{url}{wait_for}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"bentoml serve not ready after 90 s; see {log_path}")
            time.sleep(0.3)
        yield Served(url, process, log_path)
    finally:
        stop_process_group(process)
        log.close()


@contextmanager
def bento_server(home: Path, target: str = SERVICE, **env: str) -> Iterator[str]:
    """`bento_process` when only the URL matters."""
    with bento_process(home, target, **env) as served:
        yield served.url


class TcpProxy:
    """A TCP relay on 127.0.0.1 to ``upstream``: `cut()` drops every connection and refuses
    new ones (a database that went away), `resume()` listens again on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.resume()

    def resume(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                with suppress(OSError):  # wakes the accepting thread (close alone does not)
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with suppress(OSError):
            target.shutdown(socket.SHUT_WR)
