"""Webhook sink: the alert as canonical JSON, POSTed with an HMAC-SHA256 signature and a timeout.

Headers sent:

- ``X-GlioWatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." + body)>``
  (the timestamp is signed too, so a receiver can refuse old replays);
- ``X-GlioWatch-Delivery-Key``: the alert's idempotency key (``:escalation`` appended for an
  escalation). A sender that crashes after the receiver accepted a message but before recording
  the delivery sends it again on restart: **receivers must drop a delivery key they have seen**.
  :class:`engine.alerts.receiver.WebhookReceiver` does.

The key comes from the environment (``GLIOWATCH_ALERTS__HMAC_KEY``) or, when unset, from a file
generated once under the state dir, which the demo's local receiver reads too.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.alerts.alert import AlertMessage
from engine.alerts.payload import payload_bytes
from engine.errors import AlertDeliveryError, ConfigError
from engine.secret_files import configured_or_generated

SIGNATURE_HEADER = "X-GlioWatch-Signature"
DELIVERY_KEY_HEADER = "X-GlioWatch-Delivery-Key"
KEY_FILE = "alerts-hmac-key"
MAX_SKEW_S = 300


def sign(body: bytes, *, key: str, timestamp: int) -> str:
    """The signature header's value.

    >>> sign(b'{}', key="k", timestamp=1700000000)[:16]
    't=1700000000,v1='
    """
    mac = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(header: str, body: bytes, *, key: str, now: float, max_skew_s: int = MAX_SKEW_S) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``max_skew_s`` of ``now``."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > max_skew_s:
        return False
    expected = sign(body, key=key, timestamp=timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def resolve_hmac_key(configured: str, secrets_dir: Path) -> str:
    """The configured key, else one generated once and kept (0600) under ``secrets_dir``."""
    return configured_or_generated(configured, secrets_dir / KEY_FILE, nbytes=32)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSink:
    url: str
    hmac_key: str = field(repr=False)
    timeout_s: float = 10.0
    allowed_identifiers: tuple[str, ...] = ()
    clock: Callable[[], float] = field(default=time.time, repr=False)
    name: str = "webhook"

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            msg = f"Argument 'url' must be an http(s) URL, got {self.url!r}"
            raise ConfigError(msg, action="Set alerts.webhook_url in config/gliowatch.toml.")
        if not self.hmac_key:
            raise ConfigError("The webhook sink has no signing key",
                              action="Set GLIOWATCH_ALERTS__HMAC_KEY in the environment.")

    def send(self, alert: AlertMessage) -> None:
        body = payload_bytes(alert, allowed_identifiers=self.allowed_identifiers)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, key=self.hmac_key, timestamp=int(self.clock())),
            DELIVERY_KEY_HEADER: alert.delivery_key,
            "User-Agent": "GlioWatch-alerts/1",
        }
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        exam = alert.exam
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - http(s) only
                status = response.status
        except urllib.error.HTTPError as exc:
            raise AlertDeliveryError(
                f"The webhook answered HTTP {exc.code}", exam=exam,
                action="Check the receiver's log (a 401/403 means the signing keys differ); it will be retried.",
                detail=f"{self.url}: {exc.reason}",
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise AlertDeliveryError(
                "The webhook could not be reached", exam=exam,
                action="It will be retried with backoff; check that the receiver is running.",
                detail=f"{self.url}: {exc}",
            ) from None
        if not 200 <= status < 300:
            raise AlertDeliveryError(f"The webhook answered HTTP {status}", exam=exam,
                                     action="It will be retried.", detail=self.url)

