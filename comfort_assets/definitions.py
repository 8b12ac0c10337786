"""The one `Definitions` of the code location: everything under `comfort_assets/defs/`,
discovered the way `dg` projects are (`dg check defs`, `dg list defs`, `dg dev`)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def load() -> dg.Definitions:
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return dg.load_from_defs_folder(path_within_project=PROJECT_ROOT)
    # installed without the checkout (a wheel): the same folder, found by its module
    import comfort_assets.defs

    return dg.components.load_defs(comfort_assets.defs)


defs = load()
#: every asset of the graph, for `dg.materialize` in the CLI and tests
ASSETS = list(defs.assets or [])
