"""Measure a target's two diameters by clicking on the later scan's T1c slice (image review).

The slice is a plotly chart: the image with its labels and the stored RANO lines, under one
transparent selectable point per pixel (Streamlit's plotly selection events, ``on_select`` with
``selection_mode="points"``). Each click is kept in the session (four per measurement: d1's ends,
then d2's; a fifth starts over); the lengths come from :mod:`dashboard.click_diameters` in world
mm, and "Save clicked diameters" sends the very request the typed form sends (``SET_DIAMETERS``),
so the writer, the audit, ``reader_values`` and the re-assessment are the same. Choosing "a lesion
the model missed (new lesion)" instead of a lesion sends the typed form's ``RECORD_NEW_LESION``
request with the clicked d1, d2 and their ends in world mm, which image review then draws (pink).
The panel is a fragment: a click reruns it alone, not the whole page.
"""

from __future__ import annotations

from functools import lru_cache, partial

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard import reader_panel
from dashboard.auth import SessionUser
from dashboard.click_diameters import N_CLICKS, click_grid, measure_clicks, pixel_of_point
from dashboard.rano_lines import READER_COLOURS, DrawnLesion, draw_segments
from engine.criteria import load_criteria
from engine.settings import Settings
from engine.store.board_requests import RequestKind
from engine.types import Volume

CLICK_D1_COLOUR = (255, 140, 0)  # orange: the reader's d1
CLICK_D2_COLOUR = (255, 255, 255)  # white: the reader's d2
CHART_KEY = "click_chart"
POINTS_KEY = "click_points"
#: above this many pixels the click grid is drawn with WebGL (scattergl) instead of SVG.
WEBGL_ABOVE = 16_384
WIDTH_PX = 460
#: the lesion choice that records a lesion the model missed (a new lesion) instead of correcting one
MISSED = "missed"
MISSED_LABEL = "a lesion the model missed (new lesion)"


@lru_cache(maxsize=4)
def _tolerance_deg(profile: str) -> float:
    return float(load_criteria(profile).measurability.perpendicular_tolerance_deg)


def _points(at: tuple[str, int]) -> list[tuple[float, float]]:
    """The clicks kept for this scan and slice (a new scan or slice starts a new measurement)."""
    kept = st.session_state.get(POINTS_KEY)
    if not kept or kept["at"] != at:
        kept = {"at": at, "points": []}
        st.session_state[POINTS_KEY] = kept
    return kept["points"]


def _on_select(row_mm: float, col_mm: float) -> None:
    """Chart selection changed: keep the clicked pixel (widget callback)."""
    chosen = st.session_state[CHART_KEY].selection.points
    kept = st.session_state.get(POINTS_KEY)
    if not chosen or kept is None:
        return
    point = chosen[-1]
    points = kept["points"]
    if len(points) >= N_CLICKS:
        points.clear()
    points.append(pixel_of_point(point["x"], point["y"], row_mm=row_mm, col_mm=col_mm))


def _clear() -> None:
    if (kept := st.session_state.get(POINTS_KEY)) is not None:
        kept["points"].clear()


def figure(rgb: np.ndarray, *, row_mm: float, col_mm: float, stored: list[DrawnLesion] = (),  # type: ignore[assignment]
           clicked: DrawnLesion | None = None, clicks: list[tuple[float, float]] = (),  # type: ignore[assignment]
           reader_drawn: list[DrawnLesion] = ()) -> go.Figure:  # type: ignore[assignment]
    """The slice (``rgb``: displayed pixels, unscaled) as a plotly image in mm, enlarged to about
    :data:`WIDTH_PX` with the stored, reader-drawn and clicked lines drawn at that size, under one
    selectable transparent point per pixel centre (x = column × column mm, y = row × row mm)."""
    factor = max(1, WIDTH_PX // rgb.shape[1])
    big = np.repeat(np.repeat(np.asarray(rgb, dtype=np.uint8), factor, axis=0), factor, axis=1)
    if stored:
        big = draw_segments(big, stored, slice_shape=rgb.shape[:2])
    if reader_drawn:
        big = draw_segments(big, reader_drawn, slice_shape=rgb.shape[:2], colours=READER_COLOURS)
    if clicked is not None:
        big = draw_segments(big, [clicked], slice_shape=rgb.shape[:2], colours=(CLICK_D1_COLOUR, CLICK_D2_COLOUR))
    offset = (factor - 1) / (2 * factor)  # an enlarged block's centre lies on its pixel's centre
    fig = go.Figure(go.Image(z=big, dx=col_mm / factor, dy=row_mm / factor, x0=-offset * col_mm,
                             y0=-offset * row_mm, hoverinfo="skip"))
    xs, ys = click_grid(rgb.shape[:2], row_mm=row_mm, col_mm=col_mm)
    grid_type = go.Scattergl if xs.size > WEBGL_ABOVE else go.Scatter
    fig.add_trace(grid_type(x=xs, y=ys, mode="markers", name="click", hovertemplate="%{x:.0f}, %{y:.0f} mm<extra></extra>",
                            marker={"size": max(4.0, WIDTH_PX / rgb.shape[1]), "color": "rgba(0,0,0,0)"},
                            selected={"marker": {"opacity": 0}}, unselected={"marker": {"opacity": 0}}))
    if clicks:
        fig.add_trace(go.Scatter(x=[c * col_mm for _, c in clicks], y=[r * row_mm for r, _ in clicks],
                                 mode="markers+text", text=[str(n) for n in range(1, len(clicks) + 1)],
                                 textposition="top right", textfont={"color": "rgb(255,140,0)"}, hoverinfo="skip",
                                 marker={"symbol": "x-thin-open", "size": 10, "line": {"width": 2},
                                         "color": "rgb(255,140,0)"}))
    height = int(WIDTH_PX * rgb.shape[0] * row_mm / (rgb.shape[1] * col_mm))
    fig.update_layout(width=WIDTH_PX, height=height, margin={"l": 0, "r": 0, "t": 0, "b": 0}, showlegend=False,
                      xaxis={"visible": False, "range": [-col_mm / 2, (rgb.shape[1] - 0.5) * col_mm]},
                      yaxis={"visible": False, "scaleanchor": "x", "autorange": "reversed"},
                      dragmode=False, hovermode="closest")
    return fig


def render(settings: Settings, user: SessionUser, patient_key: str, study_uid: str, *, volume: Volume,
           rgb: np.ndarray, index: int, pixel_mm: tuple[float, float], stored: list[DrawnLesion],
           lesion_options: list[int], default_lesion: int | None, reader_drawn: list[DrawnLesion] = (),  # type: ignore[assignment]
           ends_stored: bool = True) -> None:
    """The chart, the lengths so far, and the save button (``rgb``: the displayed axial slice, unscaled).
    ``ends_stored``: the volume shown is in the world the scan's diameter ends are stored in, so a
    lesion the model missed can be drawn (its ends are kept and drawn again there).
    A fragment: a click reruns this panel only, not the whole image review page."""
    if not st.toggle("Measure diameters by clicking on the later scan", key="click_on"):
        return
    _panel(settings, user, patient_key, study_uid, volume=volume, rgb=rgb, index=index, pixel_mm=pixel_mm,
           stored=stored, lesion_options=lesion_options, default_lesion=default_lesion,
           reader_drawn=list(reader_drawn), ends_stored=ends_stored)


@st.fragment
def _panel(settings: Settings, user: SessionUser, patient_key: str, study_uid: str, *, volume: Volume,
           rgb: np.ndarray, index: int, pixel_mm: tuple[float, float], stored: list[DrawnLesion],
           lesion_options: list[int], default_lesion: int | None, reader_drawn: list[DrawnLesion],
           ends_stored: bool) -> None:
    row_mm, col_mm = pixel_mm
    points = _points((study_uid, index))
    measured = measure_clicks(volume, points, index)
    st.caption("Click the two ends of the longest diameter (d1), then the two ends of the perpendicular one "
               f"(d2), on slice {index}. Stored lines: cyan d1, violet d2; a new lesion a reader drew: pink; "
               "yours: orange d1, white d2.")
    left, right = st.columns([3, 2])
    with left:
        fig = figure(rgb, row_mm=row_mm, col_mm=col_mm, stored=stored, clicked=measured.drawn(volume), clicks=points,
                     reader_drawn=reader_drawn)
        st.plotly_chart(fig, key=CHART_KEY,
                        on_select=partial(_on_select, row_mm, col_mm), selection_mode="points", width="content",
                        config={"displayModeBar": False})
    with right:
        _summary(settings, user, patient_key, study_uid, measured, len(points), lesion_options, default_lesion,
                 ends_stored)


def _summary(settings: Settings, user: SessionUser, patient_key: str, study_uid: str, measured, n_points: int,  # noqa: ANN001
             lesion_options: list[int], default_lesion: int | None, ends_stored: bool) -> None:
    if measured.d1_mm is None:
        st.markdown(f"**Clicks: {n_points} of {N_CLICKS}.** Click the first end of d1.")
    elif not measured.complete:
        st.markdown(f"**Clicks: {n_points} of {N_CLICKS}.** d1 = {measured.d1_mm:.1f} mm; "
                    "now click the two ends of d2.")
    else:
        tolerance = _tolerance_deg(settings.assessment.profile)
        st.markdown(f"**Clicked: d1 = {measured.d1_mm:.1f} mm × d2 = {measured.d2_mm:.1f} mm** "
                    f"(product {measured.d1_mm * measured.d2_mm:.0f} mm²)")
        angle = "?" if measured.angle_deg is None else f"{measured.angle_deg:.0f}°"
        if measured.perpendicular(tolerance):
            st.caption(f"Angle between them {angle} (RANO: 90 ± {tolerance:g}°).")
        else:
            st.warning(f"d2 is at {angle} to d1; RANO measures it perpendicular (90 ± {tolerance:g}°).")
    st.button("Clear clicks", key="click_clear", on_click=_clear)
    options: list[int | str] = [*lesion_options, MISSED] if ends_stored else list(lesion_options)
    if not options:
        st.caption("This scan has no measured lesion to correct; record a new lesion under Findings.")
        return
    start = options.index(default_lesion) if default_lesion in options else 0
    lesion = st.selectbox("Lesion these diameters belong to", options, index=start,
                          format_func=lambda i: MISSED_LABEL if i == MISSED else f"#{i}", key="click_lesion")
    if not ends_stored:
        st.caption("To draw a lesion the model missed, show registered volumes: its ends are kept in the "
                   "space this scan's diameters are stored in.")
    elif lesion == MISSED:
        st.caption("Saved as this scan's new measurable lesion (as under Findings), with the clicked lines; "
                   "it replaces a new lesion recorded on this scan before.")
    note = st.text_input("Note", key="click_note")
    if st.button("Save clicked diameters", key="click_save", disabled=not measured.complete):
        if lesion == MISSED:
            reader_panel.send(settings, user, patient_key, RequestKind.RECORD_NEW_LESION, study_uid=study_uid,
                              present="true", d1_mm=f"{measured.d1_mm:g}", d2_mm=f"{measured.d2_mm:g}",
                              note=note or "a lesion the model missed, drawn on the T1c slice",
                              **measured.world_ends())
        else:
            reader_panel.send(settings, user, patient_key, RequestKind.SET_DIAMETERS, study_uid=study_uid,
                              lesion_index=str(lesion), d1_mm=f"{measured.d1_mm:g}", d2_mm=f"{measured.d2_mm:g}",
                              note=note or "measured by clicking on the T1c slice")
        _clear()
        st.rerun(scope="app")  # the reader panel says it was queued
