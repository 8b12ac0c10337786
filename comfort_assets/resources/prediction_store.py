"""Prediction store: every served forecast, its input features, and the feedback on it.

One SQLAlchemy table, a SQLite file by default and PostgreSQL by URL, shared by the Bento
service (writes) and Dagster's monitoring assets (reads). The service writes through a
`PredictionWriter`: rows from many requests go into one transaction (group commit), and a
request is only answered once the transaction holding its rows has committed, so an
acknowledged prediction is never lost and the commit cost is shared by the whole batch.
Inserts are one raw ``executemany`` (the service hands over features already serialised to
JSON) and survive a dropped database connection: the batch is retried on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

#: Columns of a prediction row as the service produces it (feedback columns start empty).
PREDICTION_COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "station",
    "valid_at",
    "horizon_h",
    "model_version",
    "features",
    "prediction",
)
#: A user's comfort rating: 1 = comfortable … 5 = very uncomfortable.
RATING_RANGE: tuple[int, int] = (1, 5)
#: Seconds to wait before each retry of a write whose connection failed.
RETRY_DELAYS_S: tuple[float, ...] = (0.05, 0.25, 1.0)
#: How long a SQLite connection waits for another writer's lock before "database is locked".
BUSY_TIMEOUT_MS = 30_000
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (psycopg2 is not a dependency)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def new_prediction_id() -> str:
    """A UUID version 7 as 32 hex digits: its first 48 bits are the Unix time in ms and
    the other 74 are random, so ids arrive in nearly increasing order and each commit
    appends to the primary-key index instead of writing a random leaf of it (a one-row
    SQLite commit took 27 µs against 42 µs with random ids, in a loop here). Ids made in
    the same millisecond are in random order among themselves (Python 3.14's
    ``uuid.uuid7`` also orders those, with a counter); the index does not need it."""
    random = int.from_bytes(os.urandom(10))
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76  # version
        | (random >> 64 & 0xFFF) << 64
        | 0b10 << 62  # variant
        | random & (1 << 62) - 1
    )
    return f"{value:032x}"


#: Engines by (URL, SQLite synchronous, busy timeout ms), most recently used last: one pool
#: each per process, at most MAX_ENGINES (a process that opens many stores, as the tests do,
#: would otherwise keep every file open).
_engines: OrderedDict[tuple[str, str, int], Engine] = OrderedDict()
_engines_lock = threading.Lock()
MAX_ENGINES = 16


def _engine(url: str, sqlite_synchronous: str, busy_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """One engine (and pool) per URL and process, and for SQLite per lock wait: a caller
    that must not block (the service's event loop) has its own pool whose connections wait
    ``busy_ms``, rather than setting ``PRAGMA busy_timeout`` before and after every commit
    (~20 µs a commit, measured inside the service)."""
    key = (url, sqlite_synchronous, busy_ms if _is_sqlite(url) else BUSY_TIMEOUT_MS)
    evicted = []
    with _engines_lock:
        if (engine := _engines.get(key)) is None:
            engine = _engines[key] = _create_engine(url, sqlite_synchronous, busy_ms)
            while len(_engines) > MAX_ENGINES:
                evicted.append(_engines.popitem(last=False)[1])
        else:
            _engines.move_to_end(key)
    for old in evicted:  # its pooled connections close; one in use closes when it returns
        old.dispose()
    return engine


def _create_engine(url: str, sqlite_synchronous: str, busy_ms: int) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": busy_ms / 1000}
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL: readers (monitoring, feedback) never block the writer
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        # no checkpoint inside a commit (one in ~200 stalled its requests 4 ms): the service's
        # PredictionWriter checkpoints in the background; the last connection to close does too
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    return engine


def _dispose_engines(url: str) -> None:
    with _engines_lock:
        engines = [engine for key, engine in _engines.items() if key[0] == url]
    for engine in engines:
        engine.dispose()


#: Stores whose last write failed after every retry (their retries are logged once).
_failing_urls: set[str] = set()

#: The file (device, inode) an SQLite URL's engine writes to, to notice it deleted or replaced.
_opened_files: dict[str, tuple[int, int]] = {}


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


@lru_cache(maxsize=16)
def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


@lru_cache(maxsize=16)
def _sqlite_file(url: str) -> str | None:
    """The database file of an SQLite URL (None for other databases and for memory)."""
    database = make_url(url).database if _is_sqlite(url) else None
    return None if not database or database == ":memory:" else database


@lru_cache(maxsize=16)
def _table(name: str) -> sa.Table:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"table must be a plain SQL identifier, got {name!r}")
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("station", sa.String(32), nullable=False),
        sa.Column("valid_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("horizon_h", sa.Integer, nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("prediction", sa.Float, nullable=False),
        sa.Column("actual_di", sa.Float),
        sa.Column("rating", sa.Integer),
        sa.Column("feedback_at", sa.DateTime(timezone=True)),
    )


#: How far ahead of this clock a caller's clock may run when it sends an hour's actual DI.
CLOCK_SKEW = timedelta(minutes=5)


class ActualTooEarly(ValueError):
    """An actual DI sent before the hour it describes."""

    def __init__(self, valid_at: datetime) -> None:
        super().__init__(
            f"actual_di: this forecast is valid at {valid_at:%Y-%m-%dT%H:%MZ}, "
            "which has not come yet; send the observed DI after that hour (nothing of this "
            "request was stored: a rating alone is welcome now)"
        )
        self.valid_at = valid_at


class PredictionStore(dg.ConfigurableResource):
    """SQLAlchemy URL (``sqlite:///path`` or ``postgresql://…``) and table name."""

    url: str = "sqlite:///.comfort/predictions.db"
    table: str = "predictions"
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """SQLite in WAL mode: NORMAL keeps every commit through a crash of the service (not of
    the machine); FULL also through power loss, at one fsync per commit (4–5 ms measured
    here, against 0.05 ms). PostgreSQL, the production store, always commits durably."""

    @property
    def engine(self) -> Engine:
        return _engine(normalise_url(self.url), self.sqlite_synchronous)

    def _engine_waiting(self, busy_ms: int) -> Engine:
        """The engine whose SQLite connections wait at most ``busy_ms`` for a lock."""
        return _engine(normalise_url(self.url), self.sqlite_synchronous, int(busy_ms))

    @property
    def schema(self) -> sa.Table:
        return _table(self.table)

    def create(self) -> None:
        """Create the table if it is missing (idempotent, safe from several processes)."""
        self.schema.metadata.create_all(self.engine, checkfirst=True)
        path = _sqlite_file(normalise_url(self.url))
        if path is not None and (identity := _file_identity(path)) is not None:
            _opened_files[path] = identity

    def _reopen_if_replaced(self) -> None:
        """An SQLite file deleted or replaced under the open engine: its pooled connections
        would go on committing to the unlinked file, which nobody reads again (every answer
        200, every row lost). Reopen the path, and make the table there."""
        path = _sqlite_file(normalise_url(self.url))
        if path is None or _opened_files.get(path) in (None, _file_identity(path)):
            return
        log.error("prediction store %s was deleted or replaced: reopening it", path)
        _dispose_engines(normalise_url(self.url))
        self.create()

    def ping(self, write: bool = False) -> None:
        """Raise if the database cannot be reached or the table cannot be created; with
        ``write``, also if it refuses writes (a read-only file or database), found with a
        write that changes no row and is rolled back."""
        self.create()
        table = self.schema
        with self.engine.connect() as connection:
            connection.execute(sa.select(sa.func.count()).select_from(table).limit(0))
            if write:
                connection.execute(
                    sa.update(table).where(table.c.id.is_(None)).values(id=table.c.id)
                )
                connection.rollback()

    @property
    def is_sqlite(self) -> bool:
        """A local file: a commit is a write into the page cache, not a network round trip.
        Read from the URL: it holds even when the database cannot be opened."""
        return _is_sqlite(normalise_url(self.url))

    def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database file (a no-op elsewhere). PASSIVE:
        it never waits for or blocks a writer, so commits go on meanwhile."""
        if self.is_sqlite:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _insert_sql(self, skip_existing: bool) -> str:
        placeholder = "?" if self.is_sqlite else "%s"
        sql = (
            f"INSERT INTO {self.table} ({', '.join(PREDICTION_COLUMNS)}) "
            f"VALUES ({', '.join([placeholder] * len(PREDICTION_COLUMNS))})"
        )
        return sql + " ON CONFLICT (id) DO NOTHING" if skip_existing else sql

    def _parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Rows as DB-API tuples: features as JSON text (pre-serialised by the service or
        serialised here), times as the dialect stores them."""

        def as_text(moment: datetime) -> str:
            """How SQLAlchemy's SQLite dialect stores it: UTC, "YYYY-MM-DD HH:MM:SS.ffffff"."""
            return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        when = as_text if self.is_sqlite else _unchanged

        return [
            (
                row["id"],
                when(row["created_at"]),
                row["station"],
                when(row["valid_at"]),
                row["horizon_h"],
                row["model_version"],
                f if isinstance(f := row["features"], str) else json.dumps(f),
                row["prediction"],
            )
            for row in rows
        ]

    def insert(self, rows: Sequence[Mapping[str, Any]], busy_ms: int | None = None) -> None:
        """All rows in one transaction (one raw executemany). A failed connection (dropped,
        restarted database, locked file) is retried on a fresh one; the retries skip ids
        already present, because the lost attempt may have committed before it failed.
        With ``busy_ms`` (SQLite): one attempt that waits at most that long for another
        writer's lock and is never retried, for a caller that must not block."""
        if not rows:
            return
        parameters = self._parameters(rows)
        if busy_ms is not None:
            self._insert_once(self._insert_sql(False), parameters, busy_ms)
            return
        url = normalise_url(self.url)
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            if delay:  # even sleep(0) gives the core away: 0.1–0.2 ms per commit under load
                time.sleep(delay)
            try:
                self._insert_once(self._insert_sql(attempt > 0), parameters)
                _failing_urls.discard(url)
                return
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
                if attempt == len(RETRY_DELAYS_S):
                    _failing_urls.add(url)
                    raise
                # a store that stays down: its retries are news once, not on every commit
                log.log(
                    logging.DEBUG if url in _failing_urls else logging.WARNING,
                    "prediction store write failed (%s); retry %d of %d",
                    str(error.orig).splitlines()[0][:200],
                    attempt + 1,
                    len(RETRY_DELAYS_S),
                )

    def _insert_once(
        self, sql: str, parameters: list[tuple[Any, ...]], busy_ms: int | None = None
    ) -> None:
        """One transaction on a pooled DB-API connection: half the cost of a one-row commit
        through SQLAlchemy's Connection (0.10 against 0.21 ms), which the service pays on
        every lone request. A connection that failed is discarded, not pooled; its error is
        raised as SQLAlchemy's (`IntegrityError`, `OperationalError`, …), whatever the driver."""
        engine = self.engine if busy_ms is None else self._engine_waiting(busy_ms)
        dbapi_error = engine.dialect.loaded_dbapi.Error
        self._reopen_if_replaced()
        try:  # a refused connection comes unwrapped from here, and must be retried too
            connection = engine.raw_connection()
        except dbapi_error as error:
            raise sa.exc.DBAPIError.instance(sql, None, error, dbapi_error) from error
        cursor = None
        try:
            cursor = connection.cursor()
            cursor.executemany(sql, parameters)
            connection.commit()
        except BaseException as error:
            # roll back and close the cursor first: a SQLite connection closed with a live
            # statement lingers, and keeps its write lock, for as long as the error is held
            with contextlib.suppress(Exception):
                if cursor is not None:
                    cursor.close()
                connection.rollback()
            connection.invalidate()
            if isinstance(error, dbapi_error):
                raise sa.exc.DBAPIError.instance(sql, None, error, dbapi_error) from error
            raise
        finally:
            connection.close()

    def record_feedback(
        self, prediction_id: str, actual_di: float | None = None, rating: int | None = None
    ) -> dict[str, Any] | None:
        """Set the actual DI and/or the rating; None for an unknown id. Idempotent: the same
        feedback twice leaves the same row, `feedback_at` included (a retried call changes
        nothing); a different value replaces the earlier one and moves `feedback_at`. An
        actual DI for an hour still to come is refused (`ActualTooEarly`): monitoring would
        score the forecast against it."""
        if actual_di is None and rating is None:
            raise ValueError("feedback needs actual_di and/or rating")
        values: dict[str, Any] = {}
        if actual_di is not None:
            values["actual_di"] = float(actual_di)
        if rating is not None:
            values["rating"] = int(rating)
        table = self.schema
        changes = sa.or_(*(table.c[name].is_distinct_from(value) for name, value in values.items()))
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            if actual_di is not None:
                valid_at = connection.execute(
                    sa.select(table.c.valid_at).where(table.c.id == prediction_id)
                ).scalar()
                if valid_at is not None and _as_utc(valid_at) > now + CLOCK_SKEW:
                    raise ActualTooEarly(_as_utc(valid_at))
            connection.execute(
                table.update()
                .where(table.c.id == prediction_id, changes)
                .values(**values, feedback_at=now)
            )
            row = connection.execute(sa.select(table).where(table.c.id == prediction_id)).first()
        return None if row is None else _in_utc(row._mapping)

    def get(self, prediction_id: str) -> dict[str, Any] | None:
        table = self.schema
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(table).where(table.c.id == prediction_id)).first()
        return _in_utc(row._mapping) if row else None

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(self.schema)).scalar()
            )

    def newest(self, since: datetime, limit: int) -> tuple[pd.DataFrame, int]:
        """The newest ``limit`` predictions created at or after ``since``, oldest first and
        without their features, and how many were created since then in all: a page shows
        a screenful, it does not read the store (82,000 rows took 15 s)."""
        table = self.schema
        columns = [column for column in table.c if column.name != "features"]
        recent = table.c.created_at >= since
        newest_first = sa.select(*columns).where(recent).order_by(table.c.created_at.desc())
        with self.engine.connect() as connection:
            total = connection.execute(
                sa.select(sa.func.count()).select_from(table).where(recent)
            ).scalar()
            rows = connection.execute(newest_first.limit(limit)).mappings().all()
        frame = pd.DataFrame(rows[::-1], columns=[column.name for column in columns])
        for column in _TIMES:
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame, int(total or 0)

    def read(self, since: datetime | None = None) -> pd.DataFrame:
        """Predictions (optionally created at or after ``since``) for monitoring, oldest first."""
        table = self.schema
        query = sa.select(table).order_by(table.c.created_at)
        if since is not None:
            query = query.where(table.c.created_at >= since)
        with self.engine.connect() as connection:
            frame = pd.DataFrame(connection.execute(query).mappings().all(), columns=table.c.keys())
        for column in _TIMES:
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame


def _unchanged(moment: datetime) -> datetime:
    return moment


_STOP = object()
_TIMES = ("created_at", "valid_at", "feedback_at")


def _as_utc(moment: datetime) -> datetime:
    """SQLite hands times back without a zone (they were stored in UTC); PostgreSQL in the
    session's zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _in_utc(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with its times in UTC."""
    out = dict(row)
    for name in _TIMES:
        moment = out.get(name)
        if isinstance(moment, datetime):
            out[name] = _as_utc(moment)
    return out


class PredictionWriter:
    """Group commit on a background thread.

    `submit` queues the rows of one batch and returns a future that completes when they
    are committed. The thread takes everything queued (up to ``max_rows``) into one
    transaction, so under load many batches share one commit and the event loop never
    waits on the database for more than its own batch. `commit_here` commits in the
    caller's thread instead, for a caller that would only wait for the writer. A second
    thread checkpoints SQLite's log every ``checkpoint_seconds``, off the commits' path.
    """

    def __init__(
        self, store: PredictionStore, max_rows: int = 1024, checkpoint_seconds: float = 0.5
    ) -> None:
        self.store = store
        self.max_rows = max_rows
        self.checkpoint_seconds = checkpoint_seconds
        self._closing = threading.Event()
        self._checkpoint_problem: str | None = None
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name="prediction-checkpoint", daemon=True
        )
        self._checkpointer.start()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._created = False
        #: The error of the last failed commit and when (monotonic s); None once one succeeds.
        self.last_error: BaseException | None = None
        self.failed_at = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: Sequence[Mapping[str, Any]]) -> Future[None]:
        if not self._thread.is_alive():
            raise RuntimeError("the prediction writer is closed")
        future: Future[None] = Future()
        self._queue.put((rows, future))
        return future

    async def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Resolve once ``rows`` are committed; raise if the commit failed."""
        await asyncio.wrap_future(self.submit(rows))

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the threads."""
        self._closing.set()
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        self._checkpointer.join(timeout)

    def _checkpoints(self) -> None:
        while not self._closing.wait(self.checkpoint_seconds):
            try:
                self.store.checkpoint()
                problem = None
            except Exception as error:  # the commits report an unusable store; log once
                problem = str(error).splitlines()[0][:200]
            if problem is not None and problem != self._checkpoint_problem:
                log.warning("prediction store checkpoint failed: %s", problem)
            self._checkpoint_problem = problem

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                return
            pending = [item]
            size = len(item[0])
            while size < self.max_rows:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                pending.append(item)
                size += len(item[0])
            self._commit(pending)

    def commit_here(
        self, rows: Sequence[Mapping[str, Any]], busy_ms: int | None = None
    ) -> Future[None]:
        """Commit ``rows`` in the calling thread (a caller with nothing else to do saves the
        handoff to the writer thread); the returned future is already done. With
        ``busy_ms`` (the event loop, which must never sleep on a lock or a retry): one
        attempt waiting at most that long, and if it fails the writer thread takes the rows
        and its retries, and the returned future completes when it has committed them."""
        if busy_ms is not None:
            if not self._created:  # the writer makes the table first
                return self.submit(rows)
            try:
                self.store.insert(rows, busy_ms=busy_ms)
            except Exception:  # locked or broken: the writer waits and retries, elsewhere
                return self.submit(rows)
            self.last_error = None
            done: Future[None] = Future()
            done.set_result(None)
            return done
        future: Future[None] = Future()
        self._commit([(rows, future)])
        return future

    def _commit(self, pending: list[tuple[Sequence[Mapping[str, Any]], Future[None]]]) -> None:
        """One transaction for the rows still wanted: a future cancelled before its commit
        (its caller timed out and was never answered) drops its rows, and one being
        committed can no longer be cancelled, so every future is settled exactly once."""
        pending = [(rows, f) for rows, f in pending if f.set_running_or_notify_cancel()]
        if not pending:
            return
        try:
            if not self._created:  # the database may have been down when we started
                self.store.create()
                self._created = True
            self.store.insert([row for rows, _ in pending for row in rows])
        except Exception as error:  # every waiting request must hear about it
            self.last_error, self.failed_at = error, time.monotonic()
            for _, future in pending:
                future.set_exception(error)
        else:
            self.last_error = None
            for _, future in pending:
                future.set_result(None)
