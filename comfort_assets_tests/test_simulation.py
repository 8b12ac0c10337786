"""The replayed year: pure helpers, the command line, and a shortened replay in which the
loop closes for real (HTTP forecasts through `bentoml serve`, monitoring, the retrain
sensor, promotion, the service following the new champion, a Slack-compatible webhook)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest

from comfort_assets import simulation
from comfort_assets.domain import replay
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
        (["--rmse-factor", "nan"], "--rmse-factor must be a number"),
        (["--out", "/etc/hostname"], "is a file"),
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
    assert not (tmp_path / "home" / "dagster").exists()


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
