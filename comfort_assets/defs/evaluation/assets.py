"""Group `evaluation`: holdout report with plots, then the promotion decision."""

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from comfort_assets import reporting
from comfort_assets.domain.baselines import BASELINES
from comfort_assets.domain.evaluation import breakdown, score_table
from comfort_assets.domain.features import WINDOW_HOURS
from comfort_assets.domain.metrics import rmse
from comfort_assets.domain.modeling import ForecastModel
from comfort_assets.domain.promotion import decide_promotion
from comfort_assets.domain.training import horizon_of, select_challenger, split_data
from comfort_assets.metadata import markdown_table
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.resources.tracking import ExperimentTracker


class PromotionConfig(dg.Config):
    margin: float = 0.01
    """The challenger must beat the champion's holdout RMSE by this fraction (0.01 = 1 %)."""


def code_version() -> str:
    try:
        package = version("comfort-assets")
    except PackageNotFoundError:
        package = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{package}+{commit}" if commit else package


@dg.asset(group_name="evaluation", kinds={"pandas", "wandb"})
def evaluation_report(
    tracker: ExperimentTracker,
    candidate_models: dict,
    tuned_model: dict,
    baseline_models: pd.DataFrame,
    validation_set: pd.DataFrame,
    holdout_set: pd.DataFrame,
) -> dg.Output[dict]:
    """Picks the challenger on validation (never on the holdout), then scores every model and
    baseline on the holdout: RMSE/MAE/bias/skill, per station, season, month and DI band."""
    challenger_name, contenders, validation_rmse = select_challenger(
        candidate_models["models"], tuned_model["model"], validation_set
    )
    challenger = contenders[challenger_name]
    holdout = split_data(holdout_set)

    baselines = baseline_models[baseline_models["split"] == "holdout"]
    keyed = holdout_set[["station", "time_utc"]].merge(
        baselines, on=["station", "time_utc"], how="left"
    )
    persistence = holdout.di_now
    forecasts = {
        name: m.predict_di(holdout.features, holdout.di_now) for name, m in contenders.items()
    }
    forecasts.update({name: keyed[name].to_numpy(dtype=float) for name in BASELINES})
    table = score_table(holdout.di_target, forecasts, persistence)
    table.insert(1, "validation_rmse", table["model"].map(validation_rmse))
    details = breakdown(holdout_set, forecasts[challenger_name], persistence)

    month = holdout_set["time_utc"].dt.month.to_numpy()
    by_month = pd.DataFrame(
        {
            name: [
                rmse(holdout.di_target[month == m], forecasts[name][month == m])
                for m in sorted(set(month))
            ]
            for name in (challenger_name, "persistence")
        },
        index=[f"{m:02d}" for m in sorted(set(month))],
    )
    plots = {
        "predicted_vs_actual": reporting.predicted_vs_actual(
            holdout.di_target, forecasts[challenger_name], challenger_name
        ),
        "error_by_month": reporting.error_by_month(by_month),
        "feature_importance": reporting.feature_importance(challenger.feature_importance()),
    }
    horizon = horizon_of(holdout_set)
    challenger_scores = table.set_index("model").loc[challenger_name]
    with tracker.run(
        "evaluation_report", "evaluate", {"horizon_h": horizon, "challenger": challenger_name}
    ) as run:
        plot_dir = Path(tracker.dir) / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        for name, png in plots.items():
            path = plot_dir / f"{name}.png"
            path.write_bytes(png)
            run.log_image(name, path)
        run.log_table("holdout_scores", table)
        run.log_table("breakdown", details)
        run.summary(
            {
                "challenger_holdout_rmse": float(challenger_scores["rmse"]),
                "challenger_skill": float(challenger_scores["skill"]),
            }
        )
        run_url = run.url
    report = {
        "horizon_h": horizon,
        "challenger_name": challenger_name,
        "challenger": challenger,
        "scores": table,
        "breakdown": details,
        "plots": plots,
        "wandb_run": run_url,
        "wandb_runs": [candidate_models["wandb_run"], tuned_model["wandb_run"], run_url],
    }
    return dg.Output(
        report,
        metadata={
            "challenger": challenger_name,
            "holdout_rmse": dg.MetadataValue.float(float(challenger_scores["rmse"])),
            "skill_vs_persistence": dg.MetadataValue.float(float(challenger_scores["skill"])),
            "holdout_scores": markdown_table(table),
            "by_station_season_month_band": markdown_table(details),
            "plots": dg.MetadataValue.md(
                "\n\n".join(reporting.markdown_image(png, name) for name, png in plots.items())
            ),
            "wandb_run": dg.MetadataValue.text(run_url),
        },
    )


@dg.asset(
    group_name="evaluation",
    kinds={"xgboost", "s3", "wandb"},
    check_specs=[
        dg.AssetCheckSpec(
            "promotion",
            asset="champion_model",
            blocking=True,
            description="the challenger beat persistence and the champion on the same holdout",
        )
    ],
)
def champion_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    registry: ModelRegistry,
    tracker: ExperimentTracker,
    evaluation_report: dict,
    training_set: pd.DataFrame,
    holdout_set: pd.DataFrame,
):
    """Registers the challenger as the next `weather-predictor-NNN`, scores it and the current
    champion on the same fresh holdout, and moves the champion pointer only if it wins."""
    challenger: ForecastModel = evaluation_report["challenger"]
    holdout = split_data(holdout_set)
    challenger_rmse = rmse(
        holdout.di_target, challenger.predict_di(holdout.features, holdout.di_now)
    )
    persistence_rmse = rmse(holdout.di_target, holdout.di_now)

    champion_version = registry.champion()
    champion_rmse = None
    if champion_version is not None:
        champion, _ = registry.load(champion_version)
        if champion.horizon_h == challenger.horizon_h and set(champion.feature_names) <= set(
            holdout_set.columns
        ):
            features = holdout_set[champion.feature_names].to_numpy(dtype=float)
            champion_rmse = rmse(holdout.di_target, champion.predict_di(features, holdout.di_now))
        else:
            context.log.warning(
                f"champion {champion_version} cannot be scored on the current features"
            )
    decision = decide_promotion(challenger_rmse, persistence_rmse, champion_rmse, config.margin)

    scores = evaluation_report["scores"].set_index("model")
    card = {
        "metrics": {
            "holdout_rmse": challenger_rmse,
            "holdout_mae": float(scores.loc[evaluation_report["challenger_name"], "mae"]),
            "holdout_bias": float(scores.loc[evaluation_report["challenger_name"], "bias"]),
            "persistence_rmse": persistence_rmse,
            "skill_vs_persistence": 1 - challenger_rmse / persistence_rmse,
        },
        "model_choice": evaluation_report["challenger_name"],
        "window_hours": WINDOW_HOURS,
        "stations": sorted(training_set["station"].unique().tolist()),
        "training_window": {
            "start": training_set["time_utc"].min().isoformat(),
            "end": training_set["valid_at_utc"].max().isoformat(),
        },
        "holdout_window": {
            "start": holdout_set["time_utc"].min().isoformat(),
            "end": holdout_set["valid_at_utc"].max().isoformat(),
        },
        "code_version": code_version(),
        "wandb_runs": evaluation_report["wandb_runs"],
        "dagster_run_id": context.run.run_id,
    }
    version = registry.register(challenger, card)
    for name, png in evaluation_report["plots"].items():
        registry.put_report(version, f"{name}.png", png)
    if decision.promote:
        registry.promote(version, decision.reason)
    with tracker.run(
        "champion_model", "promote", {"version": version, "margin": config.margin}
    ) as run:
        run.summary(
            {
                "promoted": decision.promote,
                "challenger_rmse": challenger_rmse,
                "champion_rmse": champion_rmse or np.nan,
                "persistence_rmse": persistence_rmse,
            }
        )
        run.log_artifact(
            version,
            "model",
            challenger.to_files(),
            {**card["metrics"], "promoted": decision.promote},
        )
    champion_now = registry.champion()
    context.log.info(f"{version}: {decision.reason}; champion is {champion_now}")
    yield dg.Output(
        {
            "version": version,
            "promoted": decision.promote,
            "champion": champion_now,
            "reason": decision.reason,
        },
        metadata={
            "challenger_version": version,
            "promoted": decision.promote,
            "decision": decision.reason,
            "challenger_rmse": dg.MetadataValue.float(challenger_rmse),
            "champion_version": dg.MetadataValue.text(str(champion_version)),
            "champion_rmse": dg.MetadataValue.float(float(champion_rmse))
            if champion_rmse is not None
            else dg.MetadataValue.text("none"),
            "persistence_rmse": dg.MetadataValue.float(persistence_rmse),
            "champion_now": dg.MetadataValue.text(str(champion_now)),
        },
    )
    yield dg.AssetCheckResult(
        check_name="promotion",
        passed=decision.promote,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "decision": decision.reason,
            "challenger": version,
            "champion": str(champion_now),
        },
    )
