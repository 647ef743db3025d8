"""Issue 32 on a store the real pipeline produced (``pipeline_state``): the RANO line pairs are drawn
on the slice where they were measured, on the lesion itself; the per-lesion tables show; each
reader action is queued from image review, applied by the writer (audited, the patient re-assessed
from the reader's values) and shown after a reload."""

from __future__ import annotations

import json

import numpy as np
from scipy import ndimage
from streamlit.testing.v1 import AppTest

from dashboard import data, images
from dashboard.board_queue import submit
from dashboard.image_volumes import study_sources
from dashboard.rano_lines import draw_segments, measured_slice, segments_on_slice
from dashboard.slices import Plane, extract_slice
from engine.criteria import Mode, load_criteria
from engine.usecases.patient_course import assess_patient_course
from engine.settings import Settings
from engine.store import open_store, publish_snapshot
from engine.usecases.apply_board_request import apply_board_requests
from engine.store.board_requests import BoardRequest, RequestKind, requests_dir
from engine.types import Label
from tests.dashboard.conftest import APP_PATH, log_in, open_page
from tests.dashboard.pipeline_state import PipelineState


def _image_review(patient_key: str) -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=120)
    at.run()
    return open_page(log_in(at), "Image review", patient_key)


def writer_cycle(settings: Settings) -> tuple[str, ...]:
    """What the writer does with the queue (``flows.watch.apply_board_actions``, without Prefect):
    apply, re-assess the patients it names, publish. Returns the refused requests' reasons."""
    with open_store(settings.db_path) as store:
        applied = apply_board_requests(store, requests_dir(settings.state_dir))
        for key in applied.patients_to_reassess:
            assess_patient_course(store, patient_key=key, criteria=load_criteria(settings.assessment.profile),
                                  mode=Mode(settings.assessment.mode), paths=settings.state_paths, alert_sinks=(),
                                  base_url=settings.alerts.dashboard_base_url)
        publish_snapshot(store, settings.snapshot_path)
    return tuple(reason for _, reason in applied.failed)


def test_the_rano_lines_lie_on_the_enhancing_lesion_of_the_slice_where_they_were_measured(
    pipeline_state: PipelineState,
) -> None:
    ref = data.snapshot_ref(pipeline_state.settings.snapshot_path)
    bundle = data.patient_bundle(ref, pipeline_state.patient_key)
    studies, lesions = bundle["images"], bundle["lesions"]
    assert lesions["d1_p0"].notna().all(), "every lesion the pipeline measured has its diameter ends"
    labels = data.labels_paths(ref, pipeline_state.patient_key)
    baseline = studies.iloc[0]
    for row in (baseline, studies.iloc[-1]):  # the baseline's own space, a follow-up in baseline space
        src_a = study_sources(baseline, baseline_space=True, labels_path=labels.get(baseline["study_uid"]))
        src_b = study_sources(row, baseline_space=True, labels_path=labels.get(row["study_uid"]))
        _, vol, _, lab = images._pair(pipeline_state.settings, src_a, src_b, "T1c", True)
        mine = lesions[(lesions["study_uid"] == row["study_uid"]) & lesions["measurable"]].to_dict("records")
        assert mine, "the progression patient has a measurable lesion on each scan"
        biggest = max(mine, key=lambda r: r["product_mm2"])
        k = measured_slice(biggest, vol)
        drawn = [d for d in segments_on_slice([biggest], vol, Plane.AXIAL, k)]
        assert len(drawn) == 1 and drawn[0].d2 is not None
        et = extract_slice(lab.array, Plane.AXIAL, k) == int(Label.ET)
        for segment in (drawn[0].d1, drawn[0].d2):  # the chord runs inside the lesion, edge to edge
            t = np.linspace(0.05, 0.95, 19)[:, None]
            points = np.asarray(segment[0]) + t * np.subtract(segment[1], segment[0])
            inside = ndimage.map_coordinates(et.astype(float), points.T, order=1)  # the measurement's own test (ends are stored to 1 µm)
            assert (inside >= 0.5 - 1e-3).mean() >= 0.95, (row["study_date"], segment, inside)
        length_px = np.hypot(*np.subtract(drawn[0].d1[1], drawn[0].d1[0]))
        assert length_px * min(vol.spacing_mm[:2]) <= biggest["d1_mm"] * 1.01
        grey = np.zeros((*et.shape, 3), np.uint8)
        painted = draw_segments(grey, drawn, slice_shape=et.shape, width_px=1)
        assert np.any(painted != grey)  # the pixels of both chords are painted
        assert segments_on_slice([biggest], vol, Plane.AXIAL, k + 2) == []  # not on other slices
        assert segments_on_slice([biggest], vol, Plane.CORONAL, k) == []


def test_image_review_shows_the_lines_the_lesion_tables_and_the_reader_panel(pipeline_state: PipelineState) -> None:
    at = _image_review(pipeline_state.patient_key)
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = [i.caption for element in at.get("image") for i in element.proto.imgs]
    assert len(captions) == 2 and "RANO lines: #" in captions[1], captions  # the later scan, its measured slice
    headers = [m.value for m in at.markdown if m.value.startswith("**Lesions · ")]
    assert len(headers) == 2 and len(at.dataframe) >= 2
    assert any("Proposed" in i.value for i in at.info)
    measured = at.slider(key="img_slice_axial").value
    at.slider(key="img_slice_axial").set_value(0).run()
    assert "RANO lines" not in [i.caption for e in at.get("image") for i in e.proto.imgs][1]
    at.button(key="img_goto").click().run()  # back to the slice where the lesion was measured
    assert at.slider(key="img_slice_axial").value == measured
    assert not at.exception and not at.error
    assert not [w.value for w in at.warning if "Session State" in w.value or "default value" in w.value]


def _submit(at: AppTest, label: str) -> AppTest:
    (button,) = [b for b in at.button if b.label == label]
    return button.click().run()


def test_each_reader_action_persists_is_audited_and_recomputes_the_response(pipeline_state: PipelineState) -> None:
    settings, key = pipeline_state.settings, pipeline_state.patient_key
    last = pipeline_state.study_uids[-1]
    # the pipeline's store has no clinical events: the board enters the RT end so the scans can be called
    submit(settings, BoardRequest(kind=RequestKind.CORRECT_EVENT, user="dr.test", patient_key=key,
                                  payload={"event": "RT_END", "event_date": "2025-03-01", "note": "from the letter"}))
    assert writer_cycle(settings) == ()
    with open_store(settings.snapshot_path, read_only=True) as store:
        (lesion_index, product), = store.query(
            """SELECT l.lesion_index, l.product_mm2 FROM lesions l JOIN measurements m USING (measurement_id)
               WHERE m.study_uid = ? AND NOT m.superseded ORDER BY l.product_mm2 DESC LIMIT 1""", [last])
        (burden,), = store.query("SELECT burden FROM assessments WHERE study_uid = ? AND mode = '2d'", [last])
    at = _image_review(key)
    at.number_input(key="reader_d1").set_value(40.0)
    at.number_input(key="reader_d2").set_value(30.0)
    at.selectbox(key="reader_d_lesion").set_value(lesion_index)
    at.text_input(key="reader_d_note").input("re-measured on the thin-slice T1c")
    at = _submit(at, "Save diameters")
    at.text_input(key="reader_steroid").input("4")
    at.selectbox(key="reader_status").set_value("stable")
    at = _submit(at, "Save findings")
    at = _submit(at, "Accept segmentation")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert writer_cycle(settings) == ()

    at = _image_review(key)  # a reload: what the writer applied is shown
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(i.value.startswith("Confirmed by dr.test") for i in at.info), [i.value for i in at.info]
    with open_store(settings.snapshot_path, read_only=True) as store:
        kinds = [r[0] for r in store.query("SELECT value_kind FROM reader_values ORDER BY reader_value_id")]
        assert kinds == ["DIAMETERS", "STEROID_DOSE", "CLINICAL_STATUS", "SEGMENTATION"]
        audit = [r[0] for r in store.query("SELECT action FROM audit WHERE action LIKE 'reader_%' ORDER BY audit_id")]
        assert audit == ["reader_diameters", "reader_steroid_dose", "reader_clinical_status", "reader_segmentation"]
        (before,), = store.query("SELECT before_json FROM reader_values WHERE value_kind = 'DIAMETERS'")
        assert json.loads(before)["d1_mm"] > 0  # the automatic value, kept for the audit
        (now,), = store.query("SELECT burden FROM assessments WHERE study_uid = ? AND mode = '2d'", [last])
    assert now != burden and abs(now - (burden - product + 1200.0)) < 1.0  # 40 × 30 replaces the automatic product
