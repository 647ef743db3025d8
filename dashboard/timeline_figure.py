"""The patient timeline as one plotly figure (no Streamlit here; the benchmark builds it too).

Row 1: volumes per label (mL) and SPD (mm², right axis), response bands coloured by category
(the final call when later scans settled it, else the call as it stood), the nadir marked, the
growth forecast with its interval, P(PsP) at preliminary PD. Row 2: treatment (surgery, RT window
shaded with the 12-week pseudoprogression window after RT end, chemotherapy cycles,
antiangiogenic start). Row 3: steroid dose (mg/day dexamethasone).

The figure is assembled from plain trace/shape/annotation dicts on one shared x axis with four
y axes (``make_subplots`` + ``add_vrect`` per band cost ~0.5 s per patient; this costs ~tens of ms).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go

#: band colours per response category (values as the store holds them).
RESPONSE_COLOURS: dict[str, str] = {
    "PRE_BASELINE": "#d9d9d9", "BASELINE": "#9ecae1", "CR": "#31a354", "PR": "#a1d99b",
    "MR": "#c7e9c0", "SD": "#bdbdbd", "STEROID_WATCH": "#fdd0a2", "PRELIM_PD": "#fd8d3c",
    "PD": "#de2d26", "PSEUDOPROGRESSION": "#9e9ac8", "DISCORDANT": "#fee08b", "NE": "#ffffff",
}
RT_COLOUR, PSP_WINDOW_COLOUR, FORECAST_COLOUR = "#6baed6", "#bcbddc", "#fc9272"
PSP_WINDOW_DAYS = 84  # 12 weeks after the end of radiotherapy
LABEL_LINE_COLOURS = {"et_ml": "#e6ac00", "netc_ml": "#e62828", "snfh_ml": "#28c846", "rc_ml": "#2896ff"}
#: y-axis domains of the three rows (volumes, treatment, steroids), bottom to top on the page.
_DOMAINS = {"y": [0.42, 1.0], "y3": [0.22, 0.38], "y4": [0.0, 0.18]}
_LANES = {"SURGERY": "surgery", "CHEMO_START": "chemo", "CHEMO_CYCLE": "chemo", "CHEMO_END": "chemo",
          "ANTIANGIOGENIC_START": "antiangiogenic", "RT_START": "RT", "RT_END": "RT"}
_SYMBOLS = {"SURGERY": "x", "CHEMO_CYCLE": "circle", "CHEMO_START": "triangle-right",
            "CHEMO_END": "triangle-left", "ANTIANGIOGENIC_START": "diamond", "RT_START": "line-ns",
            "RT_END": "line-ns"}


def _as_date(value: object) -> date | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return None
    return pd.Timestamp(value).date()


def _volume_columns(timeline: pd.DataFrame) -> list[str]:
    return [c for c in LABEL_LINE_COLOURS if c in timeline.columns and timeline[c].notna().any()]


def _category(row: dict[str, Any]) -> str:
    final = row.get("final_response")
    return str(final) if isinstance(final, str) and final else str(row.get("response") or "NE")


def _band(x0: date, x1: date, colour: str, *, yref: str, opacity: float, dash: str | None = None) -> dict:
    return {"type": "rect", "xref": "x", "yref": yref, "x0": x0, "x1": x1, "y0": 0, "y1": 1,
            "fillcolor": colour, "opacity": opacity, "layer": "below",
            "line": {"width": 1 if dash else 0, "dash": dash or "solid", "color": colour}}


def _note(x: date, text: str, *, y: float = 1.0, yref: str = "y domain", **extra: Any) -> dict:
    return {"x": x, "y": y, "xref": "x", "yref": yref, "text": text, "showarrow": False,
            "xanchor": "left", "yanchor": "top", "font": {"size": 9}, **extra}


def build_timeline_figure(
    timeline: pd.DataFrame,
    events: pd.DataFrame,
    *,
    growth: pd.DataFrame | None = None,
    nadir: dict | None = None,
) -> go.Figure:
    """The timeline figure for one patient (``timeline`` ordered by ``scan_date``)."""
    traces: list[dict] = []
    shapes: list[dict] = []
    notes: list[dict] = []
    rows = timeline.to_dict("records") if not timeline.empty else []
    dates = [_as_date(r.get("scan_date")) for r in rows]
    if rows:
        hover = [f"{d}: {_category(r)}<br>{r.get('reason') or ''}" for d, r in zip(dates, rows, strict=True)]
        for i, (start, row) in enumerate(zip(dates, rows, strict=True)):
            if start is None:
                continue
            end = dates[i + 1] if i + 1 < len(dates) and dates[i + 1] else start + timedelta(days=30)
            category = _category(row)
            shapes.append(_band(start, end, RESPONSE_COLOURS.get(category, "#ffffff"), yref="y domain",
                                opacity=0.35))
            notes.append(_note(start, category, y=0.0, yanchor="bottom"))
        for column in _volume_columns(timeline):
            traces.append({"type": "scatter", "x": dates, "y": timeline[column].tolist(), "yaxis": "y",
                           "name": column.removesuffix("_ml").upper() + " (mL)", "mode": "lines+markers",
                           "line": {"color": LABEL_LINE_COLOURS[column]}, "hovertext": hover,
                           "hoverinfo": "text+y"})
        if "spd_mm2" in timeline.columns:
            traces.append({"type": "scatter", "x": dates, "y": timeline["spd_mm2"].tolist(), "yaxis": "y2",
                           "name": "SPD (mm²)", "mode": "lines+markers",
                           "line": {"dash": "dot", "color": "black"}, "hovertext": hover,
                           "hoverinfo": "text+y"})
        for d, row in zip(dates, rows, strict=True):
            p = row.get("psp_probability")
            if d is not None and p is not None and not pd.isna(p):
                notes.append({"x": d, "y": 1.0, "xref": "x", "yref": "y domain", "text": f"P(PsP) {float(p):.0%}",
                              "showarrow": True, "arrowhead": 2, "ax": 0, "ay": -25})
    traces += _nadir(nadir)
    _treatment(events, traces, shapes, notes)
    if growth is not None and not growth.empty:
        _forecast(growth, shapes, notes)
    layout = {
        "height": 620, "margin": {"l": 60, "r": 60, "t": 30, "b": 30}, "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.08}, "shapes": shapes, "annotations": notes,
        "xaxis": {"type": "date", "anchor": "y4"},
        "yaxis": {"domain": _DOMAINS["y"], "title": {"text": "volume (mL)"}, "rangemode": "nonnegative"},
        "yaxis2": {"overlaying": "y", "side": "right", "title": {"text": "SPD (mm²)"}, "showgrid": False,
                   "rangemode": "nonnegative"},  # an all-zero SPD course must not draw a negative tick
        "yaxis3": {"domain": _DOMAINS["y3"], "title": {"text": "treatment"}, "type": "category"},
        "yaxis4": {"domain": _DOMAINS["y4"], "title": {"text": "dexa mg/day"}, "rangemode": "tozero"},
    }
    return go.Figure(data=traces, layout=layout)


def _nadir(nadir: dict | None) -> list[dict]:
    """The nadir the assessment used (latest assessment's nadir date and burden)."""
    if not nadir or _as_date(nadir.get("nadir_date")) is None or nadir.get("nadir_burden") is None:
        return []
    on_spd = nadir.get("mode") == "2d"
    return [{"type": "scatter", "x": [_as_date(nadir["nadir_date"])], "y": [nadir["nadir_burden"]],
             "yaxis": "y2" if on_spd else "y", "name": f"nadir ({'mm²' if on_spd else 'mL ET'})",
             "mode": "markers", "marker": {"symbol": "star", "size": 16, "color": "#08519c"}}]


def _treatment(events: pd.DataFrame, traces: list[dict], shapes: list[dict], notes: list[dict]) -> None:
    if events is None or events.empty:
        return
    by_event: dict[str, list[date]] = {}
    for row in events.to_dict("records"):
        by_event.setdefault(str(row["event"]), []).append(_as_date(row["event_date"]))
    rt_start = (by_event.get("RT_START") or [None])[0]
    rt_end = max(by_event.get("RT_END") or [None], key=lambda d: d or date.min)
    if rt_start and rt_end:
        shapes.append(_band(rt_start, rt_end, RT_COLOUR, yref="paper", opacity=0.25))
        notes.append(_note(rt_start, "RT", yref="paper"))
    if rt_end:
        shapes.append(_band(rt_end, rt_end + timedelta(days=PSP_WINDOW_DAYS), PSP_WINDOW_COLOUR, yref="paper",
                            opacity=0.25, dash="dot"))
        notes.append(_note(rt_end, "12-wk PsP window", y=0.97, yref="paper"))
    for event, lane in _LANES.items():
        rows = events[events["event"] == event]
        if rows.empty:
            continue
        traces.append({"type": "scatter", "x": [_as_date(d) for d in rows["event_date"]],
                       "y": [lane] * len(rows), "yaxis": "y3", "mode": "markers", "showlegend": False,
                       "name": event.replace("_", " ").lower(),
                       "marker": {"symbol": _SYMBOLS[event], "size": 11, "line": {"width": 2}},
                       "hovertext": [f"{event} {v or ''}" for v in rows["value"]], "hoverinfo": "text+x"})
    steroids = events[events["event"] == "STEROID_DOSE"]
    if not steroids.empty:
        traces.append({"type": "scatter", "x": [_as_date(d) for d in steroids["event_date"]],
                       "y": pd.to_numeric(steroids["value"], errors="coerce").tolist(), "yaxis": "y4",
                       "mode": "lines+markers", "line": {"shape": "hv", "color": "#8c6d31"},
                       "name": "dexamethasone mg/day"})


def forecast_row(growth: pd.DataFrame) -> pd.Series | None:
    """The growth fit whose PD-threshold crossing is drawn: evaluable, ET first, exponential first."""
    if "crossing_date" not in growth.columns:
        return None
    rows = growth[growth["crossing_date"].notna()]
    if "evaluable" in rows.columns:
        rows = rows[rows["evaluable"].fillna(False).astype(bool)]
    if rows.empty:
        return None
    rank = (rows.get("label", pd.Series("", index=rows.index)).ne("ET").astype(int) * 2
            + rows.get("model", pd.Series("", index=rows.index)).ne("exponential").astype(int))
    return rows.loc[rank.sort_values(kind="stable").index[0]]


def _forecast(growth: pd.DataFrame, shapes: list[dict], notes: list[dict]) -> None:
    row = forecast_row(growth)
    if row is None:
        return
    when = _as_date(row["crossing_date"])
    lo, hi = _as_date(row.get("crossing_low")), _as_date(row.get("crossing_high"))
    if lo and hi:
        shapes.append(_band(lo, hi, FORECAST_COLOUR, yref="y domain", opacity=0.2))
    shapes.append({"type": "line", "xref": "x", "yref": "y domain", "x0": when, "x1": when, "y0": 0, "y1": 1,
                   "line": {"dash": "dash", "color": "#de2d26"}})
    label = f"{row.get('label', '')} {row.get('model', '')} forecast: PD threshold".strip()
    notes.append(_note(when, label, y=0.9, font={"size": 10, "color": "#de2d26"}))
