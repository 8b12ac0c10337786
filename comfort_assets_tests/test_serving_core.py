"""Serving pieces in process: champion reload, integrity, the contract, natural batching and
its isolation of a failing window; and the `bento` asset."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import httpx
import numpy as np
import pandas as pd
import pytest

from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.resources.registry import ModelIntegrityError
from comfort_assets.serving.core import (
    Forecaster,
    ForecastFailed,
    NaturalBatcher,
    Unavailable,
    request_payload,
)
from comfort_assets.serving.guard import ClientErrorBudget
from comfort_assets.serving.schemas import ForecastRequest
from comfort_assets_tests.serving_fixtures import (
    bench_module,
    bento_server,
    register_champion,
    registry_at,
)

pandas_features = bench_module("serving_twins").pandas_features

ORIGIN = pd.Timestamp("2013-02-10T06:00", tz="UTC")


@pytest.fixture(scope="module")
def clean(bundled_clean) -> pd.DataFrame:
    return bundled_clean.clean


@pytest.fixture
def home(tmp_path, clean) -> Path:
    register_champion(tmp_path, clean, seed=0, trees=20)
    return tmp_path


def forecaster(home: Path) -> Forecaster:
    store = PredictionStore(url=f"sqlite:///{home / 'predictions.db'}")
    return Forecaster(registry_at(home), store, reload_seconds=0)


def requests_for(clean: pd.DataFrame, n: int) -> list[ForecastRequest]:
    return [
        ForecastRequest.model_validate(
            request_payload(clean, ["EWR", "JFK", "LGA"][i % 3], ORIGIN + pd.Timedelta(hours=i))
        )
        for i in range(n)
    ]


def test_refresh_follows_the_pointer_not_the_newest_file(home, clean):
    served = forecaster(home)
    try:
        first = served.champion.version
        registry = registry_at(home)
        newer = register_champion(home, clean, seed=1, trees=20)
        registry.rollback()  # newest file is `newer`, but the pointer is back on `first`
        assert not served.refresh() and served.champion.version == first
        registry.promote(newer)
        assert served.refresh() and served.champion.version == newer
    finally:
        served.close()


def test_a_tampered_champion_is_refused_and_the_old_one_keeps_serving(home, clean, caplog):
    served = forecaster(home)
    try:
        first = served.champion.version
        newer = register_champion(home, clean, seed=1, trees=20)
        member = home / "store" / "models" / newer / "member-0.ubj"
        member.write_bytes(member.read_bytes() + b"tampered")
        with caplog.at_level("ERROR"):
            assert not served.refresh()
            assert not served.refresh()  # the same failure again: not logged again
        assert served.champion.version == first and served.problems() == []
        failures = [r for r in caplog.records if "cannot be loaded" in r.getMessage()]
        assert len(failures) == 1 and ModelIntegrityError.__name__ in failures[0].getMessage()
        assert failures[0].exc_info is None  # one line, no traceback
        info = served.model_info()  # and /model_info tells whoever looks
        assert info.version == first and ModelIntegrityError.__name__ in info.pointer_problem
        member.write_bytes(member.read_bytes()[: -len(b"tampered")])
        assert served.refresh() and served.model_info().pointer_problem is None
    finally:
        served.close()


def test_no_champion_is_a_clear_reason_not_a_crash(tmp_path, clean):
    served = forecaster(tmp_path)
    try:
        (problem,) = served.problems()
        assert "no valid champion" in problem and "comfort run" in problem
        with pytest.raises(Unavailable, match="comfort run"):
            asyncio.run(NaturalBatcher(served).predict(requests_for(clean, 1)))
        register_champion(tmp_path, clean, seed=0, trees=20)
        assert served.refresh() and served.problems() == []  # ready without a restart
    finally:
        served.close()


@pytest.mark.parametrize("pointer", [b"{}", b'{"version": 7}', b"[]", b"[1, 2]"])
def test_a_champion_pointer_without_a_version_is_reported(home, pointer, caplog):
    served = forecaster(home)
    try:
        serving = served.champion.version
        (home / "store" / "models" / "champion.json").write_bytes(pointer)
        assert not served.refresh()  # while serving: the champion stays, the log says why
        assert served.champion.version == serving
        assert "the champion pointer names no version" in caplog.text
    finally:
        served.close()
    starting = forecaster(home)
    try:
        (problem,) = starting.problems()
        assert "names no version" in problem
    finally:
        starting.close()


def test_a_window_that_fails_inside_the_batch_fails_alone(home, clean, monkeypatch):
    served = forecaster(home)
    batcher = NaturalBatcher(served)
    requests = requests_for(clean, 12)
    poisoned = requests[5]
    build = served.features

    def features(batch, horizon):
        if any(r is poisoned for r in batch):
            raise OverflowError("date value out of range")
        return build(batch, horizon)

    monkeypatch.setattr(served, "features", features)

    async def concurrently() -> list:
        return await asyncio.gather(
            *(batcher.predict([r]) for r in requests), return_exceptions=True
        )

    try:
        results = asyncio.run(concurrently())
        failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        assert failed == [5] and isinstance(results[5], ForecastFailed)
        assert served.store.count() == 11  # every other window answered and logged
    finally:
        batcher.close()
        served.close()


def test_a_lone_caller_is_not_kept_waiting_and_a_burst_is_batched(home, clean, monkeypatch):
    served = forecaster(home)
    batcher = NaturalBatcher(served)
    sizes = []
    build = served.features
    monkeypatch.setattr(served, "features", lambda b, h: sizes.append(len(b)) or build(b, h))
    requests = requests_for(clean, 40)

    async def burst() -> None:
        await asyncio.gather(*(batcher.predict([r]) for r in requests))

    try:
        asyncio.run(batcher.predict(requests[:1]))
        started = time.perf_counter()
        for _ in range(20):
            asyncio.run(batcher.predict(requests[:1]))
        assert (time.perf_counter() - started) / 20 < 0.05  # no batching window to wait out
        sizes.clear()
        asyncio.run(burst())
        assert sum(sizes) == 40 and max(sizes) > 1
    finally:
        batcher.close()
        served.close()


def test_a_small_batch_is_computed_in_the_loop_and_a_large_or_troubled_one_on_the_thread(
    home, clean, monkeypatch
):
    served = forecaster(home)
    batcher = NaturalBatcher(served, inline_max=8)
    threads = []
    build = served.features

    def features(batch, horizon):
        threads.append((len(batch), threading.current_thread().name))
        return build(batch, horizon)

    monkeypatch.setattr(served, "features", features)
    requests = requests_for(clean, 12)

    async def together(n: int) -> None:
        await asyncio.gather(*(batcher.predict([r]) for r in requests[:n]))

    try:
        asyncio.run(together(1))
        asyncio.run(together(12))
        assert threads[0] == (1, threading.current_thread().name)  # the loop's: no handoff
        assert threads[1][0] == 12 and threads[1][1].startswith("forecast")
        served.writer.last_error = OSError("disk full")  # the commit may wait for retries
        threads.clear()
        asyncio.run(together(1))
        assert threads[0][1].startswith("forecast")
        assert served.store.count() == 14  # every forecast logged, whichever thread
    finally:
        batcher.close()
        served.close()


def test_a_sqlite_file_locked_elsewhere_never_stalls_the_event_loop(home, clean):
    served = forecaster(home)
    batcher = NaturalBatcher(served)
    first, second = requests_for(clean, 2)
    blocker = sqlite3.connect(home / "predictions.db", isolation_level=None)

    async def while_locked() -> int:
        await batcher.predict([first])  # the writer has made the table: commits go inline
        blocker.execute("BEGIN IMMEDIATE")  # another process's write transaction
        answer = asyncio.ensure_future(batcher.predict([second]))
        ticks, started = 0, time.perf_counter()
        while time.perf_counter() - started < 0.5:
            await asyncio.sleep(0.01)  # /livez and the other routes, in the real service
            ticks += 1
        assert not answer.done()  # answered only once its row is committed
        blocker.execute("ROLLBACK")
        await asyncio.wait_for(answer, 10)
        return ticks

    try:
        assert asyncio.run(while_locked()) >= 20  # the loop ran on: 0.5 s of 10-ms naps
        assert served.store.count() == 2 and served.writer.last_error is None
    finally:
        blocker.close()
        batcher.close()
        served.close()


def test_a_caller_that_times_out_does_not_fail_the_others_in_its_batch(home, clean):
    """BentoML cancels a request at its timeout; its batch's commit is shared, so the other
    callers must still be answered and the writer must live on (it died on a cancelled
    future once, and every later queued commit failed)."""
    served = forecaster(home)
    batcher = NaturalBatcher(served)
    first, late, patient, after = requests_for(clean, 4)
    blocker = sqlite3.connect(home / "predictions.db", isolation_level=None)

    async def one_times_out() -> None:
        await batcher.predict([first])  # the table exists
        blocker.execute("BEGIN IMMEDIATE")  # the commit waits for this lock
        timed_out = asyncio.ensure_future(batcher.predict([late]))
        answered = asyncio.ensure_future(batcher.predict([patient]))
        await asyncio.sleep(0.3)
        timed_out.cancel()
        await asyncio.sleep(0.05)
        blocker.execute("ROLLBACK")
        (forecast,) = await asyncio.wait_for(answered, 10)
        assert forecast.station == patient.station
        assert timed_out.cancelled()
        await asyncio.wait_for(batcher.predict([after]), 10)  # the writer still commits

    try:
        asyncio.run(one_times_out())
        assert served.writer._thread.is_alive() and served.writer.last_error is None
        assert served.store.count() == 4  # the batch's commit held the late caller's row too
    finally:
        blocker.close()
        batcher.close()
        served.close()


def test_a_store_that_cannot_be_opened_answers_unavailable_at_once(home, clean):
    """Its file cannot be created (a parent is a file): every caller hears 503's reason,
    none waits for BentoML's timeout (the batch loop once died deciding where to compute)."""
    (home / "not-a-directory").write_text("")
    store = PredictionStore(url=f"sqlite:///{home / 'not-a-directory' / 'predictions.db'}")
    served = Forecaster(registry_at(home), store, reload_seconds=0)
    batcher = NaturalBatcher(served)

    async def twice() -> list[BaseException | list]:
        calls = [batcher.predict(requests_for(clean, 1)) for _ in range(2)]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)

    try:
        outcomes = asyncio.run(twice())
        assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
        assert "prediction store" in str(outcomes[0])
    finally:
        batcher.close()
        served.close()


_CANCELLED_TWICE = """
import asyncio
from comfort_assets.serving.guard import Guard, Readiness

async def slow(scope, receive, send):
    await asyncio.sleep(5)

guard = Guard(slow, Readiness(problems=list), max_body=1000, timeout_s=0.1)
scope = {"type": "http", "path": "/predict", "method": "POST",
         "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]}

async def body():
    return {"type": "http.request", "body": b"{}", "more_body": False}

async def cancelled_after(seconds):
    try:
        await asyncio.wait_for(guard(scope, body, None), seconds)
    except TimeoutError:
        pass

asyncio.run(cancelled_after(0.02))  # the client hung up
asyncio.run(cancelled_after(0.3))  # BentoML's timeout
print(guard._metrics.client.generate_latest().decode())
"""


def run_guard_script(script: str, prometheus_dir: Path) -> subprocess.CompletedProcess:
    """``script`` in a fresh interpreter with its own Prometheus directory (the guard's
    metrics are multiprocess, as under `bentoml serve`); it must succeed."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(prometheus_dir)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_a_request_cut_off_is_counted_as_504_or_499_not_500(tmp_path):
    done = run_guard_script(_CANCELLED_TWICE, tmp_path)
    counts = [line for line in done.stdout.splitlines() if "_count{" in line]
    assert sorted(counts) == [
        'comfort_http_request_duration_seconds_count{route="/predict",status="499"} 1.0',
        'comfort_http_request_duration_seconds_count{route="/predict",status="504"} 1.0',
    ]


_SLOW_BODY = """
import asyncio, json
from comfort_assets.serving import guard

guard.BODY_TIMEOUT_S = 0.2
answered = []

async def app(scope, receive, send):
    raise AssertionError("a body that never came reached the service")

async def trickle():
    await asyncio.sleep(5)  # the rest of the body never comes in time

async def send(message):
    answered.append(message)

scope = {"type": "http", "path": "/predict", "method": "POST",
         "headers": [(b"content-type", b"application/json"), (b"content-length", b"900")]}
asyncio.run(guard.Guard(app, guard.Readiness(problems=list), max_body=1000)(scope, trickle, send))
start, body = answered
print(start["status"], dict(start["headers"])[b"connection"].decode(), body["body"].decode())
"""


def test_a_body_that_comes_too_slowly_is_408_not_504(tmp_path):
    """A slow upload met BentoML's request timeout: a 504 blamed the server for the client."""
    done = run_guard_script(_SLOW_BODY, tmp_path)
    status, connection, body = done.stdout.strip().split(" ", 2)
    assert (status, connection) == ("408", "close")
    assert json.loads(body)["error"].startswith("body: not received within 0.2 s")


def test_a_window_validated_for_the_previous_champion_is_refused_by_the_next(home, clean):
    """The pointer can move between a request's validation and its batch: a station the new
    champion was not trained for is that caller's 400, never a forecast by a model that
    does not know the station; the rest of the batch is answered."""
    from pydantic import ValidationError

    served = forecaster(home)
    batcher = NaturalBatcher(served)
    registry = registry_at(home)
    by_station = {r.station: r for r in requests_for(clean, 3)}  # validated for all three
    jfk, ewr = by_station["JFK"], by_station["EWR"]
    model, _ = registry.load(registry.champion())
    jfk_only = registry.register(model, {"stations": ["JFK"], "metrics": {}})
    registry.promote(jfk_only, "a champion for JFK alone")
    assert served.refresh()

    async def both() -> list:
        calls = [batcher.predict([jfk]), batcher.predict([ewr])]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        answered, refused = asyncio.run(both())
        assert answered[0].model_version == jfk_only
        assert isinstance(refused, ValidationError)
        assert refused.errors()[0]["loc"] == ("station",)
        assert f"{jfk_only} was trained for ['JFK']" in str(refused)
        assert served.store.count() == 1
    finally:
        batcher.close()
        served.close()


def test_a_store_that_refuses_writes_stays_unready_until_it_takes_them_again(home, clean):
    """Reads kept working while every commit failed, so readiness came back on the next
    tick; now the tick after a failed commit tries a write."""
    import sqlalchemy as sa

    served = forecaster(home)
    engine = served.store.engine

    def read_only(connection, _record) -> None:
        connection.execute("PRAGMA query_only = ON")  # SQLite refuses every write

    try:
        asyncio.run(served.predict(requests_for(clean, 1)))  # the table exists
        sa.event.listen(engine, "connect", read_only)
        engine.dispose()  # every connection from now on is read-only
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            asyncio.run(served.predict(requests_for(clean, 1)))
        served.check_store()  # the reload tick
        assert any("readonly" in problem for problem in served.problems())
        served.check_store()
        assert served.problems()  # still: reads alone do not make it ready

        sa.event.remove(engine, "connect", read_only)
        engine.dispose()
        served.check_store()
        assert served.problems() == []
        asyncio.run(served.predict(requests_for(clean, 1)))
        assert served.store.count() == 2
    finally:
        served.close()


def test_batched_numpy_and_per_request_pandas_features_agree(home, clean):
    served = forecaster(home)
    try:
        requests = requests_for(clean, 7)
        batched = served.features(requests, 3)
        assert np.allclose(batched, pandas_features(requests, 3), equal_nan=True)
        forecasts = asyncio.run(served.predict(requests))
        singles = [asyncio.run(served.predict([r]))[0].di_forecast for r in requests]
        assert np.allclose([f.di_forecast for f in forecasts], singles)
        assert served.store.count() == 14
    finally:
        served.close()


@pytest.mark.slow
def test_bento_asset_builds_a_bento_that_serves_the_champion(home, clean, monkeypatch):
    from comfort_assets.defs.serving.assets import bento

    monkeypatch.setenv("COMFORT_HOME", str(home))
    monkeypatch.setenv("BENTOML_HOME", str(home / "bentoml"))
    registry = registry_at(home)
    version = registry.champion()
    result = bento(dg.build_asset_context(), registry=registry)
    tag = result.metadata["bento_tag"].value
    assert tag == f"comfort_forecast:{version}"
    bento_src = Path(result.metadata["path"].value) / "src"
    assert (bento_src / ".comfort" / "store" / "models" / version / "card.json").exists()

    # `bentoml serve TAG` with no COMFORT_HOME serves the bundled champion
    monkeypatch.delenv("COMFORT_HOME")
    with bento_server(home, target=tag) as url:
        response = httpx.post(
            f"{url}/predict",
            json={"requests": [request_payload(clean, "JFK", ORIGIN)]},
            timeout=30,
        )
    assert response.status_code == 200, response.text
    assert response.json()[0]["model_version"] == version
    assert (bento_src / ".comfort" / "predictions.db").exists()


def _installed_by(requirements: list[str]) -> set[str]:
    """The distributions that installing ``requirements`` brings, with theirs in turn."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: set[str] = set()
    todo = [Requirement(text) for text in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        try:
            declared = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: nothing of it can be imported either
        found.add(name)
        for text in declared:
            needed = Requirement(text)
            extras = {""} | requirement.extras
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                todo.append(needed)
    return found


#: A Bento's interpreter, imitated: a module owned only by distributions the Bento does not
#: install cannot be imported (an optional import falls back, as it would there).
_ONLY_INSTALLED = """
import importlib.metadata as md, json, os, sys
from packaging.utils import canonicalize_name
installed = set(json.loads(os.environ["BENTO_DISTRIBUTIONS"]))
owners = md.packages_distributions()

class NotInTheBento:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        dists = {canonicalize_name(d) for d in owners.get(top, [])}
        if dists and not dists & installed:
            raise ModuleNotFoundError(f"No module named {top!r} (from {sorted(dists)})", name=top)

sys.meta_path.insert(0, NotInTheBento())
import comfort_assets.serving.service
from comfort_assets.serving.core import Forecaster
from comfort_assets.serving.guard import read_before_closing
from uvicorn.protocols.http.h11_impl import H11Protocol
forecaster = Forecaster.from_environment()
read_before_closing()  # what the service's start does besides
print(forecaster.champion.version, forecaster.problems(), H11Protocol.shutdown.reads_first)
forecaster.close()
"""


def test_the_bentofile_installs_everything_the_service_imports(home):
    """A Bento holds only what `bentofile.yaml` lists: a module the service needs from a
    package outside it would stop the Bento from starting anywhere but in this checkout."""
    import yaml

    packages = yaml.safe_load(Path("bentofile.yaml").read_text())["python"]["packages"]
    installed = sorted(_installed_by(packages) | {"comfort-assets"})
    done = subprocess.run(
        [sys.executable, "-c", _ONLY_INSTALLED],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "BENTO_DISTRIBUTIONS": json.dumps(installed),
            "COMFORT_HOME": str(home),
            "COMFORT_RELOAD_SECONDS": "0",
        },
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == registry_at(home).champion()
    assert done.stdout.split()[-1] == "True"  # the drain's patch holds without httptools too


@pytest.mark.slow
def test_a_process_whose_bentoml_settled_on_another_home_still_builds_where_asked(home, tmp_path):
    """BentoML fixes its home once per process: a fork of such a process cannot build into
    another one, so the build falls back to a fresh interpreter and lands where it was asked."""
    from comfort_assets.defs.serving.assets import build_context

    registry = registry_at(home)
    version = registry.champion()
    source = build_context(registry, version, tmp_path / "context")
    elsewhere, wanted = tmp_path / "elsewhere", tmp_path / "wanted"
    script = (
        "import os, sys; from pathlib import Path\n"
        f"os.environ['BENTOML_HOME'] = {str(elsewhere)!r}\n"
        "from bentoml._internal.configuration.containers import BentoMLContainer\n"
        "BentoMLContainer.bentoml_home.get()\n"
        "from comfort_assets.defs.serving.assets import run_build\n"
        f"print(*run_build(Path({str(source)!r}), 'comfort_forecast', {version!r}, "
        f"Path({str(wanted)!r})), sep='\\n')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    tag, path = done.stdout.strip().splitlines()[-2:]
    assert tag == f"comfort_forecast:{version}"
    assert Path(path).is_relative_to(wanted / "bentos") and (Path(path) / "bento.yaml").exists()
    assert not list((elsewhere / "bentos").glob("comfort_forecast/*"))


def test_client_error_lines_are_budgeted_and_the_held_back_ones_counted():
    now = [0.0]
    budget = ClientErrorBudget(per_minute=3, clock=lambda: now[0])

    def line(message: str, client_error: bool = True) -> logging.LogRecord:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, message, None, None)
        if client_error:
            record.client_error = True
        return record

    passed = [budget.filter(line(f"rejected /predict: 400 #{i}")) for i in range(5)]
    assert passed == [True, True, True, False, False]
    assert budget.filter(line("champion reloaded", client_error=False))  # never budgeted
    now[0] = 59.0
    assert not budget.filter(line("rejected /predict: 400 #5"))
    now[0] = 60.0  # a new minute: the next line says how many were held back
    told = line("rejected /predict: 400 #6")
    assert budget.filter(told)
    assert told.getMessage() == (
        "rejected /predict: 400 #6 (and 3 client errors not logged before this one: "
        "at most 3 lines a minute)"
    )
    following = line("rejected /predict: 400 #7")
    assert budget.filter(following) and following.getMessage() == "rejected /predict: 400 #7"
