"""The forecast page's logic, reading and HTTP, without Streamlit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from comfort_assets.domain.comfort import discomfort_index, feels_like
from comfort_assets.domain.features import WINDOW_HOURS
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.serving.core import request_payload
from comfort_assets.ui import client, data, logic
from comfort_assets_tests.serving_fixtures import free_port
from comfort_assets_tests.ui_fixtures import (
    BAD_UNITS_400,
    FORECAST_STEP,
    UNKNOWN_ID_404,
    clean_days,
    fake_service,
    ingest,
)

UNTIL = datetime(2013, 7, 8, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return clean_days()


@pytest.fixture(scope="module")
def payload(clean) -> dict:
    return request_payload(clean, "JFK", UNTIL)


def test_service_url_prefers_the_argument_then_the_environment():
    env = {logic.SERVICE_ENV: "http://10.0.0.5:3000/"}
    assert logic.service_url(["--service", "http://h:9/"], env) == "http://h:9"
    assert logic.service_url(["-q", "tests.py"], env) == "http://10.0.0.5:3000"
    assert logic.service_url([], {}) == logic.DEFAULT_SERVICE
    assert logic.serve_command("http://127.0.0.1:3123").endswith("--port 3123")


def test_payload_from_weather_is_the_services_request_in_a_batch(clean, payload):
    built = logic.payload_from_weather(clean, "JFK", UNTIL)
    assert built == payload
    assert logic.predict_body(built) == {"requests": [payload]}
    assert len(built["observations"]["temp_c"]) == WINDOW_HOURS
    with pytest.raises(logic.InputProblem, match=r"'ZZZ'.*EWR"):
        logic.payload_from_weather(clean, "ZZZ", UNTIL)


def test_pasted_requests_are_checked_for_shape(payload):
    text = json.dumps(payload)
    assert logic.payload_from_text(text) == payload
    assert logic.payload_from_text(json.dumps({"requests": [payload]})) == payload
    with pytest.raises(logic.InputProblem, match=r"not JSON.*line 1"):
        logic.payload_from_text("{station: JFK")
    with pytest.raises(logic.InputProblem, match="exactly one"):
        logic.payload_from_text(json.dumps({"requests": [payload, payload]}))
    with pytest.raises(logic.InputProblem, match="no observations"):
        logic.payload_from_text(json.dumps({"station": "JFK", "observed_until": "2013-07-08"}))


def test_feedback_body_prefers_a_measured_di_over_a_felt_band():
    assert logic.feedback_body("p", felt_band="high", rating=4) == {
        "prediction_id": "p",
        "actual_di": 77.5,
        "rating": 4,
    }
    assert logic.feedback_body("p", actual_di=74.234, felt_band="low") == {
        "prediction_id": "p",
        "actual_di": 74.23,
    }
    assert logic.feedback_body("p", rating=1) == {"prediction_id": "p", "rating": 1}
    assert logic.BAND_MIDPOINTS["low"] < 68 <= logic.BAND_MIDPOINTS["normal"] < 75
    assert logic.BAND_MIDPOINTS["very high"] > 80
    with pytest.raises(logic.InputProblem, match="observed, the band you felt, or a rating"):
        logic.feedback_body("p")
    with pytest.raises(logic.InputProblem, match="unknown band"):
        logic.feedback_body("p", felt_band="scorching")


def test_forecast_view_has_band_colour_history_and_feels_like(payload):
    forecast = {
        "prediction_id": "abc",
        "station": "JFK",
        "observed_until": "2013-07-08T15:00:00Z",
        "valid_at": "2013-07-08T18:00:00Z",
        "horizon_h": 3,
        "di_forecast": 78.25,
        "band": "high",
        "model_version": "weather-predictor-004",
    }
    view = logic.forecast_view(payload, forecast)
    assert (view.di, view.band, view.colour) == (78.25, "high", logic.BAND_COLOURS["high"])
    assert view.model_version == "weather-predictor-004"
    assert view.valid_at == pd.Timestamp("2013-07-08T18:00", tz="UTC")
    assert len(view.history) == logic.HISTORY_HOURS
    assert view.history["time_utc"].iloc[-1] == pd.Timestamp(UNTIL)
    obs = payload["observations"]
    assert view.history["di"].iloc[-1] == pytest.approx(
        discomfort_index(obs["temp_c"][-1], obs["humidity_pct"][-1])
    )
    expected = feels_like(obs["temp_c"][-1], obs["humidity_pct"][-1], obs["wind_speed_ms"][-1])
    assert view.feels_like_c == pytest.approx(float(expected))
    chart = logic.chart_frame(view)
    assert chart["kind"].tolist() == ["observed"] * logic.HISTORY_HOURS + ["forecast"]
    assert chart["di"].iloc[-1] == 78.25


def test_forecast_view_copes_with_missing_optional_observations(payload):
    sparse = {**payload, "observations": {k: payload["observations"][k] for k in ("temp_c",)}}
    sparse["observations"]["humidity_pct"] = [None] * (WINDOW_HOURS - 1) + [50.0]
    forecast = {
        "prediction_id": "x",
        "station": "JFK",
        "observed_until": "2013-07-08T15:00:00Z",
        "valid_at": "2013-07-08T18:00:00Z",
        "horizon_h": 3,
        "di_forecast": 70.0,
        "band": "normal",
        "model_version": "v",
    }
    view = logic.forecast_view(sparse, forecast)
    temp = payload["observations"]["temp_c"][-1]
    assert view.feels_like_c == pytest.approx(float(feels_like(temp, 50.0, 0.0)))
    assert view.history["di"].isna().sum() == logic.HISTORY_HOURS - 1


def test_only_band_edges_near_the_drawn_values_are_drawn():
    summer = logic.band_edges_near(pd.Series([72.0, 79.0]))
    assert summer.to_dict("records") == [
        {"di": 68.0, "label": "normal from 68"},
        {"di": 75.0, "label": "high from 75"},
        {"di": 80.0, "label": "very high from 80"},
    ]
    assert logic.band_edges_near(pd.Series([30.0, 50.0])).empty
    assert logic.band_edges_near(pd.Series([62.0, 65.0]))["di"].tolist() == [68.0]


def test_a_recorded_400_names_the_field_and_the_reason():
    problem = logic.http_problem(400, BAD_UNITS_400, "http://x")
    assert problem.title == "The service refused the input (400)"
    (line,) = problem.lines
    assert line.startswith("observations.temp_c: value 86 at hour index 0")
    assert line.endswith("wrong units? °F instead of °C?")
    assert logic.http_problem(404, UNKNOWN_ID_404, "u").lines == (
        "prediction_id …89abcdef: no such prediction",
    )
    # BentoML's own NotFound answers a list of such objects
    assert logic.http_problem(404, [{"error": "no such route"}], "u").lines == ("no such route",)
    assert logic.http_problem(400, {"error": "feedback needs actual_di"}, "u").lines == (
        "feedback needs actual_di",
    )
    assert "failed (503)" in logic.http_problem(503, "overloaded", "http://x").title
    missing = {"detail": [{"loc": ["requests"], "msg": "Field required"}]}
    assert logic.http_problem(400, missing, "u").lines == ("requests: Field required",)


def test_actuals_join_at_valid_at_and_the_rolling_error(clean):
    times = pd.date_range("2013-07-04T00:00", periods=40, freq="h", tz="UTC")
    jfk = clean[clean["station"] == "JFK"].set_index("time_utc")
    truth = discomfort_index(jfk.loc[times, "temp_c"], jfk.loc[times, "humidity_pct"]).to_numpy()
    errors = np.where(np.arange(40) < 20, 1.0, -3.0)
    predictions = pd.DataFrame(
        {
            "station": "JFK",
            "valid_at": times,
            "prediction": truth + errors,
            "rating": [4] + [None] * 39,
        }
    )
    future = predictions.tail(1).assign(valid_at=pd.Timestamp("2014-01-01", tz="UTC"))
    joined = logic.with_actuals(pd.concat([predictions, future], ignore_index=True), clean)
    assert joined["actual"].iloc[:40].to_numpy() == pytest.approx(truth)
    assert np.isnan(joined["error"].iloc[40])
    rolling = logic.rolling_error(joined, window=10).set_index("valid_at")
    assert rolling.loc[times[9], "rmse"] == pytest.approx(1.0)
    assert rolling.loc[times[24], "mae"] == pytest.approx((5 * 1 + 5 * 3) / 10)
    assert rolling["rmse"].iloc[-1] == pytest.approx(3.0)
    assert rolling.index[0] == times[10 // 4 - 1]  # a point needs a quarter of the window
    numbers = logic.summary(joined)
    assert numbers["predictions"] == 41 and numbers["with_actual"] == 40
    assert numbers["rmse"] == pytest.approx(np.sqrt((20 * 1 + 20 * 9) / 40))
    assert numbers["bias"] == pytest.approx(-1.0) and numbers["rated"] == 1


def test_observed_di_at_reads_one_hour(clean):
    moment = pd.Timestamp("2013-07-05T12:00", tz="UTC")
    row = clean[(clean["station"] == "LGA") & (clean["time_utc"] == moment)].iloc[0]
    assert logic.observed_di_at(clean, "LGA", moment) == pytest.approx(
        discomfort_index(row["temp_c"], row["humidity_pct"])
    )
    assert logic.observed_di_at(clean, "LGA", moment + pd.Timedelta(days=30)) is None


# --- reading ----------------------------------------------------------------------------
def test_clean_weather_is_read_across_daily_partitions(tmp_path, clean):
    ingest(tmp_path, clean)
    store = LocalObjectStore(root=str(tmp_path / "store"))
    assert data.partitions(store, "clean_weather")[:2] == ["2013-07-03", "2013-07-04"]
    start, end = datetime(2013, 7, 4, 20, tzinfo=UTC), datetime(2013, 7, 6, 3, tzinfo=UTC)
    window = data.clean_weather(store, start, end)
    assert window["time_utc"].min() == start and window["time_utc"].max() == end
    assert len(window) == 3 * (32)
    empty = data.clean_weather(store, datetime(2014, 1, 1, tzinfo=UTC), datetime(2014, 1, 2))
    assert empty.empty and "station" in empty


def test_no_prediction_table_is_an_empty_list(tmp_path):
    store = PredictionStore(url=f"sqlite:///{tmp_path / 'predictions.db'}")
    since = datetime.now(UTC) - timedelta(days=1)
    nothing, none = data.recent_predictions(store, since)
    assert nothing.empty and none == 0
    store.create()
    store.insert(
        [
            {
                "id": f"p{i}",
                "created_at": datetime.now(UTC) - timedelta(seconds=3 - i),
                "station": "JFK",
                "valid_at": UNTIL,
                "horizon_h": 3,
                "model_version": "v",
                "features": {},
                "prediction": 70.0 + i,
            }
            for i in range(3)
        ]
    )
    recent, total = data.recent_predictions(store, since, limit=2)
    assert recent["id"].tolist() == ["p1", "p2"] and total == 3
    assert "features" not in recent.columns and str(recent["valid_at"].dt.tz) == "UTC"


def test_monitoring_reports_are_read_only_when_present(tmp_path):
    store = LocalObjectStore(root=str(tmp_path / "store"))
    assert data.monitoring_reports(store) == {}
    store.put_bytes("assets/feature_drift/2013-07-01.json", b'{"psi": 0.1}')
    store.put_bytes("assets/feature_drift/2013-07-02.json", b'{"psi": 0.3}')
    frame = pd.DataFrame({"rmse": [1.2]})
    store.put_bytes("assets/production_performance/__all__.parquet", frame.to_parquet())
    reports = data.monitoring_reports(store)
    assert reports["feature_drift"] == ("2013-07-02", {"psi": 0.3})
    key, value = reports["production_performance"]
    assert key == "__all__" and value["rmse"].tolist() == [1.2]
    assert "data_quality_report" not in reports


def test_monitoring_reports_get_a_headline_from_their_columns():
    performance = pd.DataFrame(
        {
            "model_version": ["weather-predictor-002"] * 2,
            "station": ["ALL", "JFK"],
            "rows": [120, 40],
            "rmse": [1.234, 1.1],
            "skill": [0.12, 0.2],
        }
    )
    assert logic.report_headline(performance) == (
        "weather-predictor-002: RMSE 1.23 over 120 forecasts, skill +12% vs persistence"
    )
    drift = pd.DataFrame(
        {
            "source": ["served", "served", "ingested"],
            "station": ["JFK", "LGA", "JFK"],
            "feature": ["temp_c", "temp_c", "humidity_pct"],
            "drifted": [True, False, True],
        }
    )
    assert logic.report_headline(drift) == (
        "2 of 3 inputs drifted: served/JFK/temp_c, ingested/JFK/humidity_pct"
    )
    quality = pd.DataFrame(
        {"expected_hours": [24, 24], "observed_hours": [24, 20], "quarantined_rows": [0, 3]}
    )
    assert logic.report_headline(quality) == "44 of 48 station-hours observed, 3 rows quarantined"
    assert logic.report_headline(pd.DataFrame({"x": [1, 2]})) == "2 rows"
    waiting = performance.assign(rows=[0, 0], rmse=[float("nan")] * 2, skill=[float("nan")] * 2)
    assert logic.report_headline(waiting) == "weather-predictor-002: no forecast with an actual yet"
    assert logic.report_headline({"a": 1}) == "a report (not a table)"


# --- HTTP -------------------------------------------------------------------------------
def test_an_answer_of_another_shape_is_a_problem_not_a_crash():
    keys = ("version", "stations")
    assert logic.unexpected_answer({"version": "v", "stations": []}, keys, "u") is None
    assert logic.unexpected_answer([{"version": "v", "stations": []}], keys, "u") is None
    for other in ({}, [], "<html>", [1], {"version": "v"}):
        problem = logic.unexpected_answer(other, keys, "http://x/model_info")
        assert problem is not None and "not as the forecast service does" in problem.title
    assert logic.unexpected_answer({"version": "v"}, keys, "u").lines[0] == (
        "the answer has no stations"
    )
    assert logic.unexpected_answer({}, (), "u") is None


def test_client_turns_refusals_and_silence_into_problems(payload):
    url = f"http://127.0.0.1:{free_port()}"
    down = client.call(url, "/predict", logic.predict_body(payload))
    assert not down.ok and "is not answering" in down.problem.title and url in down.problem.title
    assert "bentoml serve" in down.problem.lines[0]
    with fake_service() as fake:
        answer = client.call(fake.url, "/predict", logic.predict_body(payload))
        assert (
            answer.ok
            and answer.data[0]["band"] == logic.forecast_view(payload, answer.data[0]).band
        )
        last = payload["observations"]
        expected = discomfort_index(last["temp_c"][-1], last["humidity_pct"][-1]) + FORECAST_STEP
        assert answer.data[0]["di_forecast"] == pytest.approx(expected)
        fake.predict_error = (400, BAD_UNITS_400)
        refused = client.call(fake.url, "/predict", logic.predict_body(payload))
        assert refused.problem.lines[0].startswith("observations.temp_c:")
        unknown = client.call(fake.url, "/feedback", {"prediction_id": "nope", "rating": 2})
        assert unknown.problem.title == "Not found (404)"
