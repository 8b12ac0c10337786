"""`comfort`: the team's command-line habits, launching the same Dagster assets.

Runs go to the Dagster instance in ``DAGSTER_HOME`` (default ``.comfort/dagster``), so they
show in `dagster dev` started with the same ``DAGSTER_HOME``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _instance():
    import dagster as dg

    from comfort_assets.deployment import comfort_home

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(comfort_home() / "dagster")))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        # telemetry would try the network at every run; this platform runs offline
        settings.write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.get()


def materialize(selection: str, run_config: dict | None = None, *, full_range: bool = True) -> bool:
    """Materialize ``selection`` of the code location in process; partitioned assets run as
    one single-run backfill over every partition."""
    import dagster as dg

    from comfort_assets.assets.ingestion import WEATHER_PARTITIONS
    from comfort_assets.definitions import ASSETS, defs

    keys = WEATHER_PARTITIONS.get_partition_keys()
    tags = (
        {
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        }
        if full_range
        else {}
    )
    started = time.perf_counter()
    result = dg.materialize(
        ASSETS,
        selection=dg.AssetSelection.from_string(selection),
        resources=defs.resources,
        instance=_instance(),
        run_config=run_config or {},
        tags=tags,
        raise_on_error=False,
    )
    took = time.perf_counter() - started
    status = "succeeded" if result.success else "FAILED"
    print(f"comfort: run {result.run_id} {status} in {took:.1f} s ({selection})")
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            print(f"  check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} failed")
    return result.success


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comfort", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="materialize the whole asset graph (all partitions)")
    run.add_argument("--select", default="*", help="Dagster asset selection (default: all)")
    args = parser.parse_args(argv)
    if args.command == "run":
        return 0 if materialize(args.select) else 1
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
