"""Asset IO through the object store: DataFrames as Parquet, everything else as JSON or pickle.

A daily-partitioned asset run as a single-run backfill returns one DataFrame for the whole
range; it is split into one object per day by the column named in the asset's
``partition_expr`` metadata (the convention of Dagster's database IO managers).
"""

import io
import json
import pickle
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from comfort_assets.resources.object_store import ObjectStore


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Parquet bytes; a text column with stray non-text values (a broken source) is kept as
    text rather than lost, so the data that failed its check can still be inspected."""
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        mixed = frame.select_dtypes(include="object").columns
        buffer = io.BytesIO()
        frame.astype({column: "string" for column in mixed}).to_parquet(buffer, index=False)
    return buffer.getvalue()


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
        windows = context.asset_partitions_def.time_window_for_partition_key
        times = pd.to_datetime(obj[column], utc=True)
        for key in context.asset_partition_keys:
            window = windows(key)
            inside = (times >= window.start) & (times < window.end)
            self._write(context.asset_key, key, obj.loc[inside].reset_index(drop=True))

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
                self._read(context.asset_key, key, required=False)
                for key in context.asset_partition_keys
            ]
            frames = [p for p in parts if p is not None]
            if not frames:
                raise FileNotFoundError(
                    f"no materialized partition of {context.asset_key.to_user_string()}"
                )
            if len(context.asset_partition_keys) == 1:
                return frames[0]
            return pd.concat(frames, ignore_index=True)
        return self._read(context.asset_key, None, required=True)

    def _read(self, asset_key: dg.AssetKey, partition: str | None, required: bool) -> Any:
        for suffix in ("parquet", "json", "pickle"):
            key = self._key(asset_key, partition, suffix)
            if not self.store.exists(key):
                continue
            data = self.store.get_bytes(key)
            if suffix == "parquet":
                return pd.read_parquet(io.BytesIO(data))
            if suffix == "json":
                return json.loads(data)
            return pickle.loads(data)
        if required:
            raise FileNotFoundError(f"{asset_key.to_user_string()} has not been materialized")
        return None
