"""Diameters measured by clicking (issue 32): click -> displayed pixel -> world mm -> d1 and d2.

AppTest cannot click a plotly chart, so the conversion is tested as pure functions, on geometry
whose answer is known and as a round trip against the diameter ends the real pipeline stored;
the page is driven with the clicks put in the session as the chart's callback puts them, and the
request it sends is applied by the writer. The real click is in tests/dashboard/test_browser.py (steps in browser_clicks.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import click_panel, data, images
from dashboard.click_diameters import click_grid, measure_clicks, pixel_of_point
from dashboard.image_volumes import study_sources
from dashboard.rano_lines import display_of_world, measured_slice, world_of_display
from engine.store import open_store
from engine.types import Volume
from tests.dashboard.pipeline_state import PipelineState
from tests.dashboard.test_reader_pipeline import _image_review, writer_cycle


def _oblique(shape: tuple[int, int, int] = (40, 30, 12)) -> Volume:
    """A grid rotated 20° about z and 10° about x, 0.8 × 1.1 × 3 mm, off the origin."""
    a, b = np.radians(20.0), np.radians(10.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag([0.8, 1.1, 3.0])
    affine[:3, 3] = (-12.0, 30.5, 7.0)
    return Volume(np.zeros(shape), affine)


def test_display_and_world_are_inverse_on_an_oblique_grid() -> None:
    vol = _oblique()
    rng = np.random.default_rng(0)
    for row, col, k in zip(rng.uniform(0, 29, 20), rng.uniform(0, 39, 20), rng.integers(0, 12, 20), strict=True):
        pixel, index = display_of_world(vol, world_of_display(vol, (row, col), int(k)))
        assert np.allclose(pixel, (row, col)) and index == pytest.approx(k)


def test_lengths_are_world_mm_whatever_the_click_order() -> None:
    vol = _oblique()
    # along a displayed row the columns are x voxels (0.8 mm), along a column the rows are y voxels (1.1 mm)
    clicks = [(10.0, 5.0), (10.0, 30.0), (4.0, 17.0), (20.0, 17.0)]
    m = measure_clicks(vol, clicks, 6)
    assert (m.d1_mm, m.d2_mm, m.angle_deg) == (pytest.approx(25 * 0.8), pytest.approx(16 * 1.1), 90.0)
    swapped = measure_clicks(vol, clicks[2:] + clicks[:2], 6)
    assert (swapped.d1_mm, swapped.d2_mm) == (m.d1_mm, m.d2_mm)
    assert swapped.drawn(vol).d1 == m.drawn(vol).d1  # drawn as d1: the longer pair
    slanted = measure_clicks(vol, [(10.0, 5.0), (10.0, 30.0), (4.0, 17.0), (20.0, 27.0)], 6)
    assert not slanted.perpendicular(5.0) and m.perpendicular(5.0)
    partial = measure_clicks(vol, clicks[:3], 6)
    assert partial.d1_mm == pytest.approx(20.0) and not partial.complete
    with pytest.raises(ValueError, match="at most 4"):
        measure_clicks(vol, clicks + clicks[:1], 6)


def test_every_chart_point_is_the_pixel_it_covers() -> None:
    fig = click_panel.figure(np.zeros((6, 9, 3), np.uint8), row_mm=1.5, col_mm=0.75)
    grid = fig.data[1]
    xs, ys = click_grid((6, 9), row_mm=1.5, col_mm=0.75)
    assert np.array_equal(grid.x, xs) and np.array_equal(grid.y, ys)
    pixels = [pixel_of_point(x, y, row_mm=1.5, col_mm=0.75) for x, y in zip(grid.x, grid.y, strict=True)]
    assert pixels == [(float(r), float(c)) for r in range(6) for c in range(9)]
    image, factor = fig.data[0], fig.data[0].z.shape[1] // 9  # enlarged by an integer factor
    assert factor > 1 and image.z.shape[:2] == (6 * factor, 9 * factor)
    for c in range(9):  # the centre of each enlarged block lies on its pixel's chart point
        assert image.x0 + (c * factor + (factor - 1) / 2) * image.dx == pytest.approx(c * 0.75)
    for r in range(6):
        assert image.y0 + (r * factor + (factor - 1) / 2) * image.dy == pytest.approx(r * 1.5)


def _later_scan(pipeline_state: PipelineState) -> tuple[Volume, dict]:
    """The last scan's T1c as image review shows it (baseline space), and its largest lesion."""
    ref = data.snapshot_ref(pipeline_state.settings.snapshot_path)
    bundle = data.patient_bundle(ref, pipeline_state.patient_key)
    studies, lesions = bundle["images"], bundle["lesions"]
    labels = data.labels_paths(ref, pipeline_state.patient_key)
    first, last = studies.iloc[0], studies.iloc[-1]
    src_a, src_b = (study_sources(r, baseline_space=True, labels_path=labels.get(r["study_uid"])) for r in (first, last))
    _, vol, _, _ = images._pair(pipeline_state.settings, src_a, src_b, "T1c", True)
    mine = lesions[(lesions["study_uid"] == last["study_uid"]) & lesions["measurable"]].to_dict("records")
    return vol, max(mine, key=lambda r: r["product_mm2"])


def test_clicking_the_stored_ends_gives_the_stored_diameters(pipeline_state: PipelineState) -> None:
    """Round trip on the pipeline's own store: the stored ends, shown where image review draws
    them and clicked there, give back the stored ends in world mm and the stored d1 and d2."""
    vol, lesion = _later_scan(pipeline_state)
    k = measured_slice(lesion, vol)
    ends = [np.asarray(json.loads(lesion[c])) for c in ("d1_p0", "d1_p1", "d2_p0", "d2_p1")]
    clicks = [display_of_world(vol, p)[0] for p in ends]
    m = measure_clicks(vol, clicks, k)
    assert np.allclose(np.stack(m.ends_mm), np.stack(ends), atol=1e-3)
    assert m.d1_mm == pytest.approx(lesion["d1_mm"], abs=0.06) and m.d2_mm == pytest.approx(lesion["d2_mm"], abs=0.06)
    # the chart snaps a click to the nearest pixel centre: off by at most one voxel diagonal per end
    snapped = measure_clicks(vol, [(round(r), round(c)) for r, c in clicks], k)
    voxel = float(np.hypot(*vol.spacing_mm[:2]))
    assert abs(snapped.d1_mm - lesion["d1_mm"]) <= voxel and abs(snapped.d2_mm - lesion["d2_mm"]) <= voxel


def test_clicked_diameters_go_through_the_writer_like_typed_ones(pipeline_state: PipelineState) -> None:
    """The page with four clicks in the session (as the chart's callback keeps them) shows the
    lengths, and "Save clicked diameters" queues the typed form's request; the writer applies it."""
    vol, lesion = _later_scan(pipeline_state)
    settings, uid = pipeline_state.settings, pipeline_state.study_uids[-1]
    at = _image_review(pipeline_state.patient_key)
    at.toggle(key="click_on").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(m.value.startswith("**Clicks: 0 of 4.**") for m in at.markdown)
    k = at.slider(key="img_slice_axial").value
    assert k == measured_slice(lesion, vol)
    ends = [np.asarray(json.loads(lesion[c])) for c in ("d1_p0", "d1_p1", "d2_p0", "d2_p1")]
    clicks = [tuple(float(round(v)) for v in display_of_world(vol, p)[0]) for p in ends]
    expected = measure_clicks(vol, clicks, k)
    at.session_state[click_panel.POINTS_KEY] = {"at": (uid, k), "points": clicks}
    at.run()
    text = f"**Clicked: d1 = {expected.d1_mm:.1f} mm × d2 = {expected.d2_mm:.1f} mm**"
    assert any(m.value.startswith(text) for m in at.markdown), [m.value for m in at.markdown]
    assert at.selectbox(key="click_lesion").value == lesion["lesion_index"]
    at.button(key="click_save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert writer_cycle(settings) == ()
    with open_store(settings.snapshot_path, read_only=True) as store:
        (value, lesion_index, user), = store.query(
            "SELECT value_json, lesion_index, entered_by FROM reader_values WHERE value_kind = 'DIAMETERS'")
        audit = store.query("SELECT detail FROM audit WHERE action = 'reader_diameters'")
    assert json.loads(value) == {"d1_mm": expected.d1_mm, "d2_mm": expected.d2_mm}
    assert (lesion_index, user) == (lesion["lesion_index"], "dr.test") and len(audit) == 1
    at = _image_review(pipeline_state.patient_key)  # a reload shows them
    entered = f"#{lesion['lesion_index']}: {expected.d1_mm:g} × {expected.d2_mm:g} mm (dr.test)"
    assert any(entered in c.value for c in at.caption), [c.value for c in at.caption]
