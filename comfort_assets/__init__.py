"""comfort-assets: a Dagster asset platform for the discomfort-index forecast.

The code location's `Definitions` live in `comfort_assets.definitions` (built from the
`comfort_assets/defs/` folder). They are reachable here, lazily, as `code_location`, so that
`dagster ... -m comfort_assets` finds them while the domain core and the Bento service import
`comfort_assets.domain` without importing Dagster. (Not `defs`: that name is the folder.)
"""

from __future__ import annotations

import os
from typing import Any

# XGBoost's OpenMP threads spin while they wait for work; on a machine where anything else
# runs (a test beside a test, the replay beside the service) the spinning takes the cores:
# three fits took 307 s instead of 9.5 s. Sleeping at once costs 2× alone; a short spin
# first keeps most of the speed alone and under load (docs/pitfalls.md). Read once, when
# OpenMP loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

__all__ = ["code_location"]


def __getattr__(name: str) -> Any:
    if name == "code_location":
        from comfort_assets.definitions import defs

        return defs
    raise AttributeError(f"module 'comfort_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "code_location"])
