"""The store's revision: which version of its contents a store (or a snapshot of it) holds.

``store_revision`` has one row: ``store_id`` (a random UUID given when the row is created, so
two stores never pass for each other) and ``revision``, advanced by one in every committed
:meth:`~engine.store.Store.transaction` that readers can see (and by every migration after the
one that added the table). A snapshot is a copy of the store file, so it carries the revision
it was copied at: the writer publishes again only when its own revision differs
(:mod:`engine.store.snapshot`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb

Con = duckdb.DuckDBPyConnection

#: the table, created with its row by :func:`create` in migration 2 (:mod:`engine.store.migrations`)
DDL: tuple[str, ...] = (
    """CREATE TABLE store_revision (
        store_id VARCHAR NOT NULL,            -- uuid, set once when the row is created
        revision BIGINT NOT NULL,             -- +1 per committed change readers can see
        changed_at TIMESTAMP NOT NULL         -- UTC, of the last change
    )""",
)


@dataclass(frozen=True, slots=True)
class Revision:
    """One version of one store's contents."""

    store_id: str
    revision: int


def has_revision(con: Con) -> bool:
    return bool(con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE table_name = 'store_revision' AND schema_name = current_schema()"
    ).fetchall())


def read(con: Con) -> Revision | None:
    """The store's revision; None for a store (or snapshot) made before revisions existed.

    Outside a transaction only (a missing table is caught as DuckDB's error, which would abort
    one); that keeps the writer's check to one query, without a catalog scan.
    """
    try:
        row = con.execute("SELECT store_id, revision FROM store_revision").fetchone()
    except duckdb.CatalogException:
        return None
    return None if row is None else Revision(str(row[0]), int(row[1]))


def create(con: Con) -> None:
    """Add the table and its one row (revision 1, a new store id), inside the caller's transaction."""
    for statement in DDL:
        con.execute(statement)
    con.execute("INSERT INTO store_revision VALUES (uuid()::VARCHAR, 1, ?)", [_now_utc()])


def advance(con: Con) -> None:
    """Count one change, inside the caller's transaction."""
    con.execute("UPDATE store_revision SET revision = revision + 1, changed_at = ?",
                [_now_utc()])


def _now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class SeenSnapshot:
    """A snapshot file as the writer last saw it: its signature and the revision inside it."""

    signature: tuple[int, int, int]
    revision: Revision | None
