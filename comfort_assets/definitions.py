"""The one `Definitions` of the code location."""

from __future__ import annotations

import dagster as dg

from comfort_assets import automation, deployment
from comfort_assets.assets import evaluation, features, ingestion, serving, training

ASSET_MODULES = [ingestion, features, training, evaluation, serving]
ASSETS = dg.load_assets_from_modules(ASSET_MODULES)

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
    jobs=automation.JOBS,
    schedules=automation.SCHEDULES,
    resources=deployment.resources(),
    executor=deployment.executor(),
)
