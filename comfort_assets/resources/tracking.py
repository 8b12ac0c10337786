"""Experiment tracking in Weights & Biases, offline by default.

A small `ConfigurableResource` around `wandb.init` (dagster-wandb does not import with
wandb ≥ 0.30). ``mode="offline"`` writes real run files under ``dir`` with no account;
production sets ``mode="online"`` and ``WANDB_API_KEY``.

Runs link up: every W&B run started during one Dagster run shares a ``group`` (the Dagster
run id) and carries the run id, the asset and, when known, the model version as tags and
config, under a readable unique name such as ``candidate_models-1a2b3c4d``. Everything W&B
writes (run files, artifact staging, its cache) stays under ``dir``, so a copied
``.comfort`` can be synced later with ``wandb sync`` and nothing is missing.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

#: W&B's own locations (defaults under the home directory), redirected under ``dir``.
WANDB_LOCATIONS: dict[str, str] = {
    "WANDB_DATA_DIR": "data",  # artifact staging: data/artifacts/staging
    "WANDB_CACHE_DIR": "cache",
    "WANDB_ARTIFACT_DIR": "artifacts",
}
#: Config keys that name the model a run is about.
MODEL_VERSION_KEYS: tuple[str, ...] = ("model_version", "version")


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


def run_identity(
    asset: str,
    dagster_run_id: str | None,
    config: Mapping[str, Any],
    model_version: str | None = None,
    started: datetime | None = None,
) -> dict[str, Any]:
    """Name, group, tags and extra config that tie a W&B run to its Dagster run and asset.

    Outside Dagster (no run id) the name carries the start time instead, still unique."""
    version = model_version or next(
        (str(config[key]) for key in MODEL_VERSION_KEYS if config.get(key)), None
    )
    tags = [f"asset:{asset}"]
    extra: dict[str, Any] = {"dagster_asset": asset}
    if dagster_run_id:
        suffix = dagster_run_id[:8]
        tags.append(f"dagster_run:{dagster_run_id}")
        extra["dagster_run_id"] = dagster_run_id
    else:
        suffix = (started or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    if version:
        tags.append(f"model:{version}")
        extra["model_version"] = version
    return {"name": f"{asset}-{suffix}", "group": dagster_run_id, "tags": tags, "config": extra}


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block (W&B reads its locations from there)."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


#: The W&B modes this platform supports (``WANDB_MODE``).
TRACKER_MODES = ("offline", "online", "disabled")


class ExperimentTracker(dg.ConfigurableResource):
    project: str = "comfort-assets"
    mode: str = "offline"
    """offline (default, no account), online (needs WANDB_API_KEY) or disabled."""
    dir: str = ".comfort/wandb"
    entity: str | None = None

    _dagster_run_id: str | None = PrivateAttr(default=None)
    _names: dict[str, int] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Remember the Dagster run this resource serves (once per run and process)."""
        self._dagster_run_id = context.run.run_id if context.run else None
        self._names = {}

    def _unique(self, name: str) -> str:
        """The same asset tracked twice in one run gets ``-2``, ``-3``, …"""
        seen = self._names.get(name, 0) + 1
        self._names[name] = seen
        return name if seen == 1 else f"{name}-{seen}"

    @contextmanager
    def run(
        self,
        name: str,
        job_type: str,
        config: Mapping[str, Any] | None = None,
        model_version: str | None = None,
    ) -> Iterator[TrackedRun]:
        """A W&B run for the asset ``name``; ``model_version`` (or a ``version`` /
        ``model_version`` config key) tags the run with the model it is about."""
        if self.mode == "disabled":
            yield TrackedRun(None)
            return
        if self.mode not in TRACKER_MODES:
            raise ValueError(f"tracker mode must be one of {TRACKER_MODES}, got {self.mode!r}")
        import wandb

        config = dict(config or {})
        identity = run_identity(name, self._dagster_run_id, config, model_version)
        root = Path(self.dir).absolute()
        locations = {key: str(root / sub) for key, sub in WANDB_LOCATIONS.items()}
        for path in (root, *locations.values()):
            Path(path).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        with _environment(locations):
            run = wandb.init(
                project=self.project,
                entity=self.entity,
                name=self._unique(identity["name"]),
                group=identity["group"],
                tags=identity["tags"],
                job_type=job_type,
                config={**config, **identity["config"]},
                mode=self.mode,
                dir=str(root),
                reinit="create_new",
                settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True),
            )
            try:
                yield TrackedRun(run)
            finally:
                run.finish()
