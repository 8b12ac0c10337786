"""`comfort`: the team's command-line habits, each a named Dagster job run with tags.

Runs go to the Dagster instance in ``DAGSTER_HOME`` (default ``.comfort/dagster``), so they
show under their job (`pipeline_job`, `experiment_job`, `tuning_job`, `bento_job`) in
`dagster dev` started with the same ``DAGSTER_HOME``, filterable by ``comfort/*`` tags.

    comfort run                              # the whole graph, every partition
    comfort train --random-state 1001        # candidates with that seed → evaluation → promotion
    comfort tune --search-type random --n-trials 30
    comfort models                           # registered versions, metrics, the champion
    comfort promote weather-predictor-002    # move the champion pointer, rebuild the Bento
    comfort rollback [weather-predictor-001] # back to the previous (or a named) champion

A user mistake is one line on stderr and exit code 2, found before any run starts; a failed
run is exit code 1 with the failing step and its error.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import getpass
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from comfort_assets import cli_models

if TYPE_CHECKING:
    from comfort_assets.cli_runs import Outcome

SEARCH_TYPES = ("random", "grid")
RUN_COMMANDS = {"run": "pipeline_job", "train": "experiment_job", "tune": "tuning_job"}


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


class _Families:
    """The model families, imported only when ``--family`` is parsed or help is shown:
    the import loads scikit-learn and XGBoost, which `comfort models` must not."""

    def __iter__(self) -> Iterator[str]:
        from comfort_assets.domain.modeling import FAMILIES

        return iter(FAMILIES)

    def __contains__(self, value: object) -> bool:
        return value in list(self)


#: The largest seed every model family takes (scikit-learn's random_state is 32-bit).
MAX_SEED = 2**32 - 1


#: Parameter sets a random search scores unless told otherwise.
DEFAULT_TRIALS = 10


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is an integer from 0 to {MAX_SEED}, got {text}")
    return value


def _trials(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of trials") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"the number of trials must be at least 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="comfort", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runs = _Parser(add_help=False)
    runs.add_argument(
        "-v", "--verbose", action="store_true", help="also show Dagster's event log here"
    )

    commands.add_parser(
        "run",
        parents=[runs],
        help="pipeline_job: every day of weather in, a champion and its Bento out",
    )
    train = commands.add_parser(
        "train",
        parents=[runs],
        help="experiment_job: candidates with the given seeds, then evaluation",
    )
    train.add_argument(
        "--random-state",
        type=_seed,
        action="append",
        required=True,
        metavar="SEED",
        help="a seed for every family (repeat for several seeds)",
    )
    train.add_argument(
        "--family",
        action="append",
        choices=_Families(),
        metavar="FAMILY",
        help="%(choices)s (repeat for several; default: every family)",
    )
    tune = commands.add_parser(
        "tune", parents=[runs], help="tuning_job: a hyper-parameter search, then evaluation"
    )
    tune.add_argument(
        "--search-type", choices=SEARCH_TYPES, default="random", help="how trials are drawn"
    )
    tune.add_argument(
        "--n-trials",
        type=_trials,
        default=None,
        metavar="N",
        help="random search: sets to score (default 10); a grid scores every set",
    )
    tune.add_argument(
        "--random-state", type=_seed, default=0, metavar="SEED", help="seed of the search"
    )
    models = commands.add_parser("models", help="list registered model versions")
    models.add_argument("--json", action="store_true", help="print the list as JSON")
    promote = commands.add_parser(
        "promote", parents=[runs], help="make VERSION the champion, then bento_job"
    )
    promote.add_argument("version", help="a registered version, e.g. weather-predictor-002")
    rollback = commands.add_parser(
        "rollback", parents=[runs], help="move the champion back, then bento_job"
    )
    rollback.add_argument(
        "version", nargs="?", help="the version to go back to (default: the previous champion)"
    )
    commands.add_parser(
        "simulate",
        add_help=False,
        help="replay the bundled year through the monitoring loop (`comfort simulate -h`)",
    )
    return top


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _tags(args: argparse.Namespace) -> dict[str, str]:
    tags = {"comfort/command": args.command, "comfort/user": _user()}
    if args.command == "train":
        tags["comfort/random_state"] = ",".join(map(str, args.random_state))
        tags["comfort/families"] = ",".join(args.family or _Families())
    elif args.command == "tune":
        tags["comfort/random_state"] = str(args.random_state)
        tags["comfort/search_type"] = args.search_type
        if args.search_type == "random":
            tags["comfort/n_trials"] = str(args.n_trials or DEFAULT_TRIALS)
    return tags


def _run_config(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "train":
        config: dict[str, Any] = {"random_states": args.random_state}
        if args.family:
            config["families"] = args.family
        return {"ops": {"candidate_models": {"config": config}}}
    if args.command == "tune":
        config = {
            "search_type": args.search_type,
            "n_trials": args.n_trials or DEFAULT_TRIALS,
            "random_state": args.random_state,
        }
        return {"ops": {"tuned_model": {"config": config}}}
    return {}


def _report_failure(outcome: Outcome) -> int:
    print(
        f"comfort: {outcome.job} run {outcome.run_id[:8]} FAILED after {outcome.seconds:.1f} s",
        file=sys.stderr,
    )
    for line in outcome.failures:
        print(f"  failed step {line}", file=sys.stderr)
    for line in outcome.failed_checks():
        print(f"  check {line}", file=sys.stderr)
    print(f"  log: {outcome.log_file}", file=sys.stderr)
    return 1


def _champion_line() -> str:
    store = cli_models.deployment_store()
    pointer = cli_models.champion_pointer(store)
    if pointer is None:
        return "no champion yet"
    rows = {r["version"]: r for r in cli_models.list_models(store)}
    row = rows.get(pointer["version"], {})
    rmse, skill = row.get("holdout_rmse"), row.get("skill")
    scores = (
        f": holdout RMSE {rmse:.4f}, skill {skill:.1%} vs persistence"
        if isinstance(rmse, float) and isinstance(skill, float)
        else ""
    )
    return f"champion {pointer['version']}{scores}"


def _change_line(outcome: Outcome) -> str | None:
    """What the evaluation did, from `challenger_model`'s metadata (None: not in this run)."""
    metadata = outcome.materialization("challenger_model")
    if not metadata or "promoted" not in metadata:
        return None
    version = metadata.get("version", "the challenger")
    reason = metadata.get("decision", "")
    if metadata["promoted"]:
        return f"promoted {version}: {reason}"
    champion = metadata.get("champion_now", "the champion")
    return f"challenger {version} registered, champion {champion} stands: {reason}"


def _launch(args: argparse.Namespace, job: str, run_config: dict[str, Any]) -> Outcome:
    from comfort_assets.cli_runs import launch
    from comfort_assets.definitions import defs

    return launch(defs, job, _tags(args), run_config, verbose=args.verbose)


def run_job(args: argparse.Namespace) -> int:
    outcome = _launch(args, RUN_COMMANDS[args.command], _run_config(args))
    if not outcome.success:
        return _report_failure(outcome)
    print(f"comfort {args.command}: run {outcome.run_id[:8]} succeeded in {outcome.seconds:.1f} s")
    for line in outcome.failed_checks():
        print(f"  check {line}")
    print(_champion_line())
    change = _change_line(outcome)
    if change:
        print(change)
    print(f"log: {outcome.log_file}")
    return 0


BENTO_NOT_REBUILT = "comfort: the champion moved, but its Bento was not rebuilt"


def move_champion(args: argparse.Namespace) -> int:
    """Moves the pointer, records it as a runless materialization of `champion_model`, then
    rebuilds the Bento so that it serves the new champion."""
    import dagster as dg

    from comfort_assets.cli_runs import instance
    from comfort_assets.deployment import object_store
    from comfort_assets.resources.registry import (
        ModelIntegrityError,
        ModelNotFoundError,
        ModelRegistry,
    )

    registry = ModelRegistry(store=object_store(resolve_env=True))
    try:
        before = registry.champion()
    except ValueError as err:  # a damaged pointer: `promote` writes a new one
        if args.command != "promote":
            raise UsageError(f"{err}: `comfort promote VERSION` writes a new one") from None
        before = None
    if args.version is not None and args.version == before:
        raise UsageError(f"{before} is already the champion: nothing to {args.command}")
    try:
        if args.command == "promote":
            pointer = registry.promote(args.version, "promoted by hand (comfort promote)")
        else:
            pointer = registry.rollback(args.version)
    except (ModelNotFoundError, ModelIntegrityError, ValueError) as err:
        raise UsageError(str(err)) from None
    with instance() as dagster_instance:
        dagster_instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="champion_model",
                metadata={
                    "champion_before": str(before),
                    "champion_now": pointer["version"],
                    "reason": pointer["reason"],
                    "requested_by": _user(),
                },
            )
        )
    print(f"champion: {before} → {pointer['version']} ({pointer['reason']})")
    try:
        outcome = _launch(args, "bento_job", {})
    except KeyboardInterrupt:
        print(BENTO_NOT_REBUILT, file=sys.stderr)
        raise
    if not outcome.success:
        print(BENTO_NOT_REBUILT, file=sys.stderr)
        return _report_failure(outcome)
    bento = outcome.materialization("bento") or {}
    print(f"bento {bento.get('bento_tag', '?')} built in {outcome.seconds:.1f} s")
    return 0


def check_settings(command: str) -> None:
    """The environment's settings that ``command`` needs, each mistake one line naming the
    variable."""
    from comfort_assets.deployment import SettingError
    from comfort_assets.deployment import check_settings as check

    if command in RUN_COMMANDS:
        needs = "everything"
    else:  # promote and rollback rebuild the Bento: they import the definitions
        needs = "models" if command == "models" else "definitions"
    try:
        check(needs)
    except SettingError as error:
        raise UsageError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        from comfort_assets import simulation

        return simulation.main(argv[1:])
    try:
        args = parser().parse_args(argv)
        if args.command != "models" or os.environ.get("COMFORT_ENV", "local") != "local":
            # a local listing reads files alone (and must answer at once)
            check_settings(args.command)
        if args.command == "models":
            rows = cli_models.list_models()
            try:
                print(json.dumps(rows, indent=1) if args.json else cli_models.format_models(rows))
                sys.stdout.flush()
            except BrokenPipeError:  # `comfort models | head -1`: the reader has all it wanted
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
                return 141  # as a shell reports a command ended by SIGPIPE
            return 0
        if args.command == "tune" and args.search_type == "grid" and args.n_trials:
            raise UsageError("--n-trials is for --search-type random: a grid scores every set")
        if args.command in RUN_COMMANDS:
            return run_job(args)
        return move_champion(args)
    except UsageError as err:
        print(f"comfort: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("comfort: interrupted", file=sys.stderr)
        return 130


def console() -> NoReturn:
    """The `comfort` command: `main`, then a quick exit. Tearing down the ~1,000 modules a
    run imports took ~1 s after every command (docs/pitfalls.md); the exit handlers (W&B,
    logging, multiprocessing) still run, only the module teardown is skipped."""
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to flush
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
