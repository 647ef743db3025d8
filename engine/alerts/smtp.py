"""E-mail sink: one plain-text message per alert over SMTP (smtplib), STARTTLS optional.

The Message-ID is derived from the delivery key, and the key is also sent as
``X-GlioWatch-Delivery-Key``, so a message re-sent after a crash can be recognised as a repeat.
The password comes from the environment only (``GLIOWATCH_ALERTS__SMTP_PASSWORD``).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate

from engine.alerts.alert import AlertMessage
from engine.alerts.payload import alert_text
from engine.errors import AlertDeliveryError, ConfigError

DELIVERY_KEY_HEADER = "X-GlioWatch-Delivery-Key"

log = logging.getLogger("gliowatch.alerts")


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSink:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_s: float = 10.0
    allowed_identifiers: tuple[str, ...] = ()
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    name: str = "email"

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ConfigError("The e-mail sink has no recipients",
                              action="Set alerts.smtp_to in config/gliowatch.toml.")
        if self.username and not self.password:
            raise ConfigError("The e-mail sink has a user name but no password",
                              action="Set GLIOWATCH_ALERTS__SMTP_PASSWORD in the environment.")

    def build_message(self, alert: AlertMessage) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = alert.subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = f"<{alert.delivery_key.replace(':', '.')}@gliowatch>"
        msg[DELIVERY_KEY_HEADER] = alert.delivery_key
        msg.set_content(alert_text(alert, allowed_identifiers=self.allowed_identifiers))
        return msg

    def send(self, alert: AlertMessage) -> None:
        message = self.build_message(alert)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as client:
                client.ehlo()
                if self.starttls:
                    client.starttls(context=self.ssl_context or ssl.create_default_context())
                    client.ehlo()
                if self.username:
                    client.login(self.username, self.password)
                refused = client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise AlertDeliveryError(
                "The e-mail server did not accept the alert", exam=alert.exam,
                action="It will be retried with backoff; check the SMTP settings and server.",
                detail=f"{self.host}:{self.port}: {type(exc).__name__}: {exc}",
            ) from None
        if refused:  # the others have it: retrying would send them a second copy
            log.warning("%s: the e-mail server refused %d of %d recipients (%s)", alert.exam,
                        len(refused), len(self.recipients), ", ".join(sorted(refused)))
