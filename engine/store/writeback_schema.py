"""The write-back tables (migration 5); what they hold is
described in :mod:`engine.store.writeback`. It does not import the store: the migrations import it.
"""

from __future__ import annotations

import duckdb

Con = duckdb.DuckDBPyConnection

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS writeback_objects (
        series_uid VARCHAR PRIMARY KEY,       -- the series GlioWatch wrote (one instance each)
        sop_instance_uid VARCHAR NOT NULL,
        study_uid VARCHAR NOT NULL,
        patient_key VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,                -- SEG, SR
        content_key VARCHAR NOT NULL,         -- SEG: segmentation identity; SR: content digest
        file_path VARCHAR NOT NULL,           -- relative to <state>/writeback
        archive_instance_id VARCHAR,          -- the archive's id of the stored instance
        written_at TIMESTAMP NOT NULL,
        superseded_by VARCHAR,                -- series_uid of the object that replaced it
        deleted_at TIMESTAMP                  -- when it was deleted from the archive
    )""",
    """CREATE TABLE IF NOT EXISTS writeback_status (
        study_uid VARCHAR PRIMARY KEY,
        status VARCHAR NOT NULL,              -- WRITTEN, FAILED
        reason VARCHAR,
        assessed_at TIMESTAMP,                -- the assessment the objects describe
        updated_at TIMESTAMP NOT NULL
    )""",
)


def create(con: Con) -> None:
    """Migration 3: the write-back tables and the lesions' diameter endpoints."""
    for statement in DDL:
        con.execute(statement)
