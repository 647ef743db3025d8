"""Every read the dashboard makes, from the published read-only snapshot only.

The queries are the store's read model (:mod:`engine.store.read_model`); this module opens the
snapshot read-only, reads through them and closes, cached with ``st.cache_data`` keyed by the
snapshot's path and modification time, so a newly published snapshot is read on the next rerun
and an unchanged one never twice. The writer publishes only when the store changed
(``engine.store.snapshot``), so the key stays the same, and the caches warm, across cycles that
change nothing. :func:`query_worklist` ranks the rows read by :mod:`engine.urgency`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from engine.store import Store, open_store
from engine.store import read_model
from engine.store import reader as reader_reads
from engine.store.review_queue import read_review_queue
from engine.store.ingest import stream_health
from engine.urgency import PatientFindings, classify_urgency, rank_key

#: column names of the worklist frame, in display order.
WORKLIST_COLUMNS: tuple[str, ...] = (
    "patient_key", "priority", "latest_call", "latest_call_date", "next_action", "priority_reason",
    "last_scan_date", "n_studies", "open_alerts", "top_severity", "awaiting_confirmation", "quarantined",
    "mgmt", "model_version", "response", "urgency",
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
    """One row per patient, most urgent first (:func:`engine.urgency.rank_key`), with the tier
    in words, its reason and the next action."""
    frame = read_model.read_worklist(store)
    if frame.empty:
        return pd.DataFrame(columns=list(WORKLIST_COLUMNS))
    findings = [_findings(row) for row in frame.to_dict("records")]
    calls = [classify_urgency(f) for f in findings]
    frame["urgency"] = [int(c.urgency) for c in calls]
    frame["priority"] = [c.urgency.label for c in calls]
    frame["priority_reason"] = [c.reason for c in calls]
    frame["next_action"] = [c.next_action for c in calls]
    frame["top_severity"] = [c.top_severity or "" for c in calls]
    frame["latest_call"] = [_call_text(row) for row in frame.to_dict("records")]
    frame["_rank"] = [rank_key(f) for f in findings]
    frame = frame.sort_values("_rank", kind="stable").reset_index(drop=True)
    return frame[list(WORKLIST_COLUMNS)]


def _findings(row: dict[str, Any]) -> PatientFindings:
    return PatientFindings(
        patient_key=str(row["patient_key"]), last_scan_date=_date(row.get("last_scan_date")),
        latest_call=row.get("response") if isinstance(row.get("response"), str) else None,
        latest_call_date=_date(row.get("latest_call_date")), pd_scan_date=_date(row.get("pd_scan_date")),
        awaiting_confirmation=bool(row.get("awaiting_confirmation")),
        unreviewed_flags=tuple(str(f) for f in _items(row.get("unreviewed_flags"))),
        open_alert_severities=tuple(str(s) for s in _items(row.get("open_alert_severities"))))


def _call_text(row: dict[str, Any]) -> str:
    """The latest call in words; after a confirmed PD the later NE scans do not hide the PD."""
    call = row.get("response") if isinstance(row.get("response"), str) else None
    pd_date = _date(row.get("pd_scan_date"))
    if pd_date is not None and call != "PD":
        return f"PD ({pd_date:%Y-%m-%d}); since then {call or 'not assessed'}"
    return call or "not assessed"


def _items(value: object) -> list[object]:
    """A LIST cell as a list (a missing one as [])."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    return list(value)  # type: ignore[call-overload]


def _date(value: object) -> date | None:
    """A DATE cell (``datetime.date`` via Arrow, or a Timestamp) as a date; None when missing."""
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else pd.Timestamp(value).date()  # type: ignore[arg-type]


# --------------------------------------------------------------------------- cached reads


def _open(ref: SnapshotRef) -> Store:
    return open_store(ref.path, read_only=True)


@st.cache_data(show_spinner=False, max_entries=4)
def worklist(ref: SnapshotRef) -> pd.DataFrame:
    with _open(ref) as store:
        return query_worklist(store)


@st.cache_data(show_spinner=False, max_entries=4)
def review_queue(ref: SnapshotRef) -> pd.DataFrame:
    with _open(ref) as store:
        return read_review_queue(store)


@st.cache_data(show_spinner=False, max_entries=4)
def alerts_overview(ref: SnapshotRef) -> pd.DataFrame:
    with _open(ref) as store:
        return read_model.read_alerts_overview(store)


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
            "lesions": reader_reads.read_lesion_table(store, patient_key),
            "reader": reader_reads.read_reader_history(store, patient_key),
            "review": read_review_queue(store, patient_key),
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
