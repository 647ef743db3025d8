"""Snapshot reads: the pushdown timeline query agrees with the assessment's `timeline` view."""

from __future__ import annotations

from benchmarks.bench_dashboard import build_store
from dashboard import data
from engine.store import open_store, publish_snapshot
from tests.dashboard.store_factory import EXPECTED_ORDER, Built


def test_pushdown_timeline_equals_the_view(tmp_path) -> None:  # noqa: ANN001
    snapshot, _ = build_store(tmp_path, 40)
    with open_store(snapshot, read_only=True) as store:
        for key in ("P-000000", "P-000017", "P-000039"):
            ours = data.query_timeline(store, key)
            view = store.con.sql("SELECT * FROM timeline WHERE patient_key = ? ORDER BY scan_date, study_uid",
                                 params=[key]).to_arrow_table().to_pandas()
            assert list(ours.columns) == list(view.columns)
            assert len(ours) == 10
            assert ours.equals(view), key


def test_worklist_and_patient_reads(built_state: Built) -> None:
    with open_store(built_state.settings.snapshot_path, read_only=True) as store:
        worklist = data.query_worklist(store)
        assert tuple(worklist["patient_key"]) == EXPECTED_ORDER
        row = worklist.set_index("patient_key").loc["P-ALERT"]
        assert (row["open_alerts"], bool(row["awaiting_confirmation"]), row["mgmt"]) == (1, True, "methylated")
        assert worklist.set_index("patient_key").loc["P-QUAR", "quarantined"] == 1
        assert data.query_nadir(store, "P-ALERT")["nadir_burden"] == 28.3
        images = data.query_image_sources(store, "P-ALERT")
        assert set(images.loc[1, "registered"]) == {"T1c", "labels"}
        assert images.loc[0, "registered"] == {} and images.loc[0, "is_reference"], "the baseline space itself"
        assert not images.loc[1, "is_reference"]
        assert data.query_labels_paths(store, "P-PPD").keys() == {"2.1", "2.2"}
        assert data.query_builtin_model_used(store)
        assert data.query_models_used(store) and all(not n.startswith("bundle:") for n, _ in data.query_models_used(store))


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
