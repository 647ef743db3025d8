"""Snapshot reads through the dashboard's caches: the worklist's order of attention and the cache
key. The queries themselves (engine/store/read_model.py) are tested in
tests/engine/test_store_read_model.py."""

from __future__ import annotations

from dashboard import data
from engine.store import open_store, publish_snapshot
from tests.dashboard.store_factory import EXPECTED_ORDER, Built


def test_worklist_order(built_state: Built) -> None:
    with open_store(built_state.settings.snapshot_path, read_only=True) as store:
        worklist = data.query_worklist(store)
        assert tuple(worklist["patient_key"]) == EXPECTED_ORDER
        row = worklist.set_index("patient_key").loc["P-ALERT"]
        assert (row["open_alerts"], bool(row["awaiting_confirmation"]), row["mgmt"]) == (1, True, "methylated")
        assert worklist.set_index("patient_key").loc["P-QUAR", "quarantined"] == 1


def test_the_cache_key_stays_while_the_store_is_unchanged(built_state: Built) -> None:
    settings = built_state.settings
    ref = data.snapshot_ref(settings.snapshot_path)
    with open_store(settings.db_path) as store:  # the writer's next cycles
        for _ in range(2):
            assert not publish_snapshot(store, settings.snapshot_path).published
        assert data.snapshot_ref(settings.snapshot_path) == ref
        with store.transaction() as con:
            con.execute("UPDATE alerts SET acknowledged_by = 'dr.test', acknowledged_at = now()")
        assert publish_snapshot(store, settings.snapshot_path).published
    assert data.snapshot_ref(settings.snapshot_path) != ref
