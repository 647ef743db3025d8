"""The DuckDB store: schema and every SQL statement of the project.

The flow process is the only writer. Readers (dashboard, ``gliowatch status`` while a watcher
runs) open the read-only snapshot that the writer publishes after each cycle.

Schema is split by area, one module each, every module exposing ``DDL: tuple[str, ...]``:
``schema_ingest`` (patients, studies, series, volumes, quarantine, cursor, ...),
``schema_assessment`` (measurements, lesions, assessments, risk, timeline view), ...
"""

from engine.store.db import Store, open_store, publish_snapshot

__all__ = ["Store", "open_store", "publish_snapshot"]
