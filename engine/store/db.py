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

#: schema modules applied in order; each has ``DDL: tuple[str, ...]`` of idempotent statements.
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
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
