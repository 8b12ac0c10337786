"""comfort-assets: a Dagster asset platform for the discomfort-index forecast.

`defs` is loaded lazily so that the domain core and the Bento service can import
`comfort_assets.domain` without importing Dagster and the whole asset graph.
"""

from __future__ import annotations

from typing import Any

__all__ = ["defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        from comfort_assets.definitions import defs

        return defs
    raise AttributeError(f"module 'comfort_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
