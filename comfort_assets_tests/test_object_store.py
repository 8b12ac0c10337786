"""The object store and the asset IO manager, on a local directory and on a real
S3-compatible server (moto in server mode on 127.0.0.1)."""

import dagster as dg
import pandas as pd
import pytest
from dagster_aws.s3 import S3Resource

from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.object_store import (
    LocalObjectStore,
    ObjectExistsError,
    ObjectStore,
    S3ObjectStore,
)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(root=str(tmp_path / "store"))
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return S3ObjectStore(s3=S3Resource(endpoint_url=endpoint), bucket=bucket, prefix="test")


def test_round_trip_list_and_exists(store):
    store.put_bytes("a/b/one.bin", b"1")
    store.put_bytes("a/two.bin", b"22")
    store.put_bytes("c/three.bin", b"333")
    assert store.get_bytes("a/b/one.bin") == b"1"
    assert store.list_keys("a/") == ["a/b/one.bin", "a/two.bin"]
    assert store.exists("c/three.bin") and not store.exists("c/none.bin")
    store.put_bytes("a/two.bin", b"replaced")
    assert store.get_bytes("a/two.bin") == b"replaced"
    with pytest.raises(FileNotFoundError, match=r"none\.bin"):
        store.get_bytes("c/none.bin")


def test_stamps_change_when_an_object_is_rewritten(store):
    store.put_bytes("w/one.parquet", b"1")
    store.put_bytes("w/two.parquet", b"2")
    store.put_bytes("other/three.bin", b"3")
    first = store.stamps("w/")
    assert set(first) == {"w/one.parquet", "w/two.parquet"}
    assert store.stamps("w/") == first  # nothing written: nothing changed
    store.put_bytes("w/two.parquet", b"2 and more")
    store.put_bytes("w/four.parquet", b"4")
    second = store.stamps("w/")
    assert second["w/one.parquet"] == first["w/one.parquet"]
    assert second["w/two.parquet"] != first["w/two.parquet"]
    assert set(second) == {"w/one.parquet", "w/two.parquet", "w/four.parquet"}
    assert store.stamps("none/") == {}


def test_a_local_listing_skips_half_written_files_and_matches_a_partial_name(tmp_path):
    store = LocalObjectStore(root=str(tmp_path / "store"))
    store.put_bytes("w/2013-07-01.parquet", b"1")
    store.put_bytes("w/2013-08-01.parquet", b"2")
    store.put_bytes("w/deeper/2013-07-02.parquet", b"3")
    (tmp_path / "store" / "w" / ".tmp-abc").write_bytes(b"half")  # a write in progress
    assert store.list_keys("w/") == [
        "w/2013-07-01.parquet",
        "w/2013-08-01.parquet",
        "w/deeper/2013-07-02.parquet",
    ]
    assert store.list_keys("w/2013-07") == ["w/2013-07-01.parquet"]
    assert set(store.stamps("w/2013-0")) == {"w/2013-07-01.parquet", "w/2013-08-01.parquet"}
    assert store.list_keys("nothing/here") == [] and store.stamps("w/none") == {}
    with pytest.raises(ValueError, match="escapes"):
        store.list_keys("../")
    (tmp_path / "beside.bin").write_bytes(b"not stored")  # a store not yet made lists nothing
    assert LocalObjectStore(root=str(tmp_path / "new")).list_keys("") == []


def test_create_exclusive_refuses_an_existing_key(store):
    store.create_exclusive("versions/001", b"first")
    with pytest.raises(ObjectExistsError):
        store.create_exclusive("versions/001", b"second")
    assert store.get_bytes("versions/001") == b"first"


def test_local_store_refuses_keys_outside_its_root(tmp_path):
    with pytest.raises(ValueError, match="escapes"):
        LocalObjectStore(root=str(tmp_path)).put_bytes("../evil", b"x")


DAYS = dg.DailyPartitionsDefinition(start_date="2013-07-01", end_date="2013-07-04")


@dg.asset(
    partitions_def=DAYS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    metadata={"partition_expr": "time_utc"},
)
def hourly(context: dg.AssetExecutionContext) -> pd.DataFrame:
    window = context.partition_time_window
    hours = pd.date_range(window.start, window.end, freq="h", inclusive="left")
    return pd.DataFrame({"time_utc": hours, "value": range(len(hours))})


@dg.asset(ins={"hourly": dg.AssetIn(metadata={"allow_missing_partitions": True})})
def summary(hourly: pd.DataFrame) -> dict:
    return {"rows": len(hourly), "first": str(hourly["time_utc"].min())}


def test_io_manager_splits_a_partition_range_and_reads_it_back(store):
    resources = {"io_manager": ObjectStoreIOManager(store=store)}
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [hourly, summary],
            resources=resources,
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2013-07-01",
                "dagster/asset_partition_range_end": "2013-07-03",
            },
        )
    assert result.success
    keys = store.list_keys("assets/hourly/")
    assert keys == [f"assets/hourly/2013-07-0{d}.parquet" for d in (1, 2, 3)]
    assert result.output_for_node("summary") == {"rows": 72, "first": "2013-07-01 00:00:00+00:00"}
    assert store.exists("assets/summary/__all__.json")
