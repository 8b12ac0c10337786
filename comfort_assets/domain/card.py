"""The model card: what a registered version is, how it was made and what was decided."""

from __future__ import annotations

from typing import Any

import pandas as pd

from comfort_assets.domain.champion import ChallengerDecision
from comfort_assets.domain.evaluation import EvaluationReport
from comfort_assets.domain.features import WINDOW_HOURS


def _window(frame: pd.DataFrame) -> dict[str, str]:
    return {
        "start": frame["time_utc"].min().isoformat(),
        "end": frame["valid_at_utc"].max().isoformat(),
    }


def model_card(
    report: EvaluationReport,
    decision: ChallengerDecision,
    training_set: pd.DataFrame,
    holdout_set: pd.DataFrame,
    code_version: str,
    dagster_run_id: str,
) -> dict[str, Any]:
    """Card fields besides those the registry adds (version, features, horizon, sha256)."""
    scores = report.challenger_scores
    return {
        "metrics": {
            "holdout_rmse": decision.challenger_rmse,
            "holdout_mae": float(scores["mae"]),
            "holdout_bias": float(scores["bias"]),
            "persistence_rmse": decision.persistence_rmse,
            "skill_vs_persistence": decision.skill,
        },
        "model_choice": report.challenger_name,
        "members": list(report.members),
        "window_hours": WINDOW_HOURS,
        "stations": sorted(training_set["station"].astype(str).unique().tolist()),
        "training_window": _window(training_set),
        "holdout_window": _window(holdout_set),
        "code_version": code_version,
        "wandb_runs": list(report.wandb_runs),
        "dagster_run_id": dagster_run_id,
        "promotion": {
            "promoted": decision.promoted,
            "reason": decision.reason,
            # the standing champion scored on this holdout (monitoring's freshest figure of it)
            "champion_before": decision.champion_before,
            "champion_rmse": decision.champion_rmse,
        },
    }
