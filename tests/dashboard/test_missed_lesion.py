"""A lesion the model missed, drawn by clicking on the T1c slice (issue 32).

Pure: the clicked ends become the new-lesion request's world-mm ends (d1 first, to 1 µm) and come
back as the clicked pixels; a malformed or inconsistent request is refused when it is made. On a
store the real pipeline produced (``pipeline_state``): the page with four clicks in the session
sends the typed form's ``RECORD_NEW_LESION`` request with the ends, the writer stores them with the
reader's value and audits it, the patient is re-assessed exactly as for the typed new lesion, and a
reload draws the reader's lines on the slice where they were clicked and lists the lesion.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dashboard import click_panel, lesion_table
from dashboard.click_diameters import measure_clicks
from dashboard.rano_lines import display_of_world, measured_slice
from dashboard.board_queue import submit
from engine.store import open_store
from engine.store.board_requests import BoardRequest, RequestKind, reader_ends
from engine.store.reader import read_reader_history
from engine.types import Volume
from tests.dashboard.pipeline_state import PipelineState
from tests.dashboard.test_click_diameters import _later_scan, _oblique
from tests.dashboard.test_reader_pipeline import _image_review, writer_cycle

CLICKS = [(4.0, 17.0), (20.0, 17.0), (10.0, 5.0), (10.0, 30.0)]  # d2's ends first: the longer pair is d1


def missed_lesion_clicks(vol: Volume, lesion: dict) -> list[tuple[float, float]]:
    """Four clicks (display pixels: d1's ends, then d2's) of a lesion the model missed, 14 × 10 pixels
    on the slice where ``lesion`` (the largest measured one) was measured, in the other half of the image."""
    row = display_of_world(vol, json.loads(lesion["d1_p0"]))[0][0]
    r0, c0 = (5.0, 5.0) if row > vol.array.shape[1] / 2 else (vol.array.shape[1] - 16.0, 5.0)
    return [(r0 + 5, c0), (r0 + 5, c0 + 14), (r0, c0 + 7), (r0 + 10, c0 + 7)]


def _request(**payload: str) -> BoardRequest:
    return BoardRequest(kind=payload.pop("kind", RequestKind.RECORD_NEW_LESION), user="dr.test", patient_key="P1",
                        payload={"study_uid": "1.2", "note": "", **payload})


def test_the_clicked_ends_round_trip_through_the_request_in_world_mm() -> None:
    vol = _oblique()
    m = measure_clicks(vol, CLICKS, 6)
    assert m.swapped and (m.d1_mm, m.d2_mm) == (pytest.approx(20.0), pytest.approx(17.6))
    ends = m.world_ends()
    request = BoardRequest.from_json(_request(present="true", d1_mm=f"{m.d1_mm:g}", d2_mm=f"{m.d2_mm:g}",
                                              **ends).to_json())
    stored = reader_ends(request)
    assert stored is not None and list(stored) == ["d1_p0", "d1_p1", "d2_p0", "d2_p1"]
    points = [np.asarray(json.loads(stored[k])) for k in stored]
    assert np.allclose(points, [m.ends_mm[i] for i in (2, 3, 0, 1)], atol=1e-3)  # d1 first: the longer pair
    assert np.linalg.norm(points[1] - points[0]) == pytest.approx(m.d1_mm, abs=0.05)
    back = [display_of_world(vol, p) for p in points]  # drawn where they were clicked, on slice 6
    assert np.allclose([b[0] for b in back], [CLICKS[i] for i in (2, 3, 0, 1)], atol=1e-2)
    assert all(b[1] == pytest.approx(6, abs=1e-2) for b in back)
    assert reader_ends(_request(present="true", d1_mm="20", d2_mm="17.6")) is None  # the typed path: no ends


def test_a_new_lesion_request_with_bad_ends_is_refused_when_made() -> None:
    ends = measure_clicks(_oblique(), CLICKS, 6).world_ends()
    sizes = {"present": "true", "d1_mm": "20", "d2_mm": "17.6"}
    with pytest.raises(ValueError, match="all of d1_p0, d1_p1, d2_p0, d2_p1 or none"):
        _request(**sizes, d1_p0=ends["d1_p0"], d1_p1=ends["d1_p1"])
    with pytest.raises(ValueError, match=r"'d1_mm' \(25\) is not the distance between d1_p0 and d1_p1"):
        _request(**{**sizes, "d1_mm": "25"}, **ends)
    with pytest.raises(ValueError, match="JSON \\[x, y, z\\] point"):
        _request(**sizes, **{**ends, "d2_p1": "[1, 2]"})
    with pytest.raises(ValueError, match="need a present new lesion"):
        _request(present="false", **ends)
    with pytest.raises(ValueError, match="carries no diameter ends"):
        _request(kind=RequestKind.SET_DIAMETERS, lesion_index="1", d1_mm="20", d2_mm="17.6", **ends)


def _calls(settings) -> list[tuple]:  # noqa: ANN001
    with open_store(settings.snapshot_path, read_only=True) as store:
        return store.query("""SELECT study_uid, mode, response, final_response, reason, final_reason, burden
                              FROM assessments ORDER BY scan_date, mode""")


def test_a_missed_lesion_drawn_on_the_image_is_stored_assessed_like_a_typed_one_and_drawn(
    pipeline_state: PipelineState,
) -> None:
    settings, key, last = pipeline_state.settings, pipeline_state.patient_key, pipeline_state.study_uids[-1]
    # the pipeline's store has no clinical events: the board enters the RT end so the scans can be called
    submit(settings, BoardRequest(kind=RequestKind.CORRECT_EVENT, user="dr.test", patient_key=key,
                                  payload={"event": "RT_END", "event_date": "2025-03-01", "note": "from the letter"}))
    assert writer_cycle(settings) == ()
    automatic = _calls(settings)
    vol, lesion = _later_scan(pipeline_state)
    k = measured_slice(lesion, vol)
    clicks = missed_lesion_clicks(vol, lesion)
    expected = measure_clicks(vol, clicks, k)

    at = _image_review(key)
    at.toggle(key="click_on").set_value(True).run()
    assert at.slider(key="img_slice_axial").value == k
    at.session_state[click_panel.POINTS_KEY] = {"at": (last, k), "points": clicks}
    at.run()
    at.selectbox(key="click_lesion").set_value(click_panel.MISSED).run()
    assert any("new measurable lesion" in c.value for c in at.caption)
    at.button(key="click_save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert writer_cycle(settings) == ()
    with open_store(settings.snapshot_path, read_only=True) as store:
        (value, lesion_index, *ends), = store.query(
            """SELECT value_json, lesion_index, d1_p0, d1_p1, d2_p0, d2_p1 FROM reader_values
               WHERE value_kind = 'NEW_LESION'""")
        (audit,), = store.query("SELECT detail FROM audit WHERE action = 'reader_new_lesion'")
        others = store.query("SELECT count(*) FROM reader_values WHERE d1_p0 IS NOT NULL AND value_kind <> 'NEW_LESION'")
    assert json.loads(value) == {"present": True, "d1_mm": expected.d1_mm, "d2_mm": expected.d2_mm}
    assert lesion_index is None and others == [(0,)] and "drawn on the image" in audit
    assert np.allclose([json.loads(e) for e in ends], np.stack(expected.ends_mm), atol=1e-3)
    clicked = _calls(settings)
    assert clicked != automatic  # the new measurable lesion enters the assessment
    assert any("new" in reason.lower() for uid, _, _, _, reason, _, _ in clicked if uid == last)

    at = _image_review(key)  # a reload: the reader's lines drawn on the slice where they were clicked
    goto = [o for o in at.selectbox(key="img_goto_lesion").options if o.startswith("reader-entered new lesion")]
    assert goto == [f"reader-entered new lesion ({expected.d1_mm:.1f} × {expected.d2_mm:.1f} mm)"]
    at.slider(key="img_slice_axial").set_value(0).run()
    at.selectbox(key="img_goto_lesion").set_value(goto[0]).run()
    at.button(key="img_goto").click().run()
    assert at.slider(key="img_slice_axial").value == k
    captions = [i.caption for e in at.get("image") for i in e.proto.imgs]
    assert "reader-entered new lesion (pink)" in captions[1], captions
    tables = [d.value for d in at.dataframe]
    assert any("new (reader-entered)" in t.to_string() and "drawn on the image" in t.to_string() for t in tables)
    assert not at.exception and not at.error, [e.value for e in at.error]

    # the typed path with the same diameters (no ends) replaces it: the very same calls
    submit(settings, BoardRequest(kind=RequestKind.RECORD_NEW_LESION, user="dr.test", patient_key=key,
                                  payload={"study_uid": last, "present": "true", "d1_mm": f"{expected.d1_mm:g}",
                                           "d2_mm": f"{expected.d2_mm:g}", "note": "typed"}))
    assert writer_cycle(settings) == ()
    assert _calls(settings) == clicked
    with open_store(settings.snapshot_path, read_only=True) as store:
        history = read_reader_history(store, key)
    typed = lesion_table.reader_new_lesion(history, last)
    assert typed is not None and not typed["drawn"] and typed["d1_mm"] == expected.d1_mm
