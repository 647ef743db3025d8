"""Reads of one patient's course for its assessment: the studies to measure, their dates, and the
quality events (quarantine, failed registration, segmentation flags) that raise QA alerts.

Plain rows and values; what they mean is decided by the caller (``engine.usecases.patient_course``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb

from engine.store.db import Store

Con = duckdb.DuckDBPyConnection


def usable_studies(store: Store, patient_key: str) -> list[dict[str, Any]]:
    """The patient's segmented studies (status SEGMENTED, REGISTERED or ASSESSED), by date, with
    the current segmentation (``segmented_at``: when its row was last written) and, where one passed, the current registration into the baseline
    (``registration_id``, ``resampled`` JSON, ``reference_study_uid``; NULL otherwise)."""
    return store.query_dicts(
        """SELECT s.study_uid, s.study_date, s.status, g.labels_path, g.model_name, g.model_version,
                  g.weights_sha256, g.config_sha256, g.flags, g.created_at AS segmented_at,
                  r.registration_id, r.resampled, r.reference_study_uid
           FROM studies s
           JOIN segmentations g ON g.study_uid = s.study_uid AND NOT g.superseded
           LEFT JOIN registrations r ON r.study_uid = s.study_uid AND r.kind = 'baseline'
                                     AND NOT r.superseded AND r.passed
           WHERE s.patient_key = ? AND s.status IN ('SEGMENTED', 'REGISTERED', 'ASSESSED')
           ORDER BY s.study_date, s.study_uid""", [patient_key])


def study_dates(store: Store, patient_key: str) -> dict[str, date | None]:
    """{study_uid: study date} of every study of the patient."""
    return dict(store.query("SELECT study_uid, study_date FROM studies WHERE patient_key = ?", [patient_key]))


def open_quarantine_reasons(store: Store, patient_key: str) -> dict[str, str]:
    """{study_uid: reasons joined by '; '} of the patient's unresolved quarantine rows of every
    stage but registration."""
    return dict(store.query(
        """SELECT study_uid, string_agg(reason, '; ') FROM quarantine
           WHERE patient_key = ? AND study_uid IS NOT NULL AND resolved_at IS NULL
             AND stage <> 'registration' GROUP BY study_uid""", [patient_key]))


def open_registration_failures(store: Store, patient_key: str) -> dict[str, str]:
    """{study_uid: reasons joined by '; '} of the patient's unresolved registration quarantine rows."""
    return dict(store.query(
        """SELECT study_uid, string_agg(reason, '; ') FROM quarantine
           WHERE patient_key = ? AND stage = 'registration' AND resolved_at IS NULL
           GROUP BY study_uid""", [patient_key]))


def segmentation_flags(store: Store, patient_key: str) -> dict[str, tuple[str, ...]]:
    """{study_uid: flags} of the patient's current segmentations that carry flags."""
    return {uid: tuple(flags.split(",")) for uid, flags in store.query(
        """SELECT g.study_uid, g.flags FROM segmentations g JOIN studies s USING (study_uid)
           WHERE s.patient_key = ? AND NOT g.superseded AND g.flags <> ''""", [patient_key])}


def stored_alert_keys(con: Con, keys: list[str]) -> set[str]:
    """Those of the idempotency ``keys`` whose alert is already stored (one query, in the caller's
    transaction ``con``), so an assessment enqueues only the alerts it raises for the first time."""
    if not keys:
        return set()
    return {k for (k,) in con.execute("SELECT idempotency_key FROM alerts WHERE list_contains(?, idempotency_key)",
                                      [keys]).fetchall()}
