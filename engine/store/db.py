"""Connection handling: the :class:`Store`, its transactions, and opening (and migrating) it.

The schema and its versions are in :mod:`engine.store.migrations`; publishing the read-only
snapshot is :mod:`engine.store.snapshot`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from engine.errors import StoreError
from engine.store import revision

if TYPE_CHECKING:
    from engine.store.revision import SeenSnapshot

DUCKDB_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


@dataclass(frozen=True, slots=True)
class FileSignature:
    """What the file system says about a DuckDB file and its write-ahead log (size, mtime).

    Every committed write grows the log, and a checkpoint rewrites the file and removes the log,
    so two equal signatures mean no write was committed in between.
    """

    db: tuple[int, int, int]
    wal: tuple[int, int] | None

    @classmethod
    def of(cls, path: Path) -> FileSignature:
        st = path.stat()
        try:
            wal_st = os.stat(f"{path}.wal")
            wal = (wal_st.st_size, wal_st.st_mtime_ns)
        except FileNotFoundError:
            wal = None
        return cls((st.st_ino, st.st_size, st.st_mtime_ns), wal)


class Store:
    """A DuckDB connection with the project's schema applied.

    Every write goes through :meth:`transaction`, which also advances the store's revision
    (:mod:`engine.store.revision`) so the writer knows when the snapshot needs publishing.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | None, *, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        #: the files' signature after this store's last commit or publish (None: in memory)
        self.last_write: FileSignature | None = None
        #: per snapshot path, what this store last published there or read from it
        self.snapshots_seen: dict[Path, SeenSnapshot] = {}

    def migrate(self) -> None:
        """Bring the store to the latest schema version (see :mod:`engine.store.migrations`)."""
        from engine.store.migrations import migrate

        migrate(self.con, where=str(self.path or "(in memory)"))
        self.note_write()

    @contextmanager
    def transaction(self, *, visible: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """One DuckDB transaction: everything inside commits together or not at all.

        A committed transaction advances the store's revision, in the same transaction, so the
        next publish copies the snapshot. ``visible=False`` is for rows no snapshot reader is
        shown (the per-cycle log line, a page view's audit row): they commit as usual but alone
        do not make the snapshot stale; they reach it with the next change that does.
        """
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
            if visible and not self.read_only:
                revision.advance(self.con)
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")
            self.note_write()

    def note_write(self) -> None:
        """Remember the files' signature: a later difference is a write made outside :meth:`transaction`."""
        if self.path is not None and not self.read_only:
            self.last_write = FileSignature.of(self.path)

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def query_dicts(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None) -> list[dict]:
        cur = self.con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        """Close the connection and let go of it (idempotent).

        The closed DuckDB connection object is dropped, not kept: a Store can outlive its use
        (Prefect keeps the last flow run's parameters, the runtime among them, in its context
        until the process ends), and a DuckDB connection still alive at interpreter exit makes
        DuckDB's bindings print "nanobind: leaked ..." lines. Using the store afterwards raises
        :class:`StoreError`.
        """
        con, self.con = self.con, _ClosedConnection(self.path)
        con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ClosedConnection:
    """What a closed :class:`Store` has instead of its connection: every use says it is closed."""

    def __init__(self, path: Path | None) -> None:
        self._path = path

    def close(self) -> None:
        """Closing again does nothing, as for a DuckDB connection."""

    def __getattr__(self, name: str) -> Any:
        raise StoreError(f"The store {self._path or '(in memory)'} is closed", detail=f"used: {name}")


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The columns of ``table`` in the current schema, in order ([] when there is no such table)."""
    rows = con.execute(
        """SELECT column_name FROM information_schema.columns
           WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position""",
        [table]).fetchall()
    return [r[0] for r in rows]


def rebuild_table(con: duckdb.DuckDBPyConnection, table: str, create: str) -> None:
    """Recreate ``table`` from ``create`` (a CREATE TABLE statement with a ``{table}``
    placeholder) and copy every row, inside the caller's transaction.

    Columns both versions have are copied by name; new columns take their DEFAULT. For changes
    ``ALTER TABLE`` cannot make (DuckDB cannot alter a primary key). Indexes and foreign keys
    would not be carried over (the store declares none); views bind by name when queried, so
    they see the new table.
    """
    staging = f"{table}__rebuild"
    con.execute(f"DROP TABLE IF EXISTS {staging}")
    con.execute(create.format(table=staging))
    old = set(table_columns(con, table))
    shared = ", ".join(c for c in table_columns(con, staging) if c in old)
    con.execute(f"INSERT INTO {staging} ({shared}) SELECT {shared} FROM {table}")  # noqa: S608
    con.execute(f"DROP TABLE {table}")
    con.execute(f"ALTER TABLE {staging} RENAME TO {table}")


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: object) -> None:
    """Bulk-insert a pandas DataFrame or Arrow table into ``table``, matching columns by name
    (columns the frame lacks take their DEFAULT). For generated stores (benchmarks, tests)."""
    names = frame.column_names if hasattr(frame, "column_names") else list(frame.columns)  # type: ignore[attr-defined]
    columns = ", ".join(names)
    con.register("_frame", frame)
    try:
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _frame")  # noqa: S608
    finally:
        con.unregister("_frame")


def open_store(path: Path | str | None, *, read_only: bool = False) -> Store:
    """Open (and for writers, migrate) the store. ``None`` opens an in-memory store.

    A writer's store is brought to the latest schema version; a store newer than this code
    knows is refused (:class:`StoreError`) and left as it is.
    """
    target = ":memory:" if path is None else str(path)
    if path is not None and not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(target, read_only=read_only, config=dict(DUCKDB_CONFIG))
    except duckdb.IOException as exc:
        raise StoreError(
            f"Cannot open the store {target}",
            action="Another GlioWatch process may hold it for writing; readers use the snapshot.",
            detail=str(exc),
        ) from exc
    store = Store(con, None if path is None else Path(path), read_only=read_only)
    if not read_only:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
