"""Monitoring statistics: production skill, seasonally matched drift, input domain, data quality.

Pure functions on DataFrames. The rules they encode:
- decay is judged on model skill (RMSE against the champion's latest holdout RMSE over a
  full window of its forecasts, and against persistence on the same hours), per station and
  model version;
- drift is judged against a reference from the same weeks of the year, because raw PSI
  against a fixed reference flags nearly every week of ordinary seasonal change;
- drift alone never asks for a retrain; decay does, and so does a clear out-of-domain signal
  (inputs outside anything the champion was trained on).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from comfort_assets.domain.comfort import dewpoint_c, discomfort_index
from comfort_assets.domain.metrics import bias, rmse, skill

#: Served inputs compared with the weather the champion was trained on (feature names).
DRIFT_FEATURES: tuple[str, ...] = (
    "di_now",
    "temp_c",
    "humidity_pct",
    "dewpoint_c",
    "wind_speed_ms",
)
ALL = "ALL"


# --- joining predictions with what happened ---------------------------------------------
def weather_inputs(clean: pd.DataFrame) -> pd.DataFrame:
    """The drift features of a clean-weather table, named as the served features are."""
    out = clean[["station", "time_utc"]].copy()
    temp = clean["temp_c"].to_numpy(dtype=float)
    humidity = clean["humidity_pct"].to_numpy(dtype=float)
    out["di_now"] = discomfort_index(temp, humidity)
    out["temp_c"] = temp
    out["humidity_pct"] = humidity
    out["dewpoint_c"] = dewpoint_c(temp, humidity)
    out["wind_speed_ms"] = clean["wind_speed_ms"].to_numpy(dtype=float)
    return out


def served_inputs(log: pd.DataFrame) -> pd.DataFrame:
    """The drift features the service logged with each prediction (at the origin hour)."""
    features = pd.DataFrame([feature_dict(f) for f in log["features"]], index=log.index)
    out = log[["station"]].copy()
    out["time_utc"] = log["origin_utc"]
    for name in DRIFT_FEATURES:
        out[name] = (
            pd.to_numeric(features.get(name), errors="coerce") if name in features else np.nan
        )
    return out.reset_index(drop=True)


def join_actuals(predictions: pd.DataFrame, clean: pd.DataFrame) -> pd.DataFrame:
    """Each prediction with the DI that really happened at ``valid_at`` (from the ingested
    weather, else the user's feedback) and persistence (DI at the origin t = valid_at − h).

    ``actual_source`` is ``weather``, ``feedback`` or ``pending`` (no actual yet).
    """
    log = predictions.copy()
    log["valid_at"] = pd.to_datetime(log["valid_at"], utc=True)
    log["origin_utc"] = log["valid_at"] - pd.to_timedelta(log["horizon_h"], unit="h")
    di = clean[["station", "time_utc"]].assign(
        di=discomfort_index(
            clean["temp_c"].to_numpy(dtype=float), clean["humidity_pct"].to_numpy(dtype=float)
        )
    )
    di = di.dropna(subset=["di"]).set_index(["station", "time_utc"])["di"]
    keys_valid = pd.MultiIndex.from_arrays([log["station"], log["valid_at"]])
    keys_origin = pd.MultiIndex.from_arrays([log["station"], log["origin_utc"]])
    observed = di.reindex(keys_valid).to_numpy()
    feedback = pd.to_numeric(log.get("actual_di"), errors="coerce").to_numpy(dtype=float)
    log["actual"] = np.where(np.isfinite(observed), observed, feedback)
    log["actual_source"] = np.where(
        np.isfinite(observed), "weather", np.where(np.isfinite(feedback), "feedback", "pending")
    )
    persistence = di.reindex(keys_origin).to_numpy()
    logged_now = np.array(
        [feature_dict(f).get("di_now", np.nan) for f in log["features"]], dtype=float
    )
    log["persistence"] = np.where(np.isfinite(persistence), persistence, logged_now)
    return log


def feature_dict(features: object) -> dict[str, float]:
    """A logged feature row (a mapping, or its JSON text) with missing values as NaN."""
    if isinstance(features, str):
        features = json.loads(features)
    if not isinstance(features, Mapping):
        return {}
    return {k: np.nan if v is None else float(v) for k, v in features.items()}


# --- production performance -------------------------------------------------------------
def one_forecast_per_hour(log: pd.DataFrame) -> pd.DataFrame:
    """The newest forecast of each model for each station, hour and horizon: a client that
    asks thirty times for one hour must not weigh that hour thirty times (it failed the skill
    check on its own, and retrained the model)."""
    newest_last = log.sort_values("created_at", kind="stable") if "created_at" in log else log
    keys = [key for key in ("model_version", "station", "valid_at", "horizon_h") if key in log]
    return newest_last.drop_duplicates(keys, keep="last").sort_index()


def performance_table(log: pd.DataFrame) -> pd.DataFrame:
    """RMSE, bias and skill against persistence on the same hours: per station and model
    version, per version over all stations (station ``ALL``), with rows still pending and
    the number of UTC days (by valid time) the known rows cover. Each model's station-hour
    counts once (`one_forecast_per_hour`)."""
    rows = []
    for version, by_version in one_forecast_per_hour(log).groupby("model_version", sort=True):
        groups = [(ALL, by_version), *by_version.groupby("station", sort=True)]
        for station, group in groups:
            known = group[group["actual_source"] != "pending"]
            known = known[np.isfinite(known["persistence"])]
            actual = known["actual"].to_numpy(dtype=float)
            forecast = known["prediction"].to_numpy(dtype=float)
            persistence_rmse = rmse(actual, known["persistence"].to_numpy(dtype=float))
            model_rmse = rmse(actual, forecast)
            rows.append(
                {
                    "model_version": version,
                    "station": station,
                    "rows": len(known),
                    "days": days_covered(known["valid_at"]),
                    "pending": int((group["actual_source"] == "pending").sum()),
                    "rmse": model_rmse,
                    "bias": bias(actual, forecast),
                    "persistence_rmse": persistence_rmse,
                    "skill": skill(model_rmse, persistence_rmse) if len(known) else np.nan,
                }
            )
    columns = ["model_version", "station", "rows", "days", "pending", "rmse", "bias"]
    return pd.DataFrame(rows, columns=[*columns, "persistence_rmse", "skill"])


def days_covered(times: pd.Series) -> int:
    """How many UTC days the times fall on."""
    return int(pd.to_datetime(times, utc=True).dt.floor("D").nunique())


@dataclass(frozen=True)
class Finding:
    """One check's verdict with the figure that decided it, for people and for the sensor.
    A check with too little to go on is not judged: it passes nothing and fails nothing
    (``passed`` stays True so that nothing retrains on it)."""

    check: str
    passed: bool
    figure: float
    threshold: float
    station: str
    model_version: str
    message: str
    judged: bool = True


def rmse_decay(
    performance: pd.DataFrame,
    version: str,
    holdout_rmse: float,
    factor: float = 1.1,
    min_rows: int = 24,
    min_days: int = 1,
) -> Finding:
    """The seed's rule: production RMSE above the champion's holdout RMSE × ``factor``,
    judged once the version has ``min_rows`` forecasts with actuals on ``min_days`` days
    (one day's RMSE swings with the weather by far more than the 10 % the rule allows)."""
    threshold = holdout_rmse * factor
    overall = performance[
        (performance["model_version"] == version) & (performance["station"] == ALL)
    ]
    rows = 0 if overall.empty else int(overall["rows"].iloc[0])
    days = 0 if overall.empty else int(overall["days"].iloc[0])
    if rows < min_rows or days < min_days:
        return Finding(
            "rmse_vs_holdout", True, np.nan, threshold, ALL, version,
            f"{version}: {rows} forecast(s) with actuals on {days} day(s), fewer than "
            f"{min_rows} on {min_days}: not judged", judged=False,
        )  # fmt: skip
    figure = float(overall["rmse"].iloc[0])
    passed = figure <= threshold
    verb = "within" if passed else "above"
    return Finding(
        "rmse_vs_holdout", passed, figure, threshold, ALL, version,
        f"{version}: production RMSE {figure:.3f} is {verb} holdout RMSE {holdout_rmse:.3f} × "
        f"{factor:g} = {threshold:.3f} over {rows} forecasts on {days} days",
    )  # fmt: skip


def latest_holdout_rmse(
    version: str, card: Mapping[str, object], later_cards: Iterable[Mapping[str, object]]
) -> tuple[float, str]:
    """The champion's RMSE on the most recent holdout it was scored on, and where from.

    Its own card's holdout at first; each challenger judged against it later scores it again
    on a fresher holdout (the promotion gate's ``champion_rmse``). When that challenger lost,
    the champion matched a model trained on the newer weather: the fresher figure is what it
    can be expected to do, and the seed's rule compares production RMSE with it (otherwise
    the same gap from its own, older holdout asks for the same losing retrain again)."""
    figure = float(_mapping(card.get("metrics")).get("holdout_rmse", np.nan))
    source = f"{version}'s own holdout"
    newest = ""
    for later in later_cards:
        promotion = _mapping(later.get("promotion"))
        rescored = promotion.get("champion_rmse")
        ended = str(_mapping(later.get("holdout_window")).get("end", ""))
        if promotion.get("champion_before") != version or rescored is None or ended <= newest:
            continue
        figure, newest = float(rescored), ended
        source = f"the holdout to {ended[:10]} that {later.get('version', '?')} was judged on"
    return figure, source


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def skill_decay(
    performance: pd.DataFrame, version: str, min_skill: float = 0.0, min_rows: int = 24
) -> Finding:
    """Skill against persistence below ``min_skill`` at any station with enough forecasts;
    the worst such station is named."""
    stations = performance[
        (performance["model_version"] == version)
        & (performance["station"] != ALL)
        & (performance["rows"] >= min_rows)
    ]
    if stations.empty:
        return Finding(
            "skill_vs_persistence", True, np.nan, min_skill, ALL, version,
            f"{version}: no station has {min_rows} forecasts with actuals yet: not judged",
            judged=False,
        )  # fmt: skip
    worst = stations.sort_values("skill").iloc[0]
    figure, station = float(worst["skill"]), str(worst["station"])
    passed = figure >= min_skill
    return Finding(
        "skill_vs_persistence", passed, figure, min_skill, station, version,
        f"{version} at {station}: skill vs persistence {figure:+.1%} "
        f"({'≥' if passed else '<'} {min_skill:+.1%}; RMSE {worst['rmse']:.3f} vs persistence "
        f"{worst['persistence_rmse']:.3f}, {int(worst['rows'])} forecasts)",
    )  # fmt: skip


# --- drift ------------------------------------------------------------------------------
def psi(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = 10) -> float:
    """Population stability index with bins fixed by the reference's quantiles (open ends,
    so values beyond the reference's range land in the outer bins)."""
    ref = _finite(reference)
    cur = _finite(current)
    if ref.size == 0 or cur.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    cur_share = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    eps = 1e-4
    p = np.maximum(ref_share / ref.size, eps)
    q = np.maximum(cur_share / cur.size, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def ks(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic and p-value."""
    ref, cur = _finite(reference), _finite(current)
    if ref.size == 0 or cur.size == 0:
        return float("nan"), float("nan")
    result = stats.ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def _finite(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def season_distance_days(times: pd.Series, day_of_year: float) -> npt.NDArray[np.float64]:
    """Days between each time's day of year and ``day_of_year``, around the year's end."""
    days = pd.to_datetime(times, utc=True).dt.day_of_year.to_numpy(dtype=float)
    gap = np.abs(days - day_of_year)
    return np.minimum(gap, 365.25 - gap)


def seasonal_reference(
    reference: pd.DataFrame, current_times: pd.Series, weeks: int = 4, min_rows: int = 504
) -> pd.DataFrame:
    """Reference rows from the same weeks of the year as the current data (±``weeks``
    around its middle day); if the reference has fewer rows there (a season the champion
    never saw), the ``min_rows`` rows nearest in season."""
    times = pd.to_datetime(current_times, utc=True)
    middle = times.min() + (times.max() - times.min()) / 2
    distance = season_distance_days(reference["time_utc"], float(middle.day_of_year))
    inside = distance <= 7 * weeks
    if inside.sum() >= min(min_rows, len(reference)):
        return reference.loc[inside]
    return reference.iloc[np.argsort(distance, kind="stable")[:min_rows]]


def seasonal_shift_z(
    matched: pd.DataFrame, current: pd.DataFrame, feature: str, days: int
) -> tuple[float, float]:
    """The current mean minus the seasonal reference's, and that shift in units of how much
    the means of ``days``-long windows of the reference vary: a de-seasonalised z-score."""
    times = pd.to_datetime(matched["time_utc"], utc=True)
    block = ((times - times.min()) // pd.Timedelta(days=days)).to_numpy()
    spread = float(matched.groupby(block)[feature].mean().std())
    shift = float(np.nanmean(current[feature]) - np.nanmean(matched[feature]))
    return shift, shift / spread if spread > 0 else float("nan")


def drift_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    source: str,
    features: Sequence[str] = DRIFT_FEATURES,
    weeks: int = 4,
    min_samples: int = 24,
    z_threshold: float = 3.5,
) -> pd.DataFrame:
    """Per station and feature: PSI and KS against a seasonally matched reference (the
    station's own if it has one, else every station's), raw PSI against the whole
    reference, and the seasonal mean shift as a z-score.

    ``drifted``: enough samples and a shift beyond ``z_threshold`` times the spread of
    same-length window means in the matched reference. PSI and KS are for reading: a week
    of ordinary weather differs from its own season by a PSI of 1–4 here and hours are
    autocorrelated (KS p-values far too small), so neither can decide alone."""
    rows = []
    for station, now in current.groupby("station", sort=True):
        own = reference[reference["station"] == station]
        pool = own if len(own) else reference
        matched = seasonal_reference(pool, now["time_utc"], weeks)
        span = now["time_utc"].max() - now["time_utc"].min()
        days = max(1, int(np.ceil(span / pd.Timedelta(days=1))))
        for name in features:
            statistic, pvalue = ks(matched[name], now[name])
            shift, z = seasonal_shift_z(matched, now, name, days)
            n = int(np.isfinite(now[name].to_numpy(dtype=float)).sum())
            rows.append(
                {
                    "source": source,
                    "station": station,
                    "feature": name,
                    "n": n,
                    "reference_n": len(matched),
                    "psi": psi(matched[name], now[name]),
                    "raw_psi": psi(pool[name], now[name]),
                    "ks": statistic,
                    "ks_pvalue": pvalue,
                    "shift": shift,
                    "shift_z": z,
                    "drifted": bool(n >= min_samples and abs(z) > z_threshold),
                }
            )
    return pd.DataFrame(rows)


def reference_window(
    card: Mapping[str, object],
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The span of weather a model card says the model was trained, validated and tested on:
    its training window's start to its holdout window's end (the training window's end on a
    card without a holdout); None where the card does not say. Times without an offset are
    UTC."""
    training = _mapping(card.get("training_window"))
    holdout = _mapping(card.get("holdout_window"))
    start = training.get("start")
    end = holdout.get("end") or training.get("end")
    return (_utc(start) if start else None), (_utc(end) if end else None)


def _utc(text: object) -> pd.Timestamp:
    moment = pd.Timestamp(str(text))
    return moment.tz_localize("UTC") if moment.tz is None else moment.tz_convert("UTC")


def domain_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    known_stations: Iterable[str] = (),
    features: Sequence[str] = DRIFT_FEATURES,
    quantiles: tuple[float, float] = (0.001, 0.999),
    margin: float = 0.1,
) -> pd.DataFrame:
    """Per station: the share of served rows with any feature outside the training range
    (its ``quantiles``, widened by ``margin`` of their span), and the worst feature."""
    bounds = {}
    for name in features:
        values = _finite(reference[name])
        if values.size:
            low, high = np.quantile(values, quantiles)
            span = (high - low) * margin
            bounds[name] = (low - span, high + span)
    known = set(known_stations)
    rows = []
    for station, now in current.groupby("station", sort=True):
        outside = pd.DataFrame(
            {name: (now[name] < low) | (now[name] > high) for name, (low, high) in bounds.items()}
        )
        shares = outside.mean()
        rows.append(
            {
                "station": station,
                "known_station": station in known,
                "n": len(now),
                "out_of_domain_share": float(outside.any(axis=1).mean()) if len(now) else 0.0,
                "worst_feature": str(shares.idxmax()) if len(shares) else "",
                "worst_feature_share": float(shares.max()) if len(shares) else 0.0,
            }
        )
    return pd.DataFrame(rows)


def drift_finding(drift: pd.DataFrame, version: str, z_threshold: float = 3.5) -> Finding:
    """Warn-level verdict: how many station × feature pairs drifted, and the worst."""
    if drift.empty:
        return Finding(
            "seasonal_drift", True, np.nan, z_threshold, ALL, version,
            "no station has enough inputs beside its training weather: not judged", judged=False,
        )  # fmt: skip
    drifted = drift[drift["drifted"]]
    if drifted.empty:
        figure = float(drift["shift_z"].abs().max())
        return Finding(
            "seasonal_drift", True, figure, z_threshold, ALL, version,
            "no input moved beyond its season's ordinary variation",
        )  # fmt: skip
    worst = drifted.loc[drifted["shift_z"].abs().idxmax()]
    return Finding(
        "seasonal_drift", False, float(abs(worst["shift_z"])), z_threshold,
        str(worst["station"]), version,
        f"{len(drifted)} station×feature pair(s) drifted; worst {worst['feature']} at "
        f"{worst['station']} ({worst['source']}): {worst['shift']:+.1f} against the same weeks "
        f"of the training data, {abs(worst['shift_z']):.1f}× their ordinary variation "
        f"(PSI {worst['psi']:.2f})",
    )  # fmt: skip


def domain_finding(
    domain: pd.DataFrame, version: str, max_share: float = 0.1, min_samples: int = 24
) -> Finding:
    """A clear out-of-domain signal: at a station with enough traffic, more than
    ``max_share`` of the served rows lie outside what the champion was trained on."""
    judged = domain[domain["n"] >= min_samples] if len(domain) else domain
    if judged.empty:
        return Finding(
            "input_domain", True, np.nan, max_share, ALL, version,
            f"no station served {min_samples} forecasts: not judged", judged=False,
        )  # fmt: skip
    worst = judged.sort_values("out_of_domain_share", ascending=False).iloc[0]
    figure = float(worst["out_of_domain_share"])
    passed = figure <= max_share
    return Finding(
        "input_domain", passed, figure, max_share, str(worst["station"]), version,
        f"{figure:.0%} of {int(worst['n'])} served inputs at {worst['station']} are outside "
        f"the training range (worst: {worst['worst_feature']}, {worst['worst_feature_share']:.0%})",
    )  # fmt: skip


# --- the retraining rule ----------------------------------------------------------------
DECAY_CHECKS = frozenset({"rmse_vs_holdout", "skill_vs_persistence"})
DOMAIN_CHECKS = frozenset({"input_domain"})


def retrain_reason(failed_checks: Iterable[str]) -> str | None:
    """Why to retrain given the checks that failed, or None. Drift alone is not a reason:
    ordinary seasons move every feature; decay or an out-of-domain signal is."""
    failed = set(failed_checks)
    decay, domain = failed & DECAY_CHECKS, failed & DOMAIN_CHECKS
    if not decay and not domain:
        return None
    parts = [*sorted(decay), *sorted(domain)]
    if "seasonal_drift" in failed:
        parts.append("seasonal_drift")
    return "+".join(parts)


# --- data quality -----------------------------------------------------------------------
#: Largest plausible change between consecutive hours (the bundled year's 99.9th percentile
#: is 5 °C and 30 points of humidity; its one larger temperature step is a −10.5 °C reading
#: in May between two hours at 14 °C).
MAX_HOURLY_STEP: dict[str, float] = {"temp_c": 10.0, "humidity_pct": 60.0, "pressure_hpa": 8.0}
#: Variables the discomfort index needs: a stuck one corrupts every forecast.
DI_INPUTS: tuple[str, ...] = ("temp_c", "humidity_pct")


def run_lengths(values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """For each position, the length of the stretch of one repeated value it belongs to
    (0 where the value is missing)."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, ~((array[1:] == array[:-1]) & np.isfinite(array[1:]))]
    run_id = np.cumsum(starts)
    lengths = np.bincount(run_id)[run_id]
    return np.where(np.isfinite(array), lengths, 0)


def robust_z(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(x − median) / (1.4826 · MAD): a z-score that a few outliers cannot mask."""
    array = np.asarray(values, dtype=float)
    median = np.nanmedian(array)
    mad = 1.4826 * np.nanmedian(np.abs(array - median))
    return (array - median) / mad if mad > 0 else np.zeros_like(array)


#: Hourly changes a station needs before the day for its anomalies to be judged: a z-score
#: against one day of history flagged 7 ordinary changes on the bundled year's first day.
MIN_ANOMALY_HISTORY_HOURS = 7 * 24


def quality_table(
    clean: pd.DataFrame,
    quarantine: pd.DataFrame,
    day_start: pd.Timestamp,
    day_end: pd.Timestamp,
    stations: Iterable[str] = (),
    z_threshold: float = 6.0,
) -> pd.DataFrame:
    """Per station, for the hours in [day_start, day_end): completeness, quarantined rows,
    the longest stuck run of each DI input that touches the day (counted over all the
    history given, so a sensor stuck for a year shows as a year), implausible hourly jumps,
    and anomalies (robust z-score of the hourly change against the station's history; 0
    while it has under MIN_ANOMALY_HISTORY_HOURS of changes before the day, as
    ``history_hours`` shows)."""
    quarantine_times = pd.to_datetime(quarantine["time_utc"], utc=True)
    in_day_q = quarantine[(quarantine_times >= day_start) & (quarantine_times < day_end)]
    expected = int((day_end - day_start) / pd.Timedelta(hours=1))
    rows = []
    for station in sorted(set(stations) | set(clean["station"])):
        history = clean[clean["station"] == station].sort_values("time_utc")
        day = history[(history["time_utc"] >= day_start) & (history["time_utc"] < day_end)]
        row: dict[str, object] = {
            "station": station,
            "expected_hours": expected,
            "observed_hours": int(day["observed"].sum()) if len(day) else 0,
            "interpolated_hours": int(day["interpolated"].sum()) if len(day) else 0,
            "missing_di_hours": int(expected - day[list(DI_INPUTS)].notna().all(axis=1).sum()),
            "quarantined_rows": int((in_day_q["station"] == station).sum()),
        }
        in_day = ((history["time_utc"] >= day_start) & (history["time_utc"] < day_end)).to_numpy()
        for name in DI_INPUTS:
            runs = run_lengths(history[name].where(~history["interpolated"]))
            row[f"stuck_{name}_hours"] = int(runs[in_day].max()) if in_day.any() else 0
        jumps = anomalies = 0
        before = int((history["time_utc"] < day_start).sum())
        for name, limit in MAX_HOURLY_STEP.items():
            step = history[name].diff().where(history["time_utc"].diff() == pd.Timedelta(hours=1))
            jumps += int(((step.abs() > limit).to_numpy() & in_day).sum())
            if before >= MIN_ANOMALY_HISTORY_HOURS:
                anomalies += int(((np.abs(robust_z(step)) > z_threshold) & in_day).sum())
        row["implausible_jumps"] = jumps
        row["anomalies"] = anomalies
        row["history_hours"] = before
        row["completeness"] = row["observed_hours"] / expected if expected else 0.0
        rows.append(row)
    return pd.DataFrame(rows)
