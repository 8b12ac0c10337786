"""`comfort models`: the registry read straight from its layout in the object store.

Listing must answer in about a second, so this module imports neither Dagster nor
scikit-learn/XGBoost: the local store is read as plain files, and only a production (S3)
deployment goes through the deployment's object store resource. The layout is the one
`comfort_assets.resources.registry.ModelRegistry` writes: ``models/<version>/card.json`` and
``models/champion.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Protocol

from comfort_assets.domain.model_files import ModelIntegrityError, verified_files
from comfort_assets.domain.promotion import version_number

MODELS_PREFIX = "models"
CHAMPION_FILE = "champion.json"
REASON_WIDTH = 80


class ReadableStore(Protocol):
    def list_keys(self, prefix: str) -> list[str]: ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


class LocalFiles:
    """The local object store's directory, read without its Dagster resource."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def list_keys(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file())
        return sorted(k for k in keys if "/.tmp-" not in k)

    def get_bytes(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()


def comfort_home() -> Path:
    """Same rule as `comfort_assets.deployment.comfort_home`, which imports Dagster."""
    return Path(os.environ.get("COMFORT_HOME") or ".comfort").absolute()


def deployment_store() -> ReadableStore:
    if os.environ.get("COMFORT_ENV", "local") == "local":
        return LocalFiles(comfort_home() / "store")
    from comfort_assets.deployment import object_store

    return object_store(resolve_env=True)


def champion_pointer(store: ReadableStore) -> dict[str, Any] | None:
    """The pointer; None without one, or (with a warning) when it names no version: a
    listing must still show the models, and `comfort promote` repairs the pointer."""
    key = f"{MODELS_PREFIX}/{CHAMPION_FILE}"
    if not store.exists(key):
        return None
    try:
        pointer = json.loads(store.get_bytes(key))
    except ValueError:
        pointer = None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("version"), str):
        _warn(f"{key} names no version (`comfort promote VERSION` rewrites it)")
        return None
    return pointer


def cards(store: ReadableStore) -> list[dict[str, Any]]:
    """Every complete card (the card is written last), oldest version first; a folder that
    is not a version is left out, and an unreadable card is listed as such."""
    found = []
    for key in store.list_keys(f"{MODELS_PREFIX}/"):
        folder = key.split("/")[-2]
        if not key.endswith("/card.json"):
            continue
        try:
            number = version_number(folder)
        except ValueError:
            continue
        try:
            card = json.loads(store.get_bytes(key))
        except ValueError:
            card = None
        if not isinstance(card, dict):
            card = {"promotion": {"promoted": False, "reason": "its card.json is unreadable"}}
        found.append((number, {**card, "version": folder}))
    return [card for _, card in sorted(found, key=lambda pair: pair[0])]


def _mapping(value: Any) -> dict[str, Any]:
    """A card's field that should be an object; anything else (a damaged card) reads as
    empty, so one card cannot stop the listing."""
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) or value is None else str(value)


def _member_name(member: Any) -> str:
    if isinstance(member, dict):
        return str(member.get("name") or member.get("model") or member.get("version") or member)
    return str(member)


def _short(text: str, width: int = REASON_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def list_models(store: ReadableStore | None = None) -> list[dict[str, Any]]:
    store = store or deployment_store()
    pointer = champion_pointer(store)
    champion = pointer["version"] if pointer else None
    rows = []
    registered = cards(store)
    for card in registered:
        metrics = _mapping(card.get("metrics"))
        promotion = _mapping(card.get("promotion"))
        rows.append(
            {
                "version": card["version"],
                "champion": card["version"] == champion,
                "model": _text(card.get("model_choice", card.get("family"))),
                "horizon_h": card.get("horizon_h"),
                "holdout_rmse": metrics.get("holdout_rmse"),
                "persistence_rmse": metrics.get("persistence_rmse"),
                "skill": metrics.get("skill_vs_persistence"),
                "registered_at": (_text(card.get("registered_at")) or "")[:19],
                "promoted": promotion.get("promoted"),
                "reason": _text(promotion.get("reason")),
                "members": [_member_name(m) for m in _sequence(card.get("members"))],
                "champion_reason": _text(pointer.get("reason"))
                if pointer and card["version"] == champion
                else None,
            }
        )
    starred = next((card for card in registered if card["version"] == champion), None)
    if champion is not None and starred is None:
        _warn(
            f"the champion pointer names {_short(champion, 40)!r}, which has no card: a "
            "service started now has no champion (`comfort promote VERSION` moves it to a "
            "listed one)"
        )
    elif starred is not None and (problem := files_problem(store, starred)):
        _warn(
            f"the champion {champion} cannot be loaded ({problem}): a running service keeps "
            "the model it had, a new one has none (`comfort promote VERSION` or `comfort "
            "rollback` moves the pointer)"
        )
    return rows


def files_problem(store: ReadableStore, card: dict[str, Any]) -> str | None:
    """Why a version's files do not match its card (missing, or another sha256), or None:
    the registry's own check, which refuses such a model on load, made before listing."""
    version = card["version"]

    def read(name: str) -> bytes:
        key = f"{MODELS_PREFIX}/{version}/{name}"
        if not store.exists(key):
            raise ModelIntegrityError(f"{name} is missing")
        return store.get_bytes(key)

    try:
        verified_files(version, card, read)
    except ModelIntegrityError as error:
        return str(error)
    return None


def _warn(message: str) -> None:
    print(f"comfort: warning: {message}", file=sys.stderr)


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "-"


def _note(row: dict[str, Any]) -> str:
    notes = []
    if row["champion"] and row["promoted"] is False:  # moved there by hand, after losing
        notes.append(f"champion: {_short(row['champion_reason'] or 'by hand', 40)}")
        notes.append(f"its evaluation rejected it: {_short(row['reason'] or 'no reason')}")
    elif row["promoted"] is False:
        notes.append(f"rejected: {_short(row['reason'] or 'no reason recorded')}")
    if row["members"]:
        notes.append("members: " + ", ".join(row["members"]))
    return "; ".join(notes)


def format_models(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no registered models yet: run `comfort run` first"
    lines = [
        f"{'':2}{'version':24}{'model':24}{'h':>3}{'RMSE':>9}{'persist.':>9}{'skill':>8}"
        f"  {'registered':20}note"
    ]
    for r in rows:
        mark = "* " if r["champion"] else "  "
        lines.append(
            f"{mark}{r['version']:24}{_short(str(r['model']), 23):24}{r['horizon_h']!s:>3}"
            f"{_number(r['holdout_rmse'], '.4f'):>9}{_number(r['persistence_rmse'], '.4f'):>9}"
            f"{_number(r['skill'], '.1%'):>8}  {r['registered_at']:20}{_note(r)}".rstrip()
        )
    lines.append("* = champion; skill = 1 - RMSE / persistence RMSE on the holdout")
    return "\n".join(lines)
