"""comfort-assets: a Dagster asset platform for the discomfort-index forecast.

The code location's `Definitions` live in `comfort_assets.definitions` (built from the
`comfort_assets/defs/` folder). They are reachable here, lazily, as `code_location`, so that
`dagster ... -m comfort_assets` finds them while the domain core and the Bento service import
`comfort_assets.domain` without importing Dagster. (Not `defs`: that name is the folder.)
"""

from __future__ import annotations

from typing import Any

__all__ = ["code_location"]


def __getattr__(name: str) -> Any:
    if name == "code_location":
        from comfort_assets.definitions import defs

        return defs
    raise AttributeError(f"module 'comfort_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "code_location"])
