"""`comfort simulate`: a replayed year that shows the monitoring loop closing.

Trains on the first months, serves the champion through a real `bentoml serve`, then walks
the following days one by one: each hour's forecasts go over HTTP, the day's ingestion brings
the actuals, the monitoring assets and checks run for the day, the retrain sensor is
evaluated (on a simulated clock), its run requests are executed (training window ending on
the simulated day, the most recent weeks as holdout), the promotion gate decides, and the
service picks up a new champion by itself. The never-retrained model, a fixed monthly
retrain and persistence are scored offline on the same station-hours.

    python -m comfort_assets.simulation [--days N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd

from comfort_assets.domain.features import WINDOW_HOURS
from comfort_assets.domain.replay import (
    ARMS,
    REPLAY_COOLDOWN_DAYS,
    ReplayWindows,
    arm_rmse,
    month_starts,
    only_drift,
    simulated_cursor,
    utc_day,
    weekly_table,
)
from comfort_assets.processes import interrupts_deferred, stop_process_group

HORIZON = 3
SERVICE = "comfort_assets.serving.service:ComfortForecast"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: a day's ingestion: raw weather → clean weather and quarantine → features (daily partitions)
INGESTION = ("raw_weather", "clean_weather", "weather_quarantine", "comfort_features")
SPLITS = ("training_set", "validation_set", "holdout_set")
INGESTION_CONFIG = {"ops": {"comfort_features": {"config": {"horizon_h": HORIZON}}}}
#: the replay's training recipe, cheap enough to run dozens of times: ridge candidates and
#: one XGBoost parameter set (learning rate 0.1) cross-validated on time-ordered folds
FAMILIES = ["ridge"]
SEEDS = [0]
SEARCH_SPACE: dict[str, list[float]] = {
    "learning_rate": [0.1],
    "max_depth": [6],
    "min_child_weight": [5],
    "subsample": [0.8],
    "colsample_bytree": [0.8],
}
TUNING_FOLDS = 2


#: A century of days: more than any weather file holds, and inside pandas' range of times.
MAX_DAYS = 36_500
#: The longest cooldown: as long as the longest replay (1e308 days overflowed to inf hours).
MAX_COOLDOWN_DAYS = MAX_DAYS
#: Days from the source's first day to the end of the shortest training split that holds a
#: row: a row needs ``WINDOW_HOURS - 1`` hours of history before its origin and its target
#: ``HORIZON`` hours after it, and the first observation may come as late as 23:00 (6 days;
#: the bundled year, which starts at 06:00, has no training row in 4). An empty split fails
#: the blocking `chronological` check only after the ingestion (minutes), so `_options` asks
#: it of ``--train-end`` up front, with the holdout and validation days on top.
MIN_TRAINING_DAYS = math.ceil((24 + WINDOW_HOURS - 1 + HORIZON) / 24)


class UsageError(Exception):
    """A user mistake on the command line: one line on stderr, exit 2."""


class ReplayFailed(RuntimeError):
    """The replay could not go on (a run failed, the service stopped, the first model was
    not promoted): one line saying what and where to look, exit 1; Dagster has already
    logged the run's error above it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="comfort simulate",
        description="Replay the year day by day: the closed monitoring loop against a "
        "never-retrained model, a monthly retrain and persistence, on the same hours.",
    )
    p.add_argument("--days", type=int, default=None, help="replay only this many days")
    p.add_argument("--out", default=None, help="report folder (default: a new one)")
    p.add_argument("--train-end", default=None, help="first training ends here (default: 3 months)")
    p.add_argument("--start", default=None, help="first replayed day (default: --train-end)")
    p.add_argument("--holdout-days", type=int, default=14)
    p.add_argument("--validation-days", type=int, default=14)
    p.add_argument(
        "--cooldown-days",
        type=float,
        default=REPLAY_COOLDOWN_DAYS,
        help="retrain sensor cooldown (default: a month, the monthly arm's period)",
    )
    p.add_argument("--rmse-factor", type=float, default=1.1, help="decay: RMSE > holdout × this")
    p.add_argument(
        "--webhook",
        default=None,
        help="Slack incoming webhook for the replay's alerts (default: the log only; "
        "COMFORT_SLACK_WEBHOOK_URL is not used, so a replayed year never reaches the team)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


@dataclass
class Options:
    days: int | None
    out: Path
    train_end: pd.Timestamp
    start: pd.Timestamp
    holdout_days: int
    validation_days: int
    cooldown_days: float
    rmse_factor: float
    quiet: bool
    webhook: str | None = None


@dataclass
class RetrainEvent:
    day: str
    reason: str
    check: str
    version: str | None
    promoted: bool | None
    decision: str
    served_from: str | None = None


@dataclass
class Replay:
    options: Options
    home: Path
    events: list[RetrainEvent] = field(default_factory=list)
    rejected_requests: int = 0
    versions_served: dict[str, int] = field(default_factory=dict)


def source_days() -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last day of the replay's partitions (`Pipeline.partitions`), read before
    anything runs (a file source's time column only) so that the dates are judged up front.
    The settings are read as the replay will (COMFORT_ENV=local, as `_environment` sets it);
    a source that is not a file, or a weather file that is missing or unreadable, is one
    line naming it."""
    from comfort_assets.deployment import (
        SettingError,
        check_weather_settings,
        source,
        weather_partitions,
    )

    with mock.patch.dict(os.environ, {"COMFORT_ENV": "local"}):
        try:
            if source() not in ("bundled", "file"):
                raise UsageError(
                    "simulate replays a file-backed source (COMFORT_SOURCE=bundled|file)"
                )
            check_weather_settings()
        except SettingError as error:
            raise UsageError(str(error)) from None
        keys = weather_partitions().get_partition_keys()
    return utc_day(keys[0]), utc_day(keys[-1])


def _out_folder(text: str) -> Path:
    """``--out`` as the folder it names (``..`` resolved: the check for an earlier replay
    must see the real folder)."""
    if not text.strip():
        raise UsageError("--out is empty: give a folder")
    out = Path(os.path.realpath(text))
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {text} is a file: give a folder")
    return out


def _made(out: Path) -> Path:
    """The folder, made once every option is judged: a path that cannot be a folder is one
    line, not a traceback once the replay has started."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()  # a folder it cannot write in (/proc)
    except OSError as error:
        raise UsageError(f"--out {out}: cannot write there ({error.strerror})") from None
    return out


def _options(argv: Sequence[str] | None) -> Options:
    args = parser().parse_args(argv)
    if args.days is not None and args.days < 1:
        raise UsageError(f"--days must be at least 1, got {args.days}")
    for name in ("holdout_days", "validation_days"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.days is not None and args.days > MAX_DAYS:
        raise UsageError(f"--days must be at most {MAX_DAYS}, got {args.days}")
    if not (math.isfinite(args.cooldown_days) and 0 <= args.cooldown_days <= MAX_COOLDOWN_DAYS):
        raise UsageError(
            f"--cooldown-days must be a number from 0 to {MAX_COOLDOWN_DAYS:,}, "
            f"got {args.cooldown_days:g}"
        )
    if not (math.isfinite(args.rmse_factor) and args.rmse_factor > 0):
        raise UsageError(f"--rmse-factor must be a number > 0, got {args.rmse_factor}")
    if args.out is not None:
        args.out = _out_folder(args.out)
    first, last = source_days()
    try:
        train_end = utc_day(args.train_end) if args.train_end else None
        start = utc_day(args.start) if args.start else None
    except ValueError as error:
        raise UsageError(f"--train-end/--start: not a date ({error})") from None
    if args.out is not None and (args.out / "home").exists():
        raise UsageError(f"--out {args.out} holds an earlier replay: give a new folder")
    train_end = train_end or first + pd.DateOffset(months=3)
    start = start or train_end
    before = args.holdout_days + args.validation_days + MIN_TRAINING_DAYS
    earliest = first + pd.Timedelta(days=before)
    if train_end < earliest:
        given = "" if args.train_end else " (the default)"
        raise UsageError(
            f"--train-end {train_end:%Y-%m-%d}{given} leaves too little data to train on: the "
            f"weather starts {first:%Y-%m-%d}, and {args.holdout_days} holdout, "
            f"{args.validation_days} validation and {MIN_TRAINING_DAYS} training days (the "
            f"features look back {WINDOW_HOURS - 1} h) need --train-end ≥ {earliest:%Y-%m-%d}"
        )
    if not train_end <= start <= last:
        raise UsageError(
            f"need --train-end ≤ --start ≤ {last:%Y-%m-%d}, the weather's last day "
            f"(got {train_end:%Y-%m-%d}, {start:%Y-%m-%d})"
        )
    out = _made(args.out) if args.out else Path(tempfile.mkdtemp(prefix="comfort-simulate-"))
    return Options(
        days=args.days,
        out=out.absolute(),
        train_end=train_end,
        start=start,
        holdout_days=args.holdout_days,
        validation_days=args.validation_days,
        cooldown_days=args.cooldown_days,
        rmse_factor=args.rmse_factor,
        quiet=args.quiet,
        webhook=args.webhook,
    )


#: No captured step output: Dagster's local capture starts `tail` and an orphan watcher per
#: run, and they share the terminal's Ctrl-C (each printed its own traceback).
REPLAY_INSTANCE_SETTINGS = (
    "compute_logs:\n"
    "  module: dagster._core.storage.noop_compute_log_manager\n"
    "  class: NoOpComputeLogManager\n"
)


def _environment(options: Options) -> Path:
    """A fresh COMFORT_HOME with its own Dagster instance, W&B off, the sensor's cooldown."""
    home = options.out / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    from comfort_assets.cli_runs import PLANNED_EVENTS, instance_settings

    (dagster_home / "dagster.yaml").write_text(
        instance_settings(dagster_home) + REPLAY_INSTANCE_SETTINGS
    )
    os.environ.update(
        {
            **PLANNED_EVENTS,
            "COMFORT_ENV": "local",
            "COMFORT_HOME": str(home),
            "DAGSTER_HOME": str(dagster_home),
            "WANDB_MODE": "disabled",
            "WANDB_SILENT": "true",
            "COMFORT_RETRAIN_COOLDOWN_HOURS": str(options.cooldown_days * 24),
            "COMFORT_RELOAD_SECONDS": "0.5",
            "BENTOML_HOME": str(home / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "True",
        }
    )
    os.environ.pop("COMFORT_PREDICTION_DB_URL", None)
    if options.webhook:
        os.environ["COMFORT_SLACK_WEBHOOK_URL"] = options.webhook
    else:  # the team's channel is no place for a replayed year's alerts
        os.environ.pop("COMFORT_SLACK_WEBHOOK_URL", None)
    return home


def _say(options: Options, text: str) -> None:
    if not options.quiet:
        print(text, file=sys.stderr, flush=True)


# --- the real service ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(home: Path) -> Iterator[str]:
    """`bentoml serve` of the service on a free 127.0.0.1 port, following the champion
    pointer under ``home``; stopped with SIGTERM (SIGKILL after 20 s) at the end."""
    import httpx

    port = _free_port()
    log = (home / "bentoml.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise ReplayFailed(f"bentoml serve exited; see {home / 'bentoml.log'}")
            with suppress(httpx.TransportError), interrupts_deferred():
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"bentoml serve not ready after 120 s; see {log.name}")
            time.sleep(0.3)
        yield url
    finally:
        stop_process_group(process)
        log.close()


def served_version(client: Any) -> str:
    with interrupts_deferred():
        return client.post("/model_info", json={}).json()["version"]


def wait_for_version(client: Any, version: str, timeout_s: float = 30.0) -> bool:
    """The service follows the pointer by itself; wait until it serves ``version``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if served_version(client) == version:
            return True
        time.sleep(0.2)
    return False


def _predict(client: Any, payloads: list[dict[str, Any]]) -> Any:
    with interrupts_deferred():
        return client.post("/predict", json={"requests": payloads})


def request_day(client: Any, clean: pd.DataFrame, day: pd.Timestamp, replay: Replay) -> None:
    """Every station's h-hour forecast valid in each hour of ``day``, one HTTP batch per hour
    (a rejected batch is retried window by window, so one bad window loses only itself)."""
    from comfort_assets.serving.core import request_payload

    stations = sorted(clean["station"].unique())
    for valid_at in pd.date_range(day, periods=24, freq="h"):
        origin = valid_at - pd.Timedelta(hours=HORIZON)
        payloads = [request_payload(clean, s, origin.to_pydatetime()) for s in stations]
        answer = _predict(client, payloads)
        answers = (
            [_predict(client, [p]) for p in payloads] if answer.status_code == 400 else [answer]
        )
        for reply in answers:
            if reply.status_code != 200:
                replay.rejected_requests += 1
                continue
            for forecast in reply.json():
                version = forecast["model_version"]
                replay.versions_served[version] = replay.versions_served.get(version, 0) + 1


# --- Dagster runs -------------------------------------------------------------------------
def failed(result: Any) -> str:
    """Why a run failed, in one line: each failed step and its error, and the run to open in
    the UI (the replay's Dagster instance is under its ``--out`` folder)."""
    from comfort_assets.cli_runs import failures

    return f"failed ({'; '.join(failures(result))}; run {result.run_id[:8]})"


def training_run_config(windows: ReplayWindows) -> dict[str, Any]:
    """The replay's cheap training recipe (see `SEARCH_SPACE`), the window ending on the day."""
    return {
        "ops": {
            "chronological_splits": {"config": windows.split_config()},
            "candidate_models": {"config": {"families": FAMILIES, "random_states": SEEDS}},
            "tuned_model": {
                "config": {
                    "search_type": "grid",
                    "search_space": SEARCH_SPACE,
                    "n_folds": TUNING_FOLDS,
                    "random_state": SEEDS[0],
                }
            },
        }
    }


class Pipeline:
    """The Dagster side of the replay: one instance, the deployment's resources."""

    def __init__(self, options: Options) -> None:
        import dagster as dg

        from comfort_assets import deployment
        from comfort_assets.definitions import ASSETS, defs
        from comfort_assets.defs.monitoring import sensors

        self.dg, self.assets, self.defs, self.sensors = dg, ASSETS, defs, sensors
        self.options = options
        self.instance = dg.DagsterInstance.get()
        self.resources = deployment.resources()
        self.registry = self.resources["registry"]
        self.cursor: str | None = None
        self.last_request_day: pd.Timestamp | None = None
        from comfort_assets.defs.ingestion.assets import WEATHER_PARTITIONS

        self.partitions = WEATHER_PARTITIONS
        self.first_day = utc_day(WEATHER_PARTITIONS.get_partition_keys()[0])

    def _materialize(
        self, selection: Any, run_config: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        from comfort_assets.cli_runs import interrupted

        # Dagster's console says nothing: a failed day is one line of ours (`failed`), and
        # Ctrl-C inside a step would print a page of Dagster's tracebacks before "interrupted"
        quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
        result = self.dg.materialize(
            self.assets,
            selection=selection,
            instance=self.instance,
            resources=self.resources,
            raise_on_error=False,
            run_config={**(run_config or {}), **quiet},
            **kwargs,
        )
        if interrupted(result):  # Dagster records Ctrl-C as a failed run: not a failed day
            raise KeyboardInterrupt
        return result

    def observations(self) -> pd.DataFrame:
        """Every hour of the source, cleaned: what the service's clients observe live (the
        day's ingestion brings the same weather later, as the actuals)."""
        from comfort_assets.domain.cleaning import clean_observations

        return clean_observations(self.resources["weather"].whole()).clean  # a file: _options

    def ingest_range(self, first: pd.Timestamp, last: pd.Timestamp) -> Any:
        """Days ``first``…``last`` in, as one run (as the daily schedule does)."""
        result = self._materialize(
            self.dg.AssetSelection.assets(*INGESTION),
            INGESTION_CONFIG,
            tags={
                "dagster/asset_partition_range_start": f"{first:%Y-%m-%d}",
                "dagster/asset_partition_range_end": f"{last:%Y-%m-%d}",
            },
        )
        if not result.success:
            raise ReplayFailed(f"ingestion of {first:%Y-%m-%d}…{last:%Y-%m-%d} {failed(result)}")
        return result

    def ingest_and_monitor(self, day: pd.Timestamp) -> dict[str, bool]:
        """Day ``day``'s weather in (with the day before again, as the daily schedule does),
        then the monitoring assets of that day; the check results of both runs."""
        ingested = self.ingest_range(max(day - pd.Timedelta(days=1), self.first_day), day)
        config = {"rmse_factor": self.options.rmse_factor}
        result = self._materialize(
            self.dg.AssetSelection.groups("monitoring"),
            partition_key=f"{day:%Y-%m-%d}",
            run_config={"ops": {"production_performance": {"config": config}}},
        )
        if not result.success:
            raise ReplayFailed(f"monitoring of {day:%Y-%m-%d} {failed(result)}")
        evaluations = (
            *ingested.get_asset_check_evaluations(),
            *result.get_asset_check_evaluations(),
        )
        return {e.check_name: e.passed for e in evaluations}

    def clean_weather(self) -> pd.DataFrame:
        """Every stored day of `clean_weather`, read as an unpartitioned asset would."""
        keys = self.partitions.get_partition_keys()
        context = self.dg.build_input_context(
            asset_key=self.dg.AssetKey("clean_weather"),
            asset_partitions_def=self.partitions,
            asset_partition_key_range=self.dg.PartitionKeyRange(keys[0], keys[-1]),
        )
        return self.resources["io_manager"].load_input(context)

    def train(self, end: pd.Timestamp, tags: dict[str, str]) -> tuple[str | None, bool, str]:
        """Splits, training and evaluation with the window ending at ``end`` (the features are
        the stored days; no benchmark, no Bento): the version registered, whether it was
        promoted, and the decision."""
        windows = ReplayWindows.ending(end, self.options.holdout_days, self.options.validation_days)
        selection = (
            self.dg.AssetSelection.assets(*SPLITS)
            | self.dg.AssetSelection.groups("training", "evaluation")
        ) - self.dg.AssetSelection.assets("benchmark_report", "bento")
        result = self._materialize(selection, run_config=training_run_config(windows), tags=tags)
        if not result.success:
            return None, False, f"training run {failed(result)}"
        decision = result.output_for_node("challenger_model")
        return decision.version, bool(decision.promoted), decision.reason

    def retrain_started(self, tags: dict[str, str]) -> None:
        """What `retraining_notifier` tells people when a daemon starts the run (a replay
        has no daemon: its runs are started here). Dagster resolves the webhook setting."""
        with self.dg.build_resources({"notifier": self.resources["notifier"]}) as built:
            built.notifier.notify(self.sensors.retrain_alert(tags))

    def tick(self, day: pd.Timestamp) -> Any:
        """The retrain sensor evaluated at the end of simulated ``day``: its cooldown is
        measured from the last request in simulated time (see `simulated_cursor`)."""
        now = time.time()
        elapsed = None
        if self.last_request_day is not None:
            elapsed = (day - self.last_request_day).total_seconds()
        cursor = simulated_cursor(self.cursor, now, elapsed)
        context = self.dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            resources={"notifier": self.resources["notifier"]},
            definitions=self.defs,
        )
        data = self.sensors.monitoring_retrain_sensor.evaluate_tick(context)
        self.cursor = data.cursor
        if data.run_requests:
            self.last_request_day = day
        return data


# --- the offline arms ---------------------------------------------------------------------
def fit_recipe(features: pd.DataFrame, windows: ReplayWindows) -> Any:
    """The replay's training recipe outside Dagster, with the same domain functions."""
    from comfort_assets.domain.splits import SplitWindows, chronological_split
    from comfort_assets.domain.training import search, select_challenger, train_candidates
    from comfort_assets.domain.tuning import search_plan

    split = chronological_split(
        features, SplitWindows(windows.train_end, windows.validation_end, windows.holdout_end)
    )
    training, validation = split["training"], split["validation"]
    candidates = train_candidates(training, validation, FAMILIES, SEEDS)
    plan = search_plan(SEARCH_SPACE, "grid", 1, SEEDS[0])
    tuned = search(training, validation, plan, "xgboost", TUNING_FOLDS, SEEDS[0])
    return select_challenger(candidates.models, tuned.model, validation).model


def score_arms(
    predictions: pd.DataFrame,
    clean: pd.DataFrame,
    static_model: Any,
    trained: pd.Timestamp,
    options: Options,
    progress: Any = None,
) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """Every served forecast with its actual, beside the never-retrained model, the monthly
    retrain and persistence on the same station-hour; and the monthly retrain days."""
    from comfort_assets.domain.features import build_features

    features = build_features(clean, HORIZON)
    features = features[features["usable"]]
    served = predictions.assign(time_utc=predictions["valid_at"] - pd.Timedelta(hours=HORIZON))
    served = served[["station", "time_utc", "valid_at", "prediction", "model_version"]]
    rows = served.merge(features, on=["station", "time_utc"], how="inner")
    rows = rows.rename(columns={"prediction": "loop", "di_target": "actual"})
    if rows.empty:
        raise ReplayFailed(
            "no served forecast has an actual to score it against: the replayed days "
            "have no usable weather (try an earlier --start or more --days)"
        )
    matrix = rows[static_model.feature_names].to_numpy(dtype=float)
    now = rows["di_now"].to_numpy(dtype=float)
    rows["static"] = static_model.predict_di(matrix, now)
    rows["persistence"] = now
    rows["monthly"] = rows["static"]
    days = month_starts(trained, rows["time_utc"].min(), rows["valid_at"].max())
    for i, day in enumerate(days):
        if progress:
            progress(f"monthly arm: retrain {i + 1}/{len(days)} at {day:%Y-%m-%d}")
        windows = ReplayWindows.ending(day, options.holdout_days, options.validation_days)
        model = fit_recipe(features, windows)
        # the model serves from its day on: forecasts whose origin is on or after it
        inside = rows["time_utc"] >= day
        rows.loc[inside, "monthly"] = model.predict_di(matrix[inside.to_numpy()], now[inside])
    return rows, days


# --- the report ---------------------------------------------------------------------------
def plot_weekly(table: pd.DataFrame, retrains: list[str], monthly: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weeks = pd.to_datetime(table["week"])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for arm in ARMS:
        ax.plot(weeks, table[arm], marker="o", markersize=3, label=arm)
    for i, day in enumerate(retrains):
        ax.axvline(
            pd.Timestamp(day), color="tab:red", ls="--", lw=1, label="loop retrain" * (i == 0)
        )
    for i, day in enumerate(monthly):
        ax.axvline(
            pd.Timestamp(day), color="grey", ls=":", lw=1, label="monthly retrain" * (i == 0)
        )
    ax.set_ylabel(f"RMSE of DI, h = {HORIZON} h")
    ax.set_title("Weekly RMSE per arm (same station-hours)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out: Path, summary: dict[str, Any], table: pd.DataFrame, replay: Replay, monthly: list[str]
) -> Path:
    """report.md (figures, weekly table, retrain events, the replay's settings), weekly.csv,
    events.json and weekly_rmse.png under ``out``."""
    retrain_days = [e.day for e in replay.events if e.version]
    plot_weekly(table, retrain_days, monthly, out / "weekly_rmse.png")
    table.to_csv(out / "weekly.csv", index=False)
    (out / "events.json").write_text(json.dumps([e.__dict__ for e in replay.events], indent=1))
    events = pd.DataFrame([e.__dict__ for e in replay.events])
    o = replay.options
    text = [
        "# Replayed year: closed loop vs never retrained vs monthly retrain",
        "",
        f"Replayed {summary['days']} days from {summary['first_day']} to {summary['last_day']} "
        f"in {summary['seconds']:.0f} s; first training window ends {summary['train_end']}.",
        "",
        f"RMSE of DI (h = {HORIZON} h) on the same {summary['rows']} station-hours:",
        "",
        "| arm | RMSE | retrains |",
        "|---|---|---|",
        f"| closed loop | {summary['loop_rmse']:.3f} | {summary['retrains']} |",
        f"| never retrained | {summary['static_rmse']:.3f} | 0 |",
        f"| monthly retrain | {summary['monthly_rmse']:.3f} | {summary['monthly_retrains']} |",
        f"| persistence | {summary['persistence_rmse']:.3f} | - |",
        "",
        f"Loop / never retrained: {summary['loop_vs_static']:.3f}; loop / monthly: "
        f"{summary['loop_vs_monthly']:.3f}; retrains caused by seasonal drift alone: "
        f"{summary['drift_only_retrains']}.",
        "",
        "## Weekly RMSE",
        "",
        "![weekly RMSE](weekly_rmse.png)",
        "",
        table.to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Retrain events (closed loop)",
        "",
        events.to_markdown(index=False) if len(events) else "none",
        "",
        "## Settings",
        "",
        f"- training: candidates {', '.join(FAMILIES)} (seeds {SEEDS}); XGBoost {SEARCH_SPACE} "
        f"scored on {TUNING_FOLDS} time-ordered folds and refit; challenger chosen on "
        "validation; no benchmark report, no Bento",
        f"- expanding window from the first day; validation {o.validation_days} days, holdout the "
        f"last {o.holdout_days} days before the retrain day",
        f"- retrain sensor cooldown {o.cooldown_days:g} simulated days; decay when the "
        f"champion's RMSE over a full week of its forecasts > its latest holdout RMSE × "
        f"{o.rmse_factor:g} or a station is worse than persistence; out of domain when over 10 % "
        "of a station's served inputs lie outside the weather it was trained and tested on",
        f"- forecasts over HTTP: {sum(replay.versions_served.values())} served, "
        f"{replay.rejected_requests} rejected windows; versions served: "
        + ", ".join(f"{k} ({v})" for k, v in sorted(replay.versions_served.items())),
    ]
    path = out / "report.md"
    path.write_text("\n".join(text) + "\n")
    return path


# --- the replay ---------------------------------------------------------------------------
def run(options: Options) -> dict[str, Any]:
    started = time.perf_counter()
    home = _environment(options)
    import httpx

    from comfort_assets.domain import monitoring as mon
    from comfort_assets.resources.prediction_log import read_valid_between

    pipeline = Pipeline(options)
    keys = pipeline.partitions.get_partition_keys()
    first_key, last_key = utc_day(keys[0]), utc_day(keys[-1])
    train_end, start = options.train_end, options.start  # judged against the data in _options
    last = (
        last_key
        if options.days is None
        else min(last_key, start + pd.Timedelta(days=options.days - 1))
    )
    replay = Replay(options, home)
    say = lambda text: _say(options, text)  # noqa: E731

    say(f"ingesting {first_key:%Y-%m-%d}…{start - pd.Timedelta(days=1):%Y-%m-%d}")
    pipeline.ingest_range(first_key, start - pd.Timedelta(days=1))
    say(f"first training: window ends {train_end:%Y-%m-%d}")
    first_version, promoted, decision = pipeline.train(train_end, {"comfort/trigger": "simulate"})
    if not promoted:
        raise ReplayFailed(f"the first model was not promoted: {decision}")
    days = pd.date_range(start, last, freq="D")
    with serve(home) as url, httpx.Client(base_url=url, timeout=30) as client:
        say(f"serving {served_version(client)} at {url}; replaying {len(days)} days")
        observed = pipeline.observations()
        for number, day in enumerate(days, 1):
            request_day(client, observed, day, replay)
            checks = pipeline.ingest_and_monitor(day)
            failed = sorted(name for name, passed in checks.items() if not passed)
            data = pipeline.tick(day)
            note = ""
            for request in data.run_requests:
                tags = dict(request.tags)
                pipeline.retrain_started(tags)
                version, promoted, decision = pipeline.train(day + pd.Timedelta(days=1), tags)
                event = RetrainEvent(
                    day=f"{day:%Y-%m-%d}",
                    reason=tags.get("comfort/reason", ""),
                    check=tags.get("comfort/check", ""),
                    version=version,
                    promoted=promoted,
                    decision=decision,
                )
                if promoted and version and wait_for_version(client, version):
                    event.served_from = f"{day + pd.Timedelta(days=1):%Y-%m-%d}"
                replay.events.append(event)
                outcome = "promoted" if promoted else "not promoted"
                note = f" → retrain ({event.reason}): " + (
                    f"{version} {outcome}" if version else decision
                )
            say(
                f"[{number}/{len(days)}] {day:%Y-%m-%d} failed checks: "
                f"{', '.join(failed) or 'none'}{note} ({time.perf_counter() - started:.0f} s)"
            )
        final_version = served_version(client)

    clean = pipeline.clean_weather()
    span_end = last + pd.Timedelta(days=1)
    predictions = read_valid_between(pipeline.resources["prediction_store"], start, span_end)
    joined = mon.join_actuals(predictions, clean)
    static_model = pipeline.registry.load(first_version)[0]
    scored, monthly_days = score_arms(predictions, clean, static_model, train_end, options, say)
    figures = arm_rmse(scored)
    retrains = [e for e in replay.events if e.version]
    table = weekly_table(scored, [pd.Timestamp(e.day) for e in retrains], monthly_days)
    summary = {
        "days": len(days),
        "first_day": f"{start:%Y-%m-%d}",
        "last_day": f"{last:%Y-%m-%d}",
        "train_end": f"{train_end:%Y-%m-%d}",
        "rows": int(scored.dropna(subset=["actual", *ARMS]).shape[0]),
        **{f"{arm}_rmse": round(value, 4) for arm, value in figures.items()},
        "retrains": len(retrains),
        "promotions": sum(bool(e.promoted) for e in retrains),
        "monthly_retrains": len(monthly_days),
        "drift_only_retrains": sum(only_drift(e.reason) for e in retrains),
        "predictions": len(predictions),
        "predictions_with_actuals": int((joined["actual_source"] == "weather").sum()),
        "rejected_requests": replay.rejected_requests,
        "first_version": first_version,
        "final_version": final_version,
        "seconds": 0.0,
    }
    summary["loop_vs_static"] = round(figures["loop"] / figures["static"], 4)
    summary["loop_vs_monthly"] = round(figures["loop"] / figures["monthly"], 4)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["report"] = str(
        write_report(options.out, summary, table, replay, [f"{d:%Y-%m-%d}" for d in monthly_days])
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = _options(argv)
        summary = run(options)
    except UsageError as error:
        print(f"comfort simulate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("comfort simulate: interrupted", file=sys.stderr)
        return 130
    except ReplayFailed as error:
        print(f"comfort simulate: failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
