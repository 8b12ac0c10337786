"""Serving throughput and latency: the Bento against plain FastAPI apps, on 127.0.0.1.

    .venv/bin/python bench/serving.py [--home .comfort] [--duration 4] [--repeats 5]

Serves the champion under ``--home`` (README command (a) puts one in ``.comfort``; if there
is none, `comfort run` makes one in a temporary home first, ~40 s) from eight servers, each
with its own prediction store:

- ``bento`` / ``bento-nolog``: `bentoml serve`, one worker, natural batching, logging on / off;
- ``bento-2w``: the same with two worker processes (logging on, one shared SQLite file);
- ``noop``: the floor, a BentoML handler that parses the body and answers a constant
  (`bench/noop_service.py`, the same service settings);
- ``validating``: the floor plus the comfort service's validation of the body (`PredictBody`
  against the champion's contract, behind the same `Guard`), so the gap between the floor
  and the Bento splits into the framework's share and the forecast's;
- ``fastapi`` / ``fastapi-nolog``: FastAPI + uvicorn (`bench/serving_twins.py`), the same
  validation, feature builder, model and group-commit logging, one request at a time;
- ``naive``: the same FastAPI app building each request's features with pandas.

`wrk` (Debian package: ``apt-get install -y wrk``) drives them in a second process at
concurrency 1, 8 and 32; every point is repeated ``--repeats`` times with the servers
interleaved, and the figures are medians (this machine is shared and noisy; the logging
overhead is also shown per repeat, so the spread is in plain sight). Non-2xx
answers and socket errors are counted (wrk counts a 503 as a served request). Also prints
the in-process cost per request. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

from serving_twins import pandas_features  # noqa: E402  (bench/ is the script's directory)

from comfort_assets.domain.cleaning import clean_observations  # noqa: E402
from comfort_assets.processes import stop_process_group  # noqa: E402
from comfort_assets.resources.object_store import LocalObjectStore  # noqa: E402
from comfort_assets.resources.prediction_store import PredictionStore  # noqa: E402
from comfort_assets.resources.registry import ModelRegistry  # noqa: E402
from comfort_assets.resources.weather import BundledWeatherSource  # noqa: E402
from comfort_assets.serving.core import Forecaster, request_payload  # noqa: E402
from comfort_assets.serving.schemas import PredictBody  # noqa: E402

CONCURRENCY = (1, 8, 32)
SERVERS = (
    *("bento", "bento-nolog", "bento-2w", "noop", "validating"),
    *("fastapi", "fastapi-nolog", "naive"),
)
FLOORS = {"noop": "noop_service:NoopForecast", "validating": "noop_service:ValidatingForecast"}
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def champion_home(home: Path) -> Path:
    if ModelRegistry(store=LocalObjectStore(root=str(home / "store"))).champion():
        return home
    fresh = Path(tempfile.mkdtemp(prefix="comfort-bench-home-"))
    print(f"no champion under {home}: running `comfort run` into {fresh} (~40 s)", flush=True)
    subprocess.run(
        [sys.executable, "-m", "comfort_assets.cli", "run"],
        env={**os.environ, "COMFORT_HOME": str(fresh), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return fresh


def request_bodies(n: int = 24) -> list[dict[str, Any]]:
    """Real 2013 windows: three stations, hours spread over a summer week."""
    start = pd.Timestamp("2013-06-20", tz="UTC")
    clean = clean_observations(
        BundledWeatherSource().fetch(start, start + pd.Timedelta(days=21))
    ).clean
    origins = pd.date_range("2013-06-28T00:00", periods=n, freq="7h", tz="UTC")
    stations = ["EWR", "JFK", "LGA"]
    return [request_payload(clean, stations[i % 3], t) for i, t in enumerate(origins)]


def command(kind: str, port: int) -> list[str]:
    if kind.startswith("bento") or kind in FLOORS:
        target = (
            (FLOORS[kind], "--working-dir", str(BENCH))
            if kind in FLOORS
            else ("comfort_assets.serving.service:ComfortForecast",)
        )
        return [
            sys.executable,
            *("-m", "bentoml", "serve", *target),
            *("--host", "127.0.0.1", "--port", str(port)),
        ]
    factory = "naive_app" if kind == "naive" else "fast_app"
    return [
        sys.executable,
        *("-m", "uvicorn", "--app-dir", str(BENCH), "--factory", f"serving_twins:{factory}"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"),
    ]


@contextmanager
def server(kind: str, port: int, store: Path, work: Path) -> Iterator[str]:
    """One server with its own COMFORT_HOME (a copy of the registry, its own SQLite)."""
    home = work / kind
    shutil.copytree(store, home / "store")
    env = {
        **os.environ,
        "COMFORT_HOME": str(home),
        "COMFORT_ENV": "local",
        "BENTOML_HOME": str(home / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "PYTHONPATH": str(ROOT),
        "COMFORT_LOG_PREDICTIONS": "0" if kind.endswith("nolog") else "1",
        "COMFORT_SERVING_WORKERS": "2" if kind == "bento-2w" else "1",
    }
    log = (work / f"{kind}.log").open("wb")
    process = subprocess.Popen(
        command(kind, port),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process)
        log.close()


def wait_ready(urls: dict[str, str], body: dict[str, Any]) -> None:
    deadline = time.monotonic() + 120
    for kind, url in urls.items():
        while True:
            try:
                response = httpx.post(f"{url}/predict", json={"requests": [body]}, timeout=5)
                if response.status_code == 200:
                    break
                raise RuntimeError(f"{kind}: {response.status_code} {response.text[:300]}")
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{kind} did not start") from None
                time.sleep(0.5)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * _UNITS[unit]


def run_wrk(url: str, lua: Path, concurrency: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            *("wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency"),
            *("--timeout", "10s", "-s", str(lua), f"{url}/predict"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s*(50|99)%\s+(\S+)\s*$", out, re.M))
    if len(latency) != 2:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(e) for e in errors.groups()) if errors else 0,
    }


def per_call_ms(fn: Callable[[], Any], seconds: float = 0.5) -> float:
    fn()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - started) / calls * 1e3


def in_process_costs(store: Path, bodies: list[dict[str, Any]], work: Path) -> dict[str, float]:
    """Where a request's time goes without any HTTP: validation, features, predict, logging."""
    registry = ModelRegistry(store=LocalObjectStore(root=str(store)))
    db = PredictionStore(url=f"sqlite:///{work / 'in-process.db'}")
    forecaster = Forecaster(registry, db, reload_seconds=0)
    raw = json.dumps({"requests": bodies[:1]}).encode()
    one = PredictBody.model_validate_json(raw).requests
    batch = (PredictBody.model_validate_json(json.dumps({"requests": bodies})).requests * 3)[:64]
    model = forecaster.champion.model
    x1 = forecaster.features(one, model.horizon_h)[:, forecaster.champion.columns]
    x64 = forecaster.features(batch, model.horizon_h)[:, forecaster.champion.columns]
    _, rows64 = forecaster.forecast(batch)

    def log_batch() -> None:
        for row in rows64:
            row["id"] = os.urandom(16).hex()
        asyncio.run(forecaster.writer.write(rows64))

    costs = {
        "validate_ms": per_call_ms(lambda: PredictBody.model_validate_json(raw)),
        "features_pandas_ms": per_call_ms(lambda: pandas_features(one, model.horizon_h)),
        "features_single_ms": per_call_ms(lambda: forecaster.features(one, model.horizon_h)),
        "features_batch64_per_request_ms": per_call_ms(
            lambda: forecaster.features(batch, model.horizon_h)
        )
        / 64,
        "predict_single_ms": per_call_ms(lambda: model.predict_di(x1, x1[:, 0])),
        "predict_batch64_per_request_ms": per_call_ms(lambda: model.predict_di(x64, x64[:, 0]))
        / 64,
        "forecast_single_ms": per_call_ms(lambda: forecaster.forecast(one)),
        "forecast_batch64_per_request_ms": per_call_ms(lambda: forecaster.forecast(batch)) / 64,
        "log_commit_batch64_ms": per_call_ms(log_batch),
        "model_members": len(model.seeds),  # served fused, as one ONNX tree ensemble
    }
    forecaster.close()
    return costs


def median_of(results: dict, kind: str, c: int, key: str) -> float:
    return statistics.median(r[key] for r in results[kind][c])


def per_repeat(results: dict, kind: str, other: str, c: int) -> list[float]:
    """``kind``'s req/s ÷ ``other``'s in each repeat: how far one run's ratio can be from
    another's on this machine, next to the ratio of medians."""
    return [
        round(a["rps"] / b["rps"], 4)
        for a, b in zip(results[kind][c], results[other][c], strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, default=Path(os.environ.get("COMFORT_HOME", ".comfort"))
    )
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk (Debian package)")
    started = time.perf_counter()
    home = champion_home(args.home.absolute())
    bodies = request_bodies()
    with tempfile.TemporaryDirectory(prefix="comfort-bench-serving-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        lua_bodies = work / "bodies.jsonl"
        lua_bodies.write_text("".join(json.dumps({"requests": [b]}) + "\n" for b in bodies))
        lua = work / "post.lua"
        lua.write_text(LUA % lua_bodies)
        costs = in_process_costs(home / "store", bodies, work)
        urls = {
            kind: stack.enter_context(server(kind, 4100 + i, home / "store", work))
            for i, kind in enumerate(SERVERS)
        }
        wait_ready(urls, bodies[0])
        for url in urls.values():  # warm up
            run_wrk(url, lua, 32, 2)
        results: dict[str, dict[int, list[dict[str, float]]]] = {
            kind: {c: [] for c in CONCURRENCY} for kind in SERVERS
        }
        for rep in range(args.repeats):
            order = SERVERS[rep % len(SERVERS) :] + SERVERS[: rep % len(SERVERS)]
            for c in CONCURRENCY:
                for kind in order:
                    point = run_wrk(urls[kind], lua, c, args.duration)
                    results[kind][c].append(point)
                    print(
                        f"rep {rep + 1} c{c:<3} {kind:14} {point['rps']:8.1f} req/s "
                        f"p50 {point['p50_ms']:7.2f} ms  p99 {point['p99_ms']:7.2f} ms  "
                        f"non-2xx {point['non2xx']}  errors {point['socket_errors']}",
                        flush=True,
                    )
        rows = {
            kind: PredictionStore(url=f"sqlite:///{work / kind / 'predictions.db'}").count()
            for kind in ("bento", "bento-2w", "fastapi", "naive")
        }

    print("\nin-process cost per request (ms):")
    for name, value in costs.items():
        print(f"  {name:34} {value:8.4f}")
    print(f"\n{'server':15}{'c':>4}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    figures: dict[str, Any] = {}
    for kind in SERVERS:
        for c in CONCURRENCY:
            rps, p50, p99 = (median_of(results, kind, c, k) for k in ("rps", "p50_ms", "p99_ms"))
            bad = sum(r["non2xx"] + r["socket_errors"] for r in results[kind][c])
            figures[f"{kind}_c{c}"] = {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non2xx": bad}
            print(f"{kind:15}{c:>4}{rps:>10.1f}{p50:>10.2f}{p99:>10.2f}{bad:>9}")
    print("\nratios of medians:")
    summary: dict[str, Any] = {}
    for c in CONCURRENCY:
        bento = figures[f"bento_c{c}"]["rps"]
        summary[f"c{c}_throughput_ratio"] = bento / figures[f"fastapi_c{c}"]["rps"]
        summary[f"c{c}_vs_naive_ratio"] = bento / figures[f"naive_c{c}"]["rps"]
        summary[f"c{c}_p50_ms"] = figures[f"bento_c{c}"]["p50_ms"]
        summary[f"c{c}_p99_ms"] = figures[f"bento_c{c}"]["p99_ms"]
        summary[f"c{c}_logging_overhead"] = 1 - bento / figures[f"bento-nolog_c{c}"]["rps"]
        repeats = [round(1 - r, 4) for r in per_repeat(results, "bento", "bento-nolog", c)]
        summary[f"c{c}_logging_overhead_by_repeat"] = repeats
        summary[f"c{c}_fastapi_logging_overhead"] = (
            1 - figures[f"fastapi_c{c}"]["rps"] / figures[f"fastapi-nolog_c{c}"]["rps"]
        )
        summary[f"c{c}_floor_ratio"] = bento / figures[f"noop_c{c}"]["rps"]
        validating = figures[f"validating_c{c}"]["rps"]
        summary[f"c{c}_validating_floor_ratio"] = validating / figures[f"noop_c{c}"]["rps"]
        summary[f"c{c}_vs_validating_ratio"] = bento / validating
        summary[f"c{c}_two_worker_rps"] = figures[f"bento-2w_c{c}"]["rps"]
        print(
            f"  c{c:<3} Bento/FastAPI {summary[f'c{c}_throughput_ratio']:.2f}  "
            f"Bento/naive {summary[f'c{c}_vs_naive_ratio']:.2f}  "
            f"Bento/no-op floor {summary[f'c{c}_floor_ratio']:.2f} "
            f"(validating floor/no-op {summary[f'c{c}_validating_floor_ratio']:.2f}, "
            f"Bento/validating {summary[f'c{c}_vs_validating_ratio']:.2f})  "
            f"logging costs the Bento {summary[f'c{c}_logging_overhead']:+.1%} "
            f"(repeats {min(repeats):+.0%} to {max(repeats):+.0%})  "
            f"2 workers {summary[f'c{c}_two_worker_rps']:.0f} req/s"
        )
    summary["logging_overhead"] = summary["c32_logging_overhead"]
    summary["c32_p99_over_p50"] = summary["c32_p99_ms"] / summary["c32_p50_ms"]
    summary["non2xx_total"] = sum(f["non2xx"] for f in figures.values())
    summary["logged_rows"] = rows
    summary["in_process_ms"] = costs
    summary["points"] = figures
    summary["repeats"] = args.repeats
    summary["duration_s"] = args.duration
    summary["bench_seconds"] = time.perf_counter() - started
    print(json.dumps(summary, default=float))


if __name__ == "__main__":
    main()
