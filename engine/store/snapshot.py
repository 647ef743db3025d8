"""The read-only snapshot: published by the writer, and only when the store changed.

DuckDB locks the store file against every other process, read-only openers included, so readers
(the dashboard, ``gliowatch status`` while a watcher runs) open a copy that the writer publishes:
CHECKPOINT, copy to a temporary name, ``os.replace`` (:func:`copy_snapshot`). The copy costs the
whole file, and every new snapshot has a new modification time, which is the dashboard's cache
key. So :func:`publish_snapshot` copies only when the snapshot is stale:

- there is no snapshot, or it cannot be read;
- the store's revision (:mod:`engine.store.revision`: store id and change counter, advanced by
  every committed :meth:`~engine.store.Store.transaction` readers can see) differs from the
  revision the snapshot carries, which is the store's revision when it was copied;
- the store's files changed since its last commit through :meth:`~engine.store.Store.transaction`
  (a write made outside one): the revision is advanced first, so the new snapshot carries a new
  revision.

Otherwise nothing is written. The snapshot's revision is read from the file once per store
object and then remembered with the file's inode, size and modification time; a snapshot
replaced by another process is read again.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from engine.errors import StoreError
from engine.store import revision
from engine.store.db import FileSignature, Store, open_store
from engine.store.revision import Revision, SeenSnapshot


@dataclass(frozen=True, slots=True)
class Publication:
    """What :func:`publish_snapshot` did: ``published`` False when the snapshot was current."""

    path: Path
    published: bool
    reason: str


def publish_snapshot(store: Store, snapshot_path: Path) -> Publication:
    """Publish a read-only copy of ``store`` at ``snapshot_path`` if, and only if, it is stale."""
    snapshot_path = Path(snapshot_path)
    if _written_outside_transaction(store):
        with store.transaction():  # count the change, so the new snapshot carries a new revision
            pass
    reason, current = _check(store, snapshot_path)
    if reason is None:
        return Publication(snapshot_path, False, f"unchanged (revision {_number(current)})")
    copy_snapshot(store, snapshot_path)
    return Publication(snapshot_path, True, reason)


def stale_reason(store: Store, snapshot_path: Path) -> str | None:
    """Why the snapshot at ``snapshot_path`` no longer shows ``store``; None when it is current."""
    return _check(store, Path(snapshot_path))[0]


def _check(store: Store, snapshot_path: Path) -> tuple[str | None, Revision | None]:
    """(why the snapshot is stale or None, the store's revision)."""
    if _written_outside_transaction(store):
        return "written outside Store.transaction since its last commit", None
    seen = _seen(store, snapshot_path)
    if seen is None:
        return "no snapshot yet", None
    current = revision.read(store.con)
    if current is None or seen.revision is None:
        return "a store or snapshot without a revision", current
    if seen.revision.store_id != current.store_id:
        return "the snapshot is of another store", current
    if seen.revision.revision != current.revision:
        return f"changed (revision {seen.revision.revision} -> {current.revision})", current
    return None, current


def copy_snapshot(store: Store, snapshot_path: Path) -> Path:
    """Publish a read-only copy unconditionally: checkpoint, copy, then ``os.replace``."""
    _check_file_backed(store)
    snapshot_path = Path(snapshot_path)
    store.con.execute("CHECKPOINT")
    store.note_write()  # the checkpoint rewrote the file: not a write to publish
    tmp = snapshot_path.with_name(snapshot_path.name + ".tmp")
    shutil.copyfile(store.path, tmp)
    wal = Path(str(store.path) + ".wal")
    if wal.exists() and wal.stat().st_size > 0:  # pragma: no cover - CHECKPOINT empties it
        shutil.copyfile(wal, Path(str(tmp) + ".wal"))
    os.replace(tmp, snapshot_path)
    signature = _signature(snapshot_path)
    if signature is not None and not store.read_only:
        store.snapshots_seen[snapshot_path] = SeenSnapshot(signature, revision.read(store.con))
    return snapshot_path


def _written_outside_transaction(store: Store) -> bool:
    _check_file_backed(store)
    return store.last_write is not None and FileSignature.of(store.path) != store.last_write


def _seen(store: Store, snapshot_path: Path) -> SeenSnapshot | None:
    """The snapshot's revision, read from the file when it is new to this store object."""
    signature = _signature(snapshot_path)
    if signature is None:
        return None
    seen = store.snapshots_seen.get(snapshot_path)
    if seen is None or seen.signature != signature:
        seen = SeenSnapshot(signature, _read_revision(snapshot_path))
        store.snapshots_seen[snapshot_path] = seen
    return seen


def _read_revision(snapshot_path: Path) -> Revision | None:
    try:
        with open_store(snapshot_path, read_only=True) as snapshot:
            return revision.read(snapshot.con)
    except (StoreError, duckdb.Error):
        return None  # unreadable: publish a fresh one


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _number(current: Revision | None) -> str:
    return "none" if current is None else str(current.revision)


def _check_file_backed(store: Store) -> None:
    if store.path is None:
        msg = "Argument 'store' must be file-backed to publish a snapshot"
        raise ValueError(msg)
