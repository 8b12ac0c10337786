"""The notifier posts to a real HTTP server on 127.0.0.1 through Slack's webhook client."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from comfort_assets.resources import notifier as notifier_module
from comfort_assets.resources.notifier import WEBHOOK_ENV, Alert, Notifier

STALL_S = 2.0


class WebhookServer:
    """A Slack incoming webhook stand-in: answers the scripted statuses in order (then 200;
    a status of 0 answers 200 only after ``STALL_S``, too late) and keeps every JSON body it
    received."""

    def __init__(self, statuses: list[int], retry_after: str = "0") -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                server.bodies.append(json.loads(self.rfile.read(length)))
                status = server.statuses.pop(0) if server.statuses else 200
                if status == 0:
                    time.sleep(STALL_S)
                    status = 200
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", retry_after)
                body = b"ok" if status == 200 else b"try again"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/services/T0/B0/x"

    @property
    def texts(self) -> list[str]:
        return [body["text"] for body in self.bodies]


@contextmanager
def webhook_server(
    statuses: list[int] | None = None, retry_after: str = "0"
) -> Iterator[WebhookServer]:
    server = WebhookServer(statuses or [], retry_after)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


ALERT = Alert(
    kind="decay",
    title="production RMSE above holdout × 1.1",
    check="production_performance:rmse_vs_holdout",
    figure=2.91234,
    threshold=2.42,
    station="JFK",
    model_version="weather-predictor-007",
)


def test_message_names_check_figure_threshold_station_and_version():
    text = ALERT.text()
    for part in ("rmse_vs_holdout", "2.912", "2.42", "JFK", "weather-predictor-007", "decay"):
        assert part in text


def test_posts_the_alert_as_text_and_blocks():
    with webhook_server() as server:
        assert Notifier(webhook_url=server.url).notify(ALERT)
    (body,) = server.bodies
    assert body["text"] == ALERT.text()
    fields = {f["text"] for block in body["blocks"] for f in block.get("fields", [])}
    assert "*Station*\nJFK" in fields and "*Threshold*\n2.42" in fields


def test_server_error_and_rate_limit_are_retried_with_backoff():
    with webhook_server([500, 429]) as server:
        delivered = Notifier(webhook_url=server.url, backoff_factor_s=0.01).notify(ALERT)
    assert delivered
    assert len(server.bodies) == 3 and len(set(server.texts)) == 1


@pytest.mark.parametrize("retry_after", ["2", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_a_rate_limit_asking_for_a_long_wait_is_not_waited_for(retry_after, monkeypatch):
    """slack_sdk slept whatever Retry-After said: an hour held the run an hour."""
    monkeypatch.setattr(notifier_module, "MAX_RETRY_AFTER_S", 1.0)
    with webhook_server([429], retry_after) as server:
        started = time.monotonic()
        assert Notifier(webhook_url=server.url, backoff_factor_s=0.01).notify(ALERT) is False
        assert time.monotonic() - started < 1.5  # not the 2 s asked for
    assert len(server.bodies) == 1


def test_a_webhook_that_answers_too_late_gets_the_alert_once():
    """The POST arrived before the read timed out: every retry was one more copy in Slack
    (4, holding the run ~21 s)."""
    with webhook_server([0]) as server:
        notifier = Notifier(webhook_url=server.url, backoff_factor_s=0.01, timeout_s=0.5)
        started = time.monotonic()
        assert notifier.notify(ALERT) is False  # no answer: delivery unknown
        assert time.monotonic() - started < STALL_S  # the late answer is not waited for
    assert server.texts == [ALERT.text()]


def test_a_webhook_that_keeps_failing_is_logged_not_raised():
    with webhook_server([500] * 10) as server:
        notifier = Notifier(webhook_url=server.url, max_retries=2, backoff_factor_s=0.01)
        assert notifier.notify(ALERT) is False
    assert len(server.bodies) == 3  # the first try and two retries


def test_without_a_webhook_alerts_only_go_to_the_log(monkeypatch):
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    notifier = Notifier.from_environment()
    assert notifier.webhook_url is None and notifier.notify(ALERT)


def test_the_webhook_url_comes_from_the_environment_through_dagster(monkeypatch):
    with webhook_server() as server:
        monkeypatch.setenv(WEBHOOK_ENV, server.url)
        notifier = Notifier.from_environment()

        @dg.asset
        def alerting(notifier: Notifier) -> None:
            notifier.notify(ALERT)

        assert dg.materialize([alerting], resources={"notifier": notifier}).success
    assert server.texts == [ALERT.text()]


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/services/T0/B0/SECRET TOKEN",
        "http://127.0.0.1:{port}/services/T0/B0/SECRET\nTOKEN",
        "ftp://127.0.0.1/services/T0/B0/SECRET",
        "http://127.0.0.1:{port}/services/T0/B0/SECRET",
    ],
    ids=["space in the path", "newline in the path", "not http", "refused"],
)
def test_a_failed_post_never_logs_the_webhooks_secret_path(caplog, url):
    """The error's repr went to the run log whole, e.g. ``InvalidURL("URL can't contain
    control characters. '/services/T0/B0/SECRET TOKEN' …")``: the path is the secret."""
    url = url.format(port=_closed_port())
    notifier = Notifier(webhook_url=url, max_retries=1, backoff_factor_s=0.01, timeout_s=1)
    with caplog.at_level(logging.DEBUG):
        assert notifier.notify(ALERT) is False
    failure = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert failure and "127.0.0.1/***" in failure[-1], failure
    assert "SECRET" not in caplog.text and "services" not in caplog.text
