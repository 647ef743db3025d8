"""Stream health page: cursor, request queue, last error, studies per hour."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.board_queue import queued_count, writer_status
from engine.settings import Settings


def render(ref: data.SnapshotRef, settings: Settings) -> None:
    st.header("Stream health")
    health = data.health(ref)
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Archive cursor", health["cursor"])
    c2.metric("Studies in the last hour", health["studies_last_hour"])
    c3.metric("Waiting for a pipeline step", health["queue"])
    c4.metric("Open quarantine", health["open_quarantine"])
    c5.metric("Board requests queued", queued_count(settings))
    st.caption(f"Cursor updated at {health['cursor_updated_at'] or 'never'} · snapshot file "
               f"{settings.snapshot_path.name}")
    st.caption(writer_status(settings).message)
    st.subheader("Studies by status")
    st.table({"status": list(health["studies_by_status"]), "studies": list(health["studies_by_status"].values())})
    error = health["last_error"]
    if error:
        st.error(f"Last error ({error['logged_at']}): {error['message']}")
    else:
        st.success("No stream error recorded.")
