"""Diameters measured by clicking on the image, in the real browser (issue 32): the steps the
browser test (``test_browser.py``) takes on image review of a store the real pipeline produced.

"Measure diameters by clicking", then four mouse clicks on the plotly chart at the stored ends of
the largest lesion's d1 and d2 (the pixels where image review draws them, snapped to the pixel
centres the chart's points sit on), the lengths shown, "Save clicked diameters". Then a lesion the
model missed: "a lesion the model missed (new lesion)" chosen, four clicks elsewhere on the slice,
saved. Where to click is found from plotly's own axes in the page, so the test clicks where a reader would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dashboard.click_diameters import ClickedDiameters, measure_clicks
from dashboard.click_panel import MISSED_LABEL
from dashboard.rano_lines import display_of_world, measured_slice
from dashboard.slices import Plane, pixel_mm
from tests.dashboard.pipeline_state import PipelineState
from tests.dashboard.test_click_diameters import _later_scan
from tests.dashboard.test_missed_lesion import missed_lesion_clicks

#: page coordinates of a chart point (x, y in the chart's mm), from plotly's own axes.
_POINT_ON_PAGE = """([x, y]) => {
    const gd = document.querySelector('.js-plotly-plot');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    return [box.left + xa._offset + xa.l2p(x), box.top + ya._offset + ya.l2p(y)];
}"""


def _click(page: Any, x_mm: float, y_mm: float) -> None:
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y = page.evaluate(_POINT_ON_PAGE, [x_mm, y_mm])
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def click_diameters(page: Any, pipeline_state: PipelineState, screenshot: Path) -> tuple[int, ClickedDiameters]:
    """Measure the later scan's largest lesion by four clicks and save it (the page shows image
    review on that lesion's slice); returns the lesion index and what the clicks measure."""
    vol, lesion = _later_scan(pipeline_state)
    k = measured_slice(lesion, vol)
    row_mm, col_mm = pixel_mm(vol, Plane.AXIAL)
    ends = [np.asarray(json.loads(lesion[c])) for c in ("d1_p0", "d1_p1", "d2_p0", "d2_p1")]
    pixels = [tuple(float(round(v)) for v in display_of_world(vol, p)[0]) for p in ends]
    expected = measure_clicks(vol, pixels, k)
    page.get_by_text("Measure diameters by clicking on the later scan").click()
    page.locator(".js-plotly-plot").first.wait_for()
    _four_clicks(page, pixels, expected, row_mm=row_mm, col_mm=col_mm, screenshot=screenshot)
    page.get_by_role("button", name="Save clicked diameters").click()
    page.get_by_text("Queued.").first.wait_for()
    return int(lesion["lesion_index"]), expected


def _four_clicks(page: Any, pixels: list, expected: ClickedDiameters, *, row_mm: float, col_mm: float,
                 screenshot: Path) -> None:
    page.get_by_text("Clicks: 0 of 4.").wait_for()
    try:
        for n, (r, c) in enumerate(pixels, start=1):
            _click(page, c * col_mm, r * row_mm)
            if n < 4:
                page.get_by_text(f"Clicks: {n} of 4.").wait_for()
        page.get_by_text(f"Clicked: d1 = {expected.d1_mm:.1f} mm × d2 = {expected.d2_mm:.1f} mm").wait_for()
    finally:
        page.screenshot(path=screenshot, full_page=True)


def click_missed_lesion(page: Any, pipeline_state: PipelineState, screenshot: Path) -> ClickedDiameters:
    """With the click panel open (after :func:`click_diameters`), draw a lesion the model missed on
    the same slice and save it as the scan's new lesion; returns what the clicks measure."""
    vol, lesion = _later_scan(pipeline_state)
    k = measured_slice(lesion, vol)
    row_mm, col_mm = pixel_mm(vol, Plane.AXIAL)
    pixels = missed_lesion_clicks(vol, lesion)
    expected = measure_clicks(vol, pixels, k)
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Lesion these diameters belong to").click()
    page.get_by_role("option", name=MISSED_LABEL).click()
    page.get_by_text("Saved as this scan's new measurable lesion").wait_for()
    _four_clicks(page, pixels, expected, row_mm=row_mm, col_mm=col_mm, screenshot=screenshot)
    page.get_by_role("button", name="Save clicked diameters").click()
    page.get_by_text("Clicks: 0 of 4.").wait_for()  # sent, then the clicks cleared
    page.get_by_text("Queued.").first.wait_for()
    return expected
