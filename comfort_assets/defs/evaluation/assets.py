"""Group `evaluation`: the holdout report with plots, the challenger's registration and
promotion decision, and the champion pointer.

A challenger that loses is registered, its decision is a WARN check, and `champion_model`
(and the `bento` after it) are skipped: a champion that stands is not a failed run.
"""

from dataclasses import replace
from pathlib import Path

import dagster as dg
import pandas as pd

from comfort_assets import reporting
from comfort_assets.domain.card import model_card
from comfort_assets.domain.champion import ChallengerDecision, judge_challenger, station_table
from comfort_assets.domain.evaluation import EvaluationReport, evaluate_holdout
from comfort_assets.domain.promotion import DEFAULT_MIN_STATION_ROWS
from comfort_assets.domain.training import CandidateSet, TunedResult, select_challenger
from comfort_assets.metadata import code_version, markdown_table, percent, rmse_value
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.resources.tracking import ExperimentTracker


class PromotionConfig(dg.Config):
    margin: float = 0.01
    """The challenger must beat the champion's holdout RMSE by this fraction (0.01 = 1 %)."""
    min_station_rows: int = DEFAULT_MIN_STATION_ROWS
    """Stations with at least this many holdout rows must not be worse than persistence."""


@dg.asset(group_name="evaluation", kinds={"pandas", "wandb"})
def evaluation_report(
    tracker: ExperimentTracker,
    candidate_models: CandidateSet,
    tuned_model: TunedResult,
    baseline_models: pd.DataFrame,
    validation_set: pd.DataFrame,
    holdout_set: pd.DataFrame,
) -> dg.Output[EvaluationReport]:
    """Picks the challenger on validation (never on the holdout), then scores every model and
    baseline on the holdout: RMSE/MAE/bias/skill, per station, season, month and DI band."""
    choice = select_challenger(candidate_models.models, tuned_model.model, validation_set)
    baselines = baseline_models[baseline_models["split"] == "holdout"]
    report = evaluate_holdout(choice, holdout_set, baselines)
    plots = reporting.evaluation_plots(report)
    best = report.challenger_scores
    config = {"horizon_h": report.horizon_h, "challenger": report.challenger_name}
    with tracker.run("evaluation_report", "evaluate", config) as run:
        plot_dir = Path(tracker.dir) / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        for name, png in plots.items():
            (plot_dir / f"{name}.png").write_bytes(png)
            run.log_image(name, plot_dir / f"{name}.png")
        run.log_table("holdout_scores", report.scores)
        run.log_table("breakdown", report.breakdown)
        run.summary({"challenger_holdout_rmse": best["rmse"], "challenger_skill": best["skill"]})
        runs = (candidate_models.wandb_run, tuned_model.wandb_run, run.url)
    return dg.Output(
        replace(report, plots=plots, wandb_runs=runs),
        metadata={
            "challenger": report.challenger_name,
            "members": dg.MetadataValue.text(", ".join(report.members) or "-"),
            "holdout_rmse": rmse_value(best["rmse"]),
            "skill_vs_persistence": percent(best["skill"]),
            "holdout_scores": markdown_table(report.scores),
            "by_station_season_month_band": markdown_table(report.breakdown),
            "plots": dg.MetadataValue.md(reporting.markdown_images(plots)),
            "wandb_run": dg.MetadataValue.text(runs[-1]),
        },
    )


@dg.asset(
    group_name="evaluation",
    kinds={"xgboost", "s3", "wandb"},
    check_specs=[
        dg.AssetCheckSpec(
            "promotion",
            asset="challenger_model",
            description="the challenger beat persistence (overall and at every station) and "
            "the champion on the same holdout; a loss is a warning, the champion stands",
        )
    ],
)
def challenger_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    registry: ModelRegistry,
    tracker: ExperimentTracker,
    evaluation_report: EvaluationReport,
    training_set: pd.DataFrame,
    holdout_set: pd.DataFrame,
):
    """Registers the challenger as the next `weather-predictor-NNN` with the decision in its
    card, after scoring it, the current champion and persistence on the same holdout."""
    report = evaluation_report
    champion_before = registry.champion()
    champion = registry.load(champion_before)[0] if champion_before else None
    decision = judge_challenger(
        report.challenger,
        holdout_set,
        champion_before,
        champion,
        config.margin,
        config.min_station_rows,
    )
    card = model_card(
        report, decision, training_set, holdout_set, code_version(), context.run.run_id
    )
    decision = replace(decision, version=registry.register(report.challenger, card))
    for name, png in report.plots.items():
        registry.put_report(decision.version, f"{name}.png", png)
    tracked = {"version": decision.version, **config.model_dump()}
    with tracker.run("challenger_model", "register", tracked) as run:
        run.summary({**card["metrics"], "promoted": decision.promoted})
        run.log_artifact(decision.version, "model", report.challenger.to_files(), card["metrics"])
    context.log.info(f"{decision.version}: {decision.reason}")
    yield dg.Output(decision, metadata=_decision_metadata(decision))
    yield _promotion_check(decision)


def _promotion_check(decision: ChallengerDecision) -> dg.AssetCheckResult:
    """Passes on promotion; a loss is a WARN that says what stands and what can be done."""
    standing = (
        f". {decision.champion_before or 'No model'} stays champion; {decision.version} is "
        f"registered and can be promoted by hand (`comfort promote {decision.version}`)."
    )
    return dg.AssetCheckResult(
        check_name="promotion",
        passed=decision.promoted,
        severity=dg.AssetCheckSeverity.WARN,
        description=decision.reason + ("" if decision.promoted else standing),
        metadata={"decision": decision.reason, "challenger": decision.version},
    )


def _decision_metadata(decision: ChallengerDecision) -> dict[str, dg.MetadataValue]:
    return {
        "version": dg.MetadataValue.text(decision.version),
        "promoted": dg.MetadataValue.bool(decision.promoted),
        "decision": dg.MetadataValue.text(decision.reason),
        "challenger_rmse": rmse_value(decision.challenger_rmse),
        "champion_rmse": dg.MetadataValue.text("none")
        if decision.champion_rmse is None
        else rmse_value(decision.champion_rmse),
        "persistence_rmse": rmse_value(decision.persistence_rmse),
        "skill_vs_persistence": percent(decision.skill),
        "champion_before": dg.MetadataValue.text(str(decision.champion_before)),
        "champion_now": dg.MetadataValue.text(str(decision.champion_now)),
        "by_station": markdown_table(station_table(decision)),
    }


@dg.asset(group_name="evaluation", kinds={"s3"}, output_required=False)
def champion_model(
    context: dg.AssetExecutionContext, registry: ModelRegistry, challenger_model: ChallengerDecision
):
    """Moves the champion pointer to a promoted challenger; yields nothing when the challenger
    lost, so this asset and the Bento after it are skipped rather than failed."""
    decision = challenger_model
    if not decision.promoted:
        context.log.info(f"{decision.champion_before} stays champion: {decision.reason}")
        return
    before = registry.champion()
    registry.promote(decision.version, decision.reason)
    yield dg.Output(
        {"champion_before": before, "champion_now": decision.version, "reason": decision.reason},
        metadata={
            "champion_before": dg.MetadataValue.text(str(before)),
            "champion_now": dg.MetadataValue.text(decision.version),
            "reason": dg.MetadataValue.text(decision.reason),
        },
    )
