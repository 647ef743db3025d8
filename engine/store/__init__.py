"""The DuckDB store: schema and every SQL statement of the project.

The flow process is the only writer. Readers (dashboard, ``gliowatch status`` while a watcher
runs) open the read-only snapshot that the writer publishes after a cycle that changed the store
(``snapshot``, using the store's change counter in ``revision``).

The schema has a version and ordered migrations (``migrations``), applied when the writer opens
the store. Migration 1 is the schema split by area, one module each, every module exposing
``DDL: tuple[str, ...]``: ``schema_ingest`` (patients, studies, series, volumes, quarantine,
cursor, ...), ``schema_assessment`` (measurements, lesions, assessments, risk, timeline view), ...

The statements are named functions per area (``ingest``, ``pipeline``, ``course``, ``assessment``,
``alerts``, ``board``); ``read_model`` is the dashboard's reads of the snapshot.
"""

from engine.store.db import Store, open_store
from engine.store.snapshot import publish_snapshot

__all__ = ["Store", "open_store", "publish_snapshot"]
