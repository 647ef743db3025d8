"""Build the configured sinks once, at the edge (CLI, watch flow), from the settings."""

from __future__ import annotations

from pathlib import Path

from engine.alerts.dashboard import DashboardSink
from engine.alerts.protocol import AlertSink
from engine.alerts.smtp import SmtpSink
from engine.alerts.webhook import WebhookSink, resolve_hmac_key
from engine.errors import ConfigError
from engine.settings import AlertSettings

KNOWN_SINKS = ("dashboard", "webhook", "email")


def build_sinks(
    settings: AlertSettings, *, allowed_identifiers: tuple[str, ...] = (), secrets_dir: Path
) -> dict[str, AlertSink]:
    """Sink name -> sink, for every name in ``settings.sinks``."""
    unknown = [name for name in settings.sinks if name not in KNOWN_SINKS]
    if unknown:
        raise ConfigError(f"Unknown alert sink(s) {', '.join(unknown)}",
                          action=f"Use alerts.sinks from: {', '.join(KNOWN_SINKS)}.")
    sinks: dict[str, AlertSink] = {}
    for name in settings.sinks:
        if name == "dashboard":
            sinks[name] = DashboardSink()
        elif name == "webhook":
            sinks[name] = WebhookSink(
                url=settings.webhook_url, hmac_key=resolve_hmac_key(settings.hmac_key, secrets_dir),
                timeout_s=settings.webhook_timeout_s, allowed_identifiers=allowed_identifiers,
            )
        else:
            sinks[name] = SmtpSink(
                host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from,
                recipients=settings.smtp_to, starttls=settings.smtp_starttls,
                username=settings.smtp_username, password=settings.smtp_password,
                timeout_s=settings.smtp_timeout_s, allowed_identifiers=allowed_identifiers,
            )
    return sinks
