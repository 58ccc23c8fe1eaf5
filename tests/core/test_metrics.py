"""Fidelity metrics and the one spread definition (behind every figure of the project)."""

import numpy as np
import pytest

from chamtvm.core.metrics import fidelity, iqr_spread_pct, spread_pct


def test_fidelity_counts_shares_errors_and_ranks():
    measured = [1.0, 2.0, 3.0, 4.0]
    predicted = [1.04, 2.3, 3.0, 3.5]  # errors 4 %, 15 %, 0 %, 12.5 %
    f = fidelity(predicted, measured)
    assert f["n"] == 4
    assert f["within_5pct"] == pytest.approx(0.5)
    assert f["within_10pct"] == pytest.approx(0.5)
    assert f["mape_pct"] == pytest.approx((4 + 15 + 0 + 12.5) / 4)
    assert f["median_ape_pct"] == pytest.approx((4 + 12.5) / 2)
    assert f["mean_error_pct"] == pytest.approx((4 + 15 + 0 - 12.5) / 4)  # signed: 3.5 is 12.5 % low
    assert f["max_ape_pct"] == pytest.approx(15)
    assert f["kendall_tau"] == pytest.approx(1.0)
    assert fidelity([4, 3, 2, 1], [1, 2, 3, 4])["kendall_tau"] == pytest.approx(-1.0)
    assert "kendall_tau" not in fidelity([1, 2], [1, 2])


def test_fidelity_refuses_bad_input():
    with pytest.raises(ValueError):
        fidelity([], [])
    with pytest.raises(ValueError):
        fidelity([1, 2], [1])
    with pytest.raises(ValueError):
        fidelity([1, 2], [0, 1])
    with pytest.raises(ValueError):
        fidelity([np.nan, 1], [1, 1])


def test_iqr_spread_is_the_interquartile_range_over_the_median():
    s = [10, 11, 12, 13, 14]
    assert iqr_spread_pct(s) == pytest.approx(100 * (13 - 11) / 12)
    assert iqr_spread_pct([5.0]) == 0.0
    with pytest.raises(ValueError):
        iqr_spread_pct([])
    # an outlier moves the range, not the IQR
    assert iqr_spread_pct(s + [1000]) < 25


def test_row_spread_uses_samples_and_falls_back_to_the_range():
    row = {"runtime_us_samples": [10, 11, 12, 13, 14], "runtime_us_min": 10, "runtime_us_max": 14,
           "runtime_us_p50": 12}
    assert spread_pct(row) == pytest.approx(iqr_spread_pct(row["runtime_us_samples"]))
    del row["runtime_us_samples"]
    assert spread_pct(row) == pytest.approx(100 * 4 / 12)


def test_error_pct_is_predicted_over_measured_minus_one():
    from chamtvm.core.metrics import error_pct

    assert error_pct(1.1, 1.0) == pytest.approx(10.0)
    assert error_pct(0.9, 1.2) == pytest.approx(-25.0)
    with pytest.raises(ValueError, match="positive"):
        error_pct(1.0, 0.0)
