"""A registered model's files against the sha256 its card recorded: the one check the
registry makes before loading a model and `comfort models` makes before listing it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any


class ModelIntegrityError(RuntimeError):
    """A stored model does not match the sha256 its card recorded."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verified_files(
    version: str, card: Mapping[str, Any], read: Callable[[str], bytes]
) -> dict[str, bytes]:
    """Every file the card lists, read with ``read(name)``, each matching its recorded
    sha256; raises `ModelIntegrityError` naming the first that does not."""
    recorded = card.get("sha256") if isinstance(card, Mapping) else None
    if not isinstance(recorded, Mapping) or not recorded:
        raise ModelIntegrityError(f"{version}: its card lists no sha256 of its files")
    files = {}
    for name, expected in recorded.items():
        data = read(name)
        actual = sha256(data)
        if actual != expected:
            raise ModelIntegrityError(
                f"{version}/{name}: sha256 {actual[:12]}… does not match the registered "
                f"{str(expected)[:12]}…; refusing to load a model that changed after registration"
            )
        files[name] = data
    return files
