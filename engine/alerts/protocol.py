"""The ``AlertSink`` protocol: one role, several technologies (webhook, e-mail, dashboard)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from engine.alerts.alert import AlertMessage


@runtime_checkable
class AlertSink(Protocol):
    """Delivers one alert message somewhere people will see it.

    ``name`` is what the outbox stores per row (``"webhook"``, ``"email"``, ``"dashboard"``).
    ``send`` returns once the receiver has accepted the message and raises
    :class:`engine.errors.AlertDeliveryError` (retryable) otherwise. A receiver may see a message
    twice (a crash between sending and recording the delivery): every message carries its
    ``delivery_key`` so receivers can drop repeats.
    """

    name: str

    def send(self, alert: AlertMessage) -> None: ...
