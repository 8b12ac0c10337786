"""The bundled file's real defects, and bad source files, each handled by name."""

from datetime import datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from comfort_assets.defs.ingestion import assets as ingestion
from comfort_assets.domain.cleaning import (
    FETCHED_FOR,
    RAW_COLUMNS,
    clean_days,
    clean_observations,
    parse_measurements,
    station_coverage,
)
from comfort_assets.domain.schemas import CleanWeather, RawWeather, WeatherQuarantine, validate
from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.weather import (
    BundledWeatherSource,
    FileWeatherSource,
    SourceSchemaError,
    WeatherSource,
)

START, END = pd.Timestamp("2013-01-01", tz="UTC"), pd.Timestamp("2014-01-01", tz="UTC")


def test_bundled_file_is_read_whole_and_in_si_units(bundled_raw):
    assert len(bundled_raw) == 26_115
    assert bundled_raw.groupby("station").size().to_dict() == {
        "EWR": 8703,
        "JFK": 8706,
        "LGA": 8706,
    }
    assert list(bundled_raw.columns) == list(RAW_COLUMNS)
    assert bundled_raw["time_utc"].min() == pd.Timestamp("2013-01-01T06:00Z")
    assert bundled_raw["time_utc"].max() == pd.Timestamp("2013-12-30T23:00Z")
    # 100.04 °F is the year's maximum; 37.8 °C after conversion
    assert bundled_raw["temp_c"].max() == pytest.approx((100.04 - 32) * 5 / 9)
    assert validate(RawWeather, bundled_raw).passed


def test_missing_values_of_the_bundled_file_stay_missing(bundled_raw):
    missing = bundled_raw.isna().sum()
    assert missing["wind_gust_ms"] == 20_778
    assert missing["pressure_hpa"] == 2_729
    assert missing["wind_dir_deg"] == 460
    assert missing["wind_speed_ms"] == 4
    assert missing["temp_c"] == missing["dewpoint_c"] == missing["humidity_pct"] == 1


def test_impossible_wind_reading_is_quarantined_not_dropped(bundled_clean):
    quarantine = bundled_clean.quarantine
    row = quarantine[
        (quarantine["station"] == "EWR")
        & (quarantine["time_utc"] == pd.Timestamp("2013-02-12T08:00Z"))
    ]
    assert len(row) == 1
    assert "wind_speed_ms" in row["reason"].iloc[0]
    assert row["action"].iloc[0] == "value removed"
    assert row["wind_speed_ms"].iloc[0] == pytest.approx(1048.36058 * 0.44704)
    clean = bundled_clean.clean.set_index(["station", "time_utc"])
    hour = clean.loc[("EWR", pd.Timestamp("2013-02-12T08:00Z"))]
    # only the impossible value is removed (and filled from its neighbours), the hour stays;
    # wind is no DI input, so the hour's DI still counts as observed
    assert hour["observed"] and hour["interpolated_other"] and not hour["interpolated"]
    assert hour["wind_speed_ms"] < 30
    assert pd.notna(hour["temp_c"])


def test_clean_grid_fills_short_gaps_and_leaves_long_ones(bundled_clean):
    clean = bundled_clean.clean
    assert validate(CleanWeather, clean).passed
    assert validate(WeatherQuarantine, bundled_clean.quarantine).passed
    # 24–27 missing hours per station become grid rows; the two 5-hour holes per station stay gaps
    not_observed = (~clean["observed"]).groupby(clean["station"]).sum().to_dict()
    assert not_observed == {"EWR": 27, "JFK": 24, "LGA": 24}
    gaps = clean[clean["gap"]].groupby("station").size().to_dict()
    assert gaps == {"EWR": 10, "JFK": 10, "LGA": 10}
    assert clean.loc[~clean["gap"], ["temp_c", "humidity_pct"]].notna().all().all()
    assert clean["interpolated"].sum() > 0


def _raw(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in RAW_COLUMNS:
        if column not in frame:
            frame[column] = "" if column == "parse_error" else np.nan
    return parse_measurements(frame)


def test_duplicate_station_hours_are_quarantined_and_first_kept():
    raw = _raw(
        [
            {"station": "S", "time_utc": "2013-07-01T00:00Z", "temp_c": 20, "humidity_pct": 50},
            {"station": "S", "time_utc": "2013-07-01T00:00Z", "temp_c": 25, "humidity_pct": 50},
            {"station": "S", "time_utc": "2013-07-01T01:00Z", "temp_c": 21, "humidity_pct": 50},
        ]
    )
    result = clean_observations(raw)
    assert len(result.clean) == 2
    assert result.clean["temp_c"].iloc[0] == 20
    assert result.quarantine["reason"].tolist() == ["duplicate station-hour (first kept)"]
    assert result.quarantine["action"].tolist() == ["row dropped"]


def test_rows_off_the_hour_are_quarantined_and_the_grid_stays_on_the_hour():
    """A 00:30 row once moved a station's whole grid to :30, losing every other row."""
    hours = [f"2013-07-01T{h:02d}:00Z" for h in range(1, 6)]
    raw = _raw(
        [{"station": "S", "time_utc": "2013-07-01T00:30Z", "temp_c": 19, "humidity_pct": 50}]
        + [{"station": "S", "time_utc": t, "temp_c": 20, "humidity_pct": 50} for t in hours]
        + [{"station": "S", "time_utc": "2013-07-01T02:10Z", "temp_c": 30, "humidity_pct": 50}]
    )
    result = clean_observations(raw)
    assert (result.clean["time_utc"].dt.minute == 0).all()
    assert len(result.clean) == 5 and result.clean["observed"].all()
    assert (result.clean["temp_c"] == 20).all()
    assert result.quarantine["reason"].tolist() == [
        "not on the hour (00:30:00): the grid is hourly",
        "not on the hour (02:10:00): the grid is hourly",
    ]
    assert result.quarantine["action"].tolist() == ["row dropped", "row dropped"]


def test_unparsable_values_and_times_are_quarantined_with_the_column_named():
    raw = _raw(
        [
            {"station": "S", "time_utc": "2013-07-01T00:00Z", "temp_c": "abc", "humidity_pct": 50},
            {"station": "S", "time_utc": "not a time", "temp_c": 20, "humidity_pct": 50},
            {"station": "S", "time_utc": "2013-07-01T01:00Z", "temp_c": 21, "humidity_pct": ""},
        ]
    )
    result = clean_observations(raw)
    reasons = result.quarantine.set_index("action")["reason"]
    assert "temp_c=abc unparsable" in reasons["value removed"]
    assert "time_utc" in reasons["row dropped"]
    # an empty string is a missing value, not a parse error
    assert len(result.quarantine) == 2
    assert validate(WeatherQuarantine, result.quarantine).passed


def _write(tmp_path, frame: pd.DataFrame, name: str = "obs.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return FileWeatherSource(path=str(path))


def _good_file() -> pd.DataFrame:
    hours = pd.date_range("2013-07-01", periods=48, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "station": "S",
            "time_utc": hours.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "temp_c": np.linspace(20, 30, 48),
            "humidity_pct": 60.0,
            "wind_speed_ms": 3.0,
        }
    )


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_si_file_source_round_trip(tmp_path, suffix):
    source = _write(tmp_path, _good_file(), f"obs.{suffix}")
    raw = source.fetch(pd.Timestamp("2013-07-01", tz="UTC"), pd.Timestamp("2013-07-02", tz="UTC"))
    assert len(raw) == 24
    assert validate(RawWeather, raw).passed
    assert raw["temp_c"].iloc[0] == pytest.approx(20.0)


def test_file_with_a_wrong_column_names_it(tmp_path):
    source = _write(tmp_path, _good_file().rename(columns={"temp_c": "temp_f"}))
    with pytest.raises(
        SourceSchemaError, match=r"missing columns \['temp_c'\].*unknown columns \['temp_f'\]"
    ):
        source.fetch(START, END)


def test_interpolated_flags_only_di_inputs_and_coverage_counts_them():
    hours = pd.date_range("2013-07-01", periods=6, freq="h", tz="UTC")
    frame = pd.DataFrame(
        {
            "station": "S",
            "time_utc": hours,
            "temp_c": [20.0, 21, np.nan, 23, 24, 25],
            "humidity_pct": 50.0,
            "visibility_km": [10.0, 10, 10, 10, np.nan, 10],
        }
    )
    clean = clean_observations(_raw(frame.to_dict("records"))).clean
    assert clean["interpolated"].tolist() == [False, False, True, False, False, False]
    assert clean["interpolated_other"].tolist() == [False, False, False, False, True, False]
    coverage = station_coverage(clean).iloc[0]
    assert (coverage["di_observed"], coverage["di_filled"], coverage["other_filled"]) == (5, 1, 1)
    assert validate(CleanWeather, clean).passed


def test_file_with_duplicates_and_garbage_quarantines_them(tmp_path):
    frame = _good_file()
    frame = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    frame["humidity_pct"] = frame["humidity_pct"].astype(object)
    frame.loc[10, "humidity_pct"] = "n/a"
    raw = _write(tmp_path, frame).fetch(START, END)
    result = clean_observations(raw)
    assert result.quarantined_rows == 2
    assert sorted(result.quarantine["action"]) == ["row dropped", "value removed"]
    assert result.quarantine["reason"].str.contains("humidity_pct=n/a unparsable").any()
    assert len(result.clean) == 48


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FileWeatherSource(path=str(tmp_path / "nope.csv")).fetch(START, END)


def _day(day: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(day, tz="UTC")
    return start, start + pd.Timedelta(days=1)


def test_an_unreadable_time_is_quarantined_once_with_the_first_day():
    rows = [
        {"station": "S", "time_utc": f"2013-07-0{d}T{h:02d}:00Z", "temp_c": 20, "humidity_pct": 50}
        for d in (1, 2, 3)
        for h in range(24)
    ]
    rows += [{"station": "S", "time_utc": "2013-07-02 25:00Z", "temp_c": 20, "humidity_pct": 50}]
    raw = _raw(rows)
    days = ["2013-07-01", "2013-07-02", "2013-07-03"]
    per_day = {day: clean_days(raw, *_day(day)).quarantine for day in days}
    assert [len(per_day[day]) for day in days] == [1, 0, 0]
    assert "time_utc missing or unparsable" in per_day["2013-07-01"]["reason"].iloc[0]
    # a day's context without the source's first hour does not claim it
    later = raw.iloc[24:]  # 2 and 3 July, and the undated row
    assert clean_days(later, *_day("2013-07-03")).quarantine.empty


def test_an_api_fetch_quarantines_its_undated_rows_with_its_own_day():
    """An API answers each day's fetch with its own unreadable times: each is quarantined
    with the day it was fetched for, though every day is cleaned with its neighbours'."""
    fetches = []
    for d in (1, 2, 3):
        rows = [
            {"station": "S", "time_utc": f"2013-07-0{d}T{h:02d}:00Z", "temp_c": 20}
            for h in range(24)
        ]
        rows.append({"station": "S", "time_utc": f"2013-07-0{d} 25:00Z", "temp_c": 20})
        fetches.append(_raw(rows).assign(**{FETCHED_FOR: pd.Timestamp(f"2013-07-0{d}", tz="UTC")}))
    raw = pd.concat(fetches, ignore_index=True)
    assert validate(RawWeather, raw).passed
    for d in (1, 2, 3):
        (row,) = clean_days(raw, *_day(f"2013-07-0{d}")).quarantine.itertuples()
        assert "time_utc missing or unparsable" in row.reason and pd.isna(row.time_utc)


class MalformedTimesApi(WeatherSource):
    """An API answering every day's hours of one station, and one item per day whose time
    it sent malformed (as KMA could send a bad ``tm``)."""

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        rows = []
        for day in pd.date_range(start, end, freq="D", inclusive="left"):
            rows += [
                {"station": "S", "time_utc": f"{hour:%Y-%m-%dT%H:%M}Z", "temp_c": 20}
                for hour in pd.date_range(day, periods=24, freq="h")
            ]
            rows.append({"station": "S", "time_utc": f"{day:%Y-%m-%d} 25:00Z", "temp_c": 20})
        return _raw(rows)


def test_overlapping_daily_api_runs_quarantine_each_malformed_time_once(tmp_path):
    """The daily schedule ingests the day before again: each day's malformed item is stored
    and quarantined with its own day, once, however many runs fetched it."""
    store = LocalObjectStore(root=str(tmp_path))
    resources = {"weather": MalformedTimesApi(), "io_manager": ObjectStoreIOManager(store=store)}
    with dg.instance_for_test() as instance:
        for first, last in (("2013-07-01", "2013-07-02"), ("2013-07-02", "2013-07-03")):
            result = dg.materialize(
                [ingestion.raw_weather, ingestion.clean_weather],
                resources=resources,
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                },
            )
            assert result.success
    quarantined = {
        day: pd.read_parquet(tmp_path / "assets" / "weather_quarantine" / f"{day}.parquet")
        for day in ("2013-07-01", "2013-07-02", "2013-07-03")
    }
    raw = {
        day: pd.read_parquet(tmp_path / "assets" / "raw_weather" / f"{day}.parquet")
        for day in quarantined
    }
    for day, rows in quarantined.items():
        assert list(rows["reason"].str.contains("unparsable")) == [True], (day, rows)
        assert raw[day]["time_utc"].isna().sum() == 1, day


def test_a_day_without_observations_is_an_empty_day_that_passes_the_contract():
    raw = _raw([])
    result = clean_days(raw, *_day("2013-12-31"))
    assert result.clean.empty and result.quarantine.empty
    assert validate(CleanWeather, result.clean).passed


def test_a_range_written_at_once_keeps_undated_quarantine_rows(tmp_path):
    store = LocalObjectStore(root=str(tmp_path))
    io_manager = ObjectStoreIOManager(store=store)
    frame = pd.DataFrame(
        {
            "station": ["S", "S", "S"],
            "time_utc": pd.to_datetime(["2013-07-01T05:00Z", None, "2013-07-02T05:00Z"], utc=True),
            "reason": ["a", "time_utc missing or unparsable", "b"],
        }
    )
    partitions = ingestion.WEATHER_PARTITIONS
    windows = {day: partitions.time_window_for_partition_key(day) for day in _DAYS}
    io_manager.write_partitions(dg.AssetKey("weather_quarantine"), frame, "time_utc", windows)
    written = {
        day: pd.read_parquet(tmp_path / "assets" / "weather_quarantine" / f"{day}.parquet")
        for day in _DAYS
    }
    assert list(written["2013-07-01"]["reason"]) == ["a", "time_utc missing or unparsable"]
    assert list(written["2013-07-02"]["reason"]) == ["b"]


_DAYS = ("2013-07-02", "2013-07-01")  # not in order: the first by time gets the undated


def test_the_bundled_years_empty_last_day_materializes(tmp_path):
    """31 December 2013 holds no hour in UTC: its clean_weather is empty and checked."""
    store = LocalObjectStore(root=str(tmp_path / "store"))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [ingestion.raw_weather, ingestion.clean_weather],
            partition_key="2013-12-31",
            resources={
                "weather": BundledWeatherSource(),
                "io_manager": ObjectStoreIOManager(store=store),
            },
            instance=instance,
            raise_on_error=False,
        )
    assert result.success
    checks = {
        (e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()
    }
    assert checks[("clean_weather", "schema")] and all(checks.values()), checks
