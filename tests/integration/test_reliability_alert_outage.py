"""Proof 5 with real processes: the alert sink is down for an hour -> every alert delivered once after.

Time is compressed 60x: one hour of outage is 60 s of wall time, and the retry policy is scaled
the same way (first retry after 0.5 s instead of 30 s, at most 15 s instead of 15 min between
attempts), so the number of attempts per alert is what an hour would give. Everything else is
real: `gliowatch watch` processes polling the real Orthanc, the real HMAC webhook sink (answering
503 during the outage), the DuckDB outbox. Alerts are committed before and during the outage; in
the middle of the outage the watcher is SIGKILLed and restarted (the new alerts are committed
while it is down, as an assessment in the next process would). A study uploaded during the
outage is ingested during the outage: a down sink holds up nothing else.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from engine.alerts.receiver import WebhookReceiver
from engine.alerts.rules import AlertInput, evaluate_alerts
from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings
from engine.store import alerts as alert_sql
from engine.store import ingest as ingest_sql
from engine.store import open_store
from engine.types import Response
from tests.dicom_factory import write_study
from tests.integration.test_reliability_harness import (
    WatcherProcess,
    prefect_home,  # noqa: F401 - fixture
    snapshot_count,
    upload_raw,
    watcher_env,
)

pytestmark = pytest.mark.integration

SCALE = 60.0  # wall seconds x SCALE = simulated seconds
OUTAGE_S = 3600.0 / SCALE
HMAC_KEY = "outage-test-hmac-key-0123456789abcdef"


def _queue_alerts(settings: Settings, first: int, count: int) -> set[str]:
    """Commit the alerts of ``count`` confirmed progressions, as the assessment step does."""
    keys: set[str] = set()
    with open_store(settings.db_path) as store, store.transaction() as con:
        for i in range(first, first + count):
            alerts = evaluate_alerts(AlertInput(
                patient_key=f"P-{i:010d}", study_uid=f"1.2.826.0.1.3680043.8.498.{i}", study_date=date(2025, 3, 14),
                criteria="RANO 2.0, criteria v1", response=Response.PD, previous_response=Response.PRELIM_PD,
                pd_date=date(2025, 2, 10), new_measurable_lesion=True), base_url="http://127.0.0.1:8501")
            alert_sql.enqueue_alerts(con, alerts, ["dashboard", "webhook"], now=ingest_sql.now_utc())
            keys |= {a.idempotency_key for a in alerts}
    return keys


def _delivered(settings: Settings) -> int:
    return snapshot_count(settings, "SELECT count(*) FROM alert_outbox WHERE sink = 'webhook' AND status = 'DELIVERED'")


def test_sink_down_for_an_hour_every_alert_delivered_once_after(
    archive: OrthancArchive, settings: Settings, tmp_path: Path, prefect_home: Path, artifacts_dir: Path,  # noqa: F811
) -> None:
    sink = WebhookReceiver(hmac_key=HMAC_KEY).start()
    sink.fail_with = 503
    env = watcher_env(settings, prefect_home, GLIOWATCH_ALERTS__SINKS="dashboard,webhook",
                      GLIOWATCH_ALERTS__WEBHOOK_URL=sink.url, GLIOWATCH_ALERTS__HMAC_KEY=HMAC_KEY,
                      GLIOWATCH_ALERTS__BACKOFF_BASE_S=str(30 / SCALE), GLIOWATCH_ALERTS__BACKOFF_MAX_S=str(900 / SCALE))
    expected = _queue_alerts(settings, 0, 3)
    outage_start = time.monotonic()
    watcher = WatcherProcess(env)
    try:
        watcher.wait_for(lambda: len(sink.bodies) >= 3, timeout_s=120, what="the first delivery attempts")
        uid, files = write_study(tmp_path / "during", patient_id="MRN-OUT1", sequences=("T1c",),
                                 study_date=date(2025, 3, 20), shape=(16, 16, 4))
        assert all(upload_raw(settings, f).status == "Success" for f in files)
        watcher.wait_for(lambda: snapshot_count(settings) >= 1, timeout_s=60, what="the study uploaded during the outage")
        ingested_during_outage = time.monotonic() < outage_start + OUTAGE_S
        watcher.kill()  # SIGKILL in the middle of the outage
        expected |= _queue_alerts(settings, 3, 2)
        watcher = WatcherProcess(env)
        remaining = outage_start + OUTAGE_S - time.monotonic()
        assert remaining > 5, "the set-up took longer than the simulated hour"
        time.sleep(remaining)
        attempts_during_outage = len(sink.bodies)
        assert not sink.received, "something was accepted while the sink was down"
        sink.fail_with = None  # the sink is back
        recovered = time.monotonic()
        watcher.wait_for(lambda: _delivered(settings) >= len(expected), timeout_s=120,
                         what="every webhook alert delivered after the outage")
        catch_up_s = time.monotonic() - recovered
    finally:
        watcher.kill()
        sink.stop()
    counts = Counter(a["idempotency_key"] for a in sink.received if a["kind"] == "NOTICE")
    assert set(counts) == expected
    assert max(counts.values()) == 1
    assert sink.duplicates == 0
    with open_store(settings.db_path, read_only=True) as store:
        statuses = dict(store.query("SELECT sink, list(DISTINCT status) FROM alert_outbox GROUP BY sink"))
        attempts = [r[0] for r in store.query("SELECT attempts FROM alert_outbox WHERE sink = 'webhook'")]
        studies = store.query("SELECT study_uid FROM studies")
    assert statuses == {"dashboard": ["DELIVERED"], "webhook": ["DELIVERED"]}
    assert [r[0] for r in studies] == [uid] and ingested_during_outage
    # backoff: about log2(3600 / 30) + 4 attempts per alert in the hour, not one per 0.5 s cycle
    assert max(attempts) <= 14, attempts
    summary = {
        "simulated_outage_h": 1.0, "time_compression": SCALE, "wall_outage_s": OUTAGE_S,
        "alerts": len(expected), "watcher_sigkilled_during_outage": 1,
        "delivery_attempts_during_outage": attempts_during_outage,
        "attempts_per_alert_max": max(attempts), "attempts_per_alert_median": sorted(attempts)[len(attempts) // 2],
        "catch_up_after_recovery_wall_s": round(catch_up_s, 1),
        "catch_up_after_recovery_simulated_min": round(catch_up_s * SCALE / 60, 1),
        "received_once": len(counts), "duplicates_at_sink": sink.duplicates,
        "study_ingested_during_outage": ingested_during_outage,
    }
    out = artifacts_dir / "reliability"
    out.mkdir(exist_ok=True)
    (out / "alert-outage.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
