"""The prediction store on SQLite and on the real local PostgreSQL, and its group commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from comfort_assets.resources import prediction_store
from comfort_assets.resources.prediction_store import (
    BUSY_TIMEOUT_MS,
    CLOCK_SKEW,
    ActualTooEarly,
    PredictionStore,
    PredictionWriter,
    new_prediction_id,
    normalise_url,
)

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[PredictionStore]:
    if request.param == "sqlite":
        yield PredictionStore(url=f"sqlite:///{tmp_path / 'sub' / 'predictions.db'}")
        return
    if not _postgres_reachable():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 (CI starts it)")
    table = f"predictions_test_{uuid.uuid4().hex[:12]}"
    pg = PredictionStore(url=POSTGRES_URL, table=table)
    yield pg
    pg.schema.drop(pg.engine, checkfirst=True)


def row(i: int = 0, **overrides) -> dict:
    now = datetime.now(UTC)
    return {
        "id": uuid.uuid4().hex,
        "created_at": now,
        "station": "JFK",
        "valid_at": now + timedelta(hours=3),
        "horizon_h": 3,
        "model_version": "weather-predictor-001",
        "features": {"di_now": 70.0 + i, "wind_u": None},
        "prediction": 71.5 + i,
        **overrides,
    }


def test_insert_get_read_round_trip(store):
    store.create()
    rows = [row(i) for i in range(3)]
    store.insert(rows)
    assert store.count() == 3
    got = store.get(rows[1]["id"])
    assert got["prediction"] == 72.5 and got["features"] == {"di_now": 71.0, "wind_u": None}
    assert got["actual_di"] is None and got["rating"] is None
    frame = store.read()
    assert list(frame["id"]) == [r["id"] for r in rows]
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert store.get("missing") is None


def test_feedback_is_idempotent_and_unknown_ids_are_none(store):
    store.create()
    r = row(valid_at=datetime.now(UTC) - timedelta(hours=1))
    store.insert([r])
    first = store.record_feedback(r["id"], actual_di=73.0)
    second = store.record_feedback(r["id"], actual_di=73.0)
    assert second == first  # feedback_at too: a retried call changes nothing
    rated = store.record_feedback(r["id"], rating=2)
    assert rated["actual_di"] == 73.0 and rated["rating"] == 2
    assert rated["feedback_at"] > first["feedback_at"]
    corrected = store.record_feedback(r["id"], actual_di=72.5, rating=2)
    assert corrected["actual_di"] == 72.5 and corrected["feedback_at"] > rated["feedback_at"]
    assert store.record_feedback("missing", actual_di=70.0) is None
    with pytest.raises(ValueError, match="actual_di and/or rating"):
        store.record_feedback(r["id"])


def test_an_actual_for_an_hour_to_come_is_refused_and_a_rating_is_not(store):
    store.create()
    r = row()  # valid in three hours
    store.insert([r])
    with pytest.raises(ActualTooEarly, match=r"actual_di: .*valid at .*has not come yet"):
        store.record_feedback(r["id"], actual_di=73.0)
    assert store.get(r["id"])["actual_di"] is None
    assert store.record_feedback(r["id"], rating=3)["rating"] == 3
    soon = row(valid_at=datetime.now(UTC) + CLOCK_SKEW / 2)  # a caller's clock a bit ahead
    store.insert([soon])
    assert store.record_feedback(soon["id"], actual_di=73.0)["actual_di"] == 73.0


def test_group_commit_keeps_every_row_under_concurrency(store):
    writer = PredictionWriter(store)
    try:
        with ThreadPoolExecutor(16) as pool:
            futures = list(pool.map(lambda i: writer.submit([row(i), row(i)]), range(400)))
        for future in futures:
            future.result(timeout=30)
    finally:
        writer.close()
    assert store.count() == 800


def test_a_failed_commit_is_reported_to_every_waiting_request(store):
    writer = PredictionWriter(store)
    duplicate = row()
    try:
        asyncio.run(writer.write([duplicate]))
        with pytest.raises(IntegrityError):
            asyncio.run(writer.write([row(), dict(duplicate)]))
        asyncio.run(writer.write([row()]))  # the writer survives a failed batch
    finally:
        writer.close()
    assert store.count() == 2


def test_a_request_cancelled_before_its_commit_is_not_logged_and_the_writer_lives_on(tmp_path):
    store = PredictionStore(url=f"sqlite:///{tmp_path / 'predictions.db'}")
    writer = PredictionWriter(store)
    blocker = None
    try:
        writer.submit([row(0)]).result(timeout=10)  # the table exists
        blocker = sqlite3.connect(tmp_path / "predictions.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        committing = writer.submit([row(1)])  # taken by the writer, waiting for the lock
        time.sleep(0.2)
        queued = writer.submit([row(2)])
        assert queued.cancel() and not committing.cancel()  # a commit under way stays
        blocker.execute("ROLLBACK")
        committing.result(timeout=10)
        writer.submit([row(3)]).result(timeout=10)
    finally:
        if blocker is not None:
            blocker.close()
        writer.close()
    assert sorted(store.read()["prediction"]) == [71.5, 72.5, 74.5]


def test_a_sqlite_file_deleted_under_the_store_is_made_again_not_written_unseen(tmp_path):
    """Open connections would go on committing to the deleted file: every answer 200,
    every row gone."""
    path = tmp_path / "predictions.db"
    store = PredictionStore(url=f"sqlite:///{path}")
    writer = PredictionWriter(store)
    try:
        writer.submit([row(0)]).result(timeout=10)
        store.insert([row(9)], busy_ms=5)  # the event loop's own pool holds the old file too
        for file in tmp_path.glob("predictions.db*"):
            file.unlink()
        writer.submit([row(1)]).result(timeout=10)
        store.insert([row(2)], busy_ms=5)
    finally:
        writer.close()
    assert path.exists()
    assert sorted(store.read()["prediction"]) == [72.5, 73.5]


def test_the_event_loop_waits_briefly_for_a_lock_and_hands_its_rows_to_the_writer(tmp_path):
    """The inline commit must never stall the event loop on another writer's lock; the
    writer thread waits instead, and the caller is answered once it has committed."""
    path = tmp_path / "p.db"
    store = PredictionStore(url=f"sqlite:///{path}")
    writer = PredictionWriter(store)
    try:
        writer.submit([row(0)]).result(timeout=10)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        committed = writer.commit_here([row(1)], busy_ms=5)
        assert time.monotonic() - started < 1.0 and not committed.done()
        blocker.execute("COMMIT")
        blocker.close()
        committed.result(timeout=10)
        with store.engine.connect() as connection:  # everyone else still waits 30 s
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS
    finally:
        writer.close()
    assert sorted(store.read()["prediction"]) == [71.5, 72.5]


def test_prediction_ids_are_time_ordered_uuids():
    """UUID version 7: unguessable (74 random bits), and increasing with time, so the
    primary-key index grows at its end."""
    first = new_prediction_id()
    time.sleep(0.002)
    ids = [new_prediction_id() for _ in range(1000)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids) and len(set(ids)) == 1000
    parsed = uuid.UUID(first)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert first < min(ids)
    assert abs(int(first[:12], 16) / 1000 - time.time()) < 5  # its first 48 bits: Unix ms


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = PredictionStore(url=f"sqlite:///{tmp_path / 'p.db'}")
    store.create()
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"


def _rows_in_database_file(path) -> int:
    """Rows a reader sees in the database file alone, without the write-ahead log."""
    copy = path.with_name("copy.db")
    copy.write_bytes(path.read_bytes())
    with sqlite3.connect(copy) as connection:
        return connection.execute("SELECT count(*) FROM predictions").fetchone()[0]


def test_sqlite_commits_leave_checkpoints_to_the_background(tmp_path):
    path = tmp_path / "p.db"
    store = PredictionStore(url=f"sqlite:///{path}")
    store.create()
    store.checkpoint()  # the table itself
    for _ in range(300):  # well past SQLite's default of a checkpoint per 1000 log pages
        store.insert([row()])
    assert _rows_in_database_file(path) == 0  # committed, in the log only
    store.checkpoint()
    assert _rows_in_database_file(path) == 300


def test_the_writer_checkpoints_by_itself(tmp_path):
    path = tmp_path / "p.db"
    store = PredictionStore(url=f"sqlite:///{path}")
    store.create()
    store.checkpoint()
    writer = PredictionWriter(store, checkpoint_seconds=0.01)
    try:
        asyncio.run(writer.write([row() for _ in range(5)]))
        deadline = time.monotonic() + 30
        while _rows_in_database_file(path) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        writer.close()
    assert _rows_in_database_file(path) == 5


def test_urls_and_table_names():
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ValueError, match="identifier"):
        _ = PredictionStore(url="sqlite://", table="x; drop table y").schema


def test_features_may_arrive_serialised_once(store):
    store.create()
    r = row(features='{"di_now": 70.5, "wind_u": null}')
    store.insert([r])
    assert store.get(r["id"])["features"] == {"di_now": 70.5, "wind_u": None}


def test_a_dropped_postgresql_connection_is_retried(monkeypatch):
    """The server ends the writer's connection just before its INSERT: the batch is retried
    on a new connection and every row is committed once."""
    if not _postgres_reachable():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 (CI starts it)")
    pg = PredictionStore(url=POSTGRES_URL, table=f"predictions_test_{uuid.uuid4().hex[:12]}")
    pg.create()
    killed: list[int] = []
    checkout = pg.engine.raw_connection

    def dropped_once():  # the connection the INSERT is about to use dies
        connection = checkout()
        if not killed:
            killed.append(connection.driver_connection.info.backend_pid)
            with pg.engine.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": killed[0]})
        return connection

    monkeypatch.setattr(pg.engine, "raw_connection", dropped_once)
    try:
        rows = [row(i) for i in range(5)]
        pg.insert(rows)
        assert killed and pg.count() == 5
    finally:
        monkeypatch.undo()
        pg.schema.drop(pg.engine, checkfirst=True)


def _forward_later(port: int, delay_s: float) -> threading.Thread:
    """After ``delay_s``, forward 127.0.0.1:``port`` to the local PostgreSQL: a database
    that refuses connections while it restarts, then answers."""

    def pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def serve() -> None:
        time.sleep(delay_s)
        listener = socket.create_server(("127.0.0.1", port))
        listener.settimeout(10)
        with contextlib.suppress(TimeoutError):
            while True:
                client, _ = listener.accept()
                server = socket.create_connection(("127.0.0.1", 5432))
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_database_restarting_during_a_write_is_retried_until_it_answers():
    """Connection refused for 0.15 s: the write waits through its retries instead of
    failing its requests (a refused connection was not retried at all)."""
    if not _postgres_reachable():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 (CI starts it)")
    with socket.socket() as probe:  # a free port, closed again: refused until forwarded
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    table = f"predictions_test_{uuid.uuid4().hex[:12]}"
    PredictionStore(url=POSTGRES_URL, table=table).create()
    restarting = PredictionStore(url=f"postgresql://postgres@127.0.0.1:{port}/test", table=table)
    _forward_later(port, delay_s=0.15)
    try:
        restarting.insert([row(i) for i in range(3)])
        assert restarting.count() == 3
    finally:
        restarting.engine.dispose()
        pg = PredictionStore(url=POSTGRES_URL, table=table)
        pg.schema.drop(pg.engine, checkfirst=True)


def test_a_store_that_stays_down_warns_of_its_retries_once(monkeypatch, caplog):
    """Three warnings on every commit while the database is down filled the log; the
    first failed write warns, the next ones retry quietly (at DEBUG)."""
    monkeypatch.setattr(prediction_store, "RETRY_DELAYS_S", (0.001, 0.001, 0.001))
    monkeypatch.setattr(prediction_store, "_failing_urls", set())  # whatever ran before
    down = PredictionStore(url="postgresql://postgres@127.0.0.1:1/test")
    caplog.set_level(logging.DEBUG, logger=prediction_store.__name__)
    for attempt in range(3):
        with pytest.raises(sa.exc.OperationalError):
            down.insert([row(attempt)])
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 9
    assert [r.levelno for r in retries] == [logging.WARNING] * 3 + [logging.DEBUG] * 6


def test_an_unreachable_store_fails_ping_and_the_writer_reports_it():
    down = PredictionStore(url="postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(sa.exc.OperationalError):
        down.ping()
    writer = PredictionWriter(down)  # starting is fine: the database may come later
    try:
        with pytest.raises(sa.exc.OperationalError):
            asyncio.run(writer.write([row()]))
        assert writer.last_error is not None
    finally:
        writer.close()


def test_the_store_url_is_honoured_in_every_environment(monkeypatch, tmp_path):
    from comfort_assets.deployment import prediction_store

    monkeypatch.setenv("COMFORT_HOME", str(tmp_path))
    monkeypatch.setenv("COMFORT_ENV", "local")
    monkeypatch.delenv("COMFORT_PREDICTION_DB_URL", raising=False)
    assert prediction_store(resolve_env=True).url == f"sqlite:///{tmp_path / 'predictions.db'}"
    monkeypatch.setenv("COMFORT_PREDICTION_DB_URL", POSTGRES_URL)
    assert prediction_store(resolve_env=True).url == POSTGRES_URL
    monkeypatch.setenv("COMFORT_ENV", "production")
    assert prediction_store(resolve_env=True).url == POSTGRES_URL
    monkeypatch.delenv("COMFORT_PREDICTION_DB_URL")
    with pytest.raises(ValueError, match="COMFORT_PREDICTION_DB_URL"):
        prediction_store(resolve_env=True)


def test_a_process_that_opens_many_stores_keeps_a_bounded_number_open(tmp_path):
    """One engine (a pool of open files) per store URL and lock wait: without a bound, a
    process opening store after store (the tests) kept every file open."""
    opened = len(os.listdir("/proc/self/fd"))
    for i in range(3 * prediction_store.MAX_ENGINES):
        store = PredictionStore(url=f"sqlite:///{tmp_path / f'p{i}.db'}")
        store.create()
        store.insert([row(i)])
        store.insert([row(i)], busy_ms=5)
        assert store.count() == 2
    assert len(prediction_store._engines) <= prediction_store.MAX_ENGINES
    # each kept engine holds at most a connection and its WAL files open (3 descriptors)
    assert len(os.listdir("/proc/self/fd")) - opened <= 3 * prediction_store.MAX_ENGINES
