"""Diameters measured by clicking on the image, in a real headless Chromium (issue 32).

Against ``streamlit run`` on a store the real pipeline produced (``pipeline_state``): image review,
"Measure diameters by clicking", four mouse clicks on the plotly chart at the stored ends of the
largest lesion's d1 and d2 (where image review draws them), the lengths shown, "Save clicked
diameters", one writer cycle, and after a reload the reader's history shows the diameters the
clicks measured. Screenshots: test-artifacts/dashboard-11-*.png.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dashboard.click_diameters import measure_clicks
from dashboard.rano_lines import display_of_world, measured_slice
from dashboard.slices import Plane, pixel_mm
from engine.store import open_store
from tests.dashboard.pipeline_state import PipelineState
from tests.dashboard.test_browser import CHROMIUM, TIMEOUT_MS, _browser_page, _log_in, _serve
from tests.dashboard.test_click_diameters import _later_scan
from tests.dashboard.test_reader_pipeline import writer_cycle

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (apt install chromium)")

#: page coordinates of a chart point (x, y in the chart's mm), from plotly's own axes.
_POINT_ON_PAGE = """([x, y]) => {
    const gd = document.querySelector('.js-plotly-plot');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    return [box.left + xa._offset + xa.l2p(x), box.top + ya._offset + ya.l2p(y)];
}"""


@pytest.fixture
def pipeline_server(pipeline_state: PipelineState, tmp_path: Path) -> Iterator[str]:
    with _serve(pipeline_state.settings, tmp_path) as url:
        yield url


def _click(page: Any, x_mm: float, y_mm: float) -> None:
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y = page.evaluate(_POINT_ON_PAGE, [x_mm, y_mm])
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def test_four_clicks_on_the_t1c_slice_enter_the_diameters(
    pipeline_server: str, pipeline_state: PipelineState, tmp_path: Path, artifacts_dir: Path
) -> None:
    vol, lesion = _later_scan(pipeline_state)
    k = measured_slice(lesion, vol)
    row_mm, col_mm = pixel_mm(vol, Plane.AXIAL)
    ends = [np.asarray(json.loads(lesion[c])) for c in ("d1_p0", "d1_p1", "d2_p0", "d2_p1")]
    pixels = [tuple(float(round(v)) for v in display_of_world(vol, p)[0]) for p in ends]
    expected = measure_clicks(vol, pixels, k)
    with _browser_page(tmp_path, height_px=2400) as page:
        page.goto(f"{pipeline_server}/?patient={pipeline_state.patient_key}")
        _log_in(page)
        page.get_by_role("heading", name=f"Patient {pipeline_state.patient_key}").wait_for()
        page.get_by_text("Image review", exact=True).click()
        page.get_by_text("RANO lines: #").first.wait_for(timeout=3 * TIMEOUT_MS)
        page.get_by_text("Measure diameters by clicking on the later scan").click()
        page.locator(".js-plotly-plot").first.wait_for()
        page.get_by_text("Clicks: 0 of 4.").wait_for()
        try:
            for n, (r, c) in enumerate(pixels, start=1):
                _click(page, c * col_mm, r * row_mm)
                if n < 4:
                    page.get_by_text(f"Clicks: {n} of 4.").wait_for()
            shown = f"Clicked: d1 = {expected.d1_mm:.1f} mm × d2 = {expected.d2_mm:.1f} mm"
            page.get_by_text(shown).wait_for()
        finally:
            page.screenshot(path=artifacts_dir / "dashboard-11a-clicked-diameters.png", full_page=True)
        page.get_by_role("button", name="Save clicked diameters").click()
        page.get_by_text("Queued.").first.wait_for()
        assert writer_cycle(pipeline_state.settings) == ()
        page.reload()
        page.get_by_text("Image review", exact=True).click()
        page.get_by_text("Reader's values of this scan").wait_for(timeout=3 * TIMEOUT_MS)
        lesion_index = int(lesion["lesion_index"])
        page.get_by_text(f"#{lesion_index}: {expected.d1_mm:g} × {expected.d2_mm:g} mm (dr.test)").wait_for()
        errors = page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
        assert errors.count() == 0, errors.all_inner_texts()
        page.screenshot(path=artifacts_dir / "dashboard-11b-clicked-diameters-applied.png", full_page=True)
    with open_store(pipeline_state.settings.snapshot_path, read_only=True) as store:
        (value,), = store.query("SELECT value_json FROM reader_values WHERE value_kind = 'DIAMETERS'")
    assert json.loads(value) == {"d1_mm": expected.d1_mm, "d2_mm": expected.d2_mm}
