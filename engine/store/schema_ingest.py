"""Ingestion tables: patients, studies, series, volumes, quarantine, cursor, stream_log.

Keys: ``patient_key`` is our pseudonym (HMAC of the archive's PatientID, never the PatientID
itself); ``study_uid``/``series_uid`` are DICOM UIDs; ``archive_*_id`` are the archive's own ids
(Orthanc's hashes). All statements are idempotent.
"""

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS patients (
        patient_key VARCHAR PRIMARY KEY,
        first_seen_at TIMESTAMP NOT NULL,
        last_study_date DATE
    )""",
    """CREATE TABLE IF NOT EXISTS studies (
        study_uid VARCHAR PRIMARY KEY,
        archive_study_id VARCHAR NOT NULL,
        patient_key VARCHAR NOT NULL,
        study_date DATE,
        status VARCHAR NOT NULL,              -- StudyStatus
        revision INTEGER NOT NULL DEFAULT 1,  -- +1 each time the archive re-stabilises the study
        sequences VARCHAR NOT NULL DEFAULT '',-- comma list of the sequences found, e.g. 'T1,T1c,T2,FLAIR'
        missing_sequences VARCHAR NOT NULL DEFAULT '',
        previous_study_uid VARCHAR,           -- the patient's study just before this one (by date)
        change_seq BIGINT,                    -- the archive change that brought it (NULL: reconciliation)
        seen_at TIMESTAMP NOT NULL,           -- when the stream saw it stable
        ingested_at TIMESTAMP NOT NULL,
        ingest_s DOUBLE
    )""",
    """CREATE TABLE IF NOT EXISTS series (
        series_uid VARCHAR NOT NULL,          -- unique with study_uid: a reused UID in another study is kept apart
        study_uid VARCHAR NOT NULL,
        archive_series_id VARCHAR,
        description VARCHAR,
        sequence VARCHAR NOT NULL,            -- Sequence: T1, T1c, T2, FLAIR, OTHER
        rule VARCHAR NOT NULL,
        explanation VARCHAR NOT NULL,
        plane VARCHAR,
        n_instances INTEGER NOT NULL,
        status VARCHAR NOT NULL,              -- USED, UNUSED (other/duplicate), REFUSED
        reason VARCHAR,
        PRIMARY KEY (study_uid, series_uid)
    )""",
    """CREATE TABLE IF NOT EXISTS volumes (
        series_uid VARCHAR NOT NULL,
        study_uid VARCHAR NOT NULL,
        sequence VARCHAR NOT NULL,
        path VARCHAR NOT NULL,                -- NIfTI under the state dir (relative)
        shape VARCHAR NOT NULL,
        spacing_mm VARCHAR NOT NULL,
        affine_ras VARCHAR NOT NULL,          -- JSON 4x4, voxel (i,j,k) -> RAS+ mm
        PRIMARY KEY (study_uid, series_uid)
    )""",
    "CREATE SEQUENCE IF NOT EXISTS quarantine_seq START 1",
    """CREATE TABLE IF NOT EXISTS quarantine (
        quarantine_id BIGINT PRIMARY KEY DEFAULT nextval('quarantine_seq'),
        study_uid VARCHAR,
        archive_study_id VARCHAR,
        series_uid VARCHAR,
        patient_key VARCHAR,
        stage VARCHAR NOT NULL,               -- ingest, segmentation, registration, assessment
        reason VARCHAR NOT NULL,
        detail VARCHAR,
        created_at TIMESTAMP NOT NULL,
        resolved_at TIMESTAMP,
        resolved_by VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS cursor (
        name VARCHAR PRIMARY KEY,
        seq BIGINT NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS stream_log (
        logged_at TIMESTAMP NOT NULL,
        kind VARCHAR NOT NULL,                -- cycle, error, reconcile
        message VARCHAR NOT NULL
    )""",
)
