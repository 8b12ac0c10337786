"""Promotion as Dagster runs: a lost promotion is a successful run with a WARN check, the
pointer stays and `champion_model`/`bento` are skipped; a win moves the pointer.

Tiny ridge models on three months of the bundled data keep each run to a few seconds."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from comfort_assets import deployment
from comfort_assets.defs.evaluation import assets as evaluation
from comfort_assets.defs.serving.assets import bento
from comfort_assets.defs.training import assets as training
from comfort_assets.domain.features import build_features
from comfort_assets.domain.splits import SplitWindows, chronological_split
from comfort_assets.resources.io_manager import ObjectStoreIOManager
from comfort_assets.resources.object_store import LocalObjectStore
from comfort_assets.resources.registry import ModelRegistry
from comfort_assets.resources.tracking import ExperimentTracker

REAL = (
    training.baseline_models,
    training.candidate_models,
    training.tuned_model,
    evaluation.evaluation_report,
    evaluation.challenger_model,
    evaluation.champion_model,
    bento,
)
RUN_CONFIG = {
    "ops": {
        "candidate_models": {"config": {"families": ["ridge"], "random_states": [0]}},
        "tuned_model": {
            "config": {
                "family": "ridge",
                "search_type": "grid",
                "search_space": {"alpha": [1.0, 10.0]},
            }
        },
    }
}


@pytest.fixture(scope="module")
def upstream(bundled_clean) -> list[dg.AssetsDefinition]:
    """clean_weather and the three splits for January–March, as stand-in assets."""
    clean = bundled_clean.clean[
        bundled_clean.clean["time_utc"] < pd.Timestamp("2013-04-01", tz="UTC")
    ]
    windows = SplitWindows.from_dates("2013-02-15", "2013-03-01")
    frames = {"clean_weather": clean, **chronological_split(build_features(clean, 3), windows)}
    frames = {
        ("clean_weather" if k == "clean_weather" else f"{k}_set"): v for k, v in frames.items()
    }

    def stand_in(name: str, frame: pd.DataFrame) -> dg.AssetsDefinition:
        @dg.asset(name=name)
        def _asset() -> pd.DataFrame:
            return frame

        return _asset

    return [stand_in(name, frame) for name, frame in frames.items()]


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(store=LocalObjectStore(root=str(tmp_path / "store")))


def _run(
    upstream, registry, instance, selection, margin: float = 0.01
) -> dg.ExecuteInProcessResult:
    assets = [*upstream, *REAL]
    config = {"ops": {**RUN_CONFIG["ops"], "challenger_model": {"config": {"margin": margin}}}}
    return dg.materialize(
        assets,
        selection=selection,
        resources={
            **deployment.resources(),
            "object_store": registry.store,
            "io_manager": ObjectStoreIOManager(store=registry.store),
            "registry": registry,
            "tracker": ExperimentTracker(mode="disabled"),
        },
        instance=instance,
        run_config=config,
        raise_on_error=False,
    )


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def _promotion_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "promotion"]
    assert evaluation.asset_key == dg.AssetKey("challenger_model")
    return evaluation


def test_a_winning_challenger_moves_the_pointer_and_a_losing_one_is_a_successful_run(
    upstream, registry
):
    without_bento = [a.key.to_user_string() for a in [*upstream, *REAL[:-1]]]
    with dg.instance_for_test() as instance:
        won = _run(upstream, registry, instance, without_bento)
        assert won.success
        assert {"challenger_model", "champion_model"} <= _materialized(won)
        assert _promotion_check(won).passed
        logged = [e.user_message for e in instance.all_logs(won.run_id)]
        assert any("candidate fits 1/1" in m for m in logged)
        assert any("search trials 2/2" in m for m in logged)
        first = registry.versions()[0]
        assert registry.champion() == first
        assert registry.card(first)["promotion"]["promoted"] is True
        meta = instance.get_latest_materialization_event(
            dg.AssetKey("challenger_model")
        ).asset_materialization.metadata
        assert meta["version"].value == first and meta["promoted"].value is True
        assert meta["champion_before"].value == "None" and meta["champion_now"].value == first
        assert meta["champion_rmse"].value == "none"
        assert meta["challenger_rmse"].value == round(meta["challenger_rmse"].value, 4)
        assert meta["skill_vs_persistence"].value.endswith(" %")
        champion_meta = instance.get_latest_materialization_event(
            dg.AssetKey("champion_model")
        ).asset_materialization.metadata
        assert champion_meta["champion_now"].value == first

        # the same models again cannot beat the champion by 1 %: registered, not promoted
        lost = _run(upstream, registry, instance, [*without_bento, "bento"])
        assert lost.success
        materialized = _materialized(lost)
        assert "challenger_model" in materialized
        assert not {"champion_model", "bento"} & materialized
        skipped = {
            e.step_key for e in lost.all_events if e.event_type == dg.DagsterEventType.STEP_SKIPPED
        }
        assert "bento" in skipped
        check = _promotion_check(lost)
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert "better than champion" in check.metadata["decision"].value
        assert "comfort promote" in check.description
        second = registry.versions()[1]
        assert registry.champion() == first
        meta = instance.get_latest_materialization_event(
            dg.AssetKey("challenger_model")
        ).asset_materialization.metadata
        assert registry.card(second)["promotion"] == {
            "promoted": False,
            "reason": check.metadata["decision"].value,
            "champion_before": first,
            "champion_rmse": pytest.approx(meta["champion_rmse"].value, abs=5e-5),
        }
        assert meta["promoted"].value is False and meta["champion_now"].value == first
        assert isinstance(meta["champion_rmse"].value, float)
