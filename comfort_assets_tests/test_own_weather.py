"""Bring your own weather: a file for any year, units and times that cannot slip.

Every wrong unit and a naive time fail by name (station, column, likely cause); a file for
another year gets its own partitions and splits; two very different climates run end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from comfort_assets import deployment
from comfort_assets.defs.ingestion import assets as ingestion
from comfort_assets.domain.features import build_features
from comfort_assets.domain.partitions import DataOutsidePartitionsError, DaySpan, check_overlap
from comfort_assets.domain.splits import SplitWindows, chronological_split, resolve_windows
from comfort_assets.domain.times import TimeZoneError
from comfort_assets.domain.units import parse_declarations
from comfort_assets.domain.units_check import judge_units
from comfort_assets.examples.make_weather_csv import derive_stations
from comfort_assets.examples.make_weather_csv import main as make_weather_csv
from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.resources.weather import (
    BundledWeatherSource,
    FileWeatherSource,
    SourceSchemaError,
    file_span,
)

DAY = (pd.Timestamp("2021-07-01", tz="UTC"), pd.Timestamp("2021-07-02", tz="UTC"))


@pytest.fixture(scope="module")
def two_stations(bundled_raw) -> pd.DataFrame:
    """HUMID (hot, humid) and COAST (cold, windy) for 2021, SI, times in UTC."""
    return derive_stations(bundled_raw, 2021)


def _source(tmp_path, frame: pd.DataFrame, **options) -> FileWeatherSource:
    path = tmp_path / "weather.csv"
    frame.to_csv(path, index=False)
    return FileWeatherSource(path=str(path), **options)


def _errors(frame: pd.DataFrame) -> list[str]:
    return [f.message() for f in judge_units(frame) if f.severity == "error"]


def _as_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(time_utc=pd.to_datetime(frame["time_utc"], utc=True))


# --- units: judged per station and column -------------------------------------------------


def test_the_generated_climates_pass_the_unit_judgement(two_stations):
    assert judge_units(_as_numbers(two_stations)) == []


def test_humidity_as_a_fraction_is_named(two_stations):
    frame = two_stations.copy()
    coast = frame["station"] == "COAST"
    frame.loc[coast, "humidity_pct"] /= 100
    (message,) = _errors(frame)
    assert "station COAST" in message and "humidity_pct" in message
    assert "fraction" in message and "≤ 1.5" in message


def test_humidity_as_a_fraction_is_named_despite_a_sentinel_or_a_stray_percent(two_stations):
    coast = two_stations["station"] == "COAST"
    for strays in ([999.0, 999.0], [100.0]):
        frame = two_stations.copy()
        frame.loc[coast, "humidity_pct"] /= 100
        hours = frame.index[coast][100 : 100 + len(strays)]
        frame.loc[hours, "humidity_pct"] = strays
        (message,) = _errors(frame)
        assert "station COAST, column humidity_pct" in message and "fraction" in message


def test_a_percent_station_with_a_few_very_dry_hours_is_not_a_fraction(two_stations):
    frame = two_stations.copy()
    dry = frame.index[frame["station"] == "HUMID"][:200]  # 2 % of the year at 0.5–1.5 %
    frame.loc[dry, "humidity_pct"] = np.linspace(0.5, 1.5, len(dry))
    assert judge_units(_as_numbers(frame)) == []


def test_humidity_read_as_a_fraction_by_the_same_rule_feeds_the_temperature_judgement(
    two_stations,
):
    """With one 999 among the fractions, °F is still judged on humidity in percent."""
    frame = two_stations.drop(columns="dewpoint_c")
    coast = frame["station"] == "COAST"
    frame.loc[coast, "temp_c"] = (frame.loc[coast, "temp_c"] - 3) * 9 / 5 + 32
    frame.loc[coast, "humidity_pct"] /= 100
    frame.loc[frame.index[coast][0], "humidity_pct"] = 999.0
    columns = sorted(m.split(":")[0] for m in _errors(frame))
    assert columns == ["station COAST, column humidity_pct", "station COAST, column temp_c"]


def test_wind_in_kmh_is_an_error_and_knots_a_warning(two_stations):
    frame = two_stations.copy()
    frame.loc[frame["station"] == "HUMID", "wind_speed_ms"] *= 3.6
    (message,) = _errors(frame)
    assert "station HUMID, column wind_speed_ms" in message and "km/h" in message
    knots = two_stations.copy()
    knots.loc[knots["station"] == "COAST", "wind_speed_ms"] /= 0.514444
    findings = judge_units(knots)
    assert [(f.station, f.column, f.severity) for f in findings] == [
        ("COAST", "wind_speed_ms", "warning")
    ]
    assert "knots" in findings[0].likely_unit


def test_a_cold_station_in_fahrenheit_is_named_although_most_values_look_like_celsius(
    two_stations,
):
    frame = two_stations.copy()
    coast = frame["station"] == "COAST"
    # colder still: no hour above the record, so only the humid-heat evidence can tell
    frame.loc[coast, "temp_c"] = (frame.loc[coast, "temp_c"] - 3) * 9 / 5 + 32
    values = frame.loc[coast, "temp_c"].dropna()
    assert values.max() < 57 and values.between(-60, 60).all()
    (message,) = _errors(frame)
    assert "station COAST, column temp_c" in message and "°F" in message
    assert "wet-bulb" in message and "no sub-zero value" in message


def _winter(frame: pd.DataFrame) -> pd.DataFrame:
    """January and February only: no summer hour that °F would push above the record."""
    months = pd.to_datetime(frame["time_utc"], utc=True).dt.month
    return frame.loc[months.isin([1, 2])].reset_index(drop=True)


def test_a_cold_winter_in_fahrenheit_is_named_by_its_dew_point_and_humidity(two_stations):
    winter = _winter(two_stations)
    coast = winter["station"] == "COAST"
    in_f = winter.copy()
    both = ["temp_c", "dewpoint_c"]
    in_f.loc[coast, both] = in_f.loc[coast, both] * 1.8 + 32
    values = in_f.loc[coast, "temp_c"]
    assert values.min() > 8 and values.max() < 41  # every value a plausible °C
    (message,) = _errors(in_f)
    assert "station COAST, column temp_c" in message and "read as °F" in message
    assert "declare temp_c=degF, dewpoint_c=degF" in message
    # only the temperature in °F: the dew point still tells
    temp_only = winter.copy()
    temp_only.loc[coast, "temp_c"] = temp_only.loc[coast, "temp_c"] * 1.8 + 32
    (message,) = _errors(temp_only)
    assert "station COAST, column temp_c" in message and "declare temp_c=degF or" in message
    # the README's limit: without a dew point a winter in °F looks like a warm °C climate
    assert _errors(in_f.drop(columns="dewpoint_c")) == []


def test_real_celsius_data_stays_quiet_whole_and_in_winter(bundled_raw, two_stations):
    for frame in (bundled_raw, _winter(bundled_raw), _as_numbers(_winter(two_stations))):
        assert judge_units(frame) == []


def test_pressure_in_kpa_and_at_station_level_are_named(two_stations):
    frame = two_stations.copy()
    frame.loc[frame["station"] == "HUMID", "pressure_hpa"] /= 10
    frame.loc[frame["station"] == "COAST", "pressure_hpa"] -= 110
    messages = _errors(frame)
    assert any("HUMID" in m and "kPa" in m for m in messages)
    assert any("COAST" in m and "station-level" in m for m in messages)


def test_declared_units_are_converted_not_rejected(tmp_path, two_stations):
    frame = two_stations.copy()
    frame["temp_c"] = frame["temp_c"] * 9 / 5 + 32
    frame["humidity_pct"] /= 100
    frame["wind_speed_ms"] *= 3.6
    frame["pressure_hpa"] /= 10
    units = parse_declarations(
        "temp_c=degF, humidity_pct=fraction, wind_speed_ms=km/h, pressure_hpa=kPa"
    )
    raw = _source(tmp_path, frame, units=units).whole()
    assert judge_units(raw) == []
    expected = _as_numbers(two_stations)
    assert np.allclose(raw["temp_c"], expected["temp_c"], equal_nan=True)
    assert np.allclose(raw["wind_speed_ms"], expected["wind_speed_ms"], equal_nan=True)
    with pytest.raises(ValueError, match="unit 'furlongs' for wind_speed_ms is unknown"):
        parse_declarations("wind_speed_ms=furlongs")


# --- times: a zone or a clear error -------------------------------------------------------


def test_a_naive_time_file_is_refused_by_station_and_column(tmp_path, two_stations):
    frame = two_stations.copy()
    frame["time_utc"] = frame["time_utc"].str.replace("Z", "")
    with pytest.raises(TimeZoneError, match=r"station\(s\) COAST, HUMID, column time_utc.*no zone"):
        _source(tmp_path, frame).fetch(*DAY)


def test_a_declared_zone_places_local_times_and_24_00_is_the_next_midnight(tmp_path):
    frame = pd.DataFrame(
        {
            "station": "SEOUL",
            "time": ["2021-07-01 09:00", "2021-07-01 24:00"],
            "temp_c": [25.0, 24.0],
            "humidity_pct": [70.0, 75.0],
        }
    )
    raw = _source(tmp_path, frame, timezone="Asia/Seoul").fetch(*DAY)
    assert raw["time_utc"].tolist() == [
        pd.Timestamp("2021-07-01T00:00Z"),
        pd.Timestamp("2021-07-01T15:00Z"),
    ]
    with pytest.raises(TimeZoneError, match="not an IANA zone"):
        _source(tmp_path, frame, timezone="KST").fetch(*DAY)


# --- file formats: one line with the fix --------------------------------------------------

HEADER = "station,time_utc,temp_c,humidity_pct\n"


def _settings_error(monkeypatch, path) -> str:
    """The message `comfort run`'s up-front settings check prints (exit 2)."""
    monkeypatch.setenv("COMFORT_SOURCE", "file")
    monkeypatch.setenv("COMFORT_WEATHER_FILE", str(path))
    with pytest.raises(deployment.SettingError) as raised:
        deployment.check_weather_settings(key=False)
    message = str(raised.value)
    assert message.startswith(f"COMFORT_WEATHER_FILE {path}: ") and "\n" not in message
    return message


@pytest.mark.parametrize(
    "text",
    [
        "지점,일시,기온(°C),습도(%)\n108,2021-07-01 00:00,25.1,80\n",  # the portal's header
        HEADER + "서울,2021-07-01T00:00Z,25.1,80\n",  # Korean station names only
    ],
)
def test_a_cp949_export_is_one_line_with_the_iconv_fix(tmp_path, monkeypatch, text):
    path = tmp_path / "kma.csv"
    path.write_bytes(text.encode("cp949"))
    expected = (
        "kma.csv: not UTF-8 text (a KMA portal export is CP949: re-save it as UTF-8, "
        "e.g. `iconv -f cp949 -t utf-8 in.csv > out.csv`)"
    )
    assert _settings_error(monkeypatch, path).endswith(expected)  # whole: not cut short
    with pytest.raises(SourceSchemaError, match="not UTF-8 text"):
        FileWeatherSource(path=str(path)).read()


def test_a_semicolon_file_is_told_to_use_commas(tmp_path, monkeypatch):
    path = tmp_path / "excel.csv"
    path.write_text(HEADER.replace(",", ";") + "A;2021-07-01T00:00Z;25,1;80\n" * 2)
    message = "the separator looks like ';': columns must be separated by commas"
    assert _settings_error(monkeypatch, path).endswith(message)
    with pytest.raises(SourceSchemaError, match=message):
        FileWeatherSource(path=str(path)).read()


@pytest.mark.parametrize("time", ["07/01/2021 00:00", "44378.0"])
def test_excel_times_are_one_line_quoting_a_value_without_a_pandas_warning(
    tmp_path, monkeypatch, time
):
    path = tmp_path / "excel.csv"
    path.write_text(HEADER + f"A,{time},25.1,80\n")
    expected = (
        "times must be ISO 8601 with a zone (e.g. 2021-07-01T00:00:00Z); "
        f"column time_utc has {time!r}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' "Could not infer format" went to stderr
        assert _settings_error(monkeypatch, path).endswith(expected)


# --- partitions and splits from the data --------------------------------------------------


def test_partitions_come_from_the_file_first_and_last_day(tmp_path, two_stations, monkeypatch):
    path = tmp_path / "weather.csv"
    two_stations.to_csv(path, index=False)
    assert file_span(str(path)) == DaySpan(date(2021, 1, 1), date(2021, 12, 31))
    monkeypatch.setenv("COMFORT_SOURCE", "file")
    monkeypatch.setenv("COMFORT_WEATHER_FILE", str(path))
    keys = deployment.weather_partitions().get_partition_keys()
    assert (keys[0], keys[-1], len(keys)) == ("2021-01-01", "2021-12-31", 365)
    assert isinstance(deployment.weather_source(), FileWeatherSource)


def test_the_bundled_year_has_365_partitions_and_its_reference_split():
    assert BundledWeatherSource().span() == DaySpan(date(2013, 1, 1), date(2013, 12, 31))
    assert len(ingestion.WEATHER_PARTITIONS.get_partition_keys()) == 365
    windows, chosen = resolve_windows(pd.DataFrame(), preset="auto", source_preset="reference-2013")
    assert chosen == "reference-2013"
    assert windows == SplitWindows.from_dates("2013-09-01", "2013-10-01")


def test_a_2021_file_gets_a_relative_split_in_2021(bundled_clean, two_stations):
    from comfort_assets.domain.cleaning import clean_observations

    clean = clean_observations(_as_numbers(two_stations).assign(parse_error="")).clean
    features = build_features(clean, 3)
    windows, chosen = resolve_windows(features, preset="auto", source_preset=None)
    assert chosen.startswith("relative")
    assert windows.train_end == pd.Timestamp("2021-09-02", tz="UTC")
    assert windows.validation_end == pd.Timestamp("2021-10-02", tz="UTC")
    splits = chronological_split(features, windows)
    assert windows.problems(splits) == []
    assert set(splits["holdout"]["station"]) == {"HUMID", "COAST"}
    # the same rule on the bundled year lands on the reference dates
    bundled, _ = resolve_windows(
        build_features(bundled_clean.clean, 3), preset="relative", source_preset=None
    )
    assert bundled == SplitWindows.from_dates("2013-09-01", "2013-10-01")


def test_explicit_dates_win_and_a_short_span_is_a_clear_error():
    features = pd.DataFrame(
        {
            "time_utc": pd.date_range("2021-01-01", periods=24 * 40, freq="h", tz="UTC"),
        }
    ).assign(valid_at_utc=lambda f: f["time_utc"] + pd.Timedelta(hours=3))
    windows, chosen = resolve_windows(
        features,
        preset="auto",
        source_preset=None,
        train_end="2021-01-20",
        validation_end="2021-01-30",
    )
    assert chosen == "dates" and windows.train_end == pd.Timestamp("2021-01-20", tz="UTC")
    with pytest.raises(ValueError, match=r"spans 40 days \(2021-01-01 … 2021-02-09\): too short"):
        resolve_windows(features, preset="relative", source_preset=None)


def test_data_outside_every_partition_names_both_spans():
    with pytest.raises(DataOutsidePartitionsError, match=r"2021-01-01 … 2021-12-31.*2013-01-01"):
        check_overlap(
            DaySpan(date(2021, 1, 1), date(2021, 12, 31)),
            DaySpan(date(2013, 1, 1), date(2013, 12, 31)),
        )


def test_empty_station_lists_mean_the_default_places(monkeypatch):
    monkeypatch.setenv("COMFORT_SOURCE", "open-meteo")
    monkeypatch.setenv("COMFORT_OPEN_METEO_STATIONS", "")
    assert deployment.weather_source().stations == {"SEOUL": [37.5714, 126.9658]}
    monkeypatch.setenv("COMFORT_SOURCE", "kma")
    monkeypatch.setenv("COMFORT_KMA_STATIONS", "")
    assert deployment.weather_source().station_ids == [108]


def test_unknown_source_and_missing_file_are_named(monkeypatch):
    monkeypatch.setenv("COMFORT_SOURCE", "csv")
    with pytest.raises(ValueError, match="COMFORT_SOURCE must be one of"):
        deployment.weather_partitions()
    monkeypatch.setenv("COMFORT_SOURCE", "file")
    monkeypatch.delenv("COMFORT_WEATHER_FILE", raising=False)
    with pytest.raises(ValueError, match="needs COMFORT_WEATHER_FILE"):
        deployment.weather_source()


# --- the Dagster path: blocking check, metadata, early failure ----------------------------


def _materialize(tmp_path, weather, partition: str = "2013-07-01"):
    store = LocalObjectStore(root=str(tmp_path / "store"))
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [ingestion.raw_weather, ingestion.clean_weather],
            partition_key=partition,
            resources={"weather": weather, "io_manager": ObjectStoreIOManager(store=store)},
            instance=instance,
            raise_on_error=False,
        )


def test_a_wrong_unit_file_fails_the_blocking_units_check_by_name(tmp_path, bundled_raw):
    frame = derive_stations(bundled_raw, 2013)
    frame.loc[frame["station"] == "HUMID", "humidity_pct"] /= 100
    result = _materialize(tmp_path, _source(tmp_path, frame))
    units = next(e for e in result.get_asset_check_evaluations() if e.check_name == "units")
    assert not units.passed
    assert "station HUMID, column humidity_pct" in units.description
    assert "fraction" in units.metadata["findings"].value
    assert not result.success  # blocking: clean_weather was not built from it


def test_a_good_file_reports_coverage_per_station(tmp_path, bundled_raw):
    frame = derive_stations(bundled_raw, 2013)
    result = _materialize(tmp_path, _source(tmp_path, frame))
    assert result.success
    raw = result.asset_materializations_for_node("raw_weather")[0].metadata
    assert raw["rows_outside_partitions"].value == 0
    assert "2013-01-01 … 2013-12-31" in raw["data_span"].value
    clean = result.asset_materializations_for_node("clean_weather")[0].metadata
    assert "di_filled" in clean["coverage_by_station"].value


def test_a_file_for_another_year_fails_early_naming_the_spans(tmp_path, two_stations):
    result = _materialize(tmp_path, _source(tmp_path, two_stations))
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.event_specific_data.error.to_string()
    assert "DataOutsidePartitionsError" in message and "no partition holds" in message
    assert "2021-01-01" in message and "2013-01-01" in message


def test_the_example_writer_says_in_one_line_where_it_cannot_write(tmp_path, capsys):
    for out in (tmp_path, tmp_path / "no-such-folder" / "my.csv"):
        assert make_weather_csv([str(out)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and error.startswith("make_weather_csv: cannot write ")


# --- end to end, no code: the README's own-data example ----------------------------------


@pytest.mark.slow
def test_two_climates_for_2021_run_end_to_end_from_two_commands(tmp_path):
    csv = tmp_path / "my.csv"
    assert make_weather_csv([str(csv), "--year", "2021"]) == 0
    env = {
        **os.environ,
        "COMFORT_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "home" / "dagster"),
        "WANDB_MODE": "offline",
        "COMFORT_SOURCE": "file",
        "COMFORT_WEATHER_FILE": str(csv),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "comfort_assets.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    store = tmp_path / "home" / "store"
    partitions = sorted(p.name for p in (store / "assets" / "raw_weather").iterdir())
    assert len(partitions) == 365 and partitions[-1].startswith("2021-12-31")
    registry = ModelRegistry(store=LocalObjectStore(root=str(store)))
    assert registry.versions() and registry.champion() is not None
    _, card = registry.load(registry.champion())
    assert card["holdout_window"]["start"].startswith("2021-10")
