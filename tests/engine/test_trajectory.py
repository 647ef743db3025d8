"""Growth fits on volumes whose answer is known (exact exponential and Gompertz curves)."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from engine.criteria import load_criteria
from engine.trajectory import GrowthModel, fit_growth, fit_growth_since_nadir

GROWTH = load_criteria("rano2").growth
D0 = date(2025, 1, 1)


def series(days, volume) -> list[tuple[date, float]]:
    return [(D0 + timedelta(days=int(t)), float(volume(t))) for t in days]


def test_exponential_growth_gives_rate_doubling_time_and_pd_date() -> None:
    points = series((0, 20, 40), lambda t: 2.0 * math.exp(0.01 * t))  # r = 1 %/day
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    assert fit.evaluable
    assert fit.sgr_per_day == pytest.approx(0.01)
    assert fit.vdt_days == pytest.approx(math.log(2) / 0.01)
    assert fit.threshold_ml == pytest.approx(2.8)  # +40 % over the 2.0 mL nadir
    assert fit.already_crossed is True  # 40 days in, 2.98 mL >= 2.8 mL
    # issue 32: the fitted crossing (33.6 days) lies before the last scan, so it is not a forecast:
    # the threshold was crossed on the first scan at or above it
    assert fit.crossing_date is None and fit.crossed_on == D0 + timedelta(days=40)
    assert f"crossed on {(D0 + timedelta(days=40)).isoformat()}" in fit.reason and "forecast 20" not in fit.reason


def test_points_before_the_nadir_are_not_fitted() -> None:
    points = series((0, 30), lambda t: 10.0 - t / 10) + series((60, 90, 120), lambda t: 4.0 * math.exp(0.005 * (t - 60)))
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    assert fit.nadir_date == D0 + timedelta(days=60) and fit.n_points == 3
    assert fit.sgr_per_day == pytest.approx(0.005)


def test_noisy_growth_has_an_interval_around_the_forecast() -> None:
    rng = np.random.default_rng(3)
    points = series((0, 30, 60, 90, 120), lambda t: 3.0 * math.exp(0.002 * t + rng.normal(0, 0.03)))
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    assert fit.crossing_low is not None and fit.crossing_date is not None
    assert fit.crossing_low <= fit.crossing_date
    assert fit.crossing_high is None or fit.crossing_date <= fit.crossing_high
    assert "Monte Carlo" in fit.interval_method
    again = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    assert again == fit  # fixed seed: repeatable


def test_gompertz_recovers_a_known_plateau() -> None:
    k, v0, alpha = 50.0, 5.0, 0.01
    points = series((0, 20, 40, 60, 90, 120), lambda t: k * math.exp(math.log(v0 / k) * math.exp(-alpha * t)))
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.GOMPERTZ)
    params = dict(fit.params)
    assert math.exp(params["log_k"]) == pytest.approx(k, rel=0.01)
    assert params["alpha_per_day"] == pytest.approx(alpha, rel=0.01)
    # V reaches 1.4 x 5 mL at 15.8 days, before the last scan: crossed on the day-20 scan, not forecast (issue 32)
    assert fit.crossing_date is None and fit.crossed_on == D0 + timedelta(days=20)


def test_shrinking_tumour_has_nothing_to_fit_since_its_nadir() -> None:
    points = series((0, 30, 60), lambda t: 5.0 - t / 100)
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    assert fit.n_points == 1 and not fit.evaluable  # the nadir is the last scan


def test_flat_course_after_a_bump_has_no_doubling_time_and_no_forecast() -> None:
    points = [(D0, 2.0), (D0 + timedelta(days=2), 3.0), (D0 + timedelta(days=60), 2.05),
              (D0 + timedelta(days=120), 2.02)]
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    assert fit.evaluable and fit.sgr_per_day < 0
    assert fit.vdt_days is None and fit.crossing_date is None
    assert "not growing" in fit.reason


def test_too_few_points_is_not_evaluable_with_the_reason() -> None:
    points = series((0, 30), lambda t: 2.0 + t / 10)
    exp_fit, gompertz_fit = fit_growth_since_nadir(points, label="SNFH", growth=GROWTH)
    # issue 32: a 2-point fit has no interval, so it is not evaluable (it was evaluable without one)
    assert not exp_fit.evaluable and "needs >= 3" in exp_fit.reason and exp_fit.crossing_date is None
    assert not gompertz_fit.evaluable and "needs >= 4" in gompertz_fit.reason


def test_a_nadir_of_zero_is_not_evaluable() -> None:
    points = series((0, 30, 60), lambda t: t / 30)
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    assert not fit.evaluable and "nadir is 0 mL" in fit.reason


def test_crossing_beyond_the_horizon_is_not_forecast() -> None:
    points = series((0, 100, 200), lambda t: 2.0 * math.exp(1e-7 * t))  # practically flat
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    assert fit.evaluable and fit.crossing_date is None
    assert "not forecast to be reached" in fit.reason


def test_a_future_crossing_is_forecast_with_its_interval() -> None:
    points = series((0, 10, 20), lambda t: 2.0 * math.exp(0.005 * t))  # 2.21 mL at day 20, threshold 2.8 mL
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    expected = D0 + timedelta(days=math.log(1.4) / 0.005)  # 67.3 days, after the last scan
    assert fit.evaluable and not fit.already_crossed and fit.crossed_on is None
    assert abs((fit.crossing_date - expected).days) <= 1
    assert fit.crossing_low is not None and fit.crossing_low <= fit.crossing_date <= fit.crossing_high
    assert "90 % interval" in fit.reason and "Monte Carlo" in fit.interval_method


def test_a_crossing_in_the_past_is_reported_as_crossed_not_forecast() -> None:
    """Issue 32: a forecast must never date a crossing in the past ("crossed on <date>" instead)."""
    points = series((0, 30, 60, 90), lambda t: 2.0 * math.exp(0.01 * t))  # 2.8 mL reached at 33.6 d; 2.70 mL on day 30
    for model in GrowthModel:
        fit = fit_growth(points, label="ET", growth=GROWTH, model=model)
        last = points[-1][0]
        assert fit.crossing_date is None or fit.crossing_date > last
        assert fit.crossing_low is None or fit.crossing_low >= last
        if fit.evaluable:
            assert fit.crossed_on == D0 + timedelta(days=60) and "crossed on 2025-03-02" in fit.reason


def test_a_fitted_crossing_before_the_last_scan_that_the_scans_do_not_show_is_not_forecast() -> None:
    # the line through the log volumes reaches 2.8 mL before the last scan, yet no scan reached it
    points = [(D0 + timedelta(days=30 * i), v) for i, v in enumerate((2.0, 2.5, 2.79, 2.7))]
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    assert fit.evaluable and not fit.already_crossed and fit.crossed_on is None
    assert fit.crossing_date is None and "not forecast: the fit places the crossing on or before" in fit.reason


def test_an_interval_never_starts_before_the_last_scan() -> None:
    points = [(D0 + timedelta(days=30 * i), v) for i, v in enumerate((2.0, 2.2, 2.78, 2.6))]
    fit = fit_growth(points, label="ET", growth=GROWTH, model=GrowthModel.EXPONENTIAL)
    assert fit.crossing_date > points[-1][0] and fit.crossing_low == points[-1][0]
    assert "lower end clipped at the last scan" in fit.reason
