"""Segmentation and registration results (one row per study and model / reference).

Old rows are kept and marked ``superseded`` when a study is re-segmented with another model or
re-registered to a new baseline, so no trajectory mixes versions and nothing is lost.

A segmentation row is keyed on the study and the whole model identity: name, version, weights
hash and config hash (``config_sha256``, the digest of what in the model's configuration
determines its outputs), so a config change without a version bump still adds a row and keeps
the earlier one as superseded. Rows recorded before config digests existed have
``config_sha256 = ''``: :func:`upgrade` (part of migration 1) rebuilds a store created with the
older key (without the column) once, keeping every row.
"""

from __future__ import annotations

import duckdb

#: the ``segmentations`` table; ``{table}`` is its name (another one while it is rebuilt).
SEGMENTATIONS = """CREATE TABLE IF NOT EXISTS {table} (
        study_uid VARCHAR NOT NULL,
        model_name VARCHAR NOT NULL,
        model_version VARCHAR NOT NULL,
        weights_sha256 VARCHAR NOT NULL,
        config_sha256 VARCHAR NOT NULL DEFAULT '',  -- '' = recorded before config digests
        labels_path VARCHAR NOT NULL,          -- NIfTI on the study's T1c grid (relative to state dir)
        netc_ml DOUBLE, snfh_ml DOUBLE, et_ml DOUBLE, rc_ml DOUBLE,
        flags VARCHAR NOT NULL DEFAULT '',     -- comma list; non-empty = people must look
        device VARCHAR, elapsed_s DOUBLE,
        created_at TIMESTAMP NOT NULL,
        superseded BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY (study_uid, model_name, model_version, weights_sha256, config_sha256)
    )"""

DDL: tuple[str, ...] = (
    SEGMENTATIONS.format(table="segmentations"),
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


def upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Give a ``segmentations`` table of an older store ``config_sha256`` in its primary key.

    DuckDB cannot change a primary key in place, so the table is rebuilt (rows copied, the new
    column '' for them) inside the migration's transaction; a no-op once the column exists.
    """
    from engine.store.db import rebuild_table, table_columns

    if "config_sha256" not in table_columns(con, "segmentations"):
        rebuild_table(con, "segmentations", SEGMENTATIONS)
