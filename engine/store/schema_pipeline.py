"""Segmentation and registration results (one row per study and model / reference).

Old rows are kept and marked ``superseded`` when a study is re-segmented with another model or
re-registered to a new baseline, so no trajectory mixes versions and nothing is lost.
"""

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS segmentations (
        study_uid VARCHAR NOT NULL,
        model_name VARCHAR NOT NULL,
        model_version VARCHAR NOT NULL,
        weights_sha256 VARCHAR NOT NULL,
        labels_path VARCHAR NOT NULL,          -- NIfTI on the study's T1c grid (relative to state dir)
        netc_ml DOUBLE, snfh_ml DOUBLE, et_ml DOUBLE, rc_ml DOUBLE,
        flags VARCHAR NOT NULL DEFAULT '',     -- comma list; non-empty = people must look
        device VARCHAR, elapsed_s DOUBLE,
        created_at TIMESTAMP NOT NULL,
        superseded BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY (study_uid, model_name, model_version, weights_sha256)
    )""",
    "CREATE SEQUENCE IF NOT EXISTS registration_seq START 1",
    """CREATE TABLE IF NOT EXISTS registrations (
        registration_id BIGINT PRIMARY KEY DEFAULT nextval('registration_seq'),
        study_uid VARCHAR NOT NULL,            -- the moving study
        reference_study_uid VARCHAR NOT NULL,  -- the fixed study
        kind VARCHAR NOT NULL,                 -- 'baseline' or 'previous'
        matrix VARCHAR NOT NULL,               -- JSON 4x4: moving RAS mm -> reference RAS mm
        method VARCHAR NOT NULL, stage VARCHAR,
        similarity DOUBLE, rotation_deg DOUBLE, translation_mm DOUBLE,
        passed BOOLEAN NOT NULL, qc_reason VARCHAR NOT NULL,
        resampled VARCHAR,                     -- JSON {sequence|'labels': path} in the reference T1c grid
        elapsed_s DOUBLE,
        created_at TIMESTAMP NOT NULL,
        superseded BOOLEAN NOT NULL DEFAULT FALSE
    )""",
)
