"""The deployment's resources and executor (chosen by ``COMFORT_ENV``, see `deployment`)."""

import dagster as dg

from comfort_assets import deployment


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=deployment.resources(), executor=deployment.executor())
