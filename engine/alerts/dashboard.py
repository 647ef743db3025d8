"""The dashboard sink: the alert row in the store *is* the dashboard's notice.

The dashboard lists unacknowledged alerts from the store, so there is nothing to transmit; the
outbox marks this sink's row delivered, which records when the alert became visible.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.alerts.alert import AlertMessage


@dataclass(frozen=True, slots=True)
class DashboardSink:
    name: str = "dashboard"

    def send(self, alert: AlertMessage) -> None:  # noqa: ARG002 - the stored row is the message
        return None
