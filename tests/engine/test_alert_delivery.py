"""Outbox delivery with a simulated clock: exactly once through outages, backoff, escalation, crashes.

The sinks here are in-memory fakes; the real webhook and SMTP sinks are tested against real servers
in tests/integration/test_alert_sinks.py.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from engine.alerts.alert import AlertMessage, AlertType, DeliveryKind, Severity
from engine.alerts.outbox import RetryPolicy, deliver_due, escalate_unacknowledged, run_outbox_once
from engine.alerts.payload import payload_bytes
from engine.alerts.receiver import WebhookReceiver
from engine.alerts.rules import AlertInput, QaEvents, evaluate_alerts
from engine.alerts.webhook import sign
from engine.errors import AlertDeliveryError
from engine.store import Store, open_store
from engine.store import alerts as sql
from engine.types import Response

T0 = datetime(2025, 3, 14, 8, 0, 0)
POLICY = RetryPolicy(base_s=30, max_s=900)


@dataclass
class FlakySink:
    """Fails while ``down(now)`` is true (or for the first ``fail_times`` calls), then accepts."""

    name: str
    clock: list[datetime]
    down_until: datetime | None = None
    fail_times: int = 0
    calls: int = 0
    delivered: list[AlertMessage] = field(default_factory=list)

    def send(self, alert: AlertMessage) -> None:
        self.calls += 1
        if (self.down_until is not None and self.clock[0] < self.down_until) or self.calls <= self.fail_times:
            raise AlertDeliveryError("sink down", exam=alert.exam)
        self.delivered.append(alert)


def make_alerts(patient: str, study_uid: str, *, response: Response = Response.PD) -> tuple:
    data = AlertInput(patient_key=patient, study_uid=study_uid, study_date=date(2025, 3, 14),
                      criteria="RANO 2.0, criteria v1", response=response, previous_response=Response.PRELIM_PD,
                      pd_date=date(2025, 2, 10), new_measurable_lesion=True)
    return evaluate_alerts(data, base_url="http://127.0.0.1:8501")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with open_store(tmp_path / "gliowatch.duckdb") as s:
        yield s


def enqueue(store: Store, alerts: tuple, sinks: list[str], now: datetime = T0) -> list[int]:
    with store.transaction() as con:
        return sql.enqueue_alerts(con, alerts, sinks, now=now)


def test_outbox_rows_commit_with_the_assessment_or_not_at_all(store: Store) -> None:
    alerts = make_alerts("P-AAAAAAAAAA", "1.2.3.4.1")
    with pytest.raises(RuntimeError, match="assessment failed"), store.transaction() as con:
        sql.enqueue_alerts(con, alerts, ["dashboard", "webhook"], now=T0)
        raise RuntimeError("assessment failed after the alerts were queued")
    assert store.query("SELECT count(*) FROM alerts")[0][0] == 0
    assert store.query("SELECT count(*) FROM alert_outbox")[0][0] == 0


def test_rerunning_an_assessment_never_duplicates(store: Store) -> None:
    alerts = make_alerts("P-AAAAAAAAAA", "1.2.3.4.1")
    first = enqueue(store, alerts, ["dashboard", "webhook"])
    again = enqueue(store, make_alerts("P-AAAAAAAAAA", "1.2.3.4.1"), ["dashboard", "webhook"], T0 + timedelta(days=1))
    assert len(first) == 2 and again == []
    assert store.query("SELECT count(*) FROM alerts")[0][0] == 2
    assert store.query("SELECT count(*) FROM alert_outbox")[0][0] == 4


def test_sink_down_for_an_hour_loses_nothing_and_sends_nothing_twice(store: Store) -> None:
    clock = [T0]
    webhook = FlakySink("webhook", clock, down_until=T0 + timedelta(hours=1))
    dashboard = FlakySink("dashboard", clock)
    sinks = {"webhook": webhook, "dashboard": dashboard}
    expected = set()
    for i in range(5):  # studies keep arriving during the outage
        new = make_alerts(f"P-{i:010d}", f"1.2.3.4.{i}")
        enqueue(store, new, list(sinks), clock[0])
        expected |= {a.idempotency_key for a in new}
        for _ in range(20):  # a pass every 30 s of simulated time
            deliver_due(store, sinks, now=clock[0], policy=POLICY)
            clock[0] += timedelta(seconds=30)
    while clock[0] < T0 + timedelta(hours=3):
        deliver_due(store, sinks, now=clock[0], policy=POLICY)
        clock[0] += timedelta(seconds=30)
    for sink in (webhook, dashboard):
        counts = Counter(m.idempotency_key for m in sink.delivered)
        assert set(counts) == expected, sink.name
        assert max(counts.values()) == 1, sink.name
    statuses = {r[0] for r in store.query("SELECT DISTINCT status FROM alert_outbox")}
    assert statuses == {"DELIVERED"}
    # backoff: 100 passes during the outage, but each row tried only ~log2(3600/30) + 2 times
    attempts = [r[0] for r in store.query("SELECT attempts FROM alert_outbox WHERE sink = 'webhook'")]
    assert 2 <= max(attempts) <= 9
    delivered_at = store.query("SELECT min(delivered_at) FROM alert_outbox WHERE sink = 'webhook'")[0][0]
    assert T0 + timedelta(hours=1) <= delivered_at <= T0 + timedelta(hours=1, minutes=16)


def test_sink_failing_three_times_then_recovering_delivers_once_with_exponential_backoff(store: Store) -> None:
    clock = [T0]
    sink = FlakySink("webhook", clock, fail_times=3)
    (alert_id,) = enqueue(store, make_alerts("P-BBBBBBBBBB", "1.2.3.4.9")[:1], ["webhook"])
    tried_at = []
    while clock[0] < T0 + timedelta(minutes=30):
        before = sink.calls
        deliver_due(store, {"webhook": sink}, now=clock[0], policy=POLICY)
        if sink.calls > before:
            tried_at.append(clock[0])
        clock[0] += timedelta(seconds=5)
    assert [(t - T0).total_seconds() for t in tried_at] == [0, 30, 90, 210]  # +30, +60, +120 s
    assert [m.alert_id for m in sink.delivered] == [alert_id]
    row = store.query_dicts("SELECT * FROM alert_outbox")[0]
    assert row["status"] == "DELIVERED" and row["attempts"] == 4 and row["last_error"] is None


def test_gives_up_after_max_attempts_and_keeps_the_error(store: Store) -> None:
    clock = [T0]
    sink = FlakySink("webhook", clock, fail_times=100)
    enqueue(store, make_alerts("P-CCCCCCCCCC", "1.2.3.4.10")[:1], ["webhook"])
    policy = RetryPolicy(base_s=30, max_s=900, max_attempts=3)
    for _ in range(200):
        deliver_due(store, {"webhook": sink}, now=clock[0], policy=policy)
        clock[0] += timedelta(seconds=30)
    row = store.query_dicts("SELECT * FROM alert_outbox")[0]
    assert sink.calls == 3 and row["status"] == "FAILED" and row["attempts"] == 3
    assert "sink down" in row["last_error"]


def test_a_down_sink_is_not_retried_for_every_row_in_one_pass(store: Store) -> None:
    clock = [T0]
    sink = FlakySink("webhook", clock, down_until=T0 + timedelta(hours=1))
    for i in range(4):
        enqueue(store, make_alerts(f"P-D{i:09d}", f"1.2.3.5.{i}")[:1], ["webhook"])
    report = deliver_due(store, {"webhook": sink}, now=T0, policy=POLICY)
    assert sink.calls == 1 and report.retry_scheduled == 1 and report.deferred == 3


def test_a_row_for_a_sink_no_longer_configured_waits(store: Store) -> None:
    enqueue(store, make_alerts("P-EEEEEEEEEE", "1.2.3.4.11")[:1], ["email"])
    report = deliver_due(store, {}, now=T0, policy=POLICY)
    row = store.query_dicts("SELECT * FROM alert_outbox")[0]
    assert report.retry_scheduled == 1 and row["status"] == "PENDING"
    assert "Sink 'email' is not configured" in row["last_error"]


def test_unacknowledged_alerts_escalate_once_after_the_configured_time(store: Store) -> None:
    clock = [T0]
    sink = FlakySink("webhook", clock)
    critical = make_alerts("P-FFFFFFFFFF", "1.2.3.4.12")  # PD confirmed + new lesion: CRITICAL
    acked = make_alerts("P-GGGGGGGGGG", "1.2.3.4.13")[:1]
    info = evaluate_alerts(AlertInput(patient_key="P-HHHHHHHHHH", study_uid="1.2.3.4.14", study_date=date(2025, 3, 14),
                                      criteria="c", response=Response.STEROID_WATCH), base_url="http://x")
    assert info[0].severity is Severity.INFO
    enqueue(store, critical + acked + info, ["webhook"])
    acked_id = store.query("SELECT alert_id FROM alerts WHERE patient_key = 'P-GGGGGGGGGG'")[0][0]
    with store.transaction() as con:
        assert sql.acknowledge(con, acked_id, user="dr.house", note="discussed at tumour board", now=T0)
    for hours in (1, 23, 24, 25, 48):
        clock[0] = T0 + timedelta(hours=hours)
        run_outbox_once(store, {"webhook": sink}, now=clock[0], policy=POLICY, escalate_after_h=24)
    escalations = [m for m in sink.delivered if m.kind is DeliveryKind.ESCALATION]
    assert sorted(m.patient_key for m in escalations) == ["P-FFFFFFFFFF", "P-FFFFFFFFFF"]
    assert all(m.subject.startswith("[GlioWatch] ESCALATED: CRITICAL") for m in escalations)
    assert len({m.delivery_key for m in sink.delivered}) == len(sink.delivered) == 6  # 4 notices + 2 escalations
    assert escalate_unacknowledged(store, now=T0 + timedelta(days=9), after_h=24, sinks=["webhook"]) == 0
    audit = sql.list_audit(store)
    assert [(a["user"], a["action"], a["patient_key"]) for a in audit] == [
        ("dr.house", "acknowledge_alert", "P-GGGGGGGGGG")]


def test_crash_after_send_before_mark_delivered_resends_the_same_key_and_the_receiver_drops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The classic duplicate: the receiver has the alert, the store does not know it yet."""
    path = tmp_path / "gliowatch.duckdb"
    receiver = WebhookReceiver(hmac_key="k")  # accept() only: no thread needed here

    @dataclass
    class ReceiverSink:
        name: str = "webhook"

        def send(self, alert: AlertMessage) -> None:
            body = payload_bytes(alert)
            status = receiver.accept(body, sign(body, key="k", timestamp=int(receiver.clock())), alert.delivery_key)
            assert status == 200

    with open_store(path) as store:
        enqueue(store, make_alerts("P-JJJJJJJJJJ", "1.2.3.4.15")[:1], ["webhook"])

        def killed(*args: object, **kwargs: object) -> None:
            raise SystemExit("killed between send and mark_delivered")

        monkeypatch.setattr(sql, "mark_delivered", killed)
        with pytest.raises(SystemExit):
            deliver_due(store, {"webhook": ReceiverSink()}, now=T0, policy=POLICY)
        monkeypatch.undo()
    with open_store(path) as store:  # the restarted process
        report = deliver_due(store, {"webhook": ReceiverSink()}, now=T0 + timedelta(seconds=5), policy=POLICY)
        assert report.delivered == 1
        assert store.query("SELECT status FROM alert_outbox")[0][0] == "DELIVERED"
    receiver.stop()
    assert len(receiver.bodies) == 2 and receiver.bodies[0] == receiver.bodies[1]
    assert len(receiver.received) == 1 and receiver.duplicates == 1


def test_cli_deliver_list_and_ack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from flows.cli import main

    monkeypatch.setenv("GLIOWATCH_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GLIOWATCH_ALERTS__SINKS", "dashboard")
    with open_store(tmp_path / "gliowatch.duckdb") as store:
        enqueue(store, make_alerts("P-KKKKKKKKKK", "1.2.3.4.16") + evaluate_alerts(
            AlertInput(patient_key="P-KKKKKKKKKK", study_uid="1.2.3.4.17", study_date=None, criteria="c",
                       qa=QaEvents(quarantine_reason="No usable series")), base_url="http://x"), ["dashboard"],
                sql.now_utc())
    assert main(["alerts", "deliver", "--once"]) == 0
    assert "3 delivered" in capsys.readouterr().out
    assert (tmp_path / "gliowatch.snapshot.duckdb").exists()
    assert main(["alerts", "list", "--open"]) == 0
    out = capsys.readouterr().out
    assert "3 alerts" in out and AlertType.QA_QUARANTINED in out
    assert main(["alerts", "ack", "1", "--user", "dr.house", "--note", "seen"]) == 0
    assert main(["alerts", "ack", "1", "--user", "dr.house"]) == 1
    main(["alerts", "list", "--open"])
    assert "2 alerts" in capsys.readouterr().out


def test_alert_settings_and_sinks_from_the_environment(tmp_path: Path) -> None:
    from engine.alerts.sinks import build_sinks
    from engine.errors import ConfigError
    from engine.settings import load_settings

    settings = load_settings(environ={
        "GLIOWATCH_STATE_DIR": str(tmp_path), "GLIOWATCH_ALERTS__SINKS": "dashboard,webhook,email",
        "GLIOWATCH_ALERTS__WEBHOOK_URL": "http://127.0.0.1:9/alerts", "GLIOWATCH_ALERTS__SMTP_TO": "a@x,b@x",
        "GLIOWATCH_ALERTS__ESCALATE_AFTER_H": "2.5",
    })
    cfg = settings.alerts
    assert cfg.sinks == ("dashboard", "webhook", "email") and cfg.smtp_to == ("a@x", "b@x")
    assert cfg.escalate_after_h == 2.5
    sinks = build_sinks(cfg, secrets_dir=tmp_path / "secrets")
    assert sorted(sinks) == ["dashboard", "email", "webhook"]
    key_file = tmp_path / "secrets" / "alerts-hmac-key"  # no key configured: generated once, 0600
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert sinks["webhook"].hmac_key == key_file.read_text().strip()
    assert "hmac_key" not in repr(sinks["webhook"]) and key_file.read_text() not in repr(sinks["webhook"])
    with pytest.raises(ConfigError, match="Unknown alert sink"):
        build_sinks(replace(cfg, sinks=("pager",)), secrets_dir=tmp_path)
    with pytest.raises(ConfigError, match="no recipients"):
        build_sinks(replace(cfg, sinks=("email",), smtp_to=()), secrets_dir=tmp_path)
    toml = tmp_path / "g.toml"
    toml.write_text('[alerts]\nhmac_key = "in-a-file"\n')
    with pytest.raises(ConfigError, match="Secret 'hmac_key'"):
        load_settings(toml, environ={})
