"""The real sinks against real servers on loopback: aiosmtpd for e-mail, http.server for the webhook.

No Orthanc needed (not marked ``integration``); each server starts on a free port and stops.
"""

from __future__ import annotations

import email
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from engine.alerts.alert import AlertMessage, AlertType, DeliveryKind, Severity
from engine.alerts.outbox import RetryPolicy, deliver_due
from engine.alerts.receiver import WebhookReceiver
from engine.alerts.rules import AlertInput, evaluate_alerts
from engine.alerts.smtp import SmtpSink
from engine.alerts.webhook import SIGNATURE_HEADER, WebhookSink, sign, verify_signature
from engine.errors import AlertDeliveryError
from engine.store import open_store
from engine.store import alerts as sql
from engine.types import Response
from tests.support import free_port

KEY = "test-hmac-key"
T0 = datetime(2025, 3, 14, 8, 0, 0)


def message(kind: DeliveryKind = DeliveryKind.NOTICE) -> AlertMessage:
    return AlertMessage(alert_id=7, idempotency_key="ab" * 32, alert_type=AlertType.PD_CONFIRMED,
                        severity=Severity.CRITICAL, patient_key="P-0A1B2C3D4E", study_uid="1.2.826.0.1.3680043.8.498.5",
                        study_date=date(2025, 3, 14), reason="Progression; PD dated 2025-02-10 (back-dated).",
                        link="http://127.0.0.1:8501/?patient=P-0A1B2C3D4E", created_at=T0, kind=kind)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802 - aiosmtpd API
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 Message accepted"


def wait_listening(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"nothing listened on port {port} within {timeout_s} s")


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(hmac_key=KEY) as r:
        yield r


def test_webhook_posts_signed_json_that_the_receiver_verifies(receiver: WebhookReceiver) -> None:
    WebhookSink(url=receiver.url, hmac_key=KEY, timeout_s=5).send(message())
    (got,) = receiver.received
    assert got["alert_type"] == "ALERT_PD_CONFIRMED" and got["patient_key"] == "P-0A1B2C3D4E"
    assert got["delivery_key"] == "ab" * 32 and got["link"].endswith("?patient=P-0A1B2C3D4E")
    assert "study_uid" not in got  # a DICOM identifier: only when the privacy settings allow it
    assert receiver.refused == 0


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"a":1}'
    header = sign(body, key=KEY, timestamp=1_700_000_000)
    assert verify_signature(header, body, key=KEY, now=1_700_000_010)
    assert not verify_signature(header, body + b" ", key=KEY, now=1_700_000_010)
    assert not verify_signature(header, body, key="other-key", now=1_700_000_010)
    assert not verify_signature(header, body, key=KEY, now=1_700_000_000 + 3600)  # replayed an hour later
    assert not verify_signature("garbage", body, key=KEY, now=1_700_000_000)


def test_webhook_with_a_wrong_key_is_refused_and_retryable(receiver: WebhookReceiver) -> None:
    with pytest.raises(AlertDeliveryError, match="HTTP 401") as info:
        WebhookSink(url=receiver.url, hmac_key="wrong", timeout_s=5).send(message())
    assert info.value.retryable and receiver.received == [] and receiver.refused == 1


def test_webhook_down_then_up_delivers_once_through_the_outbox(receiver: WebhookReceiver, tmp_path: Path) -> None:
    sink = WebhookSink(url=receiver.url, hmac_key=KEY, timeout_s=5)
    alerts = evaluate_alerts(AlertInput(patient_key="P-0A1B2C3D4E", study_uid="1.2.3.4.5", study_date=date(2025, 3, 14),
                                        criteria="RANO 2.0, criteria v1", response=Response.PD,
                                        previous_response=Response.SD), base_url="http://127.0.0.1:8501")
    policy = RetryPolicy(base_s=30, max_s=900)
    with open_store(tmp_path / "g.duckdb") as store:
        with store.transaction() as con:
            sql.enqueue_alerts(con, alerts, ["webhook"], now=T0)
        receiver.fail_with = 503
        assert deliver_due(store, {"webhook": sink}, now=T0, policy=policy).retry_scheduled == 1
        receiver.fail_with = None
        assert deliver_due(store, {"webhook": sink}, now=T0 + timedelta(seconds=10), policy=policy).delivered == 0
        assert deliver_due(store, {"webhook": sink}, now=T0 + timedelta(seconds=30), policy=policy).delivered == 1
        assert deliver_due(store, {"webhook": sink}, now=T0 + timedelta(hours=1), policy=policy).delivered == 0
    assert len(receiver.bodies) == 2 and len(receiver.received) == 1


def test_webhook_unreachable_is_a_retryable_error() -> None:
    with pytest.raises(AlertDeliveryError, match="could not be reached"):
        WebhookSink(url=f"http://127.0.0.1:{free_port()}/alerts", hmac_key=KEY, timeout_s=2).send(message())


def test_webhook_times_out_on_a_server_that_never_answers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        port = listener.getsockname()[1]
        with pytest.raises(AlertDeliveryError, match="could not be reached"):
            WebhookSink(url=f"http://127.0.0.1:{port}/alerts", hmac_key=KEY, timeout_s=0.5).send(message())


def test_email_reaches_a_real_smtp_server(smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    sink = SmtpSink(host="127.0.0.1", port=port, sender="gliowatch@localhost",
                    recipients=("tumour-board@localhost", "oncall@localhost"), timeout_s=5)
    sink.send(message())
    sink.send(message(DeliveryKind.ESCALATION))
    first, second = box.messages
    assert box.envelopes[0] == ("gliowatch@localhost", ["tumour-board@localhost", "oncall@localhost"])
    assert first["Subject"] == "[GlioWatch] CRITICAL ALERT_PD_CONFIRMED P-0A1B2C3D4E MRI 2025-03-14 (proposed values)"
    assert first["X-GlioWatch-Delivery-Key"].strip() == "ab" * 32
    assert first["Message-ID"].strip() == f"<{'ab' * 32}@gliowatch>"
    text = first.get_content()
    assert "Reason: Progression; PD dated 2025-02-10 (back-dated)." in text
    assert "Open: http://127.0.0.1:8501/?patient=P-0A1B2C3D4E" in text
    assert "1.2.826.0.1.3680043.8.498.5" not in text
    assert second["Subject"].startswith("[GlioWatch] ESCALATED: CRITICAL")
    assert second["X-GlioWatch-Delivery-Key"].strip() == "ab" * 32 + ":escalation"


def test_email_server_down_is_a_retryable_error() -> None:
    sink = SmtpSink(host="127.0.0.1", port=free_port(), sender="g@localhost", recipients=("a@localhost",), timeout_s=2)
    with pytest.raises(AlertDeliveryError, match="did not accept") as info:
        sink.send(message())
    assert info.value.retryable and "P-0A1B2C3D4E" in str(info.value)


def test_cli_sink_receives_what_cli_deliver_sends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    from flows.cli import main

    port = free_port()
    monkeypatch.setenv("GLIOWATCH_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GLIOWATCH_ALERTS__SINKS", "dashboard,webhook")
    monkeypatch.setenv("GLIOWATCH_ALERTS__WEBHOOK_URL", f"http://127.0.0.1:{port}/alerts")
    results: list[int] = []
    server = threading.Thread(target=lambda: results.append(main(["alerts", "sink", "--port", str(port),
                                                                  "--max-alerts", "1"])), daemon=True)
    server.start()
    alerts = evaluate_alerts(AlertInput(patient_key="P-0A1B2C3D4E", study_uid="1.2.3.4.6", study_date=date(2025, 3, 14),
                                        criteria="c", new_measurable_lesion=True), base_url="http://127.0.0.1:8501")
    with open_store(tmp_path / "gliowatch.duckdb") as store, store.transaction() as con:
        sql.enqueue_alerts(con, alerts, ["dashboard", "webhook"])
    wait_listening(port)
    assert main(["alerts", "deliver", "--once"]) == 0
    assert "2 delivered" in capsys.readouterr().out
    server.join(timeout=20)
    assert results == [0]
    saved = [json.loads(line) for line in (tmp_path / "alert-sink" / "received.jsonl").read_text().splitlines()]
    assert [a["alert_type"] for a in saved] == ["ALERT_NEW_LESION"]


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(tz=timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_email_over_starttls_with_login(tmp_path: Path) -> None:
    import ssl

    from aiosmtpd.smtp import AuthResult

    cert, key = self_signed_cert(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    logins: list[str] = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:  # noqa: ANN001
        logins.append(auth_data.login.decode())
        return AuthResult(success=auth_data.password == b"s3cret")

    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True)
    controller.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        plain = SmtpSink(host="127.0.0.1", port=port, sender="g@localhost", recipients=("a@localhost",), timeout_s=5)
        with pytest.raises(AlertDeliveryError):  # the server requires STARTTLS
            plain.send(message())
        tls = SmtpSink(host="127.0.0.1", port=port, sender="g@localhost", recipients=("a@localhost",), timeout_s=5,
                       starttls=True, username="gliowatch", password="s3cret", ssl_context=client_ctx)
        tls.send(message())
    finally:
        controller.stop()
    assert logins == ["gliowatch"] and len(box.messages) == 1
