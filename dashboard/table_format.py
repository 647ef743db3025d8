"""Readable tables: headers in words with their units, rounded numbers, dates as dates, a dash
instead of "None". Column names stay the store's (tests and filters use them); only the page's
headers change, through ``column_config``."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

BLANK = "—"


@dataclass(frozen=True, slots=True)
class Column:
    """How one stored column is shown: its header and its kind of value."""

    label: str
    kind: str = "text"  # text, date, datetime, percent, bool, or a number format such as "{:,.1f}"
    wide: bool = False


def format_cell(value: object, kind: str) -> str:
    """One cell as text (pure).

    >>> format_cell(1840.04321, "{:,.1f}"), format_cell(0.433, "percent"), format_cell(None, "date")
    ('1,840.0', '43%', '—')
    """
    if value is None or (not isinstance(value, str | list | dict | tuple) and pd.isna(value)):  # type: ignore[arg-type]
        return BLANK
    if kind == "date":
        return f"{pd.Timestamp(value):%Y-%m-%d}"  # type: ignore[arg-type]
    if kind == "datetime":
        return f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"  # type: ignore[arg-type]
    if kind == "percent":
        return f"{float(value):.0%}"  # type: ignore[arg-type]
    if kind == "bool":
        return "yes" if bool(value) else "no"
    if kind.startswith("{"):
        return kind.format(float(value))  # type: ignore[arg-type]
    text = str(value).strip()
    return text or BLANK


def readable(frame: pd.DataFrame, columns: dict[str, Column]) -> pd.DataFrame:
    """The given columns that ``frame`` has, in that order, each cell as readable text (pure)."""
    shown = [c for c in columns if c in frame.columns]
    return pd.DataFrame({c: [format_cell(v, columns[c].kind) for v in frame[c]] for c in shown},
                        index=frame.index)


def show_table(frame: pd.DataFrame, columns: dict[str, Column], **kwargs: object) -> None:
    """``st.dataframe`` of :func:`readable` ``frame`` with the headers in words."""
    table = readable(frame, columns)
    config = {c: st.column_config.TextColumn(columns[c].label, width="large" if columns[c].wide else None)
              for c in table.columns}
    st.dataframe(table, hide_index=True, width="stretch", column_config=config, **kwargs)  # type: ignore[arg-type]
