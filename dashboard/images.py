"""Image review: two timepoints side by side from the stored volumes (never the live archive).

Registered volumes (baseline space: a follow-up's volumes moved into the baseline's grid by its
registration, its labels as the pipeline resampled them, the baseline's own files) are used when
both timepoints have them; otherwise the native volumes are shown, slices
matched by scanner position, and the page says so (no difference view then: the grids differ).
Files are found and put on one grid by :mod:`dashboard.image_volumes`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import click_panel, data, lesion_table, reader_panel
from dashboard.auth import SessionUser
from dashboard.image_volumes import ImageSource, load_on_grid, load_volume, study_sources
from dashboard.slices import (
    Plane,
    apply_window,
    default_window,
    difference_rgb,
    extract_slice,
    matching_index,
    new_enhancement,
    overlay,
    pixel_mm,
    slice_count,
    to_physical_aspect,
)
from dashboard.rano_lines import READER_COLOURS, draw_segments, measured_slice, segments_on_slice
from engine.errors import GlioWatchError
from engine.settings import Settings
from engine.viewer import viewer_url
from engine.types import Label, Volume


def _registered_follow_up(row: pd.Series) -> bool:
    return bool(row["registered"]) or row.get("to_reference") is not None


def _in_baseline_space(row: pd.Series) -> bool:
    return _registered_follow_up(row) or bool(row["is_reference"])


def _pair(settings: Settings, src_a: dict[str, ImageSource], src_b: dict[str, ImageSource], sequence: str,
          baseline_space: bool) -> tuple[Volume, Volume, Volume | None, Volume | None]:
    """Both images and their labels. In baseline space every file is put on the later image's
    grid (one world); in native space each study's labels on its own image's grid."""
    vol_b = load_volume(settings, src_b[sequence])
    grid_a = src_b[sequence] if baseline_space else src_a[sequence]
    vol_a = load_on_grid(settings, src_a[sequence], grid_a, interpolation="linear")
    lab_a = (load_on_grid(settings, src_a["labels"], grid_a, interpolation="nearest")
             if "labels" in src_a else None)
    lab_b = (load_on_grid(settings, src_b["labels"], src_b[sequence], interpolation="nearest")
             if "labels" in src_b else None)
    return vol_a, vol_b, lab_a, lab_b


def _lines_in_world(row: pd.Series, registered: bool) -> bool:
    """Whether the study's stored diameter ends are in the world of the volume shown for it: they
    are in the baseline space for a registered follow-up, in its own space otherwise."""
    return registered or not _registered_follow_up(row) or bool(row["is_reference"])


def render(ref: data.SnapshotRef, patient_key: str, settings: Settings, user: SessionUser | None = None) -> None:
    st.header(f"Image review · {patient_key}")
    bundle = data.patient_bundle(ref, patient_key)
    studies, lesions, history = bundle["images"], bundle["lesions"], bundle["reader"]
    studies = studies[[bool(n) for n in studies["native"]]].reset_index(drop=True)
    if studies.empty:
        st.warning("No stored volumes for this patient.")
        return
    labels_of = {f"{pd.Timestamp(r.study_date).date()} ({i + 1})": i for i, r in enumerate(studies.itertuples())}
    names = list(labels_of)
    c1, c2, c3 = st.columns(3)
    first = c1.selectbox("Earlier timepoint", names, index=max(len(names) - 2, 0), key="img_a")
    second = c2.selectbox("Later timepoint", names, index=len(names) - 1, key="img_b")
    plane = Plane(c3.radio("Plane", [p.value for p in Plane], horizontal=True, key="img_plane"))
    row_a, row_b = studies.iloc[labels_of[first]], studies.iloc[labels_of[second]]
    st.markdown(" · ".join(f"[{name}: SEG and RANO report in the DICOM viewer]"  # issue 33: OHIF (gliowatch viewer)
                           f"({viewer_url(settings.viewer.base_url, str(r['study_uid']))})"
                           for name, r in ((first, row_a), (second, row_b))))
    registered = _in_baseline_space(row_a) and _in_baseline_space(row_b)
    if registered:
        st.success("Registered volumes (baseline space).")
    else:
        st.warning("Native volumes, not registered: slices are matched by scanner position, and the "
                   "difference view needs registered volumes.")
    native_labels = data.labels_paths(ref, patient_key)
    src_a, src_b = (study_sources(row, baseline_space=registered, labels_path=native_labels.get(row["study_uid"]),
                                  reference_sequence=settings.registration.reference)
                    for row in (row_a, row_b))
    sequences = [s for s in ("T1c", "FLAIR", "T2", "T1") if s in src_a and s in src_b]
    if not sequences:
        st.warning("The two timepoints share no sequence.")
        return
    sequence = st.radio("Sequence", sequences, horizontal=True, key="img_seq")
    try:
        vol_a, vol_b, lab_a, lab_b = _pair(settings, src_a, src_b, sequence, registered)
    except (GlioWatchError, FileNotFoundError) as exc:
        st.error(f"A stored volume cannot be read: {exc}")
        return
    rows_of = {r["study_uid"]: _study_lesions(lesions, r["study_uid"]) if _lines_in_world(r, registered) else []
               for r in (row_a, row_b)}
    reader_of = {r["study_uid"]: _reader_drawn(history, r["study_uid"]) if _lines_in_world(r, registered) else []
                 for r in (row_a, row_b)}
    n = slice_count(vol_b.array.shape, plane)
    slider_key = f"img_slice_{plane.value}"
    measured = {f"#{r['lesion_index']} ({r['d1_mm']:.1f} × {r['d2_mm']:.1f} mm)": k for r in rows_of[row_b["study_uid"]]
                if plane == Plane.AXIAL and (k := measured_slice(r, vol_b)) is not None}
    measured |= {f"reader-entered new lesion ({r['d1_mm']:.1f} × {r['d2_mm']:.1f} mm)": k
                 for r in reader_of[row_b["study_uid"]]
                 if plane == Plane.AXIAL and (k := measured_slice(r, vol_b)) is not None}
    if measured:
        g1, g2 = st.columns([3, 1])
        chosen = g1.selectbox("Lesion measured on the later scan", list(measured), key="img_goto_lesion")
        g2.button("Show its slice", key="img_goto", on_click=st.session_state.__setitem__,
                  args=(slider_key, measured[chosen]))
    start = {} if slider_key in st.session_state else {"value": next(iter(measured.values()), n // 2)}
    index_b = st.slider("Slice", 0, n - 1, key=slider_key, **start)  # "Show its slice" sets the state
    index_a = index_b if registered else matching_index(vol_b, vol_a, plane, index_b)
    level0, width0 = default_window(vol_b.array)
    c1, c2 = st.columns(2)
    top = float(max(np.max(vol_b.array), 1.0))
    level = c1.slider("Level", 0.0, top, float(min(level0, top)), key=f"img_level_{sequence}")
    width = c2.slider("Window", 1.0, top * 2, float(min(max(width0, 1.0), top * 2)),
                      key=f"img_width_{sequence}")
    toggles = st.columns(len(Label) + 1)
    show = {lab for i, lab in enumerate(Label)
            if toggles[i].checkbox(lab.name, value=lab in (Label.ET, Label.NETC), key=f"img_show_{lab.name}")}
    diff = toggles[-1].checkbox("Difference view", value=False, key="img_diff", disabled=not registered)
    left, right = st.columns(2)
    clickable: dict = {}
    for column, vol, lab, idx, caption in ((left, vol_a, lab_a, index_a, first),
                                           (right, vol_b, lab_b, index_b, second)):
        grey = apply_window(extract_slice(vol.array, plane, idx), level=level, width=width)
        labels = _label_slice(lab, vol, plane, idx)
        rgb = overlay(grey, labels, show=show)
        shown = to_physical_aspect(rgb, row_mm=pixel_mm(vol, plane)[0], col_mm=pixel_mm(vol, plane)[1])
        row = row_a if column is left else row_b
        drawn = segments_on_slice(rows_of[row["study_uid"]], vol, plane, idx)
        shown = draw_segments(shown, drawn, slice_shape=grey.shape) if drawn else shown
        by_reader = segments_on_slice(reader_of[row["study_uid"]], vol, plane, idx)
        shown = draw_segments(shown, by_reader, slice_shape=grey.shape, colours=READER_COLOURS) if by_reader else shown
        lines = f" · RANO lines: {', '.join(f'#{d.lesion_index}' for d in drawn)}" if drawn else ""
        lines += " · reader-entered new lesion (pink)" if by_reader else ""
        column.image(shown, caption=f"{caption} · {sequence} · {plane.value} slice {idx}{lines}", width=460)
        if column is right:
            clickable = {"rgb": rgb, "stored": drawn, "reader": by_reader, "pixel_mm": pixel_mm(vol, plane),
                         "ends_stored": _lines_in_world(row_b, registered)}
    if user is not None and user.role.may_act:
        _click_measurement(settings, user, patient_key, row_b["study_uid"], vol_b, index_b, sequence, plane,
                           lesions, clickable)
    if diff and registered:
        _difference(vol_a, vol_b, lab_a, lab_b, plane, index_b, width)
    if not registered and not _lines_in_world(row_b, registered):
        st.caption("The diameters of a registered follow-up were measured in the baseline space; "
                   "they are drawn on the registered volumes only.")
    for row, caption in ((row_a, first), (row_b, second)):
        lesion_table.show(lesions, history, row["study_uid"], caption)
    reader_panel.render(settings, user, patient_key, row_b["study_uid"], second, lesions, history)


def _click_measurement(settings: Settings, user: SessionUser, patient_key: str, study_uid: str, vol: Volume,
                       idx: int, sequence: str, plane: Plane, lesions: pd.DataFrame, shown: dict) -> None:
    """Diameters measured by clicking: on the later scan's axial T1c slice, as RANO measures them."""
    if sequence != "T1c" or plane is not Plane.AXIAL:
        st.caption("To measure diameters by clicking, show the T1c sequence in the axial plane.")
        return
    mine = lesions[lesions["study_uid"] == study_uid] if not lesions.empty else lesions
    options = sorted(int(i) for i in mine["lesion_index"]) if not mine.empty else []
    click_panel.render(settings, user, patient_key, study_uid, volume=vol, rgb=shown["rgb"], index=idx,
                       pixel_mm=shown["pixel_mm"], stored=shown["stored"], lesion_options=options,
                       default_lesion=shown["stored"][0].lesion_index if shown["stored"] else None,
                       reader_drawn=shown["reader"], ends_stored=shown["ends_stored"])


def _reader_drawn(history: pd.DataFrame, study_uid: str) -> list[dict]:
    """The new lesion a reader drew on the scan (its clicked ends), as a lesion row, or none."""
    lesion = lesion_table.reader_new_lesion(history, study_uid)
    return [lesion] if lesion is not None and lesion["drawn"] else []


def _study_lesions(lesions: pd.DataFrame, study_uid: str) -> list[dict]:
    if lesions.empty:
        return []
    return lesions[lesions["study_uid"] == study_uid].sort_values("product_mm2", ascending=False).to_dict("records")


def _label_slice(lab: Volume | None, vol: Volume, plane: Plane, idx: int) -> np.ndarray | None:
    if lab is None or lab.array.shape != vol.array.shape:
        return None
    return extract_slice(lab.array, plane, idx)


def _difference(vol_a: Volume, vol_b: Volume, lab_a: Volume | None, lab_b: Volume | None,
                plane: Plane, idx: int, width: float) -> None:
    if vol_a.array.shape != vol_b.array.shape:
        st.warning("The registered volumes are on different grids; no difference view.")
        return
    rgb = difference_rgb(extract_slice(vol_a.array, plane, idx), extract_slice(vol_b.array, plane, idx),
                         width=width)
    if lab_a is not None and lab_b is not None and lab_a.array.shape == lab_b.array.shape == vol_a.array.shape:
        rgb[new_enhancement(extract_slice(lab_a.array, plane, idx), extract_slice(lab_b.array, plane, idx))] = (
            255, 0, 255)
    row_mm, col_mm = pixel_mm(vol_b, plane)
    st.image(to_physical_aspect(rgb, row_mm=row_mm, col_mm=col_mm),
             caption="Difference (later − earlier): red rose, blue fell; magenta = new enhancement (ET)",
             width=420)
