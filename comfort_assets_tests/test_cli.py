"""The `comfort` CLI: one-line user mistakes, a fast `comfort models`, and runs that land on
the Dagster instance under their job with their tags."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from comfort_assets import cli, cli_runs
from comfort_assets.cli_models import format_models, list_models
from comfort_assets.domain.modeling import ForecastModel
from comfort_assets.resources.registry import ModelRegistry


def _card(version: str, rmse: float, **extra) -> dict:
    return {
        "version": version,
        "model_choice": "xgboost-seed0",
        "horizon_h": 3,
        "registered_at": "2026-11-25T04:00:00+00:00",
        "metrics": {
            "holdout_rmse": rmse,
            "persistence_rmse": 3.0,
            "skill_vs_persistence": 1 - rmse / 3,
        },
        **extra,
    }


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry with a champion (001), a rejected challenger (002) and an ensemble (003),
    written in the registry's layout; Dagster's home is set but not created."""
    monkeypatch.setenv("COMFORT_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("COMFORT_ENV", "local")
    models = tmp_path / "store" / "models"
    cards = [
        _card("weather-predictor-001", 2.1, promotion={"promoted": True, "reason": "first"}),
        _card(
            "weather-predictor-002",
            2.2,
            promotion={
                "promoted": False,
                "reason": "RMSE 2.200 does not beat the champion's 2.100",
            },
        ),
        _card(
            "weather-predictor-003",
            2.15,
            model_choice="ensemble",
            members=["ridge-seed0", {"name": "xgboost-seed1"}],
        ),
    ]
    for card in cards:
        (models / card["version"]).mkdir(parents=True)
        model = card["version"].encode()  # the files' bytes stand in for a model
        (models / card["version"] / "member-0.ubj").write_bytes(model)
        card["sha256"] = {"member-0.ubj": hashlib.sha256(model).hexdigest()}
        (models / card["version"] / "card.json").write_text(json.dumps(card))
    pointer = {"version": "weather-predictor-001", "history": [], "reason": "first"}
    (models / "champion.json").write_text(json.dumps(pointer))
    return tmp_path


def test_models_marks_the_champion_rejections_and_members(home, capsys):
    assert cli.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in lines}
    assert rows["weather-predictor-001"].startswith("* ")
    assert (
        "rejected: RMSE 2.200 does not beat the champion's 2.100" in rows["weather-predictor-002"]
    )
    assert not rows["weather-predictor-002"].startswith("*")
    assert "members: ridge-seed0, xgboost-seed1" in rows["weather-predictor-003"]
    assert "30.0%" in rows["weather-predictor-001"]  # skill 1 - 2.1 / 3


def test_models_json_carries_the_promotion_decision(home, capsys):
    assert cli.main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["champion"] for r in rows] == [True, False, False]
    assert rows[1]["promoted"] is False and rows[2]["members"] == ["ridge-seed0", "xgboost-seed1"]


def test_models_on_an_empty_home_says_what_to_do(tmp_path):
    assert "comfort run" in format_models(list_models(_EmptyStore()))


class _EmptyStore:
    def list_keys(self, prefix: str) -> list[str]:
        return []

    def get_bytes(self, key: str) -> bytes:
        raise FileNotFoundError(key)

    def exists(self, key: str) -> bool:
        return False


def test_models_starts_without_dagster_or_xgboost(home):
    code = (
        "import sys; from comfort_assets.cli import main; main(['models']); "
        "print(sorted(m for m in ('dagster', 'xgboost', 'sklearn') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "weather-predictor-001" in completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_the_command_exits_quickly_with_its_output_and_code(home):
    """`comfort` skips the interpreter's module teardown: its output still arrives whole,
    through a pipe, and a user mistake still exits 2 with its one line."""
    command = [sys.executable, "-m", "comfort_assets.cli"]
    listed = subprocess.run(
        [*command, "models", "--json"], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0
    versions = [row["version"] for row in json.loads(listed.stdout)]
    assert versions == [f"weather-predictor-00{n}" for n in (1, 2, 3)]
    mistake = subprocess.run(
        [*command, "promote", "weather-predictor-999"], capture_output=True, text=True, timeout=60
    )
    assert mistake.returncode == 2 and mistake.stdout == ""
    assert mistake.stderr == "comfort: error: no registered model 'weather-predictor-999'\n"


MISTAKES = {
    "no command": [],
    "unknown command": ["deploy"],
    "unknown option": ["run", "--fast"],
    "train without a seed": ["train"],
    "non-integer seed": ["train", "--random-state", "one"],
    "negative seed": ["train", "--random-state", "-1"],
    "unknown family": ["train", "--random-state", "1", "--family", "lstm"],
    "negative n-trials": ["tune", "--n-trials", "-3"],
    "zero n-trials": ["tune", "--n-trials", "0"],
    "n-trials for a grid": ["tune", "--search-type", "grid", "--n-trials", "5"],
    "unknown search type": ["tune", "--search-type", "bayesian"],
    "non-integer tuning seed": ["tune", "--random-state", "1.5"],
    "unknown version": ["promote", "weather-predictor-042"],
    "not a version name": ["promote", "latest"],
    "rollback to an unknown version": ["rollback", "weather-predictor-042"],
    "rollback to the champion": ["rollback", "weather-predictor-001"],
    "promote the champion": ["promote", "weather-predictor-001"],
    "seed above 32 bits": ["train", "--random-state", "4294967296"],
    "tuning seed above 32 bits": ["tune", "--random-state", "99999999999999999999999"],
}


@pytest.mark.parametrize("argv", MISTAKES.values(), ids=MISTAKES.keys())
def test_a_user_mistake_is_one_line_exit_2_and_no_run(home, capsys, argv):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("comfort: error: ")
    assert "Traceback" not in captured.err
    # found before anything started: no Dagster instance, no W&B run, champion untouched
    assert not (home / "dagster").exists()
    assert not (home / "wandb").exists()
    pointer = json.loads((home / "store" / "models" / "champion.json").read_text())
    assert pointer["version"] == "weather-predictor-001"


SETTING_MISTAKES = {
    "unknown environment": ({"COMFORT_ENV": "prod"}, "COMFORT_ENV"),
    "production without a bucket": (
        {"COMFORT_ENV": "production", "KMA_SERVICE_KEY": "k"},
        "COMFORT_S3_BUCKET",
    ),
    "KMA without a key": ({"COMFORT_SOURCE": "kma"}, "KMA_SERVICE_KEY"),
    "unknown source": ({"COMFORT_SOURCE": "csv"}, "COMFORT_SOURCE"),
    "missing weather file": (
        {"COMFORT_SOURCE": "file", "COMFORT_WEATHER_FILE": "/no/such/weather.csv"},
        "COMFORT_WEATHER_FILE",
    ),
    "KMA station names": (
        {"COMFORT_SOURCE": "kma", "KMA_SERVICE_KEY": "k", "COMFORT_KMA_STATIONS": "seoul"},
        "COMFORT_KMA_STATIONS",
    ),
    "not a date": (
        {"COMFORT_SOURCE": "open-meteo", "COMFORT_START_DATE": "2024-13-01"},
        "COMFORT_START_DATE",
    ),
    "no cooldown": ({"COMFORT_RETRAIN_COOLDOWN_HOURS": "nan"}, "COMFORT_RETRAIN_COOLDOWN_HOURS"),
    "negative cooldown": (
        {"COMFORT_RETRAIN_COOLDOWN_HOURS": "-5"},
        "COMFORT_RETRAIN_COOLDOWN_HOURS",
    ),
    "start after end": (
        {
            "COMFORT_SOURCE": "open-meteo",
            "COMFORT_START_DATE": "2025-01-01",
            "COMFORT_END_DATE": "2024-01-01",
        },
        "COMFORT_START_DATE",
    ),
    "start in the future": (
        {"COMFORT_SOURCE": "open-meteo", "COMFORT_START_DATE": "2099-01-01"},
        "COMFORT_START_DATE",
    ),
    "no serving workers": ({"COMFORT_SERVING_WORKERS": "0"}, "COMFORT_SERVING_WORKERS"),
    "webhook not a URL": ({"COMFORT_SLACK_WEBHOOK_URL": "not-a-url"}, "COMFORT_SLACK_WEBHOOK_URL"),
    "webhook not http": (
        {"COMFORT_SLACK_WEBHOOK_URL": "ftp://127.0.0.1/services/T0/B0/SECRET"},
        "COMFORT_SLACK_WEBHOOK_URL",
    ),
    "webhook with a space": (
        {"COMFORT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/SECRET TOKEN"},
        "COMFORT_SLACK_WEBHOOK_URL",
    ),
    "prediction database not a URL": (
        {"COMFORT_PREDICTION_DB_URL": "garbage"},
        "COMFORT_PREDICTION_DB_URL",
    ),
    "prediction database not supported": (
        {"COMFORT_PREDICTION_DB_URL": "mysql://comfort:SECRET@db/comfort"},
        "COMFORT_PREDICTION_DB_URL",
    ),
    "Open-Meteo not a URL": (
        {"COMFORT_SOURCE": "open-meteo", "COMFORT_OPEN_METEO_URL": "notaurl"},
        "COMFORT_OPEN_METEO_URL",
    ),
    "negative KMA station": (
        {"COMFORT_SOURCE": "kma", "KMA_SERVICE_KEY": "k", "COMFORT_KMA_STATIONS": "-5"},
        "COMFORT_KMA_STATIONS",
    ),
    "blank KMA key": ({"COMFORT_SOURCE": "kma", "KMA_SERVICE_KEY": " "}, "KMA_SERVICE_KEY"),
    "not a bucket name": (
        {"COMFORT_ENV": "production", "COMFORT_S3_BUCKET": "not a bucket!"},
        "COMFORT_S3_BUCKET",
    ),
    "S3 endpoint not a URL": (
        {
            "COMFORT_ENV": "production",
            "COMFORT_S3_BUCKET": "comfort",
            "AWS_ENDPOINT_URL_S3": "minio:9000",
        },
        "AWS_ENDPOINT_URL_S3",
    ),
    "half a serving worker": ({"COMFORT_SERVING_WORKERS": "1.5"}, "COMFORT_SERVING_WORKERS"),
    "negative reload": ({"COMFORT_RELOAD_SECONDS": "-5"}, "COMFORT_RELOAD_SECONDS"),
    "relative Dagster home": ({"DAGSTER_HOME": "relative/dagster"}, "DAGSTER_HOME"),
    "Dagster home is a file": ({"DAGSTER_HOME": "/etc/passwd"}, "DAGSTER_HOME"),
    "BentoML home is a file": ({"BENTOML_HOME": "/etc/passwd"}, "BENTOML_HOME"),
    "Dagster home under a file": ({"DAGSTER_HOME": "/etc/passwd/dagster"}, "DAGSTER_HOME"),
    "BentoML home under a file": ({"BENTOML_HOME": "/etc/passwd/bentoml"}, "BENTOML_HOME"),
    "unknown W&B mode": ({"WANDB_MODE": "bogus"}, "WANDB_MODE"),
    "no KMA station": (
        {"COMFORT_SOURCE": "kma", "KMA_SERVICE_KEY": "k", "COMFORT_KMA_STATIONS": ","},
        "COMFORT_KMA_STATIONS",
    ),
    "a place off the globe": (
        {"COMFORT_SOURCE": "open-meteo", "COMFORT_OPEN_METEO_STATIONS": "A=999:999"},
        "COMFORT_OPEN_METEO_STATIONS",
    ),
    "one name twice": (
        {"COMFORT_SOURCE": "open-meteo", "COMFORT_OPEN_METEO_STATIONS": "A=1:2,A=3:4"},
        "COMFORT_OPEN_METEO_STATIONS",
    ),
}


WEATHER_FILE_MISTAKES = {
    "times without a zone": ("station,time,temp_c,humidity_pct\nA,2021-01-01 00:00,1,50\n", {}),
    "a zone that does not exist": (
        "station,time,temp_c,humidity_pct\nA,2021-01-01 00:00,1,50\n",
        {"COMFORT_WEATHER_TIMEZONE": "Mars/Olympus"},
    ),
    "no temperature": ("station,time_utc,humidity_pct\nA,2021-01-01T00:00Z,50\n", {}),
}


@pytest.mark.parametrize("case", WEATHER_FILE_MISTAKES)
def test_a_weather_file_mistake_is_found_before_the_run(home, tmp_path, capsys, monkeypatch, case):
    """It was a failed `raw_weather` step (exit 1) after the run had started."""
    text, settings = WEATHER_FILE_MISTAKES[case]
    weather = tmp_path / "weather.csv"
    weather.write_text(text)
    for name, value in {
        "COMFORT_SOURCE": "file",
        "COMFORT_WEATHER_FILE": str(weather),
        **settings,
    }.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["run"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "COMFORT_WEATHER_FILE" in lines[0], lines
    assert not (home / "dagster").exists()


@pytest.mark.parametrize("case", SETTING_MISTAKES)
def test_a_setting_mistake_is_one_line_naming_the_variable_and_exit_2(
    home, capsys, monkeypatch, case
):
    settings, variable = SETTING_MISTAKES[case]
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    command = ["models"] if "COMFORT_ENV" in settings else ["train", "--random-state", "1"]
    assert cli.main(command) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("comfort: error: ") and variable in lines[0]
    assert not (home / "dagster").exists()


@pytest.mark.parametrize(
    "settings",
    [{"COMFORT_SERVING_WORKERS": "abc"}, {"DAGSTER_HOME": "relative"}],
    ids=["serving workers", "Dagster home"],
)
def test_moving_the_champion_checks_what_the_bento_build_needs_first(
    home, capsys, monkeypatch, settings
):
    """The pointer moved, then the Bento build failed on the setting: the champion and the
    Bento disagreed, and promoting again was refused as a no-op."""
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    for command in (["promote", "weather-predictor-002"], ["rollback"]):
        assert cli.main(command) == 2
        assert next(iter(settings)) in capsys.readouterr().err
    pointer = json.loads((home / "store" / "models" / "champion.json").read_text())
    assert pointer["version"] == "weather-predictor-001"


class _Built:
    """What `_launch` returns for a Bento build that succeeded (nothing is built here)."""

    success, seconds = True, 0.0

    def materialization(self, asset: str) -> dict:
        return {"bento_tag": "comfort_forecast:test"}


def test_a_damaged_pointer_is_one_line_and_promote_repairs_it(home, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_launch", lambda *a, **k: pytest.fail("nothing may run"))
    pointer = home / "store" / "models" / "champion.json"
    pointer.write_text("{not json")
    assert cli.main(["rollback"]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "comfort promote" in error
    folder = home / "store" / "models" / "weather-predictor-002"
    card = json.loads((folder / "card.json").read_text())
    card["sha256"] = {"member-0.ubj": hashlib.sha256(b"as registered").hexdigest()}
    (folder / "card.json").write_text(json.dumps(card))
    (folder / "member-0.ubj").write_bytes(b"changed after registration")
    assert cli.main(["promote", "weather-predictor-002"]) == 2
    assert "sha256" in capsys.readouterr().err
    assert pointer.read_text() == "{not json"  # a model failing its check is never champion
    (folder / "member-0.ubj").write_bytes(b"as registered")
    monkeypatch.setattr(cli, "_launch", lambda *a, **k: _Built())
    # the files pass their sha256; building a model of them is another test's business
    monkeypatch.setattr(ForecastModel, "from_files", staticmethod(lambda files: object()))
    assert cli.main(["promote", "weather-predictor-002"]) == 0
    assert json.loads(pointer.read_text())["version"] == "weather-predictor-002"


def test_the_error_names_the_bad_value(home, capsys):
    cli.main(["train", "--random-state", "1", "--family", "lstm"])
    error = capsys.readouterr().err
    assert "'lstm'" in error and "ridge" in error and "xgboost" in error
    cli.main(["promote", "weather-predictor-042"])
    assert "weather-predictor-042" in capsys.readouterr().err


def test_nothing_to_roll_back_to(home, capsys):
    assert cli.main(["rollback"]) == 2
    assert capsys.readouterr().err.strip() == (
        "comfort: error: weather-predictor-001 has no previous champion"
    )


def test_a_mistake_from_the_shell_has_no_usage_block(home):
    completed = subprocess.run(
        [sys.executable, "-m", "comfort_assets.cli", "tune", "--search-type", "bayesian"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        "comfort: error: argument --search-type: invalid choice: 'bayesian' "
        "(choose from 'random', 'grid')"
    ]


def test_every_option_has_help():
    top = cli.parser()
    (commands,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"comfort {name} {action.option_strings or action.dest}"
    assert {a.dest for a in commands._choices_actions} == set(commands.choices)


def test_tags_name_the_command_the_user_and_the_options():
    args = cli.parser().parse_args(["train", "--random-state", "3", "--random-state", "4"])
    tags = cli._tags(args)
    assert tags["comfort/command"] == "train"
    assert tags["comfort/random_state"] == "3,4"
    assert tags["comfort/families"] == "ridge,random_forest,xgboost"
    assert tags["comfort/user"]
    args = cli.parser().parse_args(["tune", "--search-type", "grid"])
    assert {k: v for k, v in cli._tags(args).items() if k != "comfort/user"} == {
        "comfort/command": "tune",
        "comfort/random_state": "0",
        "comfort/search_type": "grid",
    }
    args = cli.parser().parse_args(["tune"])
    assert cli._tags(args)["comfort/n_trials"] == "10"
    assert cli._run_config(args)["ops"]["tuned_model"]["config"]["n_trials"] == 10


def test_a_failed_run_is_recorded_under_its_job_and_reported_by_step(tmp_path, monkeypatch, capsys):
    """One day of pipeline_job: the chronological split check must fail (a day has no
    train/validation/holdout), which is a real failure of the run."""
    from comfort_assets.cli_runs import launch
    from comfort_assets.definitions import defs
    from comfort_assets_tests.test_definitions import _resources

    monkeypatch.setenv("COMFORT_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    # storage under tmp_path: the definitions' own resources were fixed at import, and a
    # checkout whose .comfort holds a whole year would let one day's splits succeed
    isolated = dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        resources={**defs.resources, **_resources(tmp_path)},
        executor=defs.executor,
    )
    tags = {"comfort/command": "test", "comfort/user": "tester"}
    outcome = launch(isolated, "pipeline_job", tags, partition_key="2013-07-01", verbose=True)
    assert not outcome.success
    captured = capsys.readouterr()
    assert "✓ raw_weather" in captured.out and "✗ chronological_splits" in captured.out
    assert "RUN_START" not in captured.out and "RUN_START" in captured.err  # --verbose

    assert cli._report_failure(outcome) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("comfort: pipeline_job run ") and "FAILED" in err[0]
    assert any(
        line.startswith("  failed step chronological_splits: DagsterAssetCheckFailedError")
        for line in err
    )
    assert any("holdout_set:chronological" in line for line in err)
    assert "Traceback" not in "\n".join(err)

    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.run_id == outcome.run_id
        assert run.job_name == "pipeline_job"
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert {k: run.tags[k] for k in tags} == tags
        assert run.tags["dagster/partition"] == "2013-07-01"
    log = outcome.log_file.read_text()
    assert outcome.log_file.parent == tmp_path / "logs"
    assert "RUN_START" in log and "STEP_FAILURE" in log


def test_moving_models_in_production_does_not_need_the_weather_services_key(
    home, capsys, monkeypatch, s3_endpoint, s3_bucket
):
    """Only commands that read weather need its settings: a listing or a promotion must
    not fail for want of KMA_SERVICE_KEY."""
    monkeypatch.setenv("COMFORT_ENV", "production")
    monkeypatch.setenv("COMFORT_S3_BUCKET", s3_bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.delenv("KMA_SERVICE_KEY", raising=False)
    assert cli.main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # the bucket's registry is empty
    assert cli.main(["promote", "weather-predictor-007"]) == 2
    error = capsys.readouterr().err
    assert "weather-predictor-007" in error and "KMA_SERVICE_KEY" not in error
    assert cli.main(["train", "--random-state", "1"]) == 2
    assert "KMA_SERVICE_KEY" in capsys.readouterr().err


def test_a_run_ended_by_ctrl_c_is_told_from_a_failed_one():
    """Dagster records Ctrl-C inside a run as a failed run: `comfort run` and the replay
    must end as interrupted (exit 130), not report a failure."""
    from comfort_assets.cli_runs import interrupted

    @dg.asset
    def stopped() -> None:
        raise KeyboardInterrupt

    @dg.asset
    def broken() -> None:
        raise ValueError("a real failure")

    with dg.instance_for_test() as instance:
        ctrl_c = dg.materialize([stopped], instance=instance, raise_on_error=False)
        failure = dg.materialize([broken], instance=instance, raise_on_error=False)
    assert not ctrl_c.success and not failure.success
    assert interrupted(ctrl_c) and not interrupted(failure)


def test_a_setting_the_definitions_need_is_checked_before_the_champion_moves(
    home, capsys, monkeypatch
):
    """`comfort promote` rebuilds the Bento, which imports the definitions: a bad weather
    setting must stop it before the pointer moves, not after, with a traceback."""
    monkeypatch.setenv("COMFORT_SOURCE", "file")
    monkeypatch.setenv("COMFORT_WEATHER_FILE", str(home / "no-such-weather.csv"))
    assert cli.main(["promote", "weather-predictor-003"]) == 2
    error = capsys.readouterr().err.splitlines()
    assert len(error) == 1 and "COMFORT_WEATHER_FILE" in error[0]
    pointer = json.loads((home / "store" / "models" / "champion.json").read_text())
    assert pointer["version"] == "weather-predictor-001"


class _Unreachable(dg.ConfigurableResource):
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        raise ConnectionError("database at 10.0.0.9:5432 refused the connection")


@dg.asset
def _needs_database(database: _Unreachable) -> int:
    return 1


def test_a_run_that_fails_before_any_step_names_its_error():
    """A resource that cannot start fails the run before any step: its error is the line."""
    result = dg.materialize(
        [_needs_database], resources={"database": _Unreachable()}, raise_on_error=False
    )
    (line,) = cli_runs.failures(result)
    assert "ConnectionError: database at 10.0.0.9:5432 refused the connection" in line


@pytest.mark.slow
def test_ctrl_c_during_a_run_is_one_line_and_exit_130(tmp_path):
    """Ctrl-C reaches the whole process group, Dagster's output mirrors too: the user sees
    the steps so far and one line, no helper's traceback."""
    run = subprocess.Popen(
        [sys.executable, "-m", "comfort_assets.cli", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COMFORT_HOME": str(tmp_path)},
        start_new_session=True,
    )
    shown = []
    for line in run.stdout:  # the first step done: helpers are running for the second
        shown.append(line)
        if "raw_weather" in line:
            break
    os.killpg(run.pid, signal.SIGINT)
    rest, errors = run.communicate(timeout=60)
    assert run.returncode == 130
    assert "✓ raw_weather" in "".join(shown)
    assert errors == "comfort: interrupted\n"
    assert "Traceback" not in rest
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        (stopped,) = instance.get_runs()
        assert stopped.status == dg.DagsterRunStatus.CANCELED


def test_a_step_that_yields_nothing_is_not_shown_as_done(tmp_path, monkeypatch, capsys):
    """`champion_model` for a losing challenger succeeds without an output: its line says
    so, and the step after it is shown skipped."""
    from comfort_assets.cli_runs import launch

    monkeypatch.setenv("COMFORT_HOME", str(tmp_path))

    @dg.asset
    def challenger() -> int:
        return 1

    @dg.asset(output_required=False)
    def champion(challenger: int):
        if challenger > 1:  # a losing challenger: nothing to move
            yield dg.Output(challenger)

    @dg.asset
    def rebuilt(champion: int) -> int:
        return champion

    defs = dg.Definitions(
        assets=[challenger, champion, rebuilt],
        jobs=[dg.define_asset_job("promotion_job")],
    )
    outcome = launch(defs, "promotion_job", {"comfort/command": "test"})
    assert outcome.success
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == ["✓", "challenger"] for line in lines)
    assert any(line.split() == ["-", "champion", "no", "output"] for line in lines)
    assert any(line.split() == ["-", "rebuilt", "skipped"] for line in lines)


def test_a_flawed_weather_file_does_not_stand_in_the_way_of_a_rollback(
    home, tmp_path, capsys, monkeypatch
):
    """Moving the champion reads the weather's days, not its columns."""
    weather = tmp_path / "no-humidity.csv"
    weather.write_text("station,time_utc,temp_c\nA,2021-01-01T00:00Z,1\n")
    monkeypatch.setenv("COMFORT_SOURCE", "file")
    monkeypatch.setenv("COMFORT_WEATHER_FILE", str(weather))
    pointer = {"version": "weather-predictor-002", "history": ["weather-predictor-001"]}
    (home / "store" / "models" / "champion.json").write_text(json.dumps(pointer))
    monkeypatch.setattr(cli, "_launch", lambda *a, **k: _Built())
    monkeypatch.setattr(ModelRegistry, "verify", lambda self, version: None)
    assert cli.main(["rollback"]) == 0, capsys.readouterr().err
    assert cli.main(["train", "--random-state", "1"]) == 2  # a run reads the columns
    assert "humidity_pct" in capsys.readouterr().err


def test_models_lists_what_it_can_read_around_damaged_files(home, capsys):
    models = home / "store" / "models"
    (models / "weather-predictor-002" / "card.json").write_text("{not json")
    (models / "scratch").mkdir()
    (models / "scratch" / "card.json").write_text("{}")
    (models / "champion.json").write_text("{}")
    wrong_types = json.loads((models / "weather-predictor-003" / "card.json").read_text())
    wrong_types.update(metrics=None, registered_at=None, promotion="no", members=5)
    (models / "weather-predictor-003" / "card.json").write_text(json.dumps(wrong_types))
    assert cli.main(["models"]) == 0
    captured = capsys.readouterr()
    assert "weather-predictor-001" in captured.out and "weather-predictor-003" in captured.out
    assert "weather-predictor-002" in captured.out and "card.json is unreadable" in captured.out
    assert "scratch" not in captured.out
    assert captured.err.startswith("comfort: warning: ") and "comfort promote" in captured.err


def test_models_warns_when_the_pointer_names_an_unlisted_version(home, capsys):
    pointer = {"version": "weather-predictor-042", "history": [], "reason": "by hand"}
    (home / "store" / "models" / "champion.json").write_text(json.dumps(pointer))
    assert cli.main(["models"]) == 0
    captured = capsys.readouterr()
    assert not any(line.startswith("* weather") for line in captured.out.splitlines())
    assert "'weather-predictor-042', which has no card" in captured.err
    (home / "store" / "models" / "champion.json").write_text(
        json.dumps({**pointer, "version": "weather-predictor-001"})
    )
    assert cli.main(["models"]) == 0 and capsys.readouterr().err == ""
    (home / "store" / "models" / "weather-predictor-001" / "member-0.ubj").write_bytes(b"x")
    assert cli.main(["models"]) == 0
    warning = capsys.readouterr().err
    assert "the champion weather-predictor-001 cannot be loaded (weather-predictor-001/" in warning
    assert "member-0.ubj: sha256" in warning and "does not match the registered" in warning
    (home / "store" / "models" / "weather-predictor-001" / "member-0.ubj").unlink()
    assert cli.main(["models"]) == 0
    assert "(member-0.ubj is missing)" in capsys.readouterr().err


def test_a_champion_promoted_by_hand_after_losing_says_so(home, capsys):
    pointer = {"version": "weather-predictor-002", "history": [], "reason": "promoted by hand"}
    (home / "store" / "models" / "champion.json").write_text(json.dumps(pointer))
    assert cli.main(["models"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "-002" in line]
    assert row.startswith("* ") and "champion: promoted by hand; its evaluation rejected it" in row


def test_a_reader_that_stops_early_gets_no_traceback(home):
    """`comfort models | head -1` on a long listing: the reader is gone before the rest is
    written. A pipe whose reading end is closed fails every write, as after `head`."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        listing = subprocess.run(
            [sys.executable, "-m", "comfort_assets.cli", "models"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COMFORT_HOME": str(home), "COMFORT_ENV": "local"},
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert listing.returncode == 141 and listing.stderr == ""


@pytest.mark.parametrize(
    "case", [case for case, (settings, _) in SETTING_MISTAKES.items() if "SECRET" in str(settings)]
)
def test_a_setting_mistake_never_shows_its_secret(home, capsys, monkeypatch, case):
    """A webhook URL's path and a database URL's password are secrets: the one line naming
    the variable must not carry them to a terminal or a CI log."""
    settings, _ = SETTING_MISTAKES[case]
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["train", "--random-state", "1"]) == 2
    error = capsys.readouterr().err
    assert "SECRET" not in error and "services" not in error, error


@pytest.mark.parametrize("hours", ["abc", "-1", "nan", "inf"])
def test_comfort_run_refuses_a_cooldown_that_is_not_a_finite_number_of_hours(
    home, capsys, monkeypatch, hours
):
    """`comfort run` checks the cooldown before the run starts, not when the sensor reads it."""
    monkeypatch.setattr(cli, "_launch", lambda *a, **k: pytest.fail("nothing may run"))
    monkeypatch.setenv("COMFORT_RETRAIN_COOLDOWN_HOURS", hours)
    assert cli.main(["run"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("comfort: error: COMFORT_RETRAIN_COOLDOWN_HOURS"), error
