"""Wall time of README command (a) after the install: `comfort run` on a fresh home.

    .venv/bin/python bench/pipeline.py

Runs the command in a subprocess (so imports and instance start-up count), then reads the
per-step times from the run's Dagster event log, and times `comfort models` on the result
(it must not import Dagster or scikit-learn). The last line is JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="comfort-bench-") as home:
        env = {**os.environ, "COMFORT_HOME": home, "DAGSTER_HOME": str(Path(home) / "dagster")}
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "comfort_assets.cli", "run"],
            env=env,
            capture_output=True,
            text=True,
        )
        graph_seconds = time.perf_counter() - started
        if completed.returncode != 0:
            sys.exit(f"comfort run failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "comfort_assets.cli", "models"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        models_seconds = time.perf_counter() - started
        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        import dagster as dg

        instance = dg.DagsterInstance.get()
        (run,) = instance.get_runs(limit=1)
        starts, steps = {}, {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or not event.step_key:
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = record.timestamp
            elif event.event_type_value in {"STEP_SUCCESS", "STEP_FAILURE"}:
                steps[event.step_key] = record.timestamp - starts[event.step_key]
        run_stats = instance.get_run_stats(run.run_id)
        run_seconds = run_stats.end_time - run_stats.start_time
    print(f"{'step':28}{'seconds':>9}")
    for step, seconds in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"{step:28}{seconds:>9.2f}")
    print(f"{'(sum of steps)':28}{sum(steps.values()):>9.2f}")
    print(f"{'run (Dagster)':28}{run_seconds:>9.2f}")
    print(f"{'start-up and exit (outside)':28}{graph_seconds - run_seconds:>9.2f}")
    print(f"{'command (a) after install':28}{graph_seconds:>9.2f}   target 40 s on 2 cores")
    print(f"{'comfort models':28}{models_seconds:>9.2f}   target 2 s")
    print(
        json.dumps(
            {
                "graph_seconds": round(graph_seconds, 2),
                "run_seconds": round(run_seconds, 2),
                "comfort_models_seconds": round(models_seconds, 2),
                "steps_seconds": {k: round(v, 2) for k, v in steps.items()},
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
