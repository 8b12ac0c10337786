"""What bringing your own weather file costs: the span check (the time column alone) and the
whole read (parse, units, measurements) of a synthetic CSV of N stations × H hours, in the
shape a user writes (ISO 8601 times with a zone, SI columns), at one or more sizes.

    .venv/bin/python bench/file_source.py [--stations 10,50] [--hours 17520]

Each size is read in a fresh process (the reads are cached per process, as in a run), with
its peak RSS. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

_READ = """
import json, resource, sys, time
from comfort_assets.resources.weather import FileWeatherSource, file_span
path = sys.argv[1]
started = time.perf_counter()
file_span(path)
span_s = time.perf_counter() - started
started = time.perf_counter()
rows = len(FileWeatherSource(path=path).read())
read_s = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"span_s": span_s, "read_s": read_s, "rows": rows, "peak_rss_mib": peak}))
"""


def write_file(path: Path, stations: int, hours: int) -> None:
    """Stations × hours of plausible weather, one row per station and hour."""
    times = pd.date_range("2020-01-01", periods=hours, freq="h", tz="UTC")
    stamps = times.strftime("%Y-%m-%dT%H:%M:%SZ")
    rng = np.random.default_rng(0)
    daily = np.sin(np.arange(hours) * 2 * np.pi / 24)
    frames = [
        pd.DataFrame(
            {
                "station": f"ST{station:03d}",
                "time_utc": stamps,
                "temp_c": (15 + 8 * daily + rng.normal(0, 1, hours)).round(1),
                "humidity_pct": rng.uniform(30, 95, hours).round(1),
                "dewpoint_c": rng.uniform(0, 20, hours).round(1),
                "wind_speed_ms": rng.uniform(0, 10, hours).round(1),
                "pressure_hpa": rng.uniform(990, 1030, hours).round(1),
            }
        )
        for station in range(stations)
    ]
    pd.concat(frames).to_csv(path, index=False)


def measure(path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _READ, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", default="10,50", help="comma-separated station counts")
    parser.add_argument("--hours", type=int, default=17_520, help="hours per station")
    args = parser.parse_args()
    sizes = [int(n) for n in args.stations.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for stations in sizes:
            path = Path(folder) / f"weather-{stations}.csv"
            write_file(path, stations, args.hours)
            figures = measure(path)
            megabytes = path.stat().st_size / 2**20
            results.append({"stations": stations, "file_mib": megabytes, **figures})
    print(
        f"{'stations':>8} {'rows':>10} {'file MiB':>9} {'span s':>7} {'read s':>7} {'MiB/s':>6} "
        f"{'peak RSS MiB':>12}"
    )
    for r in results:
        rate = r["file_mib"] / (r["span_s"] + r["read_s"])
        print(
            f"{r['stations']:>8} {r['rows']:>10,} {r['file_mib']:>9.1f} {r['span_s']:>7.2f} "
            f"{r['read_s']:>7.2f} {rate:>6.1f} {r['peak_rss_mib']:>12.0f}"
        )
    print(json.dumps({"hours": args.hours, "sizes": results}))


if __name__ == "__main__":
    main()
