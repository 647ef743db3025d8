"""Growth since nadir: exponential and Gompertz fits, SGR, VDT, and a forecast of PD (clinical-spec 3.2).

Per patient and label (ET, SNFH), the volumes from the nadir (the smallest volume; the earliest
if tied) onwards are fitted on the log scale:

* exponential ``ln V = a + r t``: SGR = r (per day), VDT = ln 2 / r; evaluable from 3 points (2
  points fit exactly, with no interval);
* Gompertz ``ln V = ln K + b exp(-alpha t)`` (b = ln(V0/K) < 0), K bounded to
  [max observed, ``gompertz_k_max_ml``]: evaluable from 4 points (3 fit its 3 parameters exactly,
  with no interval). Its SGR is the instantaneous one at the last scan, alpha ln(K / V), and
  VDT = ln 2 / SGR.

A fit is evaluable only with its interval (issue 32).

Forecast: the date the volume would reach the PD threshold, nadir x (1 + ``pd_volume_increase``)
(+40 % in 3D), with an interval: the central ``interval_level`` of crossing dates over
``interval_draws`` parameter draws from a normal with the least-squares covariance (parametric
Monte Carlo, fixed seed, so results repeat). Draws that never cross leave the upper end open.
Crossings beyond ``forecast_horizon_days`` after the nadir are reported as not forecast. A crossing
is never dated in the past: a threshold already reached is reported as "crossed on" the first scan
at or above it (``crossed_on``, no forecast), a fitted crossing before the last scan that the scans
do not show is not forecast, and an interval's lower end is clipped at the last scan. Not enough
points, a nadir of 0, or a fit that fails -> not evaluable, with the reason.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from engine.criteria import GrowthCriteria

INTERVAL_METHOD = "parametric Monte Carlo from the least-squares covariance of the log-volume fit"


class GrowthModel(StrEnum):
    EXPONENTIAL = "exponential"
    GOMPERTZ = "gompertz"


@dataclass(frozen=True, slots=True, kw_only=True)
class GrowthFit:
    model: GrowthModel
    label: str
    evaluable: bool
    reason: str
    n_points: int
    nadir_date: date | None = None
    nadir_ml: float | None = None
    sgr_per_day: float | None = None
    vdt_days: float | None = None
    params: tuple[tuple[str, float], ...] = ()
    threshold_ml: float | None = None
    crossing_date: date | None = None
    crossing_low: date | None = None
    crossing_high: date | None = None  # None with crossing_low set: not bounded above
    interval_method: str = ""
    already_crossed: bool = False
    crossed_on: date | None = None  # the first scan at or above the threshold, when already crossed


def fit_growth_since_nadir(
    points: Sequence[tuple[date, float]], *, label: str, growth: GrowthCriteria, seed: int = 0
) -> tuple[GrowthFit, GrowthFit]:
    """Exponential and Gompertz fits of one label's volumes (date, mL) since its nadir."""
    return tuple(  # type: ignore[return-value]
        fit_growth(points, label=label, growth=growth, model=model, seed=seed) for model in GrowthModel
    )


def fit_growth(
    points: Sequence[tuple[date, float]], *, label: str, growth: GrowthCriteria, model: GrowthModel, seed: int = 0
) -> GrowthFit:
    clean = sorted((d, float(v)) for d, v in points if v is not None and math.isfinite(v))
    if any(v < 0 for _, v in clean):
        msg = f"Volumes must be >= 0, got {[v for _, v in clean if v < 0]}"
        raise ValueError(msg)
    needed = 3 if model is GrowthModel.EXPONENTIAL else 4  # one more point than parameters: an interval
    if not clean:
        return GrowthFit(model=model, label=label, evaluable=False, n_points=0,
                         reason=f"not evaluable: no {label} volumes")
    nadir_ml = min(v for _, v in clean)
    start = next(i for i, (_, v) in enumerate(clean) if v == nadir_ml)
    since = clean[start:]
    nadir_date = since[0][0]
    base = {"model": model, "label": label, "n_points": len(since), "nadir_date": nadir_date, "nadir_ml": nadir_ml}
    if nadir_ml <= 0:
        return GrowthFit(evaluable=False, reason=f"not evaluable: the {label} nadir is 0 mL "
                         f"({nadir_date.isoformat()}), so growth cannot be fitted on a log scale", **base)
    if len(since) < needed:
        return GrowthFit(evaluable=False, reason=f"not evaluable: {len(since)} {label} volume(s) since the nadir "
                         f"of {nadir_date.isoformat()}; a {model.value} fit needs >= {needed} (one more than its "
                         "parameters, for an interval)", **base)
    t = np.array([(d - nadir_date).days for d, _ in since], dtype=float)
    y = np.log([v for _, v in since])
    threshold = nadir_ml * (1.0 + growth.pd_volume_increase)
    try:
        if model is GrowthModel.EXPONENTIAL:
            theta, cov, crossing, rate = _fit_exponential(t, y)
            names = ("log_v0", "rate_per_day")
        else:
            theta, cov, crossing, rate = _fit_gompertz(t, y, growth.gompertz_k_max_ml)
            names = ("log_k", "b", "alpha_per_day")
    except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
        return GrowthFit(evaluable=False, reason=f"not evaluable: the {model.value} fit failed ({exc})", **base)
    t_cross = crossing(theta, math.log(threshold))
    sgr = rate(theta, t[-1])
    vdt = math.log(2) / sgr if sgr > 0 else None
    if cov is None:
        return GrowthFit(evaluable=False, reason=f"not evaluable: the {model.value} fit of {len(since)} {label} "
                         "volumes has no covariance, so no interval", sgr_per_day=float(sgr), vdt_days=vdt, **base)
    low, high = _interval(theta, cov, crossing, math.log(threshold), growth, seed)
    horizon, last = growth.forecast_horizon_days, float(t[-1])
    crossed_on = next((d for d, v in since if v >= threshold), None)

    def day(x: float | None) -> date | None:
        return nadir_date + timedelta(days=float(x)) if x is not None and math.isfinite(x) and x <= horizon else None

    head = (f"{model.value} fit of {len(since)} {label} volumes since the nadir {nadir_ml:.2f} mL "
            f"({nadir_date.isoformat()}): SGR {sgr * 100:+.2f} %/day, "
            + (f"VDT {vdt:.0f} days" if vdt else "not growing (no doubling time)")
            + f"; PD threshold {threshold:.2f} mL ")
    forecast = low_day = high_day = None
    if crossed_on is not None:
        tail = f"crossed on {crossed_on.isoformat()} (first scan at or above it), so nothing to forecast"
    elif not math.isfinite(t_cross) or day(t_cross) is None:
        tail = "not forecast to be reached"
    elif t_cross <= last:
        tail = (f"not forecast: the fit places the crossing on or before the last scan "
                f"({since[-1][0].isoformat()}), which is still below it")
    else:
        forecast = day(t_cross)
        clipped = low is not None and low < last
        low_day = day(max(low, last)) if low is not None else None
        high_day = day(high) if low is not None else None
        span = (f"{low_day.isoformat() if low_day else 'open'} to {high_day.isoformat() if high_day else 'open'}"
                + (", lower end clipped at the last scan" if clipped else ""))
        tail = f"forecast {forecast.isoformat()} ({growth.interval_level * 100:.0f} % interval {span})"
    return GrowthFit(
        evaluable=True, reason=head + tail, sgr_per_day=float(sgr), vdt_days=vdt,
        params=tuple(zip(names, (float(v) for v in theta), strict=True)), threshold_ml=threshold,
        crossing_date=forecast, crossing_low=low_day, crossing_high=high_day,
        interval_method=INTERVAL_METHOD, already_crossed=crossed_on is not None, crossed_on=crossed_on, **base,
    )


def _fit_exponential(t: np.ndarray, y: np.ndarray):  # noqa: ANN202
    if np.ptp(t) == 0:
        raise ValueError("all volumes share one date")
    design = np.column_stack([np.ones_like(t), t])
    theta, *_ = np.linalg.lstsq(design, y, rcond=None)
    cov = None
    if len(t) >= 3:
        dof = len(t) - 2
        s2 = float(np.sum((y - design @ theta) ** 2)) / dof
        cov = s2 * np.linalg.inv(design.T @ design)

    def crossing(p: np.ndarray, log_threshold: float) -> float:
        return (log_threshold - p[0]) / p[1] if p[1] > 0 else math.inf

    def rate(p: np.ndarray, _t: float) -> float:
        return float(p[1])

    return theta, cov, crossing, rate


def _gompertz(t: np.ndarray, log_k: float, b: float, alpha: float) -> np.ndarray:
    return log_k + b * np.exp(-alpha * t)


def _fit_gompertz(t: np.ndarray, y: np.ndarray, k_max_ml: float):  # noqa: ANN202
    log_max = float(np.max(y))
    upper_k = math.log(k_max_ml)
    if upper_k <= log_max:
        raise ValueError(f"observed volume exceeds the carrying-capacity bound {k_max_ml:g} mL")
    k0 = min(log_max + math.log(2.0), (log_max + upper_k) / 2)
    p0 = (k0, min(-1e-3, float(y[0]) - k0), 0.01)
    with warnings.catch_warnings():  # 3 points: no covariance, which the caller is told (cov None)
        warnings.simplefilter("ignore", OptimizeWarning)
        theta, pcov = curve_fit(_gompertz, t, y, p0=p0, bounds=([log_max, -50.0, 1e-6], [upper_k, -1e-9, 1.0]),
                                maxfev=20000)
    cov = pcov if len(t) >= 4 and np.all(np.isfinite(pcov)) else None

    def crossing(p: np.ndarray, log_threshold: float) -> float:
        log_k, b, alpha = p
        if log_threshold >= log_k or b >= 0 or alpha <= 0:
            return math.inf
        ratio = (log_threshold - log_k) / b
        return -math.log(ratio) / alpha if ratio > 0 else math.inf

    def rate(p: np.ndarray, at: float) -> float:
        log_k, b, alpha = p
        return float(alpha * (log_k - _gompertz(np.array([at]), log_k, b, alpha)[0]))

    return theta, cov, crossing, rate


def _interval(theta: np.ndarray, cov: np.ndarray, crossing: Callable, log_threshold: float,
              growth: GrowthCriteria, seed: int) -> tuple[float | None, float | None]:
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(theta, cov, size=growth.interval_draws, check_valid="ignore")
    times = np.array([crossing(d, log_threshold) for d in draws])
    tail = (1.0 - growth.interval_level) / 2
    low, high = np.quantile(times, [tail, 1.0 - tail], method="nearest")  # no interpolation with inf
    return (float(low) if math.isfinite(low) else None, float(high) if math.isfinite(high) else None)
