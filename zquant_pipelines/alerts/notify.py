"""Sending alerts: the targets of ZQUANT_ALERT_URLS (Apprise URLs) and one delivery to each.

Every target gets its own Apprise object, so a dead target is named on its own and the
others still receive the message. Targets are named with their credentials redacted.
"""

import os

import apprise

from zquant_pipelines.alerts.messages import Alert
from zquant_pipelines.constants import DEFAULT_UI_URL, ENV_ALERT_URLS, ENV_UI_URL
from zquant_pipelines.redaction import redact_credentials


def alert_urls() -> list[str]:
    """The targets in ZQUANT_ALERT_URLS (comma separated; blanks ignored)."""
    return [url.strip() for url in os.environ.get(ENV_ALERT_URLS, "").split(",") if url.strip()]


def ui_url() -> str:
    return os.environ.get(ENV_UI_URL) or DEFAULT_UI_URL


def target_name(position: int, url: str) -> str:
    """Target ``position`` (from 1) as it may be printed: Apprise's own privacy form (tokens
    in the path shortened, passwords masked) without the query, credentials redacted again;
    a URL Apprise cannot read shows its scheme only."""
    plugin = apprise.Apprise.instantiate(url)
    shown = plugin.url(privacy=True).partition("?")[0] if plugin else None
    if not shown:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        shown = f"{scheme if scheme.isalnum() else '?'}://... (not a URL Apprise reads)"
    return f"#{position} {redact_credentials(shown)}"


def send(alert: Alert, urls: list[str]) -> list[str]:
    """Deliver ``alert`` to each target; the names of the targets that failed (redacted),
    an unreadable URL included."""
    failed = []
    for position, url in enumerate(urls, start=1):
        target = apprise.Apprise()
        delivered = target.add(url) and target.notify(
            title=alert.title, body=alert.body, body_format=apprise.NotifyFormat.TEXT
        )
        if not delivered:
            failed.append(target_name(position, url))
    return failed


class DeliveryFailed(Exception):
    """Some targets did not take an alert; the message names them (redacted)."""

    def __init__(self, failed: list[str]):
        super().__init__(f"alert not delivered to: {', '.join(failed)}")
        self.failed = failed


def deliver(alert: Alert, urls: list[str]) -> None:
    """``send``, raising DeliveryFailed naming the targets that did not take it."""
    if failed := send(alert, urls):
        raise DeliveryFailed(failed)
