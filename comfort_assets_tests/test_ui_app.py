"""The forecast page through Streamlit's `AppTest`, on a fake service that answers in the
real service's shapes and a small ingested object store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from comfort_assets.domain.comfort import discomfort_index
from comfort_assets.resources.prediction_store import PredictionStore
from comfort_assets.serving.core import request_payload
from comfort_assets.ui.logic import BAND_COLOURS
from comfort_assets_tests.serving_fixtures import free_port
from comfort_assets_tests.ui_fixtures import (
    BAD_UNITS_400,
    FORECAST_STEP,
    VERSION,
    FakeService,
    clean_days,
    fake_service,
    ingest,
)

APP = Path(__file__).resolve().parents[1] / "comfort_assets" / "ui" / "app.py"
LAST_DAY = datetime(2013, 7, 8, tzinfo=UTC)
#: The page's default hour on the last ingested day.
DEFAULT_UNTIL = datetime(2013, 7, 8, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return clean_days()


@pytest.fixture(scope="module")
def home(tmp_path_factory, clean) -> Path:
    home = tmp_path_factory.mktemp("ui-home")
    ingest(home, clean)
    return home


@pytest.fixture
def fake(home, monkeypatch) -> Iterator[FakeService]:
    with fake_service() as service:
        monkeypatch.setenv("COMFORT_ENV", "local")
        monkeypatch.setenv("COMFORT_HOME", str(home))
        monkeypatch.setenv("COMFORT_SERVICE_URL", service.url)
        yield service


def page() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    return app


def forecast(app: AppTest) -> AppTest:
    app.button(key="forecast").click().run()
    assert not app.exception, app.exception
    return app


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_a_click_shows_the_forecast_from_the_service(fake, clean):
    app = page()
    assert VERSION in texts(app.sidebar.success)
    assert app.selectbox(key="station").value == "EWR"
    day = app.date_input(key="day")
    assert (day.value, day.max) == (LAST_DAY.date(), LAST_DAY.date())
    assert day.min == date(2013, 7, 7)  # ingested from 3 July: 4 days of window before it
    app.selectbox(key="station").set_value("JFK")
    app = forecast(app)
    (body,) = fake.bodies("/predict")
    assert body == {"requests": [request_payload(clean, "JFK", DEFAULT_UNTIL)]}
    last = body["requests"][0]["observations"]
    di = float(discomfort_index(last["temp_c"][-1], last["humidity_pct"][-1])) + FORECAST_STEP
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["DI forecast"] == f"{di:.1f}"
    assert metrics["Feels like now"].endswith("°C")
    headline = texts(app.markdown)
    assert f"model <b>{VERSION}</b>" in headline
    assert f"{di:.1f}" in headline and metrics["Band"] in headline
    assert "JFK at 2013-07-08 18:00 UTC (3 h ahead)" in headline
    (chart,) = app.get("vega_lite_chart")
    assert BAND_COLOURS[metrics["Band"]] in chart.proto.spec  # the forecast point's colour
    assert not app.error


def test_no_service_says_it_is_not_answering_and_how_to_start_it(fake, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("COMFORT_SERVICE_URL", url)
    app = forecast(page())
    message = texts(app.main.error)
    assert f"The forecast service at {url} is not answering" in message
    port = url.rsplit(":", 1)[1]
    assert f"bentoml serve comfort_assets.serving.service:ComfortForecast --port {port}" in message
    assert "not answering" in texts(app.sidebar.error)
    assert not app.metric


def test_a_400_shows_the_field_and_the_reason(fake):
    fake.predict_error = (400, BAD_UNITS_400)
    app = forecast(page())
    message = texts(app.main.error)
    assert "refused the input (400)" in message
    assert "observations.temp_c: value 86 at hour index 0" in message
    assert "wrong units? °F instead of °C?" in message
    assert not app.metric


def test_feedback_is_posted_for_the_forecast(fake):
    app = forecast(page())
    (forecast_answer,) = fake.predictions
    app.selectbox(key="felt").set_value("high")
    app.radio(key="rating").set_value(4)
    app.button(key="FormSubmitter:feedback-Send feedback").click().run()
    assert fake.bodies("/feedback") == [
        {"prediction_id": forecast_answer, "actual_di": 77.5, "rating": 4}
    ]
    assert "feedback stored" in texts(app.success)
    app.number_input(key="measured").set_value(79.25)
    app.button(key="FormSubmitter:feedback-Send feedback").click().run()
    assert fake.bodies("/feedback")[-1]["actual_di"] == 79.25


def test_pasted_observations_are_forecast_and_bad_text_is_explained(fake, clean):
    request = request_payload(clean, "LGA", datetime(2013, 7, 7, 6, tzinfo=UTC))
    app = page()
    app.radio(key="source").set_value("Paste a request (JSON)").run()
    app.text_area(key="pasted").set_value(json.dumps(request))
    app = forecast(app)
    assert fake.bodies("/predict") == [{"requests": [request]}]
    assert "LGA at 2013-07-07 09:00 UTC" in texts(app.markdown)
    app.text_area(key="pasted").set_value('{"station": "LGA",')
    app = forecast(app)
    assert "not JSON" in texts(app.main.error)
    assert len(fake.bodies("/predict")) == 1


def test_a_station_name_is_shown_as_text_not_markup(fake, clean):
    request = request_payload(clean, "LGA", datetime(2013, 7, 7, 6, tzinfo=UTC))
    request["station"] = "<img src=x onerror=alert(1)>"
    app = page()
    app.radio(key="source").set_value("Paste a request (JSON)").run()
    app.text_area(key="pasted").set_value(json.dumps(request))
    headline = texts(forecast(app).markdown)
    assert "&lt;img src=x onerror=alert(1)&gt; at 2013-07-07 09:00 UTC" in headline
    assert "<img" not in headline


def test_another_server_on_the_port_is_a_problem_not_a_crash(fake):
    fake.model_info = {}
    app = page()
    message = texts(app.sidebar.error)
    assert "answered, but not as the forecast service does" in message
    assert "the answer has no version, horizon_h, stations" in message
    assert app.selectbox(key="station").value == "EWR"  # the page goes on


def test_a_champion_pointer_the_service_cannot_follow_is_shown(fake):
    fake.model_info = {
        "version": VERSION,
        "horizon_h": 3,
        "stations": ["JFK"],
        "pointer_problem": "ModelIntegrityError: sha256 of member-0.ubj does not match",
    }
    warning = texts(page().sidebar.warning)
    assert f"keeps serving {VERSION}: ModelIntegrityError: sha256" in warning


def test_the_page_opens_on_the_last_day_with_weather_and_its_stations(
    fake, tmp_path, clean, monkeypatch
):
    """The last partition of a source can be empty (the bundled year's is), and a station
    can be missing on a day: the page offers what the chosen day holds."""
    last = LAST_DAY.date()
    no_lga_on_the_last_day = (clean["station"] != "LGA") | (clean["time_utc"].dt.date != last)
    ingest(tmp_path, clean[no_lga_on_the_last_day])
    empty = clean.iloc[:0].to_parquet()
    (tmp_path / "store" / "assets" / "clean_weather" / "2013-07-09.parquet").write_bytes(empty)
    monkeypatch.setenv("COMFORT_HOME", str(tmp_path))
    app = page()
    day = app.date_input(key="day")
    assert (day.value, day.max) == (last, date(2013, 7, 9))
    assert app.selectbox(key="station").options == ["EWR", "JFK"]
    day.set_value(date(2013, 7, 7)).run()
    assert app.selectbox(key="station").options == ["EWR", "JFK", "LGA"]
    day.set_value(date(2013, 7, 9)).run()
    assert not app.selectbox(key="station").options
    assert "No ingested weather on 2013-07-09" in texts(app.info)


def test_recent_predictions_show_actuals_and_errors_and_monitoring_waits(fake, home, clean):
    store = PredictionStore(url=f"sqlite:///{home / 'predictions.db'}")
    store.create()
    times = pd.date_range("2013-07-05T00:00", periods=12, freq="h", tz="UTC")
    jfk = clean[clean["station"] == "JFK"].set_index("time_utc").loc[times]
    truth = discomfort_index(jfk["temp_c"], jfk["humidity_pct"]).to_numpy()
    store.insert(
        [
            {
                "id": f"recent-{i}",
                "created_at": datetime.now(UTC),
                "station": "JFK",
                "valid_at": moment,
                "horizon_h": 3,
                "model_version": VERSION,
                "features": {},
                "prediction": float(truth[i]) + 2.0,
            }
            for i, moment in enumerate(times)
        ]
    )
    app = page()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Predictions"] == "12" and metrics["With an actual"] == "12"
    assert metrics["RMSE"] == "2.00" and metrics["Bias"] == "+2.00"
    (table,) = app.dataframe
    assert table.value["error"].round(6).tolist() == [2.0] * 12
    assert "No monitoring yet" in texts(app.info)


def test_monitoring_status_shows_the_latest_reports(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("COMFORT_HOME", str(tmp_path))
    folder = tmp_path / "store" / "assets" / "production_performance"
    folder.mkdir(parents=True)
    for day, rmse in (("2013-07-07", 1.5), ("2013-07-08", 2.25)):
        table = pd.DataFrame(
            {"model_version": [VERSION], "station": ["ALL"], "rows": [30], "rmse": [rmse]}
        )
        table.to_parquet(folder / f"{day}.parquet")
    app = page()
    assert "No ingested weather" in texts(app.info)
    assert f"**2013-07-08**: {VERSION}: RMSE 2.25 over 30 forecasts" in texts(app.markdown)
    assert "No monitoring yet" not in texts(app.info)
