"""Child servers (`bentoml serve`, `dagster dev`, Streamlit) run in their own process group."""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import suppress


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the whole group (a worker its parent left behind included), SIGKILL after
    ``timeout`` seconds; returns once the leader is reaped."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
