"""Child servers (`bentoml serve`, `dagster dev`, Streamlit) run in their own process group;
Ctrl-C is held back while the parent talks to them."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


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


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C inside the block is raised as KeyboardInterrupt when the block ends, not where
    it lands; a second Ctrl-C is raised at once (a call that hangs must not hold the user
    back). An interrupt inside an httpx call can leave httpcore's connection-pool lock (not
    reentrant) held, and closing the client then waits on it forever: a replay hung that way
    on its first Ctrl-C (docs/pitfalls.md). Outside the main thread, where Python delivers no
    signals, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(number: int, _frame: object) -> None:
        if caught:
            raise KeyboardInterrupt
        caught.append(number)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        # None: a handler set from C, which Python cannot put back; Python's own instead
        signal.signal(
            signal.SIGINT, previous if previous is not None else signal.default_int_handler
        )
        if caught:  # Ctrl-C wins over an error the block raised
            raise KeyboardInterrupt


@contextmanager
def interrupts_kept_from_children() -> Iterator[None]:
    """Ctrl-C inside the block interrupts this process only, not the helpers it starts.

    The terminal sends Ctrl-C to its whole foreground process group: during a run, that
    included the `tail` and `watch_orphans.py` pair Dagster starts to mirror each step's
    output, which printed their own KeyboardInterrupt tracebacks over the CLI's one line
    (Dagster stops them itself, with SIGTERM). A child inherits its parent's blocked signals,
    so SIGINT is blocked in this thread, which starts them, and received by a thread that
    only waits for it; Python still raises KeyboardInterrupt in the main thread, as soon as
    it runs Python code again. Outside the main thread the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    done = threading.Event()
    receiver = threading.Thread(target=done.wait, name="sigint-receiver", daemon=True)
    receiver.start()  # a thread inherits its creator's mask: start it before blocking
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        done.set()
        receiver.join()
