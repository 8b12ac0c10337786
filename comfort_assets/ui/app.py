"""The forecast page: pick a station and an hour (or paste observations), get the DI
forecast from the Bento service, send feedback, and see how past forecasts did.

    .venv/bin/streamlit run comfort_assets/ui/app.py -- --service http://127.0.0.1:3000

The service URL also comes from ``COMFORT_SERVICE_URL``; storage from the same
environment as Dagster and the service (``COMFORT_HOME``, ``COMFORT_ENV``). This script
only lays out: the computing is in `logic`, the HTTP in `client`, the reading in `data`.
"""

from __future__ import annotations

import html
import os
import sys
from datetime import UTC, date, datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from comfort_assets import deployment
from comfort_assets.domain.comfort import BANDS
from comfort_assets.domain.features import WINDOW_HOURS
from comfort_assets.ui import client, data, logic

#: How far after the last observed hour the page looks for the actual DI.
ACTUAL_LOOKAHEAD_H = 24
RECENT_DAYS = 30
#: The newest predictions the recent tab shows and scores (it counts them all).
RECENT_SHOWN = 500
#: How many days back from the last ingested day the page looks for one with weather.
DAYS_BACK_FOR_WEATHER = 7
RATINGS = {
    1: "1 · comfortable",
    2: "2",
    3: "3 · so-so",
    4: "4",
    5: "5 · very uncomfortable",
}
NO_BAND = "—"
#: Columns of the recent-predictions table and their headings.
RECENT_COLUMNS = {
    "valid_at": "valid at (UTC)",
    "station": "station",
    "prediction": "forecast",
    "actual": "actual (weather)",
    "error": "error",
    "rating": "rating",
    "actual_di": "actual (feedback)",
    "model_version": "model",
    "created_at": "asked at (UTC)",
}
FROM_WEATHER = "From the ingested weather"
PASTED = "Paste a request (JSON)"


def _storage_key() -> str:
    """Cache key for everything read from storage: which deployment and home."""
    return f"{deployment.environment()}:{deployment.comfort_home()}"


@st.cache_data(ttl=60, show_spinner=False)
def weather_days(storage: str) -> list[str]:
    days = data.partitions(deployment.object_store(resolve_env=True), "clean_weather")
    return [day for day in days if day != data.UNPARTITIONED]


@st.cache_data(ttl=60, show_spinner=False)
def weather(storage: str, start: datetime, end: datetime) -> pd.DataFrame:
    return data.clean_weather(deployment.object_store(resolve_env=True), start, end)


@st.cache_data(ttl=5, show_spinner=False)
def model_info(url: str) -> client.Answer:
    return client.call(url, "/model_info", {}, timeout=3, keys=("version", "horizon_h", "stations"))


def day_weather(day: date) -> pd.DataFrame:
    start = datetime.combine(day, datetime.min.time(), UTC)
    return weather(_storage_key(), start, start + timedelta(days=1) - timedelta(microseconds=1))


def last_day_with_weather(first: date, last: date) -> date:
    """The last ingested day that holds observations (the last partition of a source's
    span may hold none: the bundled year's last UTC day is empty)."""
    day = last
    while day > max(first, last - timedelta(days=DAYS_BACK_FOR_WEATHER)):
        if not day_weather(day).empty:
            return day
        day -= timedelta(days=1)
    return day


def show_problem(problem: logic.Problem, where: object = st) -> None:
    lines = "\n".join(f"- {line}" for line in problem.lines)
    where.error(f"**{problem.title}**\n\n{lines}" if lines else f"**{problem.title}**")


# --- page -----------------------------------------------------------------------------
st.set_page_config(page_title="Discomfort forecast", page_icon="🌡️", layout="wide")
state = st.session_state

with st.sidebar:
    st.header("Forecast service")
    url = st.text_input("URL", value=logic.service_url(sys.argv[1:], os.environ), key="url")
    url = url.rstrip("/")
    info = model_info(url)
    if info.ok:
        st.success(
            f"Serving **{info.data['version']}**, {info.data['horizon_h']} h ahead, "
            f"stations {', '.join(info.data['stations'])}"
        )
        if info.data.get("pointer_problem"):
            st.warning(
                "The service cannot follow the champion pointer, so it keeps serving "
                f"{info.data['version']}: {info.data['pointer_problem']}"
            )
    else:
        show_problem(info.problem, st)
    st.caption(f"Storage: `{_storage_key()}`")

st.title("Discomfort index forecast")
st.caption(
    "Thom's discomfort index (불쾌지수) a few hours ahead: below 68 low, 68–75 normal, "
    "75–80 high, 80 and above very high."
)
forecast_tab, recent_tab, monitoring_tab = st.tabs(
    ["Forecast", "Recent predictions", "Monitoring status"]
)

with forecast_tab:
    source = st.radio("Observations", [FROM_WEATHER, PASTED], horizontal=True, key="source")
    days = weather_days(_storage_key())
    station = moment = text = None
    if source == FROM_WEATHER:
        if not days:
            st.info(
                "No ingested weather in the object store yet: run `.venv/bin/comfort run` "
                "first, or paste observations."
            )
        else:
            first, last = (datetime.fromisoformat(d).date() for d in (days[0], days[-1]))
            # the first day whose 00:00 has a full window of ingested hours before it
            first = min(first + timedelta(days=(WINDOW_HOURS - 1) // 24), last)
            left, middle, right = st.columns(3)
            day = middle.date_input(
                "Day (UTC)",
                value=last_day_with_weather(first, last),
                min_value=first,
                max_value=last,
                key="day",
            )
            stations = sorted(day_weather(day)["station"].unique())
            station = left.selectbox("Station", stations, key="station")
            if not stations:
                st.info(f"No ingested weather on {day:%Y-%m-%d}: pick another day.")
            hour = right.selectbox(
                "Last observed hour (UTC)",
                list(range(24)),
                index=15,
                format_func=lambda h: f"{h:02d}:00",
                key="hour",
            )
            moment = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hour)
            st.caption(
                f"The service gets the {WINDOW_HOURS} hours ending at {moment:%Y-%m-%d %H:00} UTC."
            )
    else:
        text = st.text_area(
            f"A `/predict` request: station, observed_until (UTC) and {WINDOW_HOURS} hourly "
            "observations, oldest first (temp_c, humidity_pct required)",
            height=180,
            key="pasted",
        )

    if st.button("Forecast", type="primary", key="forecast"):
        state.pop("feedback_answer", None)
        try:
            if source == FROM_WEATHER:
                if moment is None:
                    raise logic.InputProblem("pick a station and an hour first")
                clean = weather(
                    _storage_key(),
                    moment - timedelta(hours=WINDOW_HOURS - 1),
                    moment + timedelta(hours=ACTUAL_LOOKAHEAD_H),
                )
                payload = logic.payload_from_weather(clean, station, moment)
            else:
                clean = None
                payload = logic.payload_from_text(text or "")
        except logic.InputProblem as problem:
            state.update(view=None, problem=logic.Problem(str(problem)))
        else:
            answer = client.call(
                url, "/predict", logic.predict_body(payload), keys=logic.FORECAST_KEYS
            )
            if answer.ok:
                view = logic.forecast_view(payload, answer.data[0])
                actual = (
                    logic.observed_di_at(clean, view.station, view.valid_at)
                    if clean is not None
                    else None
                )
                state.update(view=view, actual=actual, problem=None)
            else:
                state.update(view=None, problem=answer.problem)

    if state.get("problem"):
        show_problem(state["problem"])

    view: logic.ForecastView | None = state.get("view")
    if view is not None:
        st.markdown(
            f"<div style='border-left:12px solid {view.colour};padding:0.6rem 1rem;"
            f"background:{view.colour}14;border-radius:6px;margin-bottom:0.8rem'>"
            f"<span style='font-size:2.6rem;font-weight:700'>{view.di:.1f}</span> "
            f"<span style='background:{view.colour};color:white;padding:0.2rem 0.7rem;"
            f"border-radius:1rem;font-weight:600;vertical-align:0.6rem'>{view.band}</span>"
            f"<br>{html.escape(view.station)} at {view.valid_at:%Y-%m-%d %H:%M} UTC "
            f"({view.horizon_h} h ahead): {view.meaning}"
            f"<br><small>model <b>{html.escape(view.model_version)}</b> · prediction "
            f"<code>{html.escape(view.prediction_id)}</code></small></div>",
            unsafe_allow_html=True,
        )
        now_di = view.history["di"].dropna()
        columns = st.columns(4)
        columns[0].metric(
            "DI forecast",
            f"{view.di:.1f}",
            delta=f"{view.di - now_di.iloc[-1]:+.1f} vs now" if len(now_di) else None,
            delta_color="inverse",
        )
        columns[1].metric("Band", view.band)
        columns[2].metric(
            "Feels like now",
            f"{view.feels_like_c:.1f} °C" if view.feels_like_c is not None else "—",
            help="Apparent temperature (wind chill at or below 10 °C) at the last observed hour",
        )
        columns[3].metric(
            "Temperature now", f"{view.temp_c:.1f} °C" if view.temp_c is not None else "—"
        )

        frame = logic.chart_frame(view)
        last_observed = frame[frame["kind"] == "observed"].dropna().tail(1)
        link = pd.concat([last_observed, frame[frame["kind"] == "forecast"]])
        x = alt.X(
            "time_utc:T",
            title="time (UTC)",
            scale=alt.Scale(type="utc", padding=14),
            axis=alt.Axis(format="%d %b %H:%M"),
        )
        y = alt.Y("di:Q", title="discomfort index", scale=alt.Scale(zero=False))
        observed = (
            alt.Chart(frame[frame["kind"] == "observed"])
            .mark_line(color="#455a64")
            .encode(x=x, y=y, tooltip=["time_utc:T", alt.Tooltip("di:Q", format=".1f")])
        )
        dashed = alt.Chart(link).mark_line(strokeDash=[5, 4], color=view.colour).encode(x=x, y=y)
        point = (
            alt.Chart(frame[frame["kind"] == "forecast"])
            .mark_point(size=220, filled=True, color=view.colour, opacity=1)
            .encode(x=x, y=y, tooltip=["time_utc:T", alt.Tooltip("di:Q", format=".1f")])
        )
        edges = logic.band_edges_near(frame["di"])
        rules = alt.Chart(edges).mark_rule(strokeDash=[2, 3], color="#9e9e9e").encode(y="di:Q")
        labels = (
            alt.Chart(edges)
            .mark_text(align="left", dx=4, dy=-6, color="#757575")
            .encode(y="di:Q", text="label:N", x=alt.value(0))
        )
        st.altair_chart(
            (rules + labels + observed + dashed + point).properties(
                height=320, title=f"Last {logic.HISTORY_HOURS} h of DI and the forecast"
            ),
            width="stretch",
        )
        actual = state.get("actual")
        st.caption(
            f"Observed until {view.observed_until:%Y-%m-%d %H:%M} UTC"
            + (
                f" · the ingested weather shows DI {actual:.1f} at the valid-at hour "
                f"(forecast error {view.di - actual:+.1f})"
                if actual is not None
                else ""
            )
        )

        st.subheader("How did it feel?")
        with st.form("feedback"):
            left, middle, right = st.columns(3)
            felt = left.selectbox(
                "The band you felt", [NO_BAND, *BANDS], key="felt", format_func=str
            )
            measured = middle.number_input(
                "Or the DI you observed",
                value=None,
                min_value=0.0,
                max_value=120.0,
                step=0.1,
                format="%.1f",
                key="measured",
            )
            rating = right.radio(
                "Your comfort rating",
                list(RATINGS),
                index=None,
                format_func=RATINGS.get,
                horizontal=True,
                key="rating",
            )
            st.caption("A felt band is sent as the DI in its middle; an observed DI wins.")
            if st.form_submit_button("Send feedback"):
                try:
                    body = logic.feedback_body(
                        view.prediction_id,
                        actual_di=measured,
                        felt_band=None if felt == NO_BAND else str(felt),
                        rating=rating,
                    )
                except logic.InputProblem as problem:
                    state["feedback_answer"] = client.Answer(problem=logic.Problem(str(problem)))
                else:
                    state["feedback_answer"] = client.call(
                        url, "/feedback", body, keys=("actual_di", "rating")
                    )
        answer = state.get("feedback_answer")
        if answer is not None and answer.ok:
            stored = answer.data
            parts = (
                [f"actual DI {stored['actual_di']:.1f}"] if stored["actual_di"] is not None else []
            )
            parts += [f"rating {stored['rating']}"] if stored["rating"] is not None else []
            st.success(f"Thank you: feedback stored for this prediction ({', '.join(parts)}).")
        elif answer is not None:
            show_problem(answer.problem)

with recent_tab:
    # not cached: a forecast asked for a moment ago must be listed (the query reads the
    # newest rows by an index, not the store)
    since = datetime.now(UTC) - timedelta(days=RECENT_DAYS)
    predictions, logged = data.recent_predictions(
        deployment.prediction_store(resolve_env=True), since, limit=RECENT_SHOWN
    )
    if predictions.empty:
        st.info(f"No predictions logged in the last {RECENT_DAYS} days: ask for a forecast first.")
    else:
        actuals = weather(
            _storage_key(),
            predictions["valid_at"].min().to_pydatetime(),
            predictions["valid_at"].max().to_pydatetime(),
        )
        joined = logic.with_actuals(predictions, actuals)
        numbers = logic.summary(joined)
        if logged > len(predictions):
            st.caption(
                f"{logged:,} predictions were logged in the last {RECENT_DAYS} days; the "
                f"newest {len(predictions):,} are scored and listed here (the monitoring "
                "assets score them all)."
            )
        columns = st.columns(4)
        columns[0].metric("Predictions", f"{logged:,}")
        of = f" (newest {len(predictions):,})" if logged > len(predictions) else ""
        columns[1].metric(f"With an actual{of}", numbers["with_actual"])
        rmse, bias = numbers["rmse"], numbers["bias"]
        columns[2].metric(f"RMSE{of}", f"{rmse:.2f}" if rmse is not None else "—")
        columns[3].metric(f"Bias{of}", f"{bias:+.2f}" if bias is not None else "—")
        rolling = logic.rolling_error(joined)
        if rolling.empty:
            st.caption(
                f"The rolling error starts at {logic.ROLLING_WINDOW // 4} predictions with an "
                "actual (the DI of the ingested weather at their valid-at hour)."
            )
        else:
            long = rolling.melt("valid_at", var_name="error", value_name="DI")
            st.altair_chart(
                alt.Chart(long)
                .mark_line(point=True)
                .encode(
                    x=alt.X("valid_at:T", title="valid at (UTC)", scale=alt.Scale(type="utc")),
                    y=alt.Y("DI:Q", title=f"rolling error over {logic.ROLLING_WINDOW} predictions"),
                    color="error:N",
                )
                .properties(height=260),
                width="stretch",
            )
        shown = joined.sort_values("created_at", ascending=False)[list(RECENT_COLUMNS)]
        one_decimal = st.column_config.NumberColumn(format="%.1f")
        st.dataframe(
            shown.rename(columns=RECENT_COLUMNS),
            hide_index=True,
            column_config={
                RECENT_COLUMNS[name]: one_decimal
                for name in ("prediction", "actual", "error", "actual_di")
            }
            | {
                RECENT_COLUMNS[name]: st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")
                for name in ("valid_at", "created_at")
            },
        )

with monitoring_tab:
    reports = data.monitoring_reports(deployment.object_store(resolve_env=True))
    if not reports:
        st.info(
            "No monitoring yet: the monitoring assets ("
            + ", ".join(data.MONITORING_ASSETS)
            + ") have not been materialized."
        )
    for asset, (partition, value) in reports.items():
        st.subheader(asset.replace("_", " "))
        st.markdown(f"**{partition}**: {logic.report_headline(value)}")
        if isinstance(value, pd.DataFrame):
            st.dataframe(value, hide_index=True)
        else:
            st.json(value)
