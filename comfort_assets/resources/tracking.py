"""Experiment tracking in Weights & Biases, offline by default.

A small `ConfigurableResource` around `wandb.init` (dagster-wandb does not import with
wandb ≥ 0.30, STACK.md). ``mode="offline"`` writes real run files under ``dir`` with no
account; production sets ``mode="online"`` and ``WANDB_API_KEY``.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg


class TrackedRun:
    """What an asset needs from a run: log metrics, tables, images and files."""

    def __init__(self, run: Any) -> None:
        self._run = run

    @property
    def id(self) -> str:
        return self._run.id if self._run is not None else ""

    @property
    def url(self) -> str:
        if self._run is None:
            return ""
        return self._run.url or f"offline:{self._run.dir}"

    def log(self, metrics: Mapping[str, Any]) -> None:
        if self._run is not None:
            self._run.log(dict(metrics))

    def summary(self, values: Mapping[str, Any]) -> None:
        if self._run is not None:
            self._run.summary.update(dict(values))

    def log_table(self, name: str, frame: Any) -> None:
        if self._run is not None:
            import wandb

            self._run.log({name: wandb.Table(dataframe=frame)})

    def log_image(self, name: str, path: str | Path) -> None:
        if self._run is not None:
            import wandb

            self._run.log({name: wandb.Image(str(path))})

    def log_artifact(
        self, name: str, kind: str, files: Mapping[str, bytes], metadata: Mapping[str, Any]
    ) -> None:
        if self._run is None:
            return
        import wandb

        artifact = wandb.Artifact(name=name, type=kind, metadata=dict(metadata))
        for file_name, data in files.items():
            with artifact.new_file(file_name, mode="wb") as handle:
                handle.write(data)
        self._run.log_artifact(artifact)


class ExperimentTracker(dg.ConfigurableResource):
    project: str = "comfort-assets"
    mode: str = "offline"
    """offline (default, no account), online (needs WANDB_API_KEY) or disabled."""
    dir: str = ".comfort/wandb"
    entity: str | None = None

    @contextmanager
    def run(
        self, name: str, job_type: str, config: Mapping[str, Any] | None = None
    ) -> Iterator[TrackedRun]:
        if self.mode == "disabled":
            yield TrackedRun(None)
            return
        if self.mode not in {"offline", "online"}:
            raise ValueError(f"tracker mode must be offline, online or disabled, got {self.mode!r}")
        import wandb

        Path(self.dir).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(
            project=self.project,
            entity=self.entity,
            name=name,
            job_type=job_type,
            config=dict(config or {}),
            mode=self.mode,
            dir=self.dir,
            reinit="create_new",
            settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True),
        )
        try:
            yield TrackedRun(run)
        finally:
            run.finish()
