"""How numbers read in a reason sentence ("SPD 1,840 mm²", "+41 %", "12.4 mL")."""

from __future__ import annotations

from datetime import date

from engine.criteria import Mode


def burden_name(mode: Mode) -> str:
    return "SPD" if mode is Mode.TWO_D else "ET volume"


def format_burden(value: float, mode: Mode) -> str:
    if mode is Mode.TWO_D:
        return f"{value:,.0f} mm²" if value >= 100 else f"{value:,.1f} mm²"
    return f"{value:,.1f} mL" if value >= 10 else f"{value:.2f} mL"


def format_change(fraction: float) -> str:
    """``0.41`` -> ``"+41 %"``; ``-0.537`` -> ``"-54 %"``."""
    return f"{fraction * 100:+.0f} %"


def format_threshold(fraction: float) -> str:
    return f"{fraction * 100:+.0f} %"


def format_weeks(weeks: float) -> str:
    return f"{weeks:.1f} weeks"


def format_date(value: date | None) -> str:
    return value.isoformat() if value else "unknown date"


def format_dose(dose_mg: float | None) -> str:
    return "not recorded" if dose_mg is None else f"{dose_mg:g} mg/day"
