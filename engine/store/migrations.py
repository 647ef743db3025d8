"""The store's schema version and its ordered migrations.

``schema_version`` records every migration applied to a store (number, description, when); the
store's version is the highest number. When the writer opens the store
(:func:`~engine.store.open_store`), :func:`migrate` applies, in order, every migration above
that version, each in one transaction with its ``schema_version`` row, so a crash leaves the
store at a version it really has. A store newer than :data:`LATEST` is refused and not touched:
this code would misread it.

Version 0 is a store without ``schema_version``: a new file, or a store made by GlioWatch before
versions existed ("unversioned"). Migration 1 is the schema of that time written as idempotent
statements (``CREATE ... IF NOT EXISTS``, ``ADD COLUMN IF NOT EXISTS``, the rebuild that gives
older ``segmentations`` tables their config key), so it creates a new store and brings any
unversioned one to version 1 with every row kept.

To change the schema, append a :class:`Migration` with the next number; never edit one that has
shipped (stores already past it would not see the edit). The ``schema_*`` modules' ``DDL`` are
migration 1's statements, i.e. the schema as of version 1.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb

from engine.errors import StoreError
from engine.store import revision, schema_reader, writeback_schema

Con = duckdb.DuckDBPyConnection

#: migration 1's schema modules, applied in order; each has ``DDL: tuple[str, ...]`` of idempotent
#: statements and may have ``upgrade(con)``, an idempotent step for what DDL cannot express.
BASELINE_MODULES: tuple[str, ...] = (
    "engine.store.schema_ingest",
    "engine.store.schema_pipeline",
    "engine.store.schema_assessment",
    "engine.store.schema_alerts",
    "engine.store.board",
)

VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY,
        description VARCHAR NOT NULL,
        applied_at TIMESTAMP NOT NULL          -- UTC
    )"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of the schema; ``apply`` runs inside the migration's transaction."""

    version: int
    description: str
    apply: Callable[[Con], None]


def _baseline(con: Con) -> None:
    for name in BASELINE_MODULES:
        module = importlib.import_module(name)
        for statement in module.DDL:
            con.execute(statement)
        upgrade = getattr(module, "upgrade", None)
        if upgrade is not None:
            upgrade(con)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline: ingest, pipeline, assessment, alert and board tables; timeline view", _baseline),
    Migration(2, "store_revision: the change counter that decides when the snapshot is published",
              revision.create),
    Migration(3, "reader values: diameter ends on lesions (d1_p0 .. d2_p1), reader_values table",
              schema_reader.create),
    Migration(4, "measurements.inputs_sha256: the fingerprint of a measurement's inputs, so an unchanged "
                 "study is not measured again", lambda con: con.execute(
                     "ALTER TABLE measurements ADD COLUMN IF NOT EXISTS inputs_sha256 VARCHAR")),
    Migration(5, "write-back: writeback_objects, writeback_status", writeback_schema.create),
    Migration(6, "reader_values: diameter ends (d1_p0 .. d2_p1) of a new lesion a reader drew on the image",
              schema_reader.add_reader_ends),
)

#: the schema version this code writes and reads
LATEST: int = MIGRATIONS[-1].version


def schema_version(con: Con) -> int:
    """The store's schema version: 0 when it has no ``schema_version`` table (new or unversioned)."""
    has_table = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE table_name = 'schema_version' AND schema_name = current_schema()"
    ).fetchall()
    if not has_table:
        return 0
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def is_unversioned(con: Con) -> bool:
    """True for a store with GlioWatch tables but no ``schema_version`` (made before versions)."""
    return schema_version(con) == 0 and bool(con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE table_name = 'studies' AND schema_name = current_schema()"
    ).fetchall())


def migrate(con: Con, *, where: str = "the store") -> int:
    """Apply every migration above the store's version, in order; returns the version reached.

    Raises :class:`StoreError` for a store newer than :data:`LATEST`, which is left unchanged.
    """
    current = schema_version(con)
    if current > LATEST:
        raise StoreError(
            f"The store {where} has schema version {current}, newer than this GlioWatch knows "
            f"(version {LATEST})",
            action="Run the GlioWatch release that wrote it (or a newer one), or restore a backup "
                   "made by this release. The store was not changed.",
            detail=f"schema_version max = {current}; known migrations 1..{LATEST}",
        )
    for migration in MIGRATIONS[current:]:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(VERSION_TABLE)
            counted = revision.has_revision(con)
            migration.apply(con)
            if counted:  # a schema change is a change the snapshot must show
                revision.advance(con)
            con.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                        [migration.version, migration.description,
                         datetime.now(timezone.utc).replace(tzinfo=None)])
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    return LATEST
