"""Model registry on the object store: ``models/weather-predictor-NNN/`` folders and a
``models/champion.json`` pointer.

A version is reserved with an exclusive create (``RESERVED``), so two concurrent runs never
get the same name; its ``card.json`` (written last) records the sha256 of every file, which
is checked on load. Promotion and rollback only move the pointer.
"""

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg

from comfort_assets.domain.model_files import ModelIntegrityError, sha256, verified_files
from comfort_assets.domain.promotion import next_version, version_name, version_number
from comfort_assets.resources.object_store import ObjectExistsError, ObjectStore

if TYPE_CHECKING:  # the import loads scikit-learn and XGBoost: only `load` needs it at run time
    from comfort_assets.domain.modeling import ForecastModel

CHAMPION_KEY = "champion.json"


class ModelNotFoundError(LookupError):
    pass


class ModelRegistry(dg.ConfigurableResource):
    store: dg.ResourceDependency[ObjectStore]
    prefix: str = "models"

    def _key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts])

    def versions(self) -> list[str]:
        """Every version with a complete card, oldest first."""
        names = {
            key.split("/")[-2]
            for key in self.store.list_keys(self._key(""))
            if key.endswith("/card.json")
        }
        return sorted(names, key=version_number)

    def _reserve(self) -> str:
        reserved = {
            key.split("/")[-2]
            for key in self.store.list_keys(self._key(""))
            if key.endswith("/RESERVED")
        }
        candidate = next_version(reserved)
        while True:
            try:
                self.store.create_exclusive(self._key(candidate, "RESERVED"), b"")
                return candidate
            except ObjectExistsError:
                candidate = version_name(version_number(candidate) + 1)

    def register(self, model: "ForecastModel", card: dict[str, Any]) -> str:
        """Store a model under the next free version name; returns the name."""
        version = self._reserve()
        files = model.to_files()
        for name, data in files.items():
            self.store.put_bytes(self._key(version, name), data)
        full_card = {
            **card,
            "version": version,
            "family": model.family,
            "model_name": model.name,
            "feature_names": model.feature_names,
            "horizon_h": model.horizon_h,
            "registered_at": datetime.now(UTC).isoformat(),
            "sha256": {name: sha256(data) for name, data in files.items()},
        }
        self.store.put_bytes(
            self._key(version, "card.json"), json.dumps(full_card, indent=1, default=str).encode()
        )
        return version

    def card(self, version: str) -> dict[str, Any]:
        version_number(version)
        key = self._key(version, "card.json")
        if not self.store.exists(key):
            raise ModelNotFoundError(f"no registered model {version!r}")
        try:
            return json.loads(self.store.get_bytes(key))
        except ValueError:
            raise ModelIntegrityError(f"{key} is not JSON") from None

    def load(self, version: str) -> tuple["ForecastModel", dict[str, Any]]:
        """The model and its card; refuses files whose sha256 does not match the card."""
        from comfort_assets.domain.modeling import ForecastModel

        card = self.card(version)
        return ForecastModel.from_files(self._verified_files(version, card)), card

    def verify(self, version: str) -> None:
        """Raise `ModelIntegrityError` unless ``version`` loads: registered, every file
        matching its card's sha256, and the files making a model (a card listing no file,
        or not the one a member needs, was promoted, and the Bento build failed after)."""
        from comfort_assets.domain.modeling import ForecastModel

        card = self.card(version)  # an unknown version or a bad name: raised as they are
        try:
            ForecastModel.from_files(self._verified_files(version, card))
        except ModelIntegrityError:
            raise
        except Exception as error:  # a missing file, a member the card does not list, …
            raise ModelIntegrityError(
                f"{version}: its files do not make a model ({type(error).__name__}: "
                f"{str(error)[:120]})"
            ) from None

    def _verified_files(self, version: str, card: dict[str, Any]) -> dict[str, bytes]:
        return verified_files(
            version, card, lambda name: self.store.get_bytes(self._key(version, name))
        )

    # --- champion pointer -------------------------------------------------------------
    def champion_pointer(self) -> dict[str, Any] | None:
        key = self._key(CHAMPION_KEY)
        if not self.store.exists(key):
            return None
        try:
            return json.loads(self.store.get_bytes(key))
        except ValueError:
            raise ValueError(f"{key} is not JSON") from None

    def _history(self, pointer: Any) -> list[str]:
        """The pointer's earlier champions that are version names (a damaged history is
        not carried on)."""
        history = pointer.get("history") if isinstance(pointer, dict) else None
        return [v for v in history if isinstance(v, str)] if isinstance(history, list) else []

    def champion(self) -> str | None:
        """The version the pointer names; None without a pointer, ValueError for a pointer
        that names none (``{}``, ``[1, 2]``, ``{"version": 3}``)."""
        pointer = self.champion_pointer()
        if pointer is None:
            return None
        if not isinstance(pointer, dict) or not isinstance(pointer.get("version"), str):
            raise ValueError(f"the champion pointer names no version: {str(pointer)[:80]}")
        return pointer["version"]

    def promote(self, version: str, reason: str = "") -> dict[str, Any]:
        """Point the champion at ``version`` (a single atomic write), once its files are
        verified. An unreadable pointer is replaced (its history is lost): promoting by
        hand is how a damaged pointer is repaired."""
        self.verify(version)
        try:
            pointer = self.champion_pointer()
        except ValueError:  # not JSON
            pointer = None
        if not isinstance(pointer, dict):
            pointer = {"version": None, "history": []}
        history = self._history(pointer)
        if isinstance(pointer.get("version"), str) and pointer["version"] != version:
            history.append(pointer["version"])
        new = {
            "version": version,
            "history": history,
            "reason": reason,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        self.store.put_bytes(self._key(CHAMPION_KEY), json.dumps(new, indent=1).encode())
        return new

    def rollback(self, version: str | None = None) -> dict[str, Any]:
        """Move the pointer back: to ``version`` or to the previous champion."""
        pointer = self.champion_pointer()
        if not pointer:
            raise ModelNotFoundError("there is no champion to roll back")
        history = self._history(pointer)
        if version is None:
            if not history:
                raise ModelNotFoundError(f"{pointer['version']} has no previous champion")
            version = history.pop()
        else:
            history = [v for v in history if v != version]
        self.verify(version)
        new = {
            "version": version,
            "history": history,
            "reason": f"rollback from {pointer['version']}",
            "updated_at": datetime.now(UTC).isoformat(),
        }
        self.store.put_bytes(self._key(CHAMPION_KEY), json.dumps(new, indent=1).encode())
        return new

    def put_report(self, version: str, name: str, data: bytes) -> str:
        key = self._key(version, "reports", name)
        self.store.put_bytes(key, data)
        return self.store.uri(key)
