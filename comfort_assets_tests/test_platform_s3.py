"""The whole graph on an S3-compatible server (moto on 127.0.0.1), as production runs it, and
that server going away in the middle of a registration.

`comfort run` with ``COMFORT_ENV=production`` writes every asset, the registered model, the
champion pointer and the Bento's copy of the champion through S3. Then `comfort train` loses
its server while it writes the new version's files: the client retries, the run fails with
the endpoint named, and the registry is left as it was: no card for the half-written
version, the champion pointer still on a complete, loadable version.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from comfort_assets.resources.object_store import S3ObjectStore
from comfort_assets.resources.registry import ModelRegistry

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFIX = "comfort-assets"


class Outage:
    """A TCP hop in front of the S3 server that goes down when a request carries ``trigger``:
    open connections are cut and new ones are accepted and closed at once (counted), as a
    server that went away mid-run looks to a client. ``heal`` brings it back."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.trigger: bytes | None = None
        self.down = False
        self.refused = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def go_down_on(self, trigger: bytes) -> None:
        self.trigger = trigger

    def heal(self) -> None:
        self.trigger, self.down = None, False

    def close(self) -> None:
        self.listener.close()
        self._cut()

    def _cut(self) -> None:
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                self.refused += 1
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, watch: bool) -> None:
        tail = b""
        try:
            while chunk := source.recv(65536):
                if watch and self.trigger and self.trigger in tail + chunk:
                    self.down = True
                    self._cut()
                    return
                tail = chunk[-256:]
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                sock.close()


@pytest.fixture(scope="module")
def outage(s3_endpoint: str) -> Iterator[Outage]:
    host, port = s3_endpoint.removeprefix("http://").split(":")
    hop = Outage((host, int(port)))
    yield hop
    hop.close()


@pytest.fixture(scope="module")
def production(s3_endpoint, outage, tmp_path_factory) -> tuple[dict[str, str], str]:
    """`comfort run` in production mode, every byte of storage through S3."""
    bucket = "comfort-whole-graph"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    home = tmp_path_factory.mktemp("production")
    env = {
        **os.environ,
        "COMFORT_ENV": "production",
        "COMFORT_SOURCE": "bundled",
        "COMFORT_S3_BUCKET": bucket,
        "AWS_ENDPOINT_URL_S3": outage.url,
        "COMFORT_PREDICTION_DB_URL": f"sqlite:///{home / 'predictions.db'}",
        "COMFORT_HOME": str(home / "comfort"),
        "DAGSTER_HOME": str(home / "dagster"),
        "BENTOML_HOME": str(home / "bentoml"),
        "WANDB_MODE": "disabled",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    completed = _comfort(env, "run")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return env, bucket


def _comfort(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "comfort_assets.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # a shared 2-core machine can be several times slower than usual
    )


def _registry(s3_endpoint: str, bucket: str) -> ModelRegistry:
    """The registry read straight from the server, past the hop."""
    from dagster_aws.s3 import S3Resource

    store = S3ObjectStore(s3=S3Resource(endpoint_url=s3_endpoint), bucket=bucket, prefix=PREFIX)
    return ModelRegistry(store=store)


@pytest.mark.slow
def test_the_whole_graph_runs_on_s3(production, s3_endpoint):
    env, bucket = production
    registry = _registry(s3_endpoint, bucket)
    keys = set(registry.store.list_keys(""))
    for asset in ("raw_weather", "clean_weather", "comfort_features", "holdout_set"):
        assert any(k.startswith(f"assets/{asset}/") for k in keys), asset
    assert "assets/raw_weather/2013-12-31.parquet" in keys
    assert registry.champion() == "weather-predictor-001"
    _, card = registry.load("weather-predictor-001")  # sha256 of every file checked
    # nothing went to local storage
    assert not (Path(env["COMFORT_HOME"]) / "store").exists()

    # the Bento bundles the champion it imported from S3, byte for byte
    bentos = Path(env["BENTOML_HOME"]) / "bentos" / "comfort_forecast"
    bento = bentos / "weather-predictor-001" / "src" / ".comfort" / "store" / "models"
    bundled = json.loads((bento / "weather-predictor-001" / "card.json").read_text())
    assert bundled["sha256"] == card["sha256"]
    assert json.loads((bento / "champion.json").read_text())["version"] == "weather-predictor-001"


@pytest.mark.slow
def test_a_server_lost_mid_registration_fails_the_run_and_leaves_the_registry_whole(
    production, outage, s3_endpoint
):
    env, bucket = production
    # the new version's files are written before its manifest and card: go down between them
    outage.go_down_on(b"/models/weather-predictor-002/model.json")
    try:
        completed = _comfort(env, "train", "--family", "ridge", "--random-state", "7")
    finally:
        outage.heal()

    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert outage.refused >= 2  # the client retried on fresh connections before failing
    said = completed.stdout + completed.stderr
    assert "FAILED" in said and "challenger_model" in said
    assert outage.url.removeprefix("http://") in said  # the failure names the endpoint
    assert "Traceback" not in completed.stdout

    registry = _registry(s3_endpoint, bucket)
    written = registry.store.list_keys("models/weather-predictor-002/")
    assert any("/member-" in k for k in written)  # the outage really was mid-registration
    assert not any(k.endswith(("card.json", "model.json")) for k in written)
    assert registry.versions() == ["weather-predictor-001"]
    assert registry.champion() == "weather-predictor-001"
    registry.load("weather-predictor-001")

    # with the server back, the next registration takes the next free name
    completed = _comfort(env, "train", "--family", "ridge", "--random-state", "7")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert registry.versions() == ["weather-predictor-001", "weather-predictor-003"]
