"""The dashboard's read model (engine/store/read_model.py), on a published snapshot: the pushdown
timeline read agrees with the ``timeline`` view, and the per-patient reads the pages show."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_dashboard import build_store
from engine.store import open_store, read_model
from engine.store.schema_assessment import DDL, timeline_select
from tests.dashboard.store_factory import Built, build_state


@pytest.fixture(scope="module")
def built_state(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The dashboard tests' state folder (tests/dashboard/store_factory.py), read only here."""
    return build_state(tmp_path_factory.mktemp("read_model") / "state")


def test_pushdown_timeline_equals_the_view(tmp_path: Path) -> None:
    snapshot, _ = build_store(tmp_path, 40)
    with open_store(snapshot, read_only=True) as store:
        for key in ("P-000000", "P-000017", "P-000039"):
            ours = read_model.read_timeline(store, key)
            view = store.con.sql("SELECT * FROM timeline WHERE patient_key = ? ORDER BY scan_date, study_uid",
                                 params=[key]).to_arrow_table().to_pandas()
            assert list(ours.columns) == list(view.columns)
            assert len(ours) == 10
            assert ours.equals(view), key


def test_the_view_and_the_pushdown_are_one_query() -> None:
    """The view is created from the same text the per-patient read runs (no copy to drift)."""
    assert "CREATE OR REPLACE VIEW timeline AS" + timeline_select() in DDL
    assert timeline_select(patient_param="key").count("patient_key = $key") == 3


def test_patient_reads(built_state: Built) -> None:
    with open_store(built_state.settings.snapshot_path, read_only=True) as store:
        assert read_model.read_nadir(store, "P-ALERT")["nadir_burden"] == 28.3
        images = read_model.read_image_sources(store, "P-ALERT")
        assert set(images.loc[1, "registered"]) == {"T1c", "labels"}
        assert images.loc[0, "registered"] == {} and images.loc[0, "is_reference"], "the baseline space itself"
        assert not images.loc[1, "is_reference"]
        assert read_model.read_labels_paths(store, "P-PPD").keys() == {"2.1", "2.2"}
        assert read_model.builtin_model_used(store)
        assert read_model.read_models_used(store) and all(
            not n.startswith("bundle:") for n, _ in read_model.read_models_used(store))


def test_worklist_facts_for_the_urgency_rule(tmp_path: Path) -> None:
    """PD since the last baseline (also when later scans are NE), open alerts' severities, and
    flagged scans that no board decision names."""
    from tests.dashboard.store_factory import add_urgency_patients

    built = build_state(tmp_path / "state")
    add_urgency_patients(built.settings)
    with open_store(built.settings.snapshot_path, read_only=True) as store:
        rows = read_model.read_worklist(store).set_index("patient_key")
    assert str(rows.loc["P-PROG", "pd_scan_date"]) == "2025-03-30"
    assert rows.loc["P-PROG", "response"] == "NE" and rows.loc["P-PROG", "open_alerts"] == 1
    assert list(rows.loc["P-PROG", "open_alert_severities"]) == ["CRITICAL"]
    assert list(rows.loc["P-FLAG", "unreviewed_flags"]) == ["2025-05-15: segmentation flags: et_without_enhancement"]
    assert list(rows.loc["P-REVIEWED", "unreviewed_flags"]) == [], "a board decision about the scan reviewed it"
    assert list(rows.loc["P-QUAR", "unreviewed_flags"]) == [
        "2025-05-05: quarantined: No post-contrast T1 series was found"]
    assert rows["pd_scan_date"].isna().sum() == len(rows) - 1, "only P-PROG progressed"
