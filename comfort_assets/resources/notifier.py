"""Notifications: to the log by default, to a Slack incoming webhook when one is configured.

Slack's own client (`slack_sdk.webhook.WebhookClient`) posts, with its retry handlers for
server errors, rate limits (429, honouring a ``Retry-After`` of up to `MAX_RETRY_AFTER_S`) and
connections refused or reset
before the alert was sent, each with exponential backoff. A notification that still fails is
logged, never raised: an alert must not fail the run it reports on. A webhook URL's path is
its secret: what the notifier logs shows ``scheme://host/***`` instead.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from urllib.error import URLError
from urllib.parse import urlsplit

import dagster as dg
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

WEBHOOK_ENV = "COMFORT_SLACK_WEBHOOK_URL"
KINDS = ("drift", "decay", "quality", "promotion", "run_failure", "self_test", "retrain")

#: slack_sdk logs its failures and retries with the whole webhook URL; the notifier logs
#: each failure itself, masked, so the client's own lines are kept quiet
_SLACK_SDK_LOG = logging.getLogger("comfort.notifier.slack_sdk")
_SLACK_SDK_LOG.setLevel(logging.CRITICAL)

#: The longest 429 ``Retry-After`` the notifier waits for, per retry: slack_sdk sleeps whatever
#: it says (an hour held the run an hour); beyond it the alert is given up, and is in the log
MAX_RETRY_AFTER_S = 30.0


class CappedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Slack's 429 retry, unless ``Retry-After`` asks for more than `MAX_RETRY_AFTER_S` or is
    not a number of seconds (slack_sdk would raise on an HTTP date)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or not super()._can_retry(
            state=state, request=request, response=response, error=error
        ):
            return False
        values = {k.lower(): v for k, v in response.headers.items()}.get("retry-after")
        if not values:
            return True  # slack_sdk waits about a second
        try:
            return 0 <= int(values[0]) <= MAX_RETRY_AFTER_S
        except ValueError:
            return False


def masked(url: str) -> str:
    """``scheme://host/***``: what may be shown of a webhook URL, whose path is the secret."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "***"
    if not (parts.scheme and parts.hostname):
        return "a value that is not a URL (hidden: it may hold the secret)"
    return f"{parts.scheme}://{parts.hostname}/***"


@dataclass(frozen=True)
class Alert:
    """What happened, with the figure, the threshold, the station and the model version."""

    kind: str
    title: str
    check: str = ""
    figure: float | None = None
    threshold: float | None = None
    station: str = ""
    model_version: str = ""
    details: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        facts = {
            "check": self.check,
            "figure": _number(self.figure),
            "threshold": _number(self.threshold),
            "station": self.station,
            "model": self.model_version,
            **self.details,
        }
        body = ", ".join(f"{k}={v}" for k, v in facts.items() if v)
        return f"[comfort-assets] {self.kind}: {self.title}" + (f" ({body})" if body else "")

    def blocks(self) -> list[dict]:
        facts = [
            ("Check", self.check),
            ("Figure", _number(self.figure)),
            ("Threshold", _number(self.threshold)),
            ("Station", self.station),
            ("Model version", self.model_version),
            *self.details.items(),
        ]
        fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts if v][:10]
        blocks: list[dict] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{self.kind}*: {self.title}"}}
        ]
        if fields:
            blocks.append({"type": "section", "fields": fields})
        return blocks


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}"


class Notifier(dg.ConfigurableResource):
    """``webhook_url`` unset: alerts go to the Dagster log only. A post takes at most
    ``max_retries + 1`` tries of ``timeout_s`` each (per connect or read), with backoff
    between them (and a 429's ``Retry-After``)."""

    webhook_url: str | None = None
    max_retries: int = 3
    backoff_factor_s: float = 0.5
    timeout_s: float = 5.0

    @classmethod
    def from_environment(cls) -> Notifier:
        """Slack if ``COMFORT_SLACK_WEBHOOK_URL`` is set (read by Dagster, never stored in
        config), the log otherwise."""
        if os.environ.get(WEBHOOK_ENV):
            return cls(webhook_url=dg.EnvVar(WEBHOOK_ENV))
        return cls()

    def client(self) -> WebhookClient:
        backoff = BackoffRetryIntervalCalculator(backoff_factor=self.backoff_factor_s)
        return WebhookClient(
            self.webhook_url or "",
            timeout=self.timeout_s,
            logger=_SLACK_SDK_LOG,
            retry_handlers=[
                # urllib wraps what fails while connecting or sending (refused, reset, connect
                # timeout) in URLError: the alert did not arrive, try again. A read timeout or
                # a drop while awaiting the answer is raised bare and not retried: the POST
                # most likely arrived, and Slack would show it once per try
                ConnectionErrorRetryHandler(self.max_retries, backoff, error_types=[URLError]),
                ServerErrorRetryHandler(self.max_retries, backoff),
                CappedRateLimitRetryHandler(self.max_retries, backoff),
            ],
        )

    def notify(self, alert: Alert) -> bool:
        """Log the alert and post it if a webhook is set; True when it was delivered."""
        log = dg.get_dagster_logger("comfort.notifier")
        log.warning(alert.text())
        if not self.webhook_url:
            return True
        where = masked(self.webhook_url)
        try:
            response = self.client().send(text=alert.text(), blocks=alert.blocks())
        except Exception as error:  # an alert must never fail its run
            reason = self._redacted(str(error))
            log.error(f"Slack notification to {where} failed: {type(error).__name__}: {reason}")
            return False
        if response.status_code != 200:
            body = self._redacted(response.body)[:200]
            log.error(f"Slack at {where} answered {response.status_code}: {body}")
            return False
        return True

    def _redacted(self, text: str) -> str:
        """``text`` with the webhook URL and its path masked, as written or as quoted by
        ``repr`` (http.client's `InvalidURL` quotes the path)."""
        url = self.webhook_url or ""
        after_scheme = url.partition("://")[2] or url
        path = after_scheme[after_scheme.find("/") :] if "/" in after_scheme else ""
        for secret, shown in ((url, masked(url)), (path, "/***")):
            if len(secret) > 1:  # not a bare "/"
                for form in (secret, repr(secret)[1:-1]):
                    text = text.replace(form, shown)
        return text
