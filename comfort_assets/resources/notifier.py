"""Notifications: to the log by default, to a Slack incoming webhook when one is configured.

Slack's own client (`slack_sdk.webhook.WebhookClient`) posts, with its retry handlers for
server errors, rate limits (429, honouring ``Retry-After``) and dropped connections, each
with exponential backoff. A notification that still fails is logged, never raised: an alert
must not fail the run it reports on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from http.client import RemoteDisconnected
from urllib.error import URLError

import dagster as dg
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

WEBHOOK_ENV = "COMFORT_SLACK_WEBHOOK_URL"
KINDS = ("drift", "decay", "quality", "promotion", "run_failure", "self_test", "retrain")


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
    """``webhook_url`` unset: alerts go to the Dagster log only."""

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
            retry_handlers=[
                # a webhook that does not answer in time is tried again too (at worst the
                # alert arrives twice; slack_sdk retries only resets and refusals)
                ConnectionErrorRetryHandler(
                    self.max_retries,
                    backoff,
                    error_types=[URLError, ConnectionResetError, RemoteDisconnected, TimeoutError],
                ),
                ServerErrorRetryHandler(self.max_retries, backoff),
                RateLimitErrorRetryHandler(self.max_retries, backoff),
            ],
        )

    def notify(self, alert: Alert) -> bool:
        """Log the alert and post it if a webhook is set; True when it was delivered."""
        log = dg.get_dagster_logger("comfort.notifier")
        log.warning(alert.text())
        if not self.webhook_url:
            return True
        try:
            response = self.client().send(text=alert.text(), blocks=alert.blocks())
        except Exception as error:  # an alert must never fail its run
            log.error(f"Slack notification failed: {error!r}")
            return False
        if response.status_code != 200:
            log.error(f"Slack answered {response.status_code}: {response.body[:200]}")
            return False
        return True
