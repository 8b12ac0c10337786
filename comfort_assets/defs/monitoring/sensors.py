"""Closing the loop: a sensor that reads the monitoring checks and asks for a retrain, and
sensors that tell people about promotions and failed runs.

Why a custom sensor over the check evaluations, not declarative automation: the retraining
job is a job (training and evaluation groups, not one asset downstream of the checks), the
decision combines several checks with a rule (decay or out-of-domain yes, drift alone no),
and the run needs a reason and the triggering figures in its tags; a cursor keeps each
evaluation read once and carries the cooldown. Run-failure sensors cannot do it: a failed
non-blocking check does not fail its run.
"""

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

from comfort_assets.deployment import cooldown_seconds
from comfort_assets.domain.monitoring import retrain_reason
from comfort_assets.resources.notifier import Alert, Notifier

RETRAINING_JOB = "retraining_job"
#: On its first tick, the promotion sensor announces only a registration this recent.
FIRST_TICK_NEWS_S = 600.0
#: The checks the retrain rule reads (drift is among them, but never decides alone).
WATCHED_CHECKS: tuple[dg.AssetCheckKey, ...] = tuple(
    dg.AssetCheckKey(dg.AssetKey(asset), name)
    for asset, name in (
        ("production_performance", "rmse_vs_holdout"),
        ("production_performance", "skill_vs_persistence"),
        ("feature_drift", "input_domain"),
        ("feature_drift", "seasonal_drift"),
    )
)


@dataclass(frozen=True)
class CheckOutcome:
    """One stored check evaluation, as the sensor needs it."""

    storage_id: int
    check: str
    asset: str
    passed: bool
    partition: str | None
    run_id: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class RetrainCursor:
    """The last evaluation read and when the sensor last asked for a retrain."""

    after: int = 0
    last_request: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> "RetrainCursor":
        return cls(**json.loads(text)) if text else cls()

    def dump(self) -> str:
        return json.dumps({"after": self.after, "last_request": self.last_request})


def new_check_outcomes(
    instance: dg.DagsterInstance, keys: Sequence[dg.AssetCheckKey], after: int, limit: int = 100
) -> list[CheckOutcome]:
    """Evaluations of ``keys`` stored after ``after``, oldest first."""
    outcomes = []
    for key in keys:
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=limit)
        for record in history:
            evaluation = record.evaluation
            if record.id <= after or not isinstance(evaluation, dg.AssetCheckEvaluation):
                continue  # read already, or planned and not evaluated yet
            outcomes.append(
                CheckOutcome(
                    storage_id=record.id,
                    check=key.name,
                    asset=key.asset_key.to_user_string(),
                    passed=evaluation.passed,
                    partition=record.partition
                    or evaluation.partition
                    or _run_partition(instance, record.run_id),
                    run_id=record.run_id,
                    metadata={k: str(v.value) for k, v in evaluation.metadata.items()},
                )
            )
    return sorted(outcomes, key=lambda o: o.storage_id)


def newest_day_verdicts(outcomes: Sequence[CheckOutcome]) -> list[CheckOutcome]:
    """The latest evaluation of each check on the newest monitored day among ``outcomes``.
    A failure that a later evaluation of the same day overturned (duplicates removed, late
    actuals) is no reason to retrain, and neither is one of an earlier day: a decay that
    lasts shows on the newest day too, and the run's tags then describe one day."""
    newest = max(o.partition or "" for o in outcomes)
    latest: dict[tuple[str, str], CheckOutcome] = {}
    for outcome in sorted(outcomes, key=lambda o: o.storage_id):
        if (outcome.partition or "") == newest:
            latest[(outcome.asset, outcome.check)] = outcome
    return list(latest.values())


def _run_partition(instance: dg.DagsterInstance, run_id: str) -> str | None:
    run = instance.get_run_by_id(run_id)
    return run.tags.get("dagster/partition") if run else None


def retrain_tags(reason: str, trigger: CheckOutcome, failed: Iterable[CheckOutcome]) -> dict:
    """Run tags that say why the retrain was asked for, with the deciding figures."""
    return {
        "comfort/trigger": "monitoring",
        "comfort/reason": reason,
        "comfort/check": f"{trigger.asset}:{trigger.check}",
        "comfort/figure": trigger.metadata.get("figure", ""),
        "comfort/threshold": trigger.metadata.get("threshold", ""),
        "comfort/station": trigger.metadata.get("station", ""),
        "comfort/model_version": trigger.metadata.get("model_version", ""),
        "comfort/partition": trigger.partition or "",
        "comfort/failed_checks": ",".join(sorted({f"{o.asset}:{o.check}" for o in failed})),
        "comfort/monitoring_run": trigger.run_id,
        "comfort/message": trigger.metadata.get("message", reason)[:300],
    }


def retrain_alert(tags: Mapping[str, str]) -> Alert:
    """The alert of a retrain that monitoring asked for, from its run's tags."""
    return Alert(
        kind="retrain",
        title=f"retraining started: {tags.get('comfort/message') or tags.get('comfort/reason')}",
        check=tags.get("comfort/check", ""),
        figure=_number(tags.get("comfort/figure", "")),
        threshold=_number(tags.get("comfort/threshold", "")),
        station=tags.get("comfort/station", ""),
        model_version=tags.get("comfort/model_version", ""),
        details={"reason": tags.get("comfort/reason", "")},
    )


@dg.sensor(
    job_name=RETRAINING_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrains when monitoring finds decay (a week's RMSE over the champion's "
    "latest holdout RMSE × 1.1, or a station worse than persistence) or inputs out of the "
    "champion's domain; drift alone does not. One request per cooldown.",
)
def monitoring_retrain_sensor(context: dg.SensorEvaluationContext):
    cooldown = cooldown_seconds()  # a bad setting fails every tick at once, not the first retrain
    cursor = RetrainCursor.parse(context.cursor)
    outcomes = new_check_outcomes(context.instance, WATCHED_CHECKS, cursor.after)
    if not outcomes:
        return dg.SkipReason("no new monitoring check evaluations")
    latest = max(o.storage_id for o in outcomes)
    verdicts = newest_day_verdicts(outcomes)
    failed = [o for o in verdicts if not o.passed]
    reason = retrain_reason(o.check for o in failed)
    if reason is None:
        context.update_cursor(RetrainCursor(latest, cursor.last_request).dump())
        drifted = [o for o in failed if o.check == "seasonal_drift"]
        return dg.SkipReason(
            f"{len(outcomes)} evaluation(s), "
            + ("drift without decay: no retrain" if drifted else "no decay")
        )
    now = time.time()
    if cursor.last_request is not None and now - cursor.last_request < cooldown:
        context.update_cursor(RetrainCursor(latest, cursor.last_request).dump())
        wait_h = (cooldown - (now - cursor.last_request)) / 3600
        return dg.SkipReason(f"{reason}, but a retrain was requested {wait_h:.1f} h too recently")
    order = {key.name: i for i, key in enumerate(WATCHED_CHECKS)}
    trigger = min(failed, key=lambda o: (order[o.check], -o.storage_id))
    context.update_cursor(RetrainCursor(latest, now).dump())
    # people hear of it when the run starts (`retraining_notifier`): a tick evaluated by
    # "Test sensor" or `dagster sensor preview` requests nothing and must tell nobody
    return dg.RunRequest(
        run_key=f"monitoring-retrain-{latest}",
        job_name=RETRAINING_JOB,
        tags=retrain_tags(reason, trigger, failed),
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.STARTED,
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,  # as `run_failure_notifier`: in-process runs too
    description="Tells people when a retrain that monitoring asked for starts, with the "
    "check, the figure and the threshold that decided it.",
)
def retraining_notifier(context: dg.RunStatusSensorContext, notifier: Notifier):
    tags = context.dagster_run.tags
    # a retry (Dagster copies the tags to it) is the same retrain: people heard of it
    if tags.get("comfort/trigger") == "monitoring" and "dagster/parent_run_id" not in tags:
        notifier.notify(retrain_alert(tags))


@dg.asset_sensor(
    asset_key=dg.AssetKey("challenger_model"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Tells people when a challenger was registered, and whether it was promoted.",
)
def promotion_notifier(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry, notifier: Notifier
):
    age = time.time() - asset_event.timestamp
    if context.cursor is None and age > FIRST_TICK_NEWS_S:
        # the first tick of a daemon started later finds the last registration ever made
        return dg.SkipReason(f"registered {age / 3600:.1f} h before this sensor's first tick")
    metadata = asset_event.asset_materialization.metadata
    value = {k: v.value for k, v in metadata.items()}
    promoted = bool(value.get("promoted"))
    notifier.notify(
        Alert(
            kind="promotion",
            title=f"{value.get('version', '?')} "
            + ("promoted to champion" if promoted else "registered, not promoted")
            + f": {value.get('decision', '')}",
            check="challenger_model:promotion",
            figure=_number(str(value.get("challenger_rmse", ""))),
            threshold=_number(str(value.get("champion_rmse", ""))),
            model_version=str(value.get("champion_now", "")),
        )
    )
    return dg.SkipReason("notified")


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    # the `comfort` CLI runs jobs in process: its runs name no code location, and a sensor
    # watching only its own location's runs never saw them fail
    monitor_all_code_locations=True,
    description="Sends every failed run on this instance to the notifier, the `comfort` "
    "CLI's too (except a run stopped with Ctrl-C, and a step that already sent its own "
    "alert, such as a failed self-test step).",
)
def run_failure_notifier(context: dg.RunFailureSensorContext, notifier: Notifier):
    run = context.dagster_run
    if run.status == dg.DagsterRunStatus.CANCELED:  # a person stopped it: no news
        return
    failures = context.get_step_failure_events()
    if failures and all(_already_notified(event) for event in failures):
        return
    errors = [
        f"{event.step_key}: {_root_cause(event.event_specific_data.error)}"
        for event in failures
        if event.event_specific_data and event.event_specific_data.error
    ]
    message = "; ".join(errors) or (context.failure_event.message or "")
    notifier.notify(
        Alert(
            kind="run_failure",
            title=f"run of {run.job_name} failed",
            details={
                "run_id": run.run_id,
                "partition": run.tags.get("dagster/partition", ""),
                "error": message[:300],
            },
        )
    )


def _already_notified(event: dg.DagsterEvent) -> bool:
    """A step that raised `dg.Failure` with ``notified`` metadata sent its own alert."""
    data = event.event_specific_data
    user = getattr(data, "user_failure_data", None)
    return bool(user and user.metadata.get("notified") and user.metadata["notified"].value)


def _root_cause(error) -> str:
    """The innermost error of Dagster's wrapped chain: the one the user code raised."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
