"""The promotion rule and model version names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

VERSION_PREFIX = "weather-predictor-"
_VERSION = re.compile(rf"^{VERSION_PREFIX}(\d{{3,}})$")


def version_name(number: int) -> str:
    if number < 1:
        raise ValueError(f"version numbers start at 1, got {number}")
    return f"{VERSION_PREFIX}{number:03d}"


def version_number(name: str) -> int:
    match = _VERSION.match(name)
    if not match:
        raise ValueError(f"{name!r} is not a model version name like {version_name(1)!r}")
    return int(match.group(1))


def next_version(existing: Iterable[str]) -> str:
    numbers = [version_number(n) for n in existing if _VERSION.match(n)]
    return version_name(max(numbers, default=0) + 1)


DEFAULT_MIN_STATION_ROWS = 200


@dataclass(frozen=True)
class StationScore:
    """The challenger and persistence on one station's holdout rows."""

    station: str
    rows: int
    challenger_rmse: float
    persistence_rmse: float


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger_rmse: float
    champion_rmse: float | None
    persistence_rmse: float


def worst_station(
    stations: Iterable[StationScore], min_rows: int = DEFAULT_MIN_STATION_ROWS
) -> StationScore | None:
    """The station (with at least ``min_rows`` rows) where the challenger is furthest behind
    persistence, or None when it is nowhere worse."""
    worse = [s for s in stations if s.rows >= min_rows and s.challenger_rmse > s.persistence_rmse]
    return max(worse, key=lambda s: s.challenger_rmse - s.persistence_rmse, default=None)


def decide_promotion(
    challenger_rmse: float,
    persistence_rmse: float,
    champion_rmse: float | None = None,
    margin: float = 0.01,
    stations: Iterable[StationScore] = (),
    min_station_rows: int = DEFAULT_MIN_STATION_ROWS,
    champion_note: str = "",
) -> PromotionDecision:
    """Scores must come from the same fresh holdout.

    The challenger must beat persistence overall and be no worse than persistence at any
    station with at least ``min_station_rows`` holdout rows (better on average but worse at
    one place is not better there); if there is a champion, it must also beat it by at least
    ``margin`` (relative: 0.01 = 1 % lower RMSE). ``champion_note`` says why an existing
    champion could not be scored, so persistence is the only bar.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if min_station_rows < 1:
        raise ValueError(f"min_station_rows must be >= 1, got {min_station_rows}")

    def decision(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(promote, reason, challenger_rmse, champion_rmse, persistence_rmse)

    if not challenger_rmse < persistence_rmse:
        return decision(
            False,
            f"challenger RMSE {challenger_rmse:.4f} does not beat "
            f"persistence {persistence_rmse:.4f}",
        )
    station = worst_station(stations, min_station_rows)
    if station is not None:
        return decision(
            False,
            f"at station {station.station} the challenger RMSE {station.challenger_rmse:.4f} "
            f"is worse than persistence {station.persistence_rmse:.4f} "
            f"({station.rows} holdout rows)",
        )
    if champion_rmse is None:
        beats = f"beats persistence ({challenger_rmse:.4f} < {persistence_rmse:.4f})"
        return decision(True, f"{champion_note or 'first model'}; {beats}")
    needed = champion_rmse * (1 - margin)
    if challenger_rmse < needed:
        return decision(
            True,
            f"beats champion {champion_rmse:.4f} by more than {margin:.1%} ({challenger_rmse:.4f})",
        )
    return decision(
        False,
        f"challenger RMSE {challenger_rmse:.4f} is not {margin:.1%} better than champion "
        f"{champion_rmse:.4f} (needs < {needed:.4f})",
    )
