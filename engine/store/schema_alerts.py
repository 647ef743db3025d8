"""Alert tables: alerts, the delivery outbox, and the audit trail.

``alerts.idempotency_key`` is UNIQUE: re-running an assessment inserts nothing new. The outbox has
one row per alert x sink x kind (NOTICE, ESCALATION), written in the same transaction as the
alert; a sender works through it with retries, so a sink that is down loses nothing. ``audit``
records who did what and when (dashboard views and tumour-board actions). All statements are
idempotent. Timestamps are UTC without a zone, as elsewhere in the store.
"""

DDL: tuple[str, ...] = (
    "CREATE SEQUENCE IF NOT EXISTS alert_seq START 1",
    """CREATE TABLE IF NOT EXISTS alerts (
        alert_id BIGINT PRIMARY KEY DEFAULT nextval('alert_seq'),
        idempotency_key VARCHAR NOT NULL UNIQUE,  -- sha256(type, patient_key, study_uid, criteria)
        alert_type VARCHAR NOT NULL,              -- AlertType, e.g. ALERT_PD_CONFIRMED
        severity VARCHAR NOT NULL,                -- CRITICAL, WARNING, INFO
        patient_key VARCHAR NOT NULL,
        study_uid VARCHAR NOT NULL,
        study_date DATE,
        reason VARCHAR NOT NULL,
        link VARCHAR NOT NULL,
        criteria VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        acknowledged_at TIMESTAMP,
        acknowledged_by VARCHAR,
        acknowledged_note VARCHAR,
        escalated_at TIMESTAMP
    )""",
    "CREATE SEQUENCE IF NOT EXISTS alert_outbox_seq START 1",
    """CREATE TABLE IF NOT EXISTS alert_outbox (
        outbox_id BIGINT PRIMARY KEY DEFAULT nextval('alert_outbox_seq'),
        alert_id BIGINT NOT NULL,
        sink VARCHAR NOT NULL,                    -- webhook, email, dashboard
        kind VARCHAR NOT NULL,                    -- NOTICE, ESCALATION
        status VARCHAR NOT NULL,                  -- PENDING, DELIVERED, FAILED (gave up)
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMP NOT NULL,
        last_error VARCHAR,
        created_at TIMESTAMP NOT NULL,
        delivered_at TIMESTAMP,
        UNIQUE (alert_id, sink, kind)
    )""",
    "CREATE SEQUENCE IF NOT EXISTS audit_seq START 1",
    """CREATE TABLE IF NOT EXISTS audit (
        audit_id BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'),
        "at" TIMESTAMP NOT NULL,                 -- "at" and "user" are keywords: quote them
        "user" VARCHAR NOT NULL,
        action VARCHAR NOT NULL,                  -- e.g. view_patient, acknowledge_alert, record_decision
        patient_key VARCHAR,
        detail VARCHAR
    )""",
)
