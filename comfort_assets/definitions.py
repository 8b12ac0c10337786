"""The one `Definitions` of the code location."""

from __future__ import annotations

import dagster as dg

from comfort_assets import deployment
from comfort_assets.assets import evaluation, features, ingestion, training

ASSET_MODULES = [ingestion, features, training, evaluation]
ASSETS = dg.load_assets_from_modules(ASSET_MODULES)

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
    resources=deployment.resources(),
    # Steps here are light; a fresh process per step costs ~3 s (STACK.md). Production
    # deployments with heavy steps set the multiprocess or Kubernetes executor instead.
    executor=dg.in_process_executor,
)
