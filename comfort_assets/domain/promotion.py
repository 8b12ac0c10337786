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


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger_rmse: float
    champion_rmse: float | None
    persistence_rmse: float


def decide_promotion(
    challenger_rmse: float,
    persistence_rmse: float,
    champion_rmse: float | None = None,
    margin: float = 0.01,
) -> PromotionDecision:
    """Scores must come from the same fresh holdout.

    The challenger must beat persistence; if there is a champion, it must also beat it by at
    least ``margin`` (relative: 0.01 = 1 % lower RMSE).
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")

    def decision(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(promote, reason, challenger_rmse, champion_rmse, persistence_rmse)

    if not challenger_rmse < persistence_rmse:
        return decision(
            False,
            f"challenger RMSE {challenger_rmse:.4f} does not beat "
            f"persistence {persistence_rmse:.4f}",
        )
    if champion_rmse is None:
        return decision(
            True, f"first model; beats persistence ({challenger_rmse:.4f} < {persistence_rmse:.4f})"
        )
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
