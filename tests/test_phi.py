"""No PHI leaves GlioWatch: planted identifiers must not reach logs, alerts, e-mails, errors or the store.

A small study carries fake identifiers in its DICOM headers, plus a refused series (a missing
slice) and a second study that is quarantined, so the exception paths run. Ingestion, the stream,
alert rules, the outbox and the real webhook and SMTP sinks (loopback servers) all run; every log
record at DEBUG, every payload and e-mail, every exception message and every row of every table
is searched for the planted strings.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path

import pydicom
import pytest
from aiosmtpd.controller import Controller

from engine.alerts.outbox import RetryPolicy, deliver_due
from engine.alerts.receiver import WebhookReceiver
from engine.alerts.rules import AlertInput, QaEvents, evaluate_alerts
from engine.alerts.smtp import SmtpSink
from engine.alerts.webhook import WebhookSink
from engine.archive.folder import FolderArchive
from engine.dicom.reader import datasets_from_bytes
from engine.dicom.volume import assemble_volume
from engine.errors import GlioWatchError
from engine.ingest import exam_label, ingest_study
from engine.series_rules import load_series_rules
from engine.settings import load_settings
from engine.store import open_store
from engine.store import alerts as sql
from engine.usecases.follow_archive import run_cycle
from engine.types import Response
from tests.dicom_factory import write_series, write_study
from tests.integration.test_alert_sinks import Mailbox, free_port

PLANTED = {
    "PatientName": "DOE^JANE",
    "PatientID": "MRN-99887766",
    "PatientBirthDate": "19610412",
    "InstitutionName": "ST ELSEWHERE GENERAL",
    "ReferringPhysicianName": "HOUSE^GREGORY",
}
#: what must never appear (parts too: the MRN digits, the name's family part with its separator).
FORBIDDEN = (*PLANTED.values(), "99887766", "DOE^", "1961-04-12", "ELSEWHERE", "GREGORY")


def plant(files: list[Path]) -> None:
    for path in files:
        ds = pydicom.dcmread(path)
        for keyword, value in PLANTED.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)


def leaks(text: str) -> list[str]:
    return [s for s in FORBIDDEN if s.lower() in text.lower()]


def test_planted_identifiers_reach_no_log_alert_email_error_or_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dicom = tmp_path / "dicom"
    uid1, files = write_study(dicom / "v1", patient_id=PLANTED["PatientID"], patient_name=PLANTED["PatientName"],
                              study_date=date(2025, 3, 14), sequences=("T1", "T1c", "T2"))
    flair = write_series(dicom / "v1" / "FLAIR", sequence="FLAIR", patient_id=PLANTED["PatientID"],
                         patient_name=PLANTED["PatientName"], study_uid=uid1, study_date=date(2025, 3, 14))
    flair[3].unlink()  # a missing slice: the series is refused, the study goes on
    _, bad = write_study(dicom / "v2", patient_id=PLANTED["PatientID"], patient_name=PLANTED["PatientName"],
                         study_date=date(2025, 4, 11), sequences=("T1",), seed=5)
    bad[4].unlink()  # its only series refused: the study is quarantined
    plant(files + flair[:3] + flair[4:] + bad[:4] + bad[5:])

    assert str(pydicom.dcmread(files[0]).InstitutionName) == PLANTED["InstitutionName"]  # planted for real
    settings = load_settings(environ={"GLIOWATCH_STATE_DIR": str(tmp_path / "state"),
                                      "GLIOWATCH_PRIVACY__KEY_SALT": "phi-test-salt"})
    archive = FolderArchive(dicom)
    rules = load_series_rules(settings.series_rules)
    errors: list[str] = []
    payloads: list[str] = []
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with open_store(settings.db_path) as store, WebhookReceiver(hmac_key="k") as receiver:
            report = run_cycle(
                archive=archive, store=store,
                ingest=lambda sid: ingest_study(archive, sid, rules=rules, volumes_dir=settings.volumes_dir,
                                                key_salt=settings.privacy.key_salt),
            )
            assert len(report.ingested) == 1 and len(report.quarantined) == 1  # both paths ran

            # an exception raised on the bad series itself, as a caller would see it
            gapped = next(s for s in map(archive.series, archive.study(uid1).series_ids)
                          if "FLAIR" in s.description)
            blobs = [archive.fetch_instance(i) for i in gapped.instance_ids]
            key = store.query("SELECT patient_key FROM studies WHERE study_uid = ?", [uid1])[0][0]
            with pytest.raises(GlioWatchError) as info:
                assemble_volume(datasets_from_bytes(blobs), exam=exam_label(key, date(2025, 3, 14)))
            errors += [str(info.value), info.value.reason, str(info.value.detail or "")]

            # forced alerts: confirmed PD on the good study, QA on the quarantined one
            studies = store.query_dicts("SELECT * FROM studies ORDER BY study_date")
            q_reason = store.query("SELECT reason FROM quarantine ORDER BY quarantine_id LIMIT 1")[0][0]
            alerts = evaluate_alerts(AlertInput(
                patient_key=key, study_uid=uid1, study_date=date(2025, 3, 14), criteria="RANO 2.0, criteria v1",
                response=Response.PD, previous_response=Response.PRELIM_PD, pd_date=date(2025, 2, 10),
                reason="SPD 1,840 mm² is +41 % over the nadir.",
            ), base_url="http://127.0.0.1:8501")
            alerts += evaluate_alerts(AlertInput(
                patient_key=key, study_uid=studies[-1]["study_uid"], study_date=studies[-1]["study_date"],
                criteria="RANO 2.0, criteria v1", qa=QaEvents(quarantine_reason=q_reason),
            ), base_url="http://127.0.0.1:8501")
            with store.transaction() as con:
                sql.enqueue_alerts(con, alerts, ["dashboard", "webhook", "email"], now=datetime(2025, 4, 11, 9))
            sinks = {
                "dashboard": _Dashboard(),
                "webhook": WebhookSink(url=receiver.url, hmac_key="k", timeout_s=5),
                "email": SmtpSink(host="127.0.0.1", port=controller.port, sender="g@localhost",
                                  recipients=("board@localhost",), timeout_s=5),
            }
            policy = RetryPolicy(base_s=30, max_s=900)
            receiver.fail_with = 503  # one failed attempt each: the delivery error path runs too
            first = deliver_due(store, sinks, now=datetime(2025, 4, 11, 9), policy=policy)
            receiver.fail_with = None
            later = deliver_due(store, sinks, now=datetime(2025, 4, 11, 9) + timedelta(hours=1), policy=policy)
            errors += first.errors + later.errors
            assert first.retry_scheduled >= 1 and first.delivered + later.delivered == 3 * len(alerts)
            payloads += [b.decode() for b in receiver.bodies]
            tables = [r[0] for r in store.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")]
            dump = "\n".join(f"{t}: {store.query(f'SELECT * FROM {t}')}" for t in tables)
    finally:
        controller.stop()
    emails = [m.as_string() for m in box.messages]
    assert len(receiver.received) == len(alerts) and len(emails) == len(alerts)
    assert {"alerts", "alert_outbox", "audit", "studies", "series", "quarantine"} <= set(tables)
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "nothing was logged: the log check would be empty"
    for where, text in (("logs", logs), ("webhook payloads", "\n".join(payloads)),
                        ("e-mails", "\n".join(emails)), ("exception messages", "\n".join(errors)),
                        ("store", dump)):
        assert text, f"{where}: nothing captured"
        assert not leaks(text), f"planted identifiers {leaks(text)} found in {where}"
    assert key in dump and key in payloads[0]  # the pseudonymous key is what we see instead


class _Dashboard:
    name = "dashboard"

    def send(self, alert: object) -> None:
        return None
