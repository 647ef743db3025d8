"""Every sink says whether an alert rests on proposed, confirmed or rejected values (issue 32).

The alerts are raised by the real rules, stored in a real DuckDB store, delivered by the real
outbox to the real sinks: the webhook to the local HMAC receiver, the e-mail to an aiosmtpd server
on loopback, the log through ``logging``, and the dashboard sink, whose notice is the stored row
the dashboard's read model shows. The reader's verdict is written as the writer writes it
(``engine.store.reader.insert_entry``), between deliveries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from engine.alerts.outbox import RetryPolicy, deliver_due, run_outbox_once
from engine.alerts.receiver import WebhookReceiver
from engine.alerts.rules import AlertInput, evaluate_alerts
from engine.alerts.sinks import build_sinks
from engine.alerts.smtp import SmtpSink
from engine.alerts.webhook import WebhookSink
from engine.reader_values import ReaderValueKind
from engine.settings import AlertSettings
from engine.store import Store, open_store
from engine.store import alerts as sql
from engine.store import reader as reader_sql
from engine.store.read_model import read_alerts
from engine.types import Response
from tests.integration.test_alert_sinks import Mailbox, smtp_server  # noqa: F401 - the fixture
from tests.support import free_port

KEY = "test-hmac-key"
T0 = datetime(2025, 3, 14, 8, 0, 0)
POLICY = RetryPolicy(base_s=30, max_s=900)
PATIENT, STUDY = "P-0A1B2C3D4E", "1.2.826.0.1.3680043.8.498.77"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "gliowatch.duckdb") as s:
        yield s


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(hmac_key=KEY) as r:
        yield r


def raise_pd(store: Store, sinks: list[str]) -> None:
    """A confirmed PD on STUDY (one CRITICAL alert) through the real rules."""
    alerts = evaluate_alerts(AlertInput(patient_key=PATIENT, study_uid=STUDY, study_date=date(2025, 3, 14),
                                        criteria="RANO 2.0, criteria v1", response=Response.PD,
                                        previous_response=Response.SD), base_url="http://127.0.0.1:8501")
    with store.transaction() as con:
        sql.enqueue_alerts(con, alerts, sinks, now=T0)


def reader_verdict(store: Store, *, accepted: bool, at: datetime) -> None:
    with store.transaction() as con:
        reader_sql.insert_entry(con, patient_key=PATIENT, study_uid=STUDY, kind=ReaderValueKind.SEGMENTATION,
                                lesion_index=None, value={"accepted": accepted, "reason": "" if accepted else "motion"},
                                before=None, note="", user="dr-reader", at=at, request_id=f"r-{at.isoformat()}")


def test_webhook_says_proposed_then_confirmed_on_escalation(store: Store, receiver: WebhookReceiver) -> None:
    sink = WebhookSink(url=receiver.url, hmac_key=KEY, timeout_s=5)
    raise_pd(store, ["webhook"])
    assert deliver_due(store, {"webhook": sink}, now=T0, policy=POLICY).delivered == 1
    reader_verdict(store, accepted=True, at=T0 + timedelta(hours=1))
    report = run_outbox_once(store, {"webhook": sink}, now=T0 + timedelta(hours=5), policy=POLICY, escalate_after_h=4)
    assert report.escalated == 1 and report.delivered == 1
    notice, escalation = receiver.received
    assert receiver.refused == 0  # both signed and verified by the receiver
    assert (notice["kind"], notice["values_basis"]) == ("NOTICE", "proposed")
    assert (escalation["kind"], escalation["values_basis"]) == ("ESCALATION", "confirmed")
    assert "study_uid" not in notice and STUDY not in str(notice)  # no identifier beyond what is configured


def test_critical_alert_waits_for_confirmation_and_then_says_confirmed(store: Store, receiver: WebhookReceiver) -> None:
    sink = WebhookSink(url=receiver.url, hmac_key=KEY, timeout_s=5)
    raise_pd(store, ["webhook"])
    assert deliver_due(store, {"webhook": sink}, now=T0, policy=POLICY, hold_unconfirmed_critical=True).delivered == 0
    reader_verdict(store, accepted=False, at=T0 + timedelta(minutes=5))  # rejected: still not confirmed
    later = T0 + timedelta(minutes=10)
    assert deliver_due(store, {"webhook": sink}, now=later, policy=POLICY, hold_unconfirmed_critical=True).delivered == 0
    reader_verdict(store, accepted=True, at=T0 + timedelta(minutes=20))  # revised
    later = T0 + timedelta(minutes=30)
    assert deliver_due(store, {"webhook": sink}, now=later, policy=POLICY, hold_unconfirmed_critical=True).delivered == 1
    assert [a["values_basis"] for a in receiver.received] == ["confirmed"]


def test_email_says_rejected_in_subject_and_text(store: Store, smtp_server: tuple[Mailbox, int]) -> None:  # noqa: F811
    box, port = smtp_server
    sink = SmtpSink(host="127.0.0.1", port=port, sender="g@localhost", recipients=("board@localhost",), timeout_s=5)
    raise_pd(store, ["email"])
    reader_verdict(store, accepted=False, at=T0 - timedelta(minutes=1))
    assert deliver_due(store, {"email": sink}, now=T0, policy=POLICY).delivered == 1
    (mail,) = box.messages
    assert mail["Subject"].endswith("MRI 2025-03-14 (rejected values)")
    text = mail.get_content()
    assert "Rests on: rejected values (a reader rejected the segmentation)" in text
    assert STUDY not in text


def test_log_line_says_what_the_alert_rests_on(store: Store, receiver: WebhookReceiver,
                                               caplog: pytest.LogCaptureFixture) -> None:
    raise_pd(store, ["webhook"])
    reader_verdict(store, accepted=True, at=T0 - timedelta(minutes=1))
    with caplog.at_level(logging.INFO, logger="gliowatch.alerts"):
        deliver_due(store, {"webhook": WebhookSink(url=receiver.url, hmac_key=KEY, timeout_s=5)}, now=T0,
                    policy=POLICY)
    (line,) = [r.getMessage() for r in caplog.records if "delivered to webhook" in r.getMessage()]
    assert line.endswith("(rests on confirmed values)") and PATIENT in line and STUDY not in line


def test_dashboard_sink_row_shows_the_same_basis_the_other_sinks_send(store: Store, receiver: WebhookReceiver,
                                                                       tmp_path: Path) -> None:
    settings = AlertSettings(sinks=("dashboard", "webhook"), webhook_url=receiver.url, hmac_key=KEY)
    sinks = build_sinks(settings, secrets_dir=tmp_path)
    raise_pd(store, ["dashboard", "webhook"])
    assert read_alerts(store)["values_basis"].tolist() == ["proposed"]
    reader_verdict(store, accepted=True, at=T0 - timedelta(minutes=1))
    assert deliver_due(store, sinks, now=T0, policy=POLICY).delivered == 2
    assert sql.outbox_counts(store)[("dashboard", "DELIVERED")] == 1
    assert read_alerts(store)["values_basis"].tolist() == [receiver.received[0]["values_basis"]] == ["confirmed"]


def test_cli_sink_prints_the_basis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    """``gliowatch alerts sink`` (the demo's local receiver) prints what each alert rests on."""
    import threading

    from flows.cli import main
    from tests.integration.test_alert_sinks import wait_listening

    port = free_port()
    monkeypatch.setenv("GLIOWATCH_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GLIOWATCH_ALERTS__SINKS", "webhook")
    monkeypatch.setenv("GLIOWATCH_ALERTS__WEBHOOK_URL", f"http://127.0.0.1:{port}/alerts")
    results: list[int] = []
    server = threading.Thread(target=lambda: results.append(main(["alerts", "sink", "--port", str(port),
                                                                  "--max-alerts", "1"])), daemon=True)
    server.start()
    with open_store(tmp_path / "gliowatch.duckdb") as s:
        raise_pd(s, ["webhook"])
    wait_listening(port)
    assert main(["alerts", "deliver", "--once"]) == 0
    server.join(timeout=20)
    assert results == [0]
    assert "ALERT_PD_CONFIRMED P-0A1B2C3D4E MRI 2025-03-14" in (out := capsys.readouterr().out)
    assert "[rests on proposed values]" in out
