"""`comfort`: the team's command-line habits, launching the same Dagster assets.

Runs go to the Dagster instance in ``DAGSTER_HOME`` (default ``.comfort/dagster``), so they
show in `dagster dev` started with the same ``DAGSTER_HOME``.

    comfort run                              # the whole graph, every partition
    comfort train --random-state 1001        # candidates with that seed → evaluation → promotion
    comfort tune --search-type random --n-trials 30
    comfort models                           # registered versions, metrics, the champion
    comfort promote weather-predictor-002    # move the champion pointer
    comfort rollback [weather-predictor-001] # back to the previous (or a named) champion
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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


def materialize(selection: str, run_config: dict[str, Any] | None = None) -> bool:
    """Materialize ``selection`` in process; partitioned assets run as one single-run backfill
    over every partition. A challenger that loses the promotion check is not a failure of the
    command: the champion stands, and the blocking check kept the loser from going on."""
    import dagster as dg

    from comfort_assets.definitions import ASSETS, defs
    from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS

    keys = WEATHER_PARTITIONS.get_partition_keys()
    started = time.perf_counter()
    result = dg.materialize(
        ASSETS,
        selection=dg.AssetSelection.from_string(selection),
        resources=defs.resources,
        instance=_instance(),
        run_config=run_config or {},
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
        raise_on_error=False,
    )
    took = time.perf_counter() - started
    failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
    failed_steps = {e.step_key for e in result.get_step_failure_events()}
    champion_kept = (
        not result.success
        and failed_steps == {"champion_model"}
        and [(e.asset_key.to_user_string(), e.check_name) for e in failed_checks]
        == [("champion_model", "promotion")]
    )
    status = "succeeded" if result.success or champion_kept else "FAILED"
    print(f"comfort: run {result.run_id} {status} in {took:.1f} s ({selection})")
    for evaluation in failed_checks:
        reason = evaluation.metadata.get("decision") or evaluation.metadata.get("summary")
        text = getattr(reason, "value", "")
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        print(f"  check {name} failed {text}")
    if champion_kept:
        print("  the champion stands; the challenger is registered but not promoted")
    return result.success or champion_kept


def _registry():
    from comfort_assets.deployment import object_store
    from comfort_assets.resources.registry import ModelRegistry

    return ModelRegistry(store=object_store(resolve_env=True))


def list_models() -> list[dict[str, Any]]:
    registry = _registry()
    champion = registry.champion()
    rows = []
    for version in registry.versions():
        card = registry.card(version)
        metrics = card.get("metrics", {})
        rows.append(
            {
                "version": version,
                "champion": version == champion,
                "model": card.get("model_choice", card.get("family")),
                "horizon_h": card.get("horizon_h"),
                "holdout_rmse": metrics.get("holdout_rmse"),
                "persistence_rmse": metrics.get("persistence_rmse"),
                "skill": metrics.get("skill_vs_persistence"),
                "registered_at": card.get("registered_at", "")[:19],
            }
        )
    return rows


def _print_models(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no registered models yet: run `comfort run` first")
        return
    print(
        f"{'':2}{'version':24}{'model':28}{'h':>3}{'RMSE':>9}{'persist.':>9}{'skill':>8}"
        "  registered"
    )
    for r in rows:
        mark = "* " if r["champion"] else "  "
        print(
            f"{mark}{r['version']:24}{r['model']!s:28}{r['horizon_h']!s:>3}"
            f"{r['holdout_rmse']:>9.4f}{r['persistence_rmse']:>9.4f}{r['skill']:>8.1%}  "
            f"{r['registered_at']}"
        )
    print("* = champion")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comfort", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="materialize the whole asset graph (all partitions)")
    run.add_argument("--select", default="*", help="Dagster asset selection (default: all)")
    train = commands.add_parser("train", help="train candidates with given seeds, then evaluate")
    train.add_argument("--random-state", type=int, action="append", required=True)
    train.add_argument("--family", action="append", help="ridge, random_forest, xgboost")
    tune = commands.add_parser("tune", help="hyper-parameter search, then evaluate")
    tune.add_argument("--search-type", choices=["random", "grid"], default="random")
    tune.add_argument("--n-trials", type=int, default=10)
    tune.add_argument("--random-state", type=int, default=0)
    models = commands.add_parser("models", help="list registered model versions")
    models.add_argument("--json", action="store_true")
    promote = commands.add_parser("promote", help="make VERSION the champion")
    promote.add_argument("version")
    rollback = commands.add_parser("rollback", help="move the champion back")
    rollback.add_argument("version", nargs="?")
    args = parser.parse_args(argv)

    if args.command == "run":
        return 0 if materialize(args.select) else 1
    if args.command == "train":
        config: dict[str, Any] = {"random_states": args.random_state}
        if args.family:
            config["families"] = args.family
        ok = materialize("candidate_models*", {"ops": {"candidate_models": {"config": config}}})
        return 0 if ok else 1
    if args.command == "tune":
        config = {
            "search_type": args.search_type,
            "n_trials": args.n_trials,
            "random_state": args.random_state,
        }
        return 0 if materialize("tuned_model*", {"ops": {"tuned_model": {"config": config}}}) else 1
    if args.command == "models":
        rows = list_models()
        print(json.dumps(rows, indent=1)) if args.json else _print_models(rows)
        return 0
    registry = _registry()
    if args.command == "promote":
        pointer = registry.promote(args.version, "promoted by hand (comfort promote)")
    else:
        pointer = registry.rollback(args.version)
    print(f"champion: {pointer['version']} ({pointer['reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
