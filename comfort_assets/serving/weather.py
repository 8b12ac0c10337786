"""The ingested clean weather `/forecast` builds its windows from.

The asset IO manager stores `clean_weather` as ``assets/clean_weather/<partition>.parquet``
(one ``__all__`` object, or one per day). The service keeps it in memory, one table per
station, and on each reload tick re-reads only the objects whose stamp changed: a request
never touches storage, and new data is served within a tick of landing.
"""

from __future__ import annotations

import io
import logging
from datetime import datetime

import pandas as pd
from pydantic import ValidationError

from comfort_assets.domain.features import OBSERVED, REQUIRED, WINDOW_HOURS
from comfort_assets.resources.object_store import ObjectStore
from comfort_assets.serving.core import Unavailable, brief, request_payload
from comfort_assets.serving.schemas import ForecastRequest, field_error

log = logging.getLogger(__name__)

#: Where the asset IO manager keeps `clean_weather` in the object store.
CLEAN_WEATHER = "assets/clean_weather/"
BODY = "ForecastBody"


def station_tables(frames: list[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per station, its hours in time order, one row per hour (a day stored both alone and
    in ``__all__`` counts once, the later object winning)."""
    if not frames:
        return {}
    clean = pd.concat(frames, ignore_index=True)
    clean["time_utc"] = pd.to_datetime(clean["time_utc"], utc=True)
    clean = clean.sort_values(["station", "time_utc"], kind="stable").drop_duplicates(
        ["station", "time_utc"], keep="last"
    )
    return {
        str(station): table.reset_index(drop=True)
        for station, table in clean.groupby("station", sort=False)
    }


def _hour(moment: pd.Timestamp) -> str:
    return f"{moment:%Y-%m-%dT%H:%MZ}"


class IngestedWeather:
    """`clean_weather` in memory, per station; `refresh` follows the object store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._objects: dict[str, tuple[str, pd.DataFrame]] = {}
        self._stations: dict[str, pd.DataFrame] = {}
        self.problem: str | None = None
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the objects that are new or rewritten since the last look and forget
        removed ones; True if the weather changed. A failure keeps the weather already
        loaded (logged once per change) and is retried on the next call."""
        try:
            stamps = {
                key: stamp
                for key, stamp in self.store.stamps(CLEAN_WEATHER).items()
                if key.endswith(".parquet") and "/" not in key[len(CLEAN_WEATHER) :]
            }
            if stamps == {key: stamp for key, (stamp, _) in self._objects.items()}:
                self._state(None)
                return False
            objects = {}
            for key, stamp in stamps.items():
                kept = self._objects.get(key)
                unchanged = kept is not None and kept[0] == stamp
                objects[key] = kept if unchanged else (stamp, self._read(key))
            stations = station_tables([frame for _, frame in objects.values()])
        except Exception as error:
            self._state(brief(error))
            return False
        # one assignment each: a request sees the old tables or the new ones, never a mix
        self._objects, self._stations = objects, stations
        self._state(None)
        log.warning("ingested weather: %d stations, %d objects", len(stations), len(objects))
        return True

    def _read(self, key: str) -> pd.DataFrame:
        """One stored object, only the columns a window needs."""
        frame = pd.read_parquet(io.BytesIO(self.store.get_bytes(key)))
        return frame[["station", "time_utc", *(name for name in OBSERVED if name in frame)]]

    def _state(self, problem: str | None) -> None:
        if problem != self.problem:
            if problem is None:
                log.warning("ingested weather readable again")
            else:
                log.error("ingested weather cannot be read: %s", problem)
            self.problem = problem

    def request(self, station: str, until: datetime | None) -> ForecastRequest:
        """The validated `/predict` window of ``station`` ending at ``until`` (default: its
        newest hour with every required variable). No such window is a `ValidationError`
        naming ``station`` or ``time`` and why; weather that could never be read is
        `Unavailable`."""
        stations = self._stations
        table = stations.get(station)
        if table is None:
            if not stations and self.problem is not None:
                raise Unavailable(f"ingested weather cannot be read: {self.problem}")
            raise field_error(BODY, "station", f"no ingested weather for station {station!r}")
        times = table["time_utc"]
        if until is None:
            complete = table[list(REQUIRED)].notna().all(axis=1)
            if not complete.any():
                raise field_error(
                    BODY, "station", f"no ingested hour of {station} has {', '.join(REQUIRED)}"
                )
            end = times[complete].iloc[-1]
        else:
            end = pd.Timestamp(until).tz_convert("UTC")
        start = end - pd.Timedelta(hours=WINDOW_HOURS - 1)
        rows = table.iloc[times.searchsorted(start) : times.searchsorted(end, side="right")]
        if rows.empty:
            raise field_error(
                BODY,
                "time",
                f"no ingested weather of {station} from {_hour(start)} to {_hour(end)} "
                f"(it has {_hour(times.iloc[0])} to {_hour(times.iloc[-1])})",
            )
        try:
            return ForecastRequest.model_validate(request_payload(rows, station, end))
        except ValidationError as error:
            first = error.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            reason = first["msg"].removeprefix("Value error, ")
            raise field_error(
                BODY,
                "time",
                f"the {WINDOW_HOURS} hours of {station} ending {_hour(end)} are not a "
                f"complete window: {where}: {reason}",
            ) from None
