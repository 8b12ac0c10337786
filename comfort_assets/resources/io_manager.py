"""Asset IO through the object store: DataFrames as Parquet, everything else as JSON or pickle.

A daily-partitioned asset run as a single-run backfill returns one DataFrame for the whole
range; it is split into one object per day by the column named in the asset's
``partition_expr`` metadata (the convention of Dagster's database IO managers).
"""

import io
import json
import pickle
from collections.abc import Mapping
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from comfort_assets.domain.cleaning import FETCHED_FOR
from comfort_assets.resources.object_store import ObjectStore


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table; a text column with stray non-text values (a broken
    source) is kept as text rather than lost, so the data that failed its check can still be
    inspected."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        mixed = frame.select_dtypes(include="object").columns
        return pa.Table.from_pandas(
            frame.astype({column: "string" for column in mixed}), preserve_index=False
        )


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    return parquet_bytes(to_arrow(frame))


def from_parquet_bytes(parts: list[bytes]) -> pd.DataFrame:
    """One frame from several Parquet objects, converted to pandas once: a year of daily
    partitions reads 3× faster than a `pd.read_parquet` per day and a `pd.concat`."""
    tables = [pq.ParquetFile(io.BytesIO(data)).read(use_pandas_metadata=True) for data in parts]
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # days whose types cannot be unified (a broken source) concatenate as pandas does
        frames = [t.to_pandas() for t in tables]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return table.to_pandas()


class ObjectStoreIOManager(dg.ConfigurableIOManager):
    store: dg.ResourceDependency[ObjectStore]
    prefix: str = "assets"

    def _key(self, asset_key: dg.AssetKey, partition: str | None, suffix: str) -> str:
        name = "/".join(asset_key.path)
        return f"{self.prefix}/{name}/{partition or '__all__'}.{suffix}"

    def stored_partitions(self, asset_key: dg.AssetKey) -> list[str]:
        """The partition keys stored for an asset, sorted: what a reader outside a run (the
        self-test) can load."""
        prefix = f"{self.prefix}/{'/'.join(asset_key.path)}/"
        stems = {key[len(prefix) :].rpartition(".")[0] for key in self.store.list_keys(prefix)}
        return sorted(stems - {"__all__"})

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            self._handle_partition_range(context, obj)
            return
        partition = context.asset_partition_key if context.has_asset_partitions else None
        self._write(context.asset_key, partition, obj)

    def _handle_partition_range(self, context: dg.OutputContext, obj: Any) -> None:
        column = (context.definition_metadata or {}).get("partition_expr")
        if not isinstance(obj, pd.DataFrame) or not column:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: a multi-partition output must be a "
                "DataFrame with a 'partition_expr' metadata column to split it by"
            )
        window = context.asset_partitions_def.time_window_for_partition_key
        keys = context.asset_partition_keys
        self.write_partitions(context.asset_key, obj, column, {k: window(k) for k in keys})

    def write_partitions(
        self,
        asset_key: dg.AssetKey,
        frame: pd.DataFrame,
        column: str,
        windows: Mapping[str, dg.TimeWindow],
    ) -> None:
        """One Parquet object per partition key with the rows whose ``column`` falls in its
        window (an empty one too); a row without a time (an unreadable one) goes with the
        window holding its ``fetched_for`` (the day raw weather fetched it for), else with
        the first key: never nowhere, and once. The frame is converted to Arrow once and
        sliced per key: 2× faster than a pandas `to_parquet` per day."""
        frame = frame.reset_index(drop=True)  # rows are picked by label below
        times = pd.to_datetime(frame[column], utc=True)
        undated = times.isna()
        if FETCHED_FOR in frame and undated.any():
            fetched = pd.to_datetime(frame.loc[undated, FETCHED_FOR], utc=True)
            held = pd.Series(False, index=fetched.index)
            for window in windows.values():
                held |= (fetched >= window.start) & (fetched < window.end)
            times = times.copy()
            times[held[held].index] = fetched[held]
            undated = times.isna()
        table = to_arrow(frame)
        first = min(windows, key=lambda key: windows[key].start, default=None)
        for key, window in windows.items():
            taken = (times >= window.start) & (times < window.end)
            if key == first:
                taken |= undated
            inside = np.flatnonzero(taken)
            data = parquet_bytes(table.take(inside))
            self.store.put_bytes(self._key(asset_key, key, "parquet"), data)

    def _write(self, asset_key: dg.AssetKey, partition: str | None, obj: Any) -> None:
        if isinstance(obj, pd.DataFrame):
            self.store.put_bytes(self._key(asset_key, partition, "parquet"), to_parquet_bytes(obj))
            return
        try:
            data, suffix = json.dumps(obj, indent=1).encode(), "json"
        except TypeError:
            # intermediate Python objects (fitted models between assets); the model
            # registry, not this IO manager, keeps models in a safe format
            data, suffix = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), "pickle"
        self.store.put_bytes(self._key(asset_key, partition, suffix), data)

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_partitions:
            parts = [
                self._read_bytes(context.asset_key, key, required=False)
                for key in context.asset_partition_keys
            ]
            found = [p for p in parts if p is not None]
            if not found:
                raise FileNotFoundError(
                    f"no materialized partition of {context.asset_key.to_user_string()}"
                )
            if all(suffix == "parquet" for suffix, _ in found):
                return from_parquet_bytes([data for _, data in found])
            objects = [self._decode(suffix, data) for suffix, data in found]
            if len(context.asset_partition_keys) == 1:
                return objects[0]
            return pd.concat(objects, ignore_index=True)
        found = self._read_bytes(context.asset_key, None, required=True)
        return self._decode(*found)

    def _read_bytes(
        self, asset_key: dg.AssetKey, partition: str | None, required: bool
    ) -> tuple[str, bytes] | None:
        for suffix in ("parquet", "json", "pickle"):
            key = self._key(asset_key, partition, suffix)
            if self.store.exists(key):
                return suffix, self.store.get_bytes(key)
        if required:
            raise FileNotFoundError(
                f"{asset_key.to_user_string()} has not been materialized: materialize it first "
                "(`comfort run` builds the whole graph)"
            )
        return None

    @staticmethod
    def _decode(suffix: str, data: bytes) -> Any:
        if suffix == "parquet":
            return from_parquet_bytes([data])
        if suffix == "json":
            return json.loads(data)
        return pickle.loads(data)
