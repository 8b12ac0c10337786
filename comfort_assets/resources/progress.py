"""Where long steps (candidate fits, search trials, benchmark folds) report how far they are.

Assets call ``progress.task(description, total)`` and ``task.advance(note)`` once per unit of
work. The default writes one log line per unit to the Dagster run log; the `comfort` CLI
passes a subclass that draws a progress bar in the terminal instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg


class ProgressTask:
    """One long step: ``total`` units, advanced one at a time."""

    def __init__(self, description: str, total: int) -> None:
        self.description = description
        self.total = total
        self.done = 0

    def advance(self, note: str = "") -> None:
        self.done += 1
        suffix = f": {note}" if note else ""
        dg.get_dagster_logger().info(f"{self.description} {self.done}/{self.total}{suffix}")


class ProgressReporter(dg.ConfigurableResource):
    """Reports progress to the run log; subclasses draw it elsewhere."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[ProgressTask]:
        yield ProgressTask(description, total)
