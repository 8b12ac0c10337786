"""The one `Definitions` of the code location: everything under `comfort_assets/defs/`,
discovered the way `dg` projects are (`dg check defs`, `dg list defs`, `dg dev`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: who answers for every asset (the UI's owner filter and asset pages show it)
OWNER = "team:comfort-ml"
#: the catalogue's ``layer`` tag by group: data in, models out, the loop that watches them
LAYERS = {
    "ingestion": "data",
    "features": "data",
    "training": "model",
    "evaluation": "model",
    "monitoring": "monitoring",
}


def catalogued(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Owner and ``layer`` tag on every asset, set in one place rather than on each decorator."""
    return spec.replace_attributes(
        owners=sorted({*spec.owners, OWNER}),
        tags={**spec.tags, "layer": LAYERS.get(spec.group_name or "", "other")},
    )


def load() -> dg.Definitions:
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return dg.load_from_defs_folder(path_within_project=PROJECT_ROOT)
    # installed without the checkout (a wheel): the same folder, found by its module
    import comfort_assets.defs

    return dg.components.load_defs(comfort_assets.defs)


with warnings.catch_warnings():
    # map_asset_specs is marked preview; it is the documented way to set specs wholesale
    warnings.simplefilter("ignore", dg.PreviewWarning)
    defs = load().map_asset_specs(func=catalogued)
#: every asset of the graph, for `dg.materialize` in the CLI and tests
ASSETS = list(defs.assets or [])
