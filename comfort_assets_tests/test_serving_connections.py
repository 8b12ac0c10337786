"""Connection limits the guard gives uvicorn: a real uvicorn server on 127.0.0.1 with each of
its HTTP protocols, a trivial app, and raw sockets playing slow, idle and greedy clients."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from comfort_assets.serving import guard

PROTOCOLS = ["httptools", "h11"]


async def _hello(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=PROTOCOLS)
def server(request, monkeypatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setattr(guard, "HEAD_TIMEOUT_S", 0.5)
    monkeypatch.setattr(guard, "MAX_HEAD_BYTES", 64 * 1024)
    monkeypatch.setattr(guard, "MAX_CONNECTIONS", 4)
    guard.bound_connections()
    config = uvicorn.Config(
        _hello, host="127.0.0.1", port=0, http=request.param, log_config=None, lifespan="off"
    )
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not served.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = served.servers[0].sockets[0].getsockname()[1]
    yield request.param, port
    served.should_exit = True
    thread.join(10)


def _read_all(connection: socket.socket, timeout: float = 5.0) -> bytes:
    connection.settimeout(timeout)
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _read_all(connection)


def test_an_idle_connection_is_answered_408_and_closed(server):
    _, port = server
    with socket.create_connection(("127.0.0.1", port)) as connection:
        started = time.monotonic()
        answer = _read_all(connection)  # returns when the server closes
    assert _status(answer) == 408 and time.monotonic() - started < 3
    assert "no complete request head" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


def test_a_head_sent_a_byte_at_a_time_is_cut_off(server):
    _, port = server
    with socket.create_connection(("127.0.0.1", port)) as connection:
        started = time.monotonic()
        with pytest.raises(OSError):  # the server closes while we still send
            for byte in b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                connection.sendall(bytes([byte]))
                time.sleep(0.05)
        assert time.monotonic() - started < 3
    assert _get(port).endswith(b"ok")  # others are served meanwhile and after


def test_a_head_over_the_limit_is_431(server):
    protocol, port = server
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000)
        answer = _read_all(connection)
    # h11 refuses a head over its own 16-KiB limit first, with uvicorn's 400
    assert _status(answer) == (431 if protocol == "httptools" else 400)


def test_an_endless_head_is_cut_off_and_costs_the_others_nothing(server):
    _, port = server
    sent = 0
    with (
        socket.create_connection(("127.0.0.1", port)) as connection,
        pytest.raises(OSError),  # reset: the server closed with our bytes unread
    ):
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        while sent < 100_000_000:
            connection.sendall(b"a" * 65536)
            sent += 65536
    assert sent < 20_000_000  # cut off near the limit (and the kernel's buffers), not read on
    assert _get(port).endswith(b"ok")


def test_keep_alive_requests_are_not_held_to_the_head_timeout(server):
    _, port = server
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(5)
        for _ in range(2):
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert connection.recv(65536).endswith(b"ok")
            time.sleep(1.0)  # twice the head timeout, inside uvicorn's keep-alive (5 s)


def test_connections_over_the_limit_are_503(server):
    _, port = server
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    try:
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port)) as extra:
            assert _status(_read_all(extra)) == 503
    finally:
        for connection in held:
            connection.close()
    time.sleep(0.1)
    assert _get(port).endswith(b"ok")  # below the limit again


def test_the_rest_of_a_body_answered_early_is_not_the_next_head(server):
    """A 413 or 415 answers before the body is read; its bytes still arrive, and counted as
    the next request's head they made a valid keep-alive request a 431."""
    _, port = server
    body = b"x" * 200_000  # over the head limit, answered without being read
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(5)
        connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        connection.sendall(body)
        time.sleep(0.2)
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = _read_all(connection)
    assert answers.count(b"HTTP/1.1 200") == 2, answers[:300]


def test_reaching_the_cap_is_logged_once_not_at_every_close_and_open(monkeypatch, caplog):
    monkeypatch.setattr(guard, "MAX_CONNECTIONS", 100)
    monkeypatch.setattr(guard, "_at_capacity", False)
    with caplog.at_level("WARNING", logger=guard.log.name):
        for _ in range(50):  # one closes, another opens, at the edge
            guard._over_capacity(101)
            guard._over_capacity(100)
        assert len(caplog.records) == 1 and "over 100" in caplog.text
        guard._over_capacity(80)
    assert len(caplog.records) == 2 and "below 100" in caplog.records[1].getMessage()
