"""The local Dagster instance's event log: Dagster's own SQLite storage, with its
connections kept open and commits not waiting for the disk.

A year's `comfort run` writes ~1,500 events, one per day and daily asset. Dagster's
`SqliteEventLogStorage` opens a new engine and connection for every event, and closing the
last connection to a WAL database checkpoints it to disk; each event also waits for an
fsync of the log, and the lookup of an optional table opens yet another engine. Together
that was ~10 ms an event (docs/pitfalls.md). Here each shard keeps
one open connection, and commits use ``synchronous=NORMAL``: the write-ahead log is synced at
checkpoints, not at every commit. A crash of the process loses nothing; a power cut can
lose the last events of the local instance. `deploy/dagster.yaml` (PostgreSQL) is not
affected.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData

#: the shards whose connections stay open: the index and the latest runs
OPEN_SHARDS = 8


def _quick_commits(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class LocalEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one open connection per shard and ``synchronous=NORMAL``;
    same files, same schema, so `dagster dev` and the stock storage read them as before."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        self._tables_found: set[str] = set()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> LocalEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> db.engine.Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            poolclass=db.pool.QueuePool,
            pool_size=1,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        db.event.listen(engine, "connect", _quick_commits)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > OPEN_SHARDS:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.engine.Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def has_table(self, table_name: str) -> bool:
        """A table found once is not looked up again: the stock storage opens a new engine
        for this lookup at every asset event, and tables are not dropped under a running
        instance (a migration only adds them)."""
        if table_name not in self._tables_found and super().has_table(table_name):
            self._tables_found.add(table_name)
        return table_name in self._tables_found

    def dispose(self) -> None:
        with self._db_lock:
            while self._engines:
                _, engine = self._engines.popitem()
                engine.dispose()
        super().dispose()
