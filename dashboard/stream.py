"""Stream health page: progress through the pipeline, cursor, request queue, last error, studies
per hour. The page follows the stream: each newly published snapshot reruns it."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.board_queue import queued_count, writer_status
from engine.settings import Settings

#: how often (s) the page looks for a newly published snapshot
REFRESH_S = 3.0
DONE_STATUSES = ("ASSESSED", "QUARANTINED")


def progress(studies_by_status: dict[str, int]) -> tuple[int, int]:
    """(studies through the pipeline: assessed or quarantined, studies received in all)."""
    total = sum(int(v) for v in studies_by_status.values())
    return sum(int(studies_by_status.get(s, 0)) for s in DONE_STATUSES), total


def render(ref: data.SnapshotRef, settings: Settings) -> None:
    st.header("Stream health")
    health = data.health(ref)
    done, total = progress(health["studies_by_status"])
    st.progress(done / total if total else 0.0,
                text=f"{done} of {total} studies received are through the pipeline (assessed or quarantined); "
                     f"{health['queue']} waiting for a pipeline step")
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Archive cursor", health["cursor"])
    c2.metric("Studies in the last hour", health["studies_last_hour"])
    c3.metric("Waiting for a pipeline step", health["queue"])
    c4.metric("Open quarantine", health["open_quarantine"])
    c5.metric("Board requests queued", queued_count(settings))
    st.caption(f"Cursor updated at {health['cursor_updated_at'] or 'never'} · snapshot file "
               f"{settings.snapshot_path.name} · this page follows each new snapshot")
    st.caption(writer_status(settings).message)
    st.subheader("Studies by status")
    st.table({"status": list(health["studies_by_status"]), "studies": list(health["studies_by_status"].values())})
    error = health["last_error"]
    if error:
        st.error(f"Last error ({error['logged_at']}): {error['message']}")
    else:
        st.success("No stream error recorded.")
    _follow_the_stream(ref, settings)


@st.fragment(run_every=REFRESH_S)
def _follow_the_stream(ref: data.SnapshotRef, settings: Settings) -> None:
    """Rerun the page when the writer has published a newer snapshot (each cycle that changed it)."""
    if data.snapshot_ref(settings.snapshot_path) != ref:
        st.rerun(scope="app")
