"""Connection handling, schema migration and the read-only snapshot."""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from engine.errors import StoreError

#: schema modules applied in order; each has ``DDL: tuple[str, ...]`` of idempotent statements
#: and may have ``upgrade(store)``, an idempotent step for what DDL cannot express (a new
#: primary key: :func:`rebuild_table`), run after its DDL.
SCHEMA_MODULES: tuple[str, ...] = (
    "engine.store.schema_ingest",
    "engine.store.schema_pipeline",
    "engine.store.schema_assessment",
    "engine.store.schema_alerts",
    "engine.store.board",
)
DUCKDB_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


class Store:
    """A DuckDB connection with the project's schema applied."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | None, *, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only

    def migrate(self) -> None:
        for name in SCHEMA_MODULES:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == name:
                    continue
                raise
            for statement in module.DDL:
                self.con.execute(statement)
            upgrade = getattr(module, "upgrade", None)
            if upgrade is not None:
                upgrade(self)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One DuckDB transaction: everything inside commits together or not at all."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

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


def rebuild_table(store: Store, table: str, create: str) -> None:
    """Recreate ``table`` from ``create`` (a CREATE TABLE statement with a ``{table}``
    placeholder) and copy every row, in one transaction.

    Columns both versions have are copied by name; new columns take their DEFAULT. For changes
    ``ALTER TABLE`` cannot make (DuckDB cannot alter a primary key). Indexes and foreign keys
    would not be carried over (the store declares none); views bind by name when queried, so
    they see the new table.
    """
    staging = f"{table}__rebuild"
    with store.transaction() as con:
        con.execute(f"DROP TABLE IF EXISTS {staging}")
        con.execute(create.format(table=staging))
        old = set(table_columns(con, table))
        shared = ", ".join(c for c in table_columns(con, staging) if c in old)
        con.execute(f"INSERT INTO {staging} ({shared}) SELECT {shared} FROM {table}")  # noqa: S608
        con.execute(f"DROP TABLE {table}")
        con.execute(f"ALTER TABLE {staging} RENAME TO {table}")


def open_store(path: Path | str | None, *, read_only: bool = False) -> Store:
    """Open (and for writers, migrate) the store. ``None`` opens an in-memory store."""
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
        store.migrate()
    return store


def publish_snapshot(store: Store, snapshot_path: Path) -> Path:
    """Publish a read-only copy for readers: checkpoint, copy, then ``os.replace``."""
    if store.path is None:
        msg = "Argument 'store' must be file-backed to publish a snapshot"
        raise ValueError(msg)
    store.con.execute("CHECKPOINT")
    tmp = snapshot_path.with_name(snapshot_path.name + ".tmp")
    shutil.copyfile(store.path, tmp)
    wal = Path(str(store.path) + ".wal")
    if wal.exists() and wal.stat().st_size > 0:  # pragma: no cover - CHECKPOINT empties it
        shutil.copyfile(wal, Path(str(tmp) + ".wal"))
    os.replace(tmp, snapshot_path)
    return snapshot_path
