"""Running the named jobs for the `comfort` CLI, on the Dagster instance, readably.

A run is the job's own `execute_in_process` on the instance in ``DAGSTER_HOME``, so it is
listed under the job in the UI with its ``comfort/*`` tags. The job's ``console`` logger is
swapped for one that writes Dagster's whole event log to ``COMFORT_HOME/logs/<run>.log`` and
prints one line per finished step; the ``progress`` resource draws bars for long steps.
The logger keeps the ``console`` name and config, so a re-execution from the UI still
validates against the code location's own job.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from comfort_assets.cli_models import comfort_home
from comfort_assets.processes import interrupts_kept_from_children
from comfort_assets.resources.progress import ProgressReporter, ProgressTask

#: the live display of the run in progress (one at a time: the CLI runs one job at a time)
_display: RunDisplay | None = None


class RunDisplay:
    """Step lines above a transient area of spinners (running steps) and bars (long loops)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
            transient=True,
        )
        self.running: dict[str, tuple[float, Any]] = {}

    def __enter__(self) -> RunDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def step_started(self, step: str, at: float) -> None:
        self.running[step] = (at, self.progress.add_task(step, total=None, count="", note=""))

    def step_finished(self, step: str, at: float, status: str) -> None:
        started, task = self.running.pop(step, (at, None))
        if task is not None:
            self.progress.remove_task(task)
        mark = {"ok": "[green]✓[/]", "failed": "[red]✗[/]"}.get(status, "[yellow]-[/]")
        took = status if status in ("skipped", "no output") else f"{at - started:6.1f} s"
        self.console.print(f"  {mark} {step:24} {took:>8}", highlight=False)


class RichProgressTask(ProgressTask):
    def __init__(self, description: str, total: int, display: RunDisplay) -> None:
        super().__init__(description, total)
        self.display = display
        self.task_id = display.progress.add_task(
            description, total=total, count=f"0/{total}", note=""
        )

    def advance(self, note: str = "") -> None:
        super().advance(note)
        self.display.progress.update(
            self.task_id, advance=1, count=f"{self.done}/{self.total}", note=note
        )


class RichProgressReporter(ProgressReporter):
    """Bars in the terminal while the CLI runs a job; the run log still gets every step."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[ProgressTask]:
        if _display is None:
            with super().task(description, total) as plain:
                yield plain
            return
        task = RichProgressTask(description, total, _display)
        try:
            yield task
        finally:
            _display.progress.remove_task(task.task_id)


class _StepLines(logging.Handler):
    """Turns Dagster's step events into the display's step lines."""

    def __init__(self, display: RunDisplay) -> None:
        super().__init__(logging.DEBUG)
        self.display = display
        #: Steps that yielded an output: one that succeeds without (an optional output it
        #: had no reason to yield, as `champion_model` for a losing challenger) says so.
        self.yielded: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None)
        if event is None or not event.step_key:
            return
        kind = event.event_type_value
        if kind == "STEP_START":
            self.display.step_started(event.step_key, record.created)
        elif kind == "STEP_OUTPUT":
            self.yielded.add(event.step_key)
        elif kind == "STEP_SUCCESS":
            status = "ok" if event.step_key in self.yielded else "no output"
            self.display.step_finished(event.step_key, record.created, status)
        elif kind == "STEP_FAILURE":
            self.display.step_finished(event.step_key, record.created, "failed")
        elif kind == "STEP_SKIPPED":
            self.display.step_finished(event.step_key, record.created, "skipped")


def _console_logger(
    log_file: Path, display: RunDisplay, verbose: TextIO | None
) -> dg.LoggerDefinition:
    @dg.logger(
        config_schema={
            "log_level": dg.Field(str, is_required=False, default_value="DEBUG"),
            "name": dg.Field(str, is_required=False, default_value="dagster"),
        },
        description="comfort CLI: the event log to a file, one line per step on the terminal",
    )
    def console(init_context: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger(init_context.logger_config["name"], level=logging.DEBUG)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
        logger.addHandler(to_file)
        logger.addHandler(_StepLines(display))
        if verbose is not None:
            to_terminal = logging.StreamHandler(verbose)
            to_terminal.setFormatter(logging.Formatter("%(levelname)-7s %(message)s"))
            logger.addHandler(to_terminal)
        return logger

    return console


@contextmanager
def _terminal(stream: TextIO) -> Iterator[TextIO]:
    """``stream`` as it is before the run: during a run Dagster points the process's stdout and
    stderr at its compute-log files and echoes them back through ``tail``, which would hide
    the terminal from rich (no live bars) and can drop the last lines written."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # pytest's capture, a StringIO
        yield stream
        return
    stream.flush()
    with os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace") as copy:
        yield copy


def instance_settings(home: Path) -> str:
    """A new instance's ``dagster.yaml``: telemetry would try the network at every run (this
    platform runs offline), the onboarding pop-up would cover the UI on its first load, and
    Dagster's SQLite event log, which reconnects and syncs to disk for every event, is kept
    with open connections (`comfort_assets.instance_storage`). A custom storage gets no
    default directory from Dagster, so the file names Dagster's usual one in full."""
    return (
        "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
        "event_log_storage:\n"
        "  module: comfort_assets.instance_storage\n"
        "  class: LocalEventLogStorage\n"
        f"  config:\n    base_dir: {json.dumps(str(home.absolute() / 'history' / 'runs'))}\n"
    )


#: a single-run backfill over the year plans one event per asset, not one per asset and day
#: (1,460 SQLite writes, ~10 s of every `comfort run`); its one cost: a run that fails does
#: not mark each planned day as failed (docs/pitfalls.md)
PLANNED_EVENTS = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}


def instance_home() -> Path:
    """``DAGSTER_HOME`` (unset or empty: ``COMFORT_HOME/dagster``), for Dagster too."""
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(comfort_home() / "dagster")
    return Path(os.environ["DAGSTER_HOME"])


def instance() -> dg.DagsterInstance:
    """The instance in `instance_home`, telemetry off, planned events per range."""
    for name, value in PLANNED_EVENTS.items():
        os.environ.setdefault(name, value)
    home = instance_home()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text(instance_settings(home))
    return dg.DagsterInstance.get()


@dataclass
class Outcome:
    run_id: str
    job: str
    success: bool
    seconds: float
    log_file: Path
    result: dg.ExecuteInProcessResult
    failures: list[str] = field(default_factory=list)

    def materialization(self, asset: str) -> dict[str, Any] | None:
        """The asset's metadata in this run, as plain values (None: not materialized)."""
        for event in self.result.get_asset_materialization_events():
            if event.asset_key == dg.AssetKey(asset):
                metadata = event.step_materialization_data.materialization.metadata
                return {k: getattr(v, "value", v) for k, v in metadata.items()}
        return None

    def failed_checks(self) -> list[str]:
        lines = []
        for evaluation in self.result.get_asset_check_evaluations():
            if not evaluation.passed:
                name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                text = evaluation.description or next(
                    (
                        str(getattr(evaluation.metadata[k], "value", ""))
                        for k in ("decision", "summary", "problems", "reason")
                        if k in evaluation.metadata
                    ),
                    "",
                )
                lines.append(f"{name} failed ({evaluation.severity.value}) {_one_line(text)}")
        return lines


def _one_line(text: str, width: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """``step: innermost error message`` for every failed step, or the run's own failure
    (one that failed before any step: a resource, the executor) with its error."""
    lines = [
        f"{event.step_key}: {_error_line(event.step_failure_data.error, event.message)}"
        for event in result.get_step_failure_events()
    ]
    if not lines and not result.success:
        failure = next((e for e in result.all_events if e.is_job_failure), None)
        if failure is None:
            lines.append("the run failed")
        else:
            lines.append(_error_line(failure.job_failure_data.error, failure.message))
    return lines


def _error_line(error: Any, fallback: str | None) -> str:
    """The innermost error's message on one line ("SomeError: text", without its module)."""
    while error is not None and error.cause is not None:
        error = error.cause
    message = error.message if error is not None else fallback or ""
    return _one_line(re.sub(r"^[\w.]+\.(\w+): ", r"\1: ", message.strip()))


def interrupted(result: Any) -> bool:
    """Whether Ctrl-C ended the run. Dagster catches it inside a run and records a failed
    run; the run's failure names the interrupt (raised in a step, or between steps), so the
    caller can end as interrupted rather than report a failure."""
    names = {KeyboardInterrupt.__name__, dg.DagsterExecutionInterruptedError.__name__}
    return any(
        event.is_job_failure
        and event.job_failure_data.error is not None
        and event.job_failure_data.error.cls_name in names
        for event in result.all_events
    )


def _record_cancelled(dagster_instance: dg.DagsterInstance, run_id: str) -> None:
    """Dagster records a run ended by Ctrl-C as failed; the person stopped it, so the UI
    (and the run-failure notifier) should see it canceled."""
    run = dagster_instance.get_run_by_id(run_id)
    if run is not None:
        dagster_instance.report_run_canceled(run, message="Interrupted: Ctrl-C in `comfort`")


def launch(
    defs: dg.Definitions,
    job_name: str,
    tags: Mapping[str, str],
    run_config: Mapping[str, Any] | None = None,
    *,
    partition_key: str | None = None,
    verbose: bool = False,
) -> Outcome:
    """Runs ``job_name`` in process on the instance. A partitioned job without a
    ``partition_key`` covers every partition as one single-run backfill."""
    global _display

    job = defs.resolve_job_def(job_name)
    run_tags = dict(tags)
    if job.partitions_def is not None and partition_key is None:
        keys = job.partitions_def.get_partition_keys()
        run_tags["dagster/asset_partition_range_start"] = keys[0]
        run_tags["dagster/asset_partition_range_end"] = keys[-1]
    run_id = str(uuid.uuid4())
    logs = comfort_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    log_file = logs / f"{stamp}-{job_name}-{run_id[:8]}.log"
    config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": "DEBUG"}}}}
    started = time.perf_counter()
    try:
        with ExitStack() as stack:
            display = RunDisplay(Console(file=stack.enter_context(_terminal(sys.stdout))))
            display.console.print(f"comfort: {job_name} on {instance_home()}", highlight=False)
            terminal_err = stack.enter_context(_terminal(sys.stderr)) if verbose else None
            logger = _console_logger(log_file, display, terminal_err)
            dagster_instance = stack.enter_context(instance())
            _display = stack.enter_context(display)
            stack.enter_context(interrupts_kept_from_children())
            result = job.with_logger_defs({"console": logger}).execute_in_process(
                run_config=config,
                instance=dagster_instance,
                partition_key=partition_key,
                tags=run_tags,
                run_id=run_id,
                resources={"progress": RichProgressReporter()},
                raise_on_error=False,
            )
            if interrupted(result):
                _record_cancelled(dagster_instance, run_id)
                raise KeyboardInterrupt
    finally:
        _display = None
    return Outcome(
        run_id=run_id,
        job=job_name,
        success=result.success,
        seconds=time.perf_counter() - started,
        log_file=log_file,
        result=result,
        failures=failures(result),
    )
