"""What stands between the network and the Bento service.

BentoML answers most of HTTP itself; these pieces close the gaps an adversarial caller
found, without touching its internals:

- `Guard` (ASGI middleware): bodies over `MAX_BODY_BYTES` are a 413 before they are read
  into memory, a body slower than `BODY_TIMEOUT_S` is a 408, a POST whose body is not
  plain UTF-8 JSON is a 415 (another Content-Type: a multipart body without a boundary was
  a 500; another charset; a Content-Encoding),
  `/readyz` says why the service cannot answer (503 with the reasons), `/metrics` serves
  request counts and latencies labelled by a fixed set of routes (BentoML's own labels
  grow with every distinct unknown path), and `/docs.json` lists the loaded champion's
  stations and horizon.
- `ClientErrorsAsInfo` (logging filter): BentoML logs every rejected request at ERROR with a
  traceback and the input; a 4xx becomes one INFO line with the field and a short reason.
- `die_with_parent`: a worker whose `bentoml serve` parent is killed shuts down (drains)
  instead of holding the port.
- `read_before_closing`: the drain also answers a request sent just before SIGTERM on a
  connection the worker had not accepted yet, or had accepted but not read (uvicorn reset
  the first and dropped the second).
- `bound_connections`: a request head must arrive within `HEAD_TIMEOUT_S` and
  `MAX_HEAD_BYTES` (else 408 or 431), and a worker keeps at most `MAX_CONNECTIONS` open
  (else 503): uvicorn waited forever for an unfinished head and read heads of any size, so
  one client holding 30,000 half-sent requests took every file the worker could open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import resource
import select
import signal
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

log = logging.getLogger(__name__)

#: BentoML's ``traffic.timeout`` for the services behind the guard (s).
REQUEST_TIMEOUT_S = 10.0
#: Largest request body accepted (1 MiB: a full 64-window `/predict` call is ~250 KB).
MAX_BODY_BYTES = 1 << 20
#: How long a body may take to arrive after its head: a slower upload is a 408 (the client's
#: slowness), not BentoML's 504 at REQUEST_TIMEOUT_S (the server's)
BODY_TIMEOUT_S = 5.0
#: The API routes (POST, JSON bodies) and everything else worth its own metrics label.
API_ROUTES = frozenset({"/predict", "/forecast", "/feedback", "/model_info"})
ROUTES = API_ROUTES | {"/livez", "/healthz", "/readyz", "/metrics", "/docs.json", "/"}
#: Latency buckets (s) for the request histogram.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Readiness:
    """Filled in by the service once its instance exists: a function listing what stops it
    from answering (an empty list means ready)."""

    problems: Callable[[], list[str]] = field(default=lambda: ["the service is starting"])


async def _answer(
    send: Send,
    status: int,
    payload: dict[str, Any] | bytes,
    kind: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind.encode()),
                (b"content-length", b"%d" % len(body)),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _unsupported_body(raw: list[tuple[bytes, bytes]], headers: dict[bytes, bytes]) -> str | None:
    """Why a body cannot be read as the JSON the APIs take, or None: another media type, a
    charset other than UTF-8 (it would be read as UTF-8 anyway), a Content-Encoding (a
    gzip body was refused as bad JSON, a plain one labelled gzip was accepted), or either
    header twice (this guard read the last copy, BentoML the first)."""
    for name in (b"content-type", b"content-encoding"):
        if sum(1 for key, _ in raw if key == name) > 1:
            return f"{name.decode().title()} given more than once"
    kind = headers.get(b"content-type", b"application/json").decode("latin-1")
    media, *parameters = (part.strip().lower() for part in kind.split(";"))
    if media != "application/json":
        return f"Content-Type must be application/json, got {kind[:40]!r}"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return f"charset must be utf-8, got {value.strip()[:20]!r}"
    encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
    if encoding not in ("identity", ""):
        return f"Content-Encoding is not supported, got {encoding[:20]!r}: send plain JSON"
    return None


def _errors_as_json(send: Send) -> Send:
    """BentoML answers an unknown path or method in plain text ("Not Found"); every error
    the service gives is ``{"error": why}``, as its document says."""
    replaced = False

    async def send_json(message: Message) -> None:
        nonlocal replaced
        if message["type"] == "http.response.start" and message["status"] in (404, 405):
            headers = message.get("headers", [])
            if not any(k.lower() == b"content-type" and b"json" in v for k, v in headers):
                replaced = True
                status = message["status"]
                kept = [(k, v) for k, v in headers if k.lower() not in _BODY_HEADERS]
                body = json.dumps({"error": HTTPStatus(status).phrase}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            *kept,
                            (b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body)),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        if replaced:  # the plain-text body it replaced
            return
        await send(message)

    return send_json


_BODY_HEADERS = frozenset({b"content-type", b"content-length"})


class _Metrics:
    """Request counts and latencies by (route, status): a bounded set of series."""

    def __init__(self) -> None:
        from bentoml._internal.configuration.containers import BentoMLContainer

        self.client = BentoMLContainer.metrics_client.get()
        self.requests = self.client.Histogram(
            name="comfort_http_request_duration_seconds",
            documentation="HTTP requests by route (unknown paths are 'other') and status",
            labelnames=["route", "status"],
            buckets=BUCKETS,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).observe(seconds)


class Guard:
    """ASGI middleware: body limit, JSON only, readiness with reasons, bounded metrics."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        readiness: Readiness,
        max_body: int,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.readiness = readiness
        self.max_body = max_body
        #: BentoML's ``traffic.timeout``: a request cancelled after it is counted as a 504,
        #: one cancelled sooner as 499 (nginx's "client closed request").
        self.timeout_s = timeout_s
        self._metrics: _Metrics | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._metrics is None:  # in the worker, once BentoML has set up Prometheus
            self._metrics = _Metrics()
        started = time.perf_counter()
        path = scope["path"]
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._route(scope, receive, send_noting_status)
        except asyncio.CancelledError:  # BentoML's timeout (504), or the client hung up
            if status == 500:
                status = 504 if time.perf_counter() - started >= self.timeout_s else 499
            raise
        finally:
            route = path if path in ROUTES else "other"
            self._metrics.observe(route, status, time.perf_counter() - started)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/readyz" and method in ("GET", "HEAD"):
            problems = self.readiness.problems()
            if problems:
                await _answer(send, 503, {"ready": False, "problems": problems}, "application/json")
            else:
                await _answer(send, 200, b"\n", "text/plain")
        elif path == "/metrics" and method == "GET":
            import anyio.to_thread

            assert self._metrics is not None
            text = await anyio.to_thread.run_sync(self._metrics.client.generate_latest)
            await _answer(send, 200, text, self._metrics.client.CONTENT_TYPE_LATEST)
        elif path in API_ROUTES and method == "POST":
            await self._api(scope, receive, send)
        elif path == "/docs.json" and method in ("GET", "HEAD"):
            # uvicorn leaves out a HEAD answer's body, by the method it read itself
            await self._openapi({**scope, "method": "GET"}, receive, send)
        elif path in ("/readyz", "/metrics"):  # served here, for these methods only
            allowed = "GET, HEAD" if path == "/readyz" else "GET"
            await _answer(
                send,
                405,
                {"error": f"{path} answers {allowed.replace(', ', ' and ')} only"},
                "application/json",
                [(b"allow", allowed.encode())],
            )
        else:
            await self.app(scope, receive, _errors_as_json(send))

    async def _openapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """BentoML's document, with the loaded champion's stations and horizon in it, the
        error answers as they are given, and valid OpenAPI 3.0."""
        from comfort_assets.serving.schemas import served_document

        status, chunks = 500, []

        async def keep(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        body = b"".join(chunks)
        if status == 200:
            body = json.dumps(served_document(json.loads(body))).encode()
            await _answer(send, 200, body, "application/json")
        else:
            await _answer(send, status, body, "application/json")

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        problem = _unsupported_body(scope["headers"], headers)
        if problem is not None:
            log.info("rejected %s: 415 %s", scope["path"], problem, extra=CLIENT_ERROR)
            await _answer(send, 415, {"error": problem}, "application/json")
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await self._too_large(scope, send, declared.decode("latin-1")[:20])
            return
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await self._body(scope, receive, send)
        except TimeoutError:
            why = f"body: not received within {BODY_TIMEOUT_S:g} s of the request's head"
            log.info("rejected %s: 408 %s", scope["path"], why, extra=CLIENT_ERROR)
            closing = [(b"connection", b"close")]  # the rest of the body may still come
            await _answer(send, 408, {"error": why}, "application/json", closing)
            return
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, read up to the limit (a chunked one has no Content-Length to judge
        first); None when it was answered 413 or the client went away."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body:
                await self._too_large(scope, send, None)
                return None
        return b"".join(chunks)

    async def _too_large(self, scope: Scope, send: Send, declared: str | None) -> None:
        """413; ``declared``: the Content-Length (None for a chunked body)."""
        size = "" if declared is None else f"{declared} bytes, "
        why = f"body: {size}over the limit of {self.max_body} bytes"
        log.info("rejected %s: 413 %s", scope["path"], why, extra=CLIENT_ERROR)
        await _answer(send, 413, {"error": why}, "application/json")


def _summary(error: BaseException) -> str | None:
    """One line for a client error (the field and a short reason, no input), or None if
    the error is not the client's."""
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        errors = error.errors(include_input=False, include_url=False, include_context=False)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"400 {where}: {first['msg'][:120]}{more}"
    if isinstance(error, BentoMLException) and 400 <= error.error_code.value < 500:
        return f"{error.error_code.value} {str(error)[:120]}"
    return None


#: ``extra=`` of a log line about a client's error, counted against `ClientErrorBudget`.
CLIENT_ERROR = {"client_error": True}
#: Client-error lines logged a minute, at most; the rest are counted, not written.
CLIENT_ERROR_LINES_PER_MINUTE = 600


class ClientErrorsAsInfo(logging.Filter):
    """Turns BentoML's "Exception on PATH [METHOD]" ERROR records for 4xx answers into one
    INFO line; server errors keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        summary = _summary(error) if error is not None else None
        if summary is not None:
            path = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "rejected %s: %s", (path, summary)
            record.exc_info, record.exc_text = None, None
            record.client_error = True
        return True


class ClientErrorBudget(logging.Filter):
    """At most ``per_minute`` client-error lines a minute in this worker: one line per bad
    request is what a person reads, but a client sending nothing but bad requests could
    otherwise write ~650 KB of log a second. The lines held back are counted and the count
    is told on the next client-error line logged (``/metrics`` counts every answer by status
    regardless)."""

    def __init__(
        self,
        per_minute: int = CLIENT_ERROR_LINES_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.per_minute, self.clock = per_minute, clock
        self.minute_started, self.logged, self.held_back = -math.inf, 0, 0
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "client_error", False):
            return True
        with self.lock:
            now = self.clock()
            if now - self.minute_started >= 60.0:
                self.minute_started, self.logged = now, 0
            if self.logged >= self.per_minute:
                self.held_back += 1
                return False
            self.logged += 1
            held_back, self.held_back = self.held_back, 0
        if held_back:
            record.msg = (
                f"{record.getMessage()} (and {held_back} client errors not logged before "
                f"this one: at most {self.per_minute} lines a minute)"
            )
            record.args = None
        return True


#: The loggers that write client-error lines: BentoML's request errors, this guard's, and
#: the service's own (a /feedback 404 or 409).
_CLIENT_ERROR_LOGGERS = (
    "bentoml._internal.server.http_app",
    __name__,
    "comfort_assets.serving.service",
)


def quiet_client_errors() -> None:
    """Install `ClientErrorsAsInfo` on the logger BentoML reports request errors with, one
    `ClientErrorBudget` on every logger that writes client-error lines, and let the
    service's own INFO lines (the rejections this guard answers) through: BentoML sets only
    its own loggers to INFO."""
    logging.getLogger("comfort_assets").setLevel(logging.INFO)
    bentoml_errors = logging.getLogger(_CLIENT_ERROR_LOGGERS[0])
    if not any(isinstance(f, ClientErrorsAsInfo) for f in bentoml_errors.filters):
        bentoml_errors.addFilter(ClientErrorsAsInfo())
    budget = ClientErrorBudget()
    for name in _CLIENT_ERROR_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, ClientErrorBudget)]:
            logger.removeFilter(old)
        logger.addFilter(budget)


def die_with_parent(interval_s: float = 0.5) -> None:
    """SIGTERM ourselves (a graceful drain) when the process that started us goes away, so
    a `kill -9` of `bentoml serve` does not leave this worker holding the port."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        log.error("parent process %d is gone: shutting down", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


#: How long a connection accepted before SIGTERM, whose request uvicorn has not read yet,
#: keeps its chance to deliver it during the drain.
UNREAD_GRACE_S = 1.0
#: The most the drain waits for the listening socket's backlog to empty before it stops
#: listening (clients that keep connecting are refused after it).
BACKLOG_GRACE_S = 1.0
_HTTP_PROTOCOLS = (
    ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol"),
    ("uvicorn.protocols.http.h11_impl", "H11Protocol"),
)


def read_before_closing() -> None:
    """Let the drain on SIGTERM answer every request sent before it. Uvicorn stops
    listening at once, which resets the connections still waiting in the socket's backlog
    (a busy worker had not accepted them yet), and closes a connection it accepted but has
    not read at once (its `shutdown` sees no request): both clients, whose requests were
    sent before the signal, met a dropped connection (seen in CI by the drain test under
    load). Now the drain first accepts the backlog (for at most BACKLOG_GRACE_S), and a
    connection with nothing read yet is closed after UNREAD_GRACE_S: a request that
    arrived meanwhile is answered first, and the drain waits for it as for any other."""
    import importlib

    import uvicorn

    if not getattr(uvicorn.Server.shutdown, "accepts_first", False):
        stop_listening = uvicorn.Server.shutdown

        async def shutdown(
            self: Any, sockets: Any = None, stop_listening: Any = stop_listening
        ) -> None:
            await _accept_backlog(self.servers)
            await stop_listening(self, sockets)

        shutdown.accepts_first = True  # type: ignore[attr-defined]
        uvicorn.Server.shutdown = shutdown
    for module, name in _HTTP_PROTOCOLS:
        try:  # httptools is optional: without it uvicorn speaks h11
            protocol = getattr(importlib.import_module(module), name)
        except ImportError:
            continue
        if getattr(protocol.shutdown, "reads_first", False):
            continue
        close_now = protocol.shutdown

        def shutdown_connection(self: Any, close_now: Any = close_now) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.loop.call_later(UNREAD_GRACE_S, _close_unless_closed, self, close_now)
            else:
                close_now(self)

        shutdown_connection.reads_first = True  # type: ignore[attr-defined]
        protocol.shutdown = shutdown_connection


async def _accept_backlog(servers: Sequence[asyncio.AbstractServer]) -> None:
    """Wait until no connection waits in the listening sockets' backlog (the event loop,
    still listening, accepts them itself), then one more moment for the accepted ones to
    reach their protocol, so that uvicorn's shutdown sees them as open connections."""
    backlog = select.poll()  # not `select.select`: it refuses a descriptor over 1,023
    for server in servers:
        for sock in getattr(server, "sockets", None) or ():
            backlog.register(sock.fileno(), select.POLLIN)
    deadline = time.monotonic() + BACKLOG_GRACE_S
    while time.monotonic() < deadline and backlog.poll(0):
        await asyncio.sleep(0.01)
    for _ in range(3):  # accepting, making the transport, `connection_made`
        await asyncio.sleep(0)


def _close_unless_closed(connection: Any, close_now: Any) -> None:
    if not connection.transport.is_closing():
        close_now(connection)


#: How long a connection may take to deliver a request's head (from its first byte, or from
#: the connection when nothing came yet): a slow or idle half-request is answered 408.
HEAD_TIMEOUT_S = 10.0
#: The most a request head may take (bytes read while it is unfinished); beyond it, 431.
#: h11, uvicorn's parser without httptools, refuses a head over 16 KiB itself (400).
MAX_HEAD_BYTES = 1 << 20
#: Open connections per worker beyond which a new one is answered 503 and closed; None: half
#: the file limit (raised to its hard limit first), at most 10,000, so that the worker can
#: still open its champion and its store.
MAX_CONNECTIONS: int | None = None


def _connection_cap() -> int:
    if MAX_CONNECTIONS is not None:
        return MAX_CONNECTIONS
    return max(64, min(10_000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2))


def _raise_file_limit() -> None:
    """The soft limit on open files up to the hard one (1,024 soft is common: a cap of 512
    connections refused a 600-connection load test)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        # not allowed here: the cap stays under the soft limit
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def bound_connections() -> None:
    """Give uvicorn's HTTP protocols the head timeout, head size and connection limits above
    (uvicorn has none of the first two, and BentoML does not pass the third)."""
    import importlib

    _raise_file_limit()
    for module, name in _HTTP_PROTOCOLS:
        try:
            protocol = getattr(importlib.import_module(module), name)
        except ImportError:
            continue
        if getattr(protocol.data_received, "bounded", False):
            continue
        made, received = protocol.connection_made, protocol.data_received

        def connection_made(self: Any, transport: Any, made: Any = made) -> None:
            made(self, transport)
            self.head_bytes, self.head_timer = 0, None
            if _over_capacity(len(self.connections)):
                _refuse(self, 503, f"over {_connection_cap()} open connections: try again")
                return
            self.head_timer = self.loop.call_later(HEAD_TIMEOUT_S, _head_timed_out, self)

        def data_received(self: Any, data: bytes, received: Any = received) -> None:
            if _reading_head(self):  # these bytes begin or continue a request's head
                self.head_bytes += len(data)
            received(self, data)  # one read (at most 256 KiB) past the limit, then no more
            if not _reading_head(self):  # the head is complete: the count starts again
                self.head_bytes = 0
                if self.head_timer is not None:
                    self.head_timer.cancel()
                    self.head_timer = None
            elif self.transport.is_closing():
                return
            elif self.head_bytes > MAX_HEAD_BYTES:
                _refuse(self, 431, f"request head over {MAX_HEAD_BYTES} bytes")
            elif self.head_timer is None:
                self.head_timer = self.loop.call_later(HEAD_TIMEOUT_S, _head_timed_out, self)

        data_received.bounded = True  # type: ignore[attr-defined]
        # for a connection accepted before the patch (the service starts while serving)
        protocol.head_bytes, protocol.head_timer, protocol.in_body = 0, None, False
        protocol.connection_made = connection_made
        protocol.data_received = data_received
        if hasattr(protocol, "on_headers_complete"):  # httptools: where a body starts and ends
            protocol.on_headers_complete = _body_starts(protocol.on_headers_complete)
            protocol.on_message_complete = _body_ends(protocol.on_message_complete)


def _body_starts(on_headers_complete: Callable[[Any], None]) -> Callable[[Any], None]:
    def wrapped(self: Any) -> None:
        self.in_body = True
        on_headers_complete(self)

    return wrapped


def _body_ends(on_message_complete: Callable[[Any], None]) -> Callable[[Any], None]:
    def wrapped(self: Any) -> None:
        self.in_body = False
        on_message_complete(self)

    return wrapped


def _reading_head(connection: Any) -> bool:
    """Between two requests, or inside a request's head: not while a request is answered,
    nor while the rest of a body comes in (answered early, a 413 or 415, its bytes still
    arrive and must not count as the next head)."""
    cycle = connection.cycle
    if cycle is not None and not cycle.response_complete:
        return False
    parser = getattr(connection, "conn", None)  # h11 says where the peer is
    if parser is not None:
        import h11

        return parser.their_state is h11.IDLE
    return not connection.in_body


_at_capacity = False


def _over_capacity(connections: int) -> bool:
    """Too many connections for one more? Logged when the cap is reached, and again only
    once the count is back under 90 % of it (not at every close and open at the edge)."""
    global _at_capacity
    cap = _connection_cap()
    over = connections > cap
    if over and not _at_capacity:
        log.warning("over %d open connections: refusing new ones", cap)
        _at_capacity = True
    elif _at_capacity and connections < 0.9 * cap:
        log.warning("below %d open connections again: accepting new ones", cap)
        _at_capacity = False
    return over


def _head_timed_out(connection: Any) -> None:
    connection.head_timer = None
    if _reading_head(connection) and not connection.transport.is_closing():
        _refuse(connection, 408, f"no complete request head within {HEAD_TIMEOUT_S:g} s")


def _refuse(connection: Any, status: int, why: str) -> None:
    """Answer ``status`` with ``{"error": why}`` and close, outside any request cycle."""
    if status != 503:  # the capacity is logged when it is reached
        log.info("refused a connection: %d %s", status, why, extra=CLIENT_ERROR)
    body = json.dumps({"error": why}).encode()
    retry = b"retry-after: 1\r\n" if status == 503 else b""
    connection.transport.write(
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"%sconnection: close\r\n\r\n%s"
        % (status, HTTPStatus(status).phrase.encode(), len(body), retry, body)
    )
    connection.transport.close()
