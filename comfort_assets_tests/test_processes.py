"""Ctrl-C held back while the replay talks to its service over HTTP."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from comfort_assets.processes import interrupts_deferred, interrupts_kept_from_children


class _SlowAnswer(http.server.BaseHTTPRequestHandler):
    """Ctrl-C arrives while the client waits for the first answer (the server sends it)."""

    interrupted = False

    def do_GET(self) -> None:
        if not _SlowAnswer.interrupted:
            _SlowAnswer.interrupted = True
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server():
    _SlowAnswer.interrupted = False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowAnswer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_ctrl_c_during_a_request_is_raised_after_it_and_the_client_still_closes(slow_server):
    before = signal.getsignal(signal.SIGINT)
    client = httpx.Client(base_url=slow_server, timeout=5)
    answers = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        answers.append(client.get("/").text)
        answers.append(client.get("/").text)  # the block runs to its end
    assert _SlowAnswer.interrupted and answers == ["ok", "ok"]
    assert signal.getsignal(signal.SIGINT) is before
    closing = threading.Thread(target=client.close, daemon=True)
    closing.start()
    closing.join(5)
    assert not closing.is_alive()


def test_a_second_ctrl_c_is_raised_at_once():
    reached = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("after the first")
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
        reached.append("after the second")
    assert reached == ["after the first"]


def test_ctrl_c_wins_over_an_error_in_the_block():
    with pytest.raises(KeyboardInterrupt) as raised, interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        raise httpx.ConnectError("refused")
    assert isinstance(raised.value.__context__, httpx.ConnectError)


def test_a_block_without_ctrl_c_ends_as_it_would():
    with interrupts_deferred():
        total = sum(range(10))
    assert total == 45
    with pytest.raises(httpx.ConnectError), interrupts_deferred():
        raise httpx.ConnectError("refused")


INTERRUPTED_PARENT = """
import os, signal, subprocess, sys, time
from comfort_assets.processes import interrupts_kept_from_children
CHILD = "import time; time.sleep(1); print('child done')"
child = None
try:
    with interrupts_kept_from_children():
        child = subprocess.Popen([sys.executable, "-c", CHILD])
        time.sleep(0.5)
        os.killpg(0, signal.SIGINT)  # what the terminal does on Ctrl-C: the whole group
        for _ in range(100):  # Python code between short waits, as a run's steps
            time.sleep(0.1)
    print("not interrupted")
except KeyboardInterrupt:
    print("parent interrupted", flush=True)
    child.wait()
"""


def test_ctrl_c_interrupts_the_run_but_not_the_helpers_it_started():
    """The parent hears Ctrl-C at once; a child started inside the block does not (it
    finishes and prints nothing of an interrupt); the mask is the parent's own again."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_PARENT],
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,  # its own process group, for the killpg
    )
    assert completed.stdout.splitlines() == ["parent interrupted", "child done"]
    assert completed.stderr == ""
    assert time.monotonic() - started < 8


def test_outside_the_block_the_mask_is_as_before():
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with interrupts_kept_from_children():
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before
