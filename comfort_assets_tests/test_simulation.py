"""The replayed year: pure helpers, the command line, and a shortened replay in which the
loop closes for real (HTTP forecasts through `bentoml serve`, monitoring, the retrain
sensor, promotion, the service following the new champion, a Slack-compatible webhook)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from types import SimpleNamespace
from typing import NoReturn

import dagster as dg
import pandas as pd
import pytest

from comfort_assets import simulation
from comfort_assets.domain import replay
from comfort_assets.domain.features import build_features
from comfort_assets.domain.splits import SplitWindows, chronological_split
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets_tests.serving_fixtures import PROJECT_ROOT, registry_at
from comfort_assets_tests.test_notifier import webhook_server


def test_windows_end_on_the_day_with_the_most_recent_weeks_as_holdout():
    windows = replay.ReplayWindows.ending(pd.Timestamp("2013-06-02"), 14, 7)
    assert windows.holdout_end == pd.Timestamp("2013-06-02", tz="UTC")
    assert windows.validation_end == pd.Timestamp("2013-05-19", tz="UTC")
    assert windows.train_end == pd.Timestamp("2013-05-12", tz="UTC")
    assert windows.split_config()["holdout_end"].startswith("2013-06-02T00:00:00")
    with pytest.raises(ValueError, match="at least 1"):
        replay.ReplayWindows.ending(pd.Timestamp("2013-06-02"), 0, 7)


def test_monthly_retrains_follow_the_first_training_and_skip_unscored_months():
    trained = pd.Timestamp("2013-04-01", tz="UTC")
    days = replay.month_starts(trained, trained, pd.Timestamp("2013-12-30", tz="UTC"))
    assert [f"{d:%m-%d}" for d in days] == [f"{m:02d}-01" for m in range(5, 13)]
    # replay starting in mid-June: May's model never scores, June's does
    later = replay.month_starts(
        trained, pd.Timestamp("2013-06-15", tz="UTC"), pd.Timestamp("2013-07-20", tz="UTC")
    )
    assert [f"{d:%m-%d}" for d in later] == ["06-01", "07-01"]
    assert replay.month_starts(trained, trained, pd.Timestamp("2013-04-20", tz="UTC")) == []


def test_simulated_cursor_moves_the_last_request_by_simulated_time():
    cursor = json.dumps({"after": 41, "last_request": 1.0})
    moved = json.loads(replay.simulated_cursor(cursor, real_now=1000.0, sim_elapsed_s=86400.0))
    assert moved == {"after": 41, "last_request": 1000.0 - 86400.0}
    assert json.loads(replay.simulated_cursor(cursor, 5.0, None))["last_request"] is None
    assert replay.simulated_cursor(None, 5.0, 10.0) is None


def test_only_drift_is_a_reason_with_neither_decay_nor_domain():
    assert replay.only_drift("seasonal_drift")
    assert not replay.only_drift("rmse_vs_holdout+seasonal_drift")
    assert not replay.only_drift("input_domain")
    assert not replay.only_drift("")


def test_arm_rmse_and_weekly_table_score_the_same_rows_and_mark_retrains():
    times = pd.date_range("2013-06-03", periods=14 * 24, freq="h", tz="UTC")
    scored = pd.DataFrame({"valid_at": times, "actual": 70.0})
    scored["loop"] = 71.0
    scored["static"] = 73.0
    scored["monthly"] = 72.0
    scored["persistence"] = 74.0
    scored.loc[5, "monthly"] = float("nan")  # a row one arm lacks is left out for all
    scored.loc[6, "loop"] = 1000.0
    scored.loc[[5, 6], "actual"] = [70.0, float("nan")]
    figures = replay.arm_rmse(scored)
    assert figures == {"loop": 1.0, "static": 3.0, "monthly": 2.0, "persistence": 4.0}
    table = replay.weekly_table(
        scored,
        [pd.Timestamp("2013-06-12")],
        [pd.Timestamp("2013-06-03"), pd.Timestamp("2013-06-04")],
    )
    assert table["week"].tolist() == ["2013-06-03", "2013-06-10"]
    assert table["rows"].tolist() == [168 - 2, 168]
    assert table["loop_retrains"].tolist() == [0, 1]
    assert table["monthly_retrains"].tolist() == [2, 0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--days", "0"], "--days must be at least 1"),
        (["--days", "x"], "invalid int value"),
        (["--start", "not-a-date"], "not a date"),
        (["--bogus"], "unrecognized arguments"),
        (["--days", "999999999"], "--days must be at most"),
        (["--cooldown-days", "nan"], "--cooldown-days must be a number"),
        (["--cooldown-days", "1e308"], "--cooldown-days must be a number from 0 to 36,500"),
        (["--rmse-factor", "nan"], "--rmse-factor must be a number"),
        (["--out", "/etc/hostname"], "is a file"),
        (["--out", ""], "--out is empty"),
        (["--out", "/etc/hostname/replay"], "cannot write there"),
        (["--out", "/proc"], "cannot write there"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(argv, message, capsys):
    assert simulation.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("comfort simulate: error:")


def test_a_source_that_is_not_a_file_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COMFORT_SOURCE", "kma")
    assert simulation.main(["--out", str(tmp_path / "replay")]) == 2
    assert "file-backed source" in capsys.readouterr().err
    assert not (tmp_path / "replay").exists()


def test_an_out_folder_with_an_earlier_replay_is_refused(tmp_path, capsys):
    (tmp_path / "home").mkdir()
    assert simulation.main(["--out", str(tmp_path)]) == 2
    assert "holds an earlier replay" in capsys.readouterr().err
    around = str(tmp_path / "no-such-folder" / ".." / ".")  # the same folder, by another path
    assert simulation.main(["--out", around]) == 2
    assert "holds an earlier replay" in capsys.readouterr().err
    assert not (tmp_path / "home" / "dagster").exists()


def test_the_replays_instance_starts_no_log_capture_processes(tmp_path, monkeypatch):
    """Dagster's local capture starts `tail` and an orphan watcher for a run, and they take
    the terminal's Ctrl-C with the replay (each printed a traceback); the replay keeps none."""
    monkeypatch.setattr(os, "environ", {**os.environ})
    simulation._environment(simulation._options(["--out", str(tmp_path / "replay")]))
    with dg.DagsterInstance.from_config(os.environ["DAGSTER_HOME"]) as instance:
        assert type(instance.compute_log_manager).__name__ == "NoOpComputeLogManager"


def test_a_date_mistake_leaves_no_folder_behind(tmp_path, monkeypatch, capsys):
    """The dates are judged before --out, its home, or a default folder is created."""
    monkeypatch.setattr(os, "environ", {**os.environ})  # restored, should a replay start
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where mkdtemp creates
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "replay"
    argv = ["--out", str(out), "--train-end", "2013-06-01", "--start", "2013-05-01"]
    assert simulation.main(argv) == 2
    assert simulation.main(["--start", "2014-02-01"]) == 2  # no --out: a temporary folder
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("--train-end ≤ --start" in line for line in err)
    assert not out.exists() and not any((tmp_path / "tmp").iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train-end", "2013-01-10"], "--train-end 2013-01-10 leaves too little data to train"),
        (["--train-end", "2012-12-01"], "the weather starts 2013-01-01"),
        (["--holdout-days", "60", "--validation-days", "40"], "2013-04-01 (the default) leaves"),
        (["--train-end", "2014-01-15"], "2013-12-31, the weather's last day"),
        (["--start", "2014-02-01"], "2013-12-31, the weather's last day"),
    ],
)
def test_dates_the_weather_cannot_train_or_replay_are_refused_before_the_replay_starts(
    argv, message, tmp_path, monkeypatch, capsys
):
    """Too little weather before --train-end for its holdout, validation and training, or a
    date past the weather's end: one line before the replay's home, its ingestion and its
    first training (they took minutes before a too early --train-end was found)."""

    def started(options: simulation.Options) -> None:
        raise AssertionError("the replay started")

    monkeypatch.setattr(simulation, "_environment", started)
    out = tmp_path / "replay"
    assert simulation.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("comfort simulate: error:")
    assert not out.exists()


def test_the_shortest_training_window_holds_a_row_whatever_hour_the_weather_starts(tmp_path):
    """MIN_TRAINING_DAYS is the features' history and the horizon counted from the latest hour
    a first day can start at: weather from 23:00 on has a training row in that many days and
    none in one fewer (the training's blocking check refuses an empty split); `--train-end`
    must leave them before the holdout and validation days."""
    first = pd.Timestamp("2013-01-01 23:00", tz="UTC")
    hours = pd.date_range(first, periods=40 * 24, freq="h")
    clean = pd.DataFrame({"station": "X", "time_utc": hours, "temp_c": 25.0, "humidity_pct": 60.0})
    features = build_features(clean, simulation.HORIZON)

    def training_rows(days: int) -> int:
        end = first.floor("D") + pd.Timedelta(days=14 + 14 + days)
        windows = replay.ReplayWindows.ending(end, 14, 14)
        bounds = SplitWindows(windows.train_end, windows.validation_end, windows.holdout_end)
        return len(chronological_split(features, bounds)["training"])

    assert training_rows(simulation.MIN_TRAINING_DAYS) > 0
    assert training_rows(simulation.MIN_TRAINING_DAYS - 1) == 0
    # the bundled weather starts on 2013-01-01: 14 holdout + 14 validation + 6 training days
    out = str(tmp_path / "replay")
    options = simulation._options(["--out", out, "--train-end", "2013-02-04"])
    assert options.train_end == options.start == pd.Timestamp("2013-02-04", tz="UTC")
    with pytest.raises(simulation.UsageError, match="need --train-end ≥ 2013-02-04"):
        simulation._options(["--out", out, "--train-end", "2013-02-03"])


class _Interrupting(dg.ConfigurableIOManager):
    """Ctrl-C at a step's first input or output, as Python raises it or as Dagster does where
    it has taken SIGINT over (``as_dagster``): where in the run it lands is beside the point."""

    as_dagster: bool = False

    def _interrupt(self) -> NoReturn:
        raise dg.DagsterExecutionInterruptedError() if self.as_dagster else KeyboardInterrupt()

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        self._interrupt()

    def load_input(self, context: dg.InputContext) -> object:
        self._interrupt()


class _Failing(dg.ConfigurableIOManager):
    """A step's storage that fails, as a full disk would."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        raise OSError("No space left on device")

    def load_input(self, context: dg.InputContext) -> object:
        raise OSError("No space left on device")


def _replay_one_day(monkeypatch, out, io_manager: dg.ConfigurableIOManager, run: str) -> int:
    """`comfort simulate --days 1` whose day's run (monitoring, or the retrain the sensor
    asks for) is real, with ``io_manager`` as its storage; the ingestion, first training
    and service before the day loop are skipped."""
    from comfort_assets import deployment

    monkeypatch.setattr(os, "environ", {**os.environ})  # _environment's settings, restored
    resources = deployment.resources
    monkeypatch.setattr(deployment, "resources", lambda: {**resources(), "io_manager": io_manager})
    train = simulation.Pipeline.train

    def first_training_skipped(pipeline, end, tags):
        if tags.get("comfort/trigger") == "simulate":
            return "weather-predictor-001", True, "first"
        return train(pipeline, end, tags)

    @contextmanager
    def serve(home):
        yield "http://127.0.0.1:9"

    monkeypatch.setattr(simulation.Pipeline, "train", first_training_skipped)
    monkeypatch.setattr(
        simulation.Pipeline,
        "ingest_range",
        lambda *_: SimpleNamespace(get_asset_check_evaluations=list),
    )
    monkeypatch.setattr(simulation.Pipeline, "observations", lambda _: pd.DataFrame())
    monkeypatch.setattr(simulation, "serve", serve)
    monkeypatch.setattr(simulation, "served_version", lambda _: "weather-predictor-001")
    monkeypatch.setattr(simulation, "request_day", lambda *_: None)
    if run == "retrain":  # monitoring passed, and the sensor asks for a retrain
        monkeypatch.setattr(simulation.Pipeline, "ingest_and_monitor", lambda *_: {})
        request = dg.RunRequest(tags={"comfort/reason": "rmse_vs_holdout"})
        monkeypatch.setattr(
            simulation.Pipeline, "tick", lambda *_: SimpleNamespace(run_requests=[request])
        )
    return simulation.main(["--out", str(out), "--days", "1"])


@pytest.mark.parametrize("as_dagster", [False, True])
@pytest.mark.parametrize("run", ["monitoring", "retrain"])
def test_ctrl_c_in_a_days_dagster_run_stops_the_replay_as_interrupted(
    run, as_dagster, tmp_path, monkeypatch, capsys
):
    """Dagster catches Ctrl-C inside a run and records a failed run: the replay read it as a
    failed day ("monitoring of DAY failed"), or as a failed retrain and went on."""
    interrupting = _Interrupting(as_dagster=as_dagster)
    assert _replay_one_day(monkeypatch, tmp_path / "replay", interrupting, run) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "comfort simulate: interrupted"
    assert not any(line.startswith("[1/1]") for line in err)  # the day did not go on
    assert not [line for line in err if "dagster - ERROR" in line or "Traceback" in line]


def test_a_day_whose_run_fails_ends_the_replay_with_one_line_not_a_traceback(
    tmp_path, monkeypatch, capsys
):
    assert _replay_one_day(monkeypatch, tmp_path / "replay", _Failing(), "monitoring") == 1
    err = capsys.readouterr().err.splitlines()
    assert re.fullmatch(
        r"comfort simulate: failed: monitoring of 2013-04-01 failed "
        r"\((\w+: OSError: No space left on device; )+run [0-9a-f]{8}\)",
        err[-1],
    ), err[-1]
    assert not [line for line in err if "dagster - ERROR" in line or "Traceback" in line]


@pytest.mark.slow
def test_a_shortened_replay_closes_the_loop(tmp_path):
    """A champion trained on January–March first serves in June (decay injected by the two
    months it missed): the checks fail on day one, the sensor asks for a retrain with its
    reason, a version is registered and promoted, and the service serves it the next day."""
    out = tmp_path / "replay"
    with webhook_server() as webhook:
        # the team's webhook is not the replay's: only --webhook gets its alerts
        env = {**os.environ, "COMFORT_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/the-team"}
        for name in ("COMFORT_HOME", "DAGSTER_HOME", "COMFORT_SOURCE", "COMFORT_PREDICTION_DB_URL"):
            env.pop(name, None)
        argv = ["--train-end", "2013-04-01", "--start", "2013-06-01", "--days", "2"]
        argv += ["--webhook", webhook.url]
        done = subprocess.run(
            [sys.executable, "-m", "comfort_assets.simulation", *argv, "--out", str(out)],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["days"] == 2 and summary["monthly_retrains"] == 2 and summary["seconds"] > 0
    for key in ("loop_rmse", "static_rmse", "monthly_rmse", "persistence_rmse"):
        assert 0 < summary[key] < 10
    assert "[1/2] 2013-06-01" in done.stderr  # progress

    # the decay check failed, and the sensor asked for one retrain, saying why
    (event,) = json.loads((out / "events.json").read_text())
    assert event["day"] == "2013-06-01"
    assert {"rmse_vs_holdout", "skill_vs_persistence", "input_domain"} & set(
        event["reason"].split("+")
    )
    home = out / "home"
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    asset, name = event["check"].split(":")
    check = dg.AssetCheckKey(dg.AssetKey(asset), name)
    history = instance.event_log_storage.get_asset_check_execution_history(check, limit=10)
    evaluations = [
        r.evaluation for r in history if isinstance(r.evaluation, dg.AssetCheckEvaluation)
    ]
    assert not evaluations[-1].passed  # day one (the newest come first)
    (run,) = instance.get_runs(dg.RunsFilter(tags={"comfort/trigger": "monitoring"}))
    assert run.tags["comfort/reason"] == event["reason"] and run.status.value == "SUCCESS"

    # registered, the promotion decided (and won), the new champion served from the next day
    registry = registry_at(home)
    assert registry.versions() == ["weather-predictor-001", "weather-predictor-002"]
    assert event["version"] == "weather-predictor-002" and event["promoted"] is True
    assert event["decision"] and registry.champion() == "weather-predictor-002"
    assert summary["final_version"] == "weather-predictor-002"
    store = PredictionStore(url=f"sqlite:///{home / 'predictions.db'}")
    from comfort_assets.resources.prediction_log import read_valid_between

    logged = read_valid_between(
        store, pd.Timestamp("2013-06-01", tz="UTC"), pd.Timestamp("2013-06-03", tz="UTC")
    )
    day = logged["valid_at"].dt.strftime("%Y-%m-%d")
    assert set(logged.loc[day == "2013-06-01", "model_version"]) == {"weather-predictor-001"}
    assert set(logged.loc[day > "2013-06-01", "model_version"]) == {"weather-predictor-002"}

    # every forecast has its actual, and people were told
    assert summary["predictions"] == len(logged) > 100
    assert summary["predictions_with_actuals"] == summary["predictions"]
    assert any("retrain" in text for text in webhook.texts)
    assert (out / "weekly_rmse.png").stat().st_size > 1000
    assert "Weekly RMSE" in (out / "report.md").read_text()


def test_a_replay_keeps_its_alerts_off_the_real_webhook(tmp_path, monkeypatch):
    webhook = {"COMFORT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x"}
    monkeypatch.setattr(os, "environ", {**os.environ, **webhook})  # restored after the test
    simulation._environment(simulation._options(["--out", str(tmp_path / "replay")]))
    assert "COMFORT_SLACK_WEBHOOK_URL" not in os.environ
    assert os.environ["COMFORT_HOME"] == str(tmp_path / "replay" / "home")
    own = "http://127.0.0.1:8999/replay-alerts"
    simulation._environment(simulation._options(["--out", str(tmp_path / "r2"), "--webhook", own]))
    assert os.environ["COMFORT_SLACK_WEBHOOK_URL"] == own


def test_days_with_no_weather_to_score_are_one_failure_line(bundled_clean, tmp_path):
    """A replay of days whose weather never came (the bundled year's last day) used to end
    in a NaT traceback after the whole run."""
    served = pd.DataFrame(
        {
            "station": ["JFK"],
            "valid_at": [pd.Timestamp("2014-06-01T03:00Z")],  # no weather that day
            "prediction": [70.0],
            "model_version": ["weather-predictor-001"],
        }
    )
    options = simulation._options(["--days", "1", "--out", str(tmp_path / "replay")])
    with pytest.raises(simulation.ReplayFailed, match="no served forecast has an actual"):
        simulation.score_arms(
            served, bundled_clean.clean, None, pd.Timestamp("2013-04-01"), options
        )
