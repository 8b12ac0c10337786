"""Materialization metadata people read in the Dagster UI."""

from pathlib import Path

import dagster as dg
import pandas as pd

from comfort_assets.metadata import markdown_table, percent, rmse_value, table_metadata


def test_table_metadata_carries_the_column_schema_and_an_integer_row_count():
    frame = pd.DataFrame(
        {
            "station": ["JFK", "LGA"],
            "time_utc": pd.to_datetime(["2013-07-01T00:00Z", "2013-07-01T01:00Z"]),
            "temp_c": [25.0, 26.5],
        }
    )
    metadata = table_metadata(frame)
    columns = metadata["dagster/column_schema"].schema.columns
    assert [c.name for c in columns] == ["station", "time_utc", "temp_c"]
    types = {c.name: c.type for c in columns}
    assert types["temp_c"] == "float64"
    assert types["time_utc"].startswith("datetime64") and types["time_utc"].endswith("UTC]")
    assert metadata["dagster/row_count"].value == 2
    assert isinstance(metadata["dagster/row_count"].value, int)
    assert metadata["stations"].value == "JFK, LGA"


def test_scores_read_as_people_write_them():
    assert rmse_value(2.1461863829854497).value == 2.1462
    assert percent(0.31321).value == "31.3 %"


def test_a_new_instance_is_offline_and_opens_without_the_onboarding_popup(tmp_path, monkeypatch):
    import yaml

    from comfort_assets import cli_runs

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    cli_runs.instance()
    settings = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
    assert settings["telemetry"] == {"enabled": False} and settings["nux"] == {"enabled": False}
    # the event log is Dagster's SQLite one with open connections, in Dagster's usual place
    assert settings["event_log_storage"]["class"] == "LocalEventLogStorage"
    storage = dg.DagsterInstance.from_config(str(tmp_path)).event_log_storage
    assert type(storage).__name__ == "LocalEventLogStorage"
    assert Path(storage._base_dir) == tmp_path / "history" / "runs"


def test_a_markdown_table_shows_text_cells_as_text():
    frame = pd.DataFrame(
        {"station": ["<img src=x onerror=alert(1)>", "A|B", "서울"], "rmse": [1.0] * 3}
    )
    text = markdown_table(frame).value
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "<img" not in text
    assert "A\\|B" in text and "서울" in text and "1.0000" in text
