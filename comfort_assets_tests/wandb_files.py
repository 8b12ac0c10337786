"""Read W&B offline run files (``run-*.wandb``: LevelDB-style log of protobuf records), so
tests can assert what a run really recorded without an account or a network."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7  # ":W&B" + magic (2 bytes) + version (1 byte)


def _records(data: bytes) -> list[bytes]:
    records, pending, pos = [], b"", HEADER
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0 and length == 0:
            break
        chunk, pos = data[pos : pos + length], pos + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
    return records


def read_offline_run(run_dir: Path) -> dict[str, Any]:
    """Name, config, history rows, summary and artifact names of one offline run."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("run-*.wandb")
    out: dict[str, Any] = {
        "history": [],
        "summary": {},
        "artifacts": [],
        "config": {},
        "name": "",
        "group": "",
        "tags": [],
    }
    for raw in _records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":  # a later run record may be an update that leaves fields empty
            out["name"] = record.run.display_name or out["name"]
            out["group"] = record.run.run_group or out["group"]
            out["tags"] = list(record.run.tags) or out["tags"]
            for item in record.run.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append(
                {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in record.history.item
                }
            )
        elif kind == "summary":
            for item in record.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "artifact":
            out["artifacts"].append(record.artifact.name)
    return out


def offline_runs(wandb_dir: Path) -> dict[str, dict[str, Any]]:
    """Every offline run under a tracker's ``dir``, by the asset that made it (run names
    carry the Dagster run id); the latest run of an asset wins."""
    runs = {}
    for run_dir in sorted((wandb_dir / "wandb").glob("offline-run-*")):
        run = read_offline_run(run_dir)
        runs[run["config"].get("dagster_asset", run["name"])] = run
    return runs
