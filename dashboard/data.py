"""Every read the dashboard makes, from the published read-only snapshot only.

The queries are the store's read model (:mod:`engine.store.read_model`); this module opens the
snapshot read-only, reads through them and closes, cached with ``st.cache_data`` keyed by the
snapshot's path and modification time, so a newly published snapshot is read on the next rerun
and an unchanged one never twice. The writer publishes only when the store changed
(``engine.store.snapshot``), so the key stays the same, and the caches warm, across cycles that
change nothing. :func:`query_worklist` adds the worklist's order of attention to the rows read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from engine.store import Store, open_store
from engine.store import read_model
from engine.store.ingest import stream_health

#: column names of the worklist frame, in display order.
WORKLIST_COLUMNS: tuple[str, ...] = (
    "patient_key", "last_scan_date", "n_studies", "response", "open_alerts", "awaiting_confirmation",
    "quarantined", "mgmt", "model_version", "attention",
)


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """Which snapshot file, and which version of it (the cache key)."""

    path: str
    mtime_ns: int


def snapshot_ref(path: Path | str) -> SnapshotRef | None:
    """The snapshot's identity, or None when none was published yet."""
    try:
        return SnapshotRef(str(path), Path(path).stat().st_mtime_ns)
    except FileNotFoundError:
        return None


# --------------------------------------------------------------------------- worklist order


def query_worklist(store: Store) -> pd.DataFrame:
    """One row per patient with what needs attention, most urgent first."""
    frame = read_model.read_worklist(store)
    frame["awaiting_confirmation"] = frame["awaiting_confirmation"].fillna(False).astype(bool)
    frame["attention"] = (frame["open_alerts"].astype(int) * 100
                          + frame["awaiting_confirmation"].astype(int) * 10
                          + (frame["quarantined"].astype(int) > 0).astype(int))
    frame = frame.sort_values(["attention", "open_alerts", "last_scan_date", "patient_key"],
                              ascending=[False, False, False, True], kind="stable")
    return frame.reset_index(drop=True)[list(WORKLIST_COLUMNS)]


# --------------------------------------------------------------------------- cached reads


def _open(ref: SnapshotRef) -> Store:
    return open_store(ref.path, read_only=True)


@st.cache_data(show_spinner=False, max_entries=4)
def worklist(ref: SnapshotRef) -> pd.DataFrame:
    with _open(ref) as store:
        return query_worklist(store)


@st.cache_data(show_spinner=False, max_entries=64)
def patient_bundle(ref: SnapshotRef, patient_key: str) -> dict[str, Any]:
    """Everything the timeline, image and action pages show for one patient."""
    with _open(ref) as store:
        return {
            "timeline": read_model.read_timeline(store, patient_key),
            "events": read_model.read_events(store, patient_key),
            "alerts": read_model.read_alerts(store, patient_key),
            "psp_risk": read_model.read_patient_table(store, "psp_risk", patient_key),
            "growth": read_model.read_patient_table(store, "growth", patient_key),
            "nadir": read_model.read_nadir(store, patient_key),
            "decisions": read_model.read_patient_table(store, "board_decisions", patient_key),
            "images": read_model.read_image_sources(store, patient_key),
        }


@st.cache_data(show_spinner=False, max_entries=64)
def labels_paths(ref: SnapshotRef, patient_key: str) -> dict[str, str]:
    with _open(ref) as store:
        return read_model.read_labels_paths(store, patient_key)


#: "studies in the last hour" is relative to now, and the snapshot (so the cache key) stays the
#: same while nothing changes: recompute at most a minute late.
@st.cache_data(show_spinner=False, max_entries=4, ttl=60)
def health(ref: SnapshotRef) -> dict[str, Any]:
    with _open(ref) as store:
        result = stream_health(store)
        result["queued_requests_applied"] = read_model.count_board_requests(store)
        return result


@st.cache_data(show_spinner=False, max_entries=4)
def builtin_model_used(ref: SnapshotRef) -> bool:
    with _open(ref) as store:
        return read_model.builtin_model_used(store)


@st.cache_data(show_spinner=False, max_entries=4)
def models_used(ref: SnapshotRef) -> list[tuple[str, str]]:
    with _open(ref) as store:
        return read_model.read_models_used(store)
