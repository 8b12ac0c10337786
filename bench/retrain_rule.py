"""The replayed year's retrain decisions in minutes instead of an hour: `comfort simulate`
without Dagster, the service or HTTP, for trying a retrain rule before a full replay.

Each day of the replay (Apr–Dec of the bundled year, h = 3): the champion's forecasts of the
day; the 7-day performance table, the seed's rule (`rmse_decay`), the per-station skill rule
(`skill_decay`) and the input domain (`domain_table`, `domain_finding`) on the same rows the
monitoring assets read; `retrain_reason`; the cooldown on the simulated clock; a retrain with
the replay's recipe (`simulation.fit_recipe`) and windows, judged by the promotion gate
(`judge_challenger`) on its fresh holdout. The never-retrained model, the monthly retrain and
persistence are scored on the same rows as in `simulation.score_arms`, beside two bounds on
what retraining can buy: ``--every-days 7`` retrains every week, and a model fitted in
hindsight (its training ends four weeks before the year does, so it has seen most of the
hours it is scored on). The loop's forecasts
are the model's, not the service's, so figures match a replay's up to what the service adds
(nothing, in the measured replays: this script gave the same RMSE and retrain days as a full
replay of the same rule).

    .venv/bin/python bench/retrain_rule.py                   # the rule as configured
    .venv/bin/python bench/retrain_rule.py --min-days 1 --own-holdout --domain-to training
    .venv/bin/python bench/retrain_rule.py --every-days 7     # + a weekly retrain (~100 s)

The second line is the earlier rule (17 retrains). Prints the retrains and a
table of the arms; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import pandas as pd

from comfort_assets.domain import monitoring as mon
from comfort_assets.domain.champion import judge_challenger
from comfort_assets.domain.cleaning import clean_observations
from comfort_assets.domain.features import build_features
from comfort_assets.domain.replay import (
    ARMS,
    REPLAY_COOLDOWN_DAYS,
    ReplayWindows,
    arm_rmse,
    month_starts,
    utc_day,
)
from comfort_assets.domain.splits import SplitWindows, chronological_split
from comfort_assets.resources.weather import BundledWeatherSource
from comfort_assets.simulation import HORIZON, fit_recipe

YEAR = (pd.Timestamp("2013-01-01", tz="UTC"), pd.Timestamp("2014-01-01", tz="UTC"))


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-end", default="2013-04-01")
    p.add_argument("--cooldown-days", type=float, default=REPLAY_COOLDOWN_DAYS)
    p.add_argument("--rmse-factor", type=float, default=1.1)
    p.add_argument("--min-days", type=int, default=7, help="days before the seed's rule judges")
    p.add_argument(
        "--own-holdout",
        action="store_true",
        help="judge against the champion's own holdout RMSE, never a later gate's",
    )
    p.add_argument(
        "--domain-to",
        choices=("holdout", "training"),
        default="holdout",
        help="the domain reference ends with the champion's holdout (or its training window)",
    )
    p.add_argument(
        "--every-days",
        type=int,
        default=0,
        help="also score a retrain every N days (e.g. 7: what any schedule could buy; ~4 s a fit)",
    )
    return p.parse_args()


class Year:
    """The bundled year's features and the weather inputs the service would have logged."""

    def __init__(self) -> None:
        clean = clean_observations(BundledWeatherSource().fetch(*YEAR)).clean
        features = build_features(clean, HORIZON)
        self.features = features[features["usable"]].reset_index(drop=True)
        self.inputs = mon.weather_inputs(clean)
        origin = self.features[["station", "time_utc"]]
        self.served = origin.merge(self.inputs, on=["station", "time_utc"], how="left")
        self.valid_day = self.features["valid_at_utc"].dt.floor("D")
        self.models: dict[pd.Timestamp, Any] = {}
        self.forecasts: dict[pd.Timestamp, np.ndarray] = {}

    def windows(self, end: pd.Timestamp) -> ReplayWindows:
        return ReplayWindows.ending(end, 14, 14)

    def model(self, end: pd.Timestamp) -> Any:
        """The replay's recipe trained with the window ending ``end`` (cached)."""
        if end not in self.models:
            self.models[end] = fit_recipe(self.features, self.windows(end))
            matrix = self.features[self.models[end].feature_names].to_numpy(dtype=float)
            now = self.features["di_now"].to_numpy(dtype=float)
            self.forecasts[end] = self.models[end].predict_di(matrix, now)
        return self.models[end]

    def splits(self, end: pd.Timestamp) -> dict[str, pd.DataFrame]:
        w = self.windows(end)
        return chronological_split(
            self.features, SplitWindows(w.train_end, w.validation_end, w.holdout_end)
        )


def card(year: Year, version: str, end: pd.Timestamp, decision: Any) -> dict[str, Any]:
    """The card fields monitoring reads, as `model_card` writes them."""
    splits = year.splits(end)

    def window(frame: pd.DataFrame) -> dict[str, str]:
        return {
            "start": frame["time_utc"].min().isoformat(),
            "end": frame["valid_at_utc"].max().isoformat(),
        }

    return {
        "version": version,
        "metrics": {"holdout_rmse": decision.challenger_rmse},
        "training_window": window(splits["training"]),
        "holdout_window": window(splits["holdout"]),
        "promotion": {
            "promoted": decision.promoted,
            "champion_before": decision.champion_before,
            "champion_rmse": decision.champion_rmse,
        },
    }


def scheduled(year: Year, scored: pd.DataFrame, starts: list[pd.Timestamp]) -> np.ndarray:
    """The forecasts of a model retrained on each of ``starts`` (the first from the
    never-retrained model), each serving from its day until the next."""
    forecasts = scored["static"].to_numpy(copy=True)
    for start_day in starts:
        year.model(start_day)
        inside = (scored["time_utc"] >= start_day).to_numpy()
        forecasts[inside] = year.forecasts[start_day][scored.index[inside]]
    return forecasts


def replay(options: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    year = Year()
    train_end = utc_day(options.train_end)
    first = judge_challenger(year.model(train_end), year.splits(train_end)["holdout"])
    cards = {"v001": card(year, "v001", train_end, first)}
    ends = {"v001": train_end}
    champion, serving_since, last_request = "v001", train_end, None
    days = pd.date_range(train_end, YEAR[1] - pd.Timedelta(days=1), freq="D")
    loop = np.full(len(year.features), np.nan)
    actual = year.features["di_target"].to_numpy(dtype=float)
    persistence = year.features["di_now"].to_numpy(dtype=float)
    events = []
    for day in days:
        today = (year.valid_day == day).to_numpy()
        loop[today] = year.forecasts[ends[champion]][today]
        week = ((year.valid_day > day - pd.Timedelta(days=7)) & (year.valid_day <= day)).to_numpy()
        mine = week & (year.valid_day >= serving_since).to_numpy()
        log = pd.DataFrame(
            {
                "model_version": champion,
                "station": year.features["station"].to_numpy()[mine],
                "valid_at": year.features["valid_at_utc"].to_numpy()[mine],
                "actual": actual[mine],
                "prediction": loop[mine],
                "persistence": persistence[mine],
                "actual_source": "weather",
            }
        )
        table = mon.performance_table(log)
        later = [c for v, c in cards.items() if v > champion and not options.own_holdout]
        holdout_rmse, _ = mon.latest_holdout_rmse(champion, cards[champion], later)
        start, end = mon.reference_window(cards[champion])
        if options.domain_to == "training":
            end = pd.Timestamp(cards[champion]["training_window"]["end"])
        times = year.inputs["time_utc"]
        reference = year.inputs[(times >= start) & (times <= end)]
        findings = [
            mon.rmse_decay(
                table, champion, holdout_rmse, options.rmse_factor, min_days=options.min_days
            ),
            mon.skill_decay(table, champion),
            mon.domain_finding(mon.domain_table(reference, year.served[week]), champion),
        ]
        reason = mon.retrain_reason(f.check for f in findings if not f.passed)
        cooled = last_request is None or day - last_request >= pd.Timedelta(
            days=options.cooldown_days
        )
        if reason is None or not cooled:
            continue
        last_request, end = day, day + pd.Timedelta(days=1)
        version = f"v{len(cards) + 1:03d}"
        decision = judge_challenger(
            year.model(end), year.splits(end)["holdout"], champion, year.model(ends[champion])
        )
        cards[version], ends[version] = card(year, version, end, decision), end
        events.append({"day": f"{day:%Y-%m-%d}", "reason": reason, "promoted": decision.promoted})
        if decision.promoted:
            champion, serving_since = version, end
    scored = year.features.assign(
        loop=loop, actual=actual, persistence=persistence, static=year.forecasts[train_end]
    )
    scored = scored[(year.valid_day >= train_end).to_numpy()].copy()
    monthly = month_starts(train_end, scored["time_utc"].min(), scored["valid_at_utc"].max())
    scored["monthly"] = scheduled(year, scored, monthly)
    # in hindsight: trained on the year up to its last four weeks, so on most scored hours
    year.model(YEAR[1])
    scored["hindsight"] = year.forecasts[YEAR[1]][scored.index]
    arms, schedule = (*ARMS, "hindsight"), {}
    if options.every_days > 0:
        step = pd.Timedelta(days=options.every_days)
        starts = list(pd.date_range(train_end + step, days[-1], freq=step))
        every = f"every_{options.every_days}d"
        scored[every], arms = scheduled(year, scored, starts), (*arms, every)
    figures = arm_rmse(scored, arms)
    if options.every_days > 0:
        schedule = {
            f"{every}_retrains": len(starts),
            f"{every}_vs_static": round(figures[every] / figures["static"], 4),
        }
    return {
        **{f"{arm}_rmse": round(value, 4) for arm, value in figures.items()},
        "loop_vs_static": round(figures["loop"] / figures["static"], 4),
        "loop_vs_monthly": round(figures["loop"] / figures["monthly"], 4),
        "monthly_vs_static": round(figures["monthly"] / figures["static"], 4),
        "hindsight_vs_static": round(figures["hindsight"] / figures["static"], 4),
        "retrains": len(events),
        "promotions": sum(e["promoted"] for e in events),
        "monthly_retrains": len(monthly),
        **schedule,
        "events": events,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    summary = replay(arguments())
    for event in summary["events"]:
        print(event["day"], event["reason"], "promoted" if event["promoted"] else "not promoted")
    counts = {"loop": summary["retrains"], "static": 0, "monthly": summary["monthly_retrains"]}
    print(f"\n{'arm':<12} {'RMSE':>7} {'× static':>9} {'retrains':>9}")
    for key, value in summary.items():
        if key.endswith("_rmse"):
            arm = key.removesuffix("_rmse")
            retrains = counts.get(arm, summary.get(f"{arm}_retrains", "–"))
            ratio = value / summary["static_rmse"]
            print(f"{arm:<12} {value:>7.4f} {ratio:>9.3f} {retrains:>9}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
