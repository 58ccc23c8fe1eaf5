"""The run's noise as the job report states it, from rows as the measurements wrote them."""

from __future__ import annotations

import pytest

from chamtvm.table.noise import noise_line, noise_summary


def _row(samples, nominal=True, ref=20.0, base=19.0, other=0.0, corrected=None, status="ok"):
    return {"runtime_us_samples": samples, "nominal": nominal, "reference_us": ref, "reference_baseline_us": base,
            "other_cores": other, "corrected_by_slow_factor": corrected, "status": status}


def test_noise_summary_counts_nominal_rows_corrections_spread_and_load():
    kernels = [_row([100, 101, 102, 103, 104]), _row([10, 10, 10, 10], nominal=False, ref=30.0, other=0.9),
               _row([50, 60, 70], corrected=1.2), _row([1, 2, 3], status="failed")]
    networks = [_row([1000, 1010, 1020, 1030, 1040], base=20.0)]
    s = noise_summary(kernels, networks, {"vm": {"baseline_us": 19.0, "slow_factor": 1.2}})
    k = s["kernels"]
    assert k["rows"] == 3 and k["nominal_share"] == pytest.approx(2 / 3) and k["corrected_by_slow_factor"] == 1
    assert k["other_cores_max"] == 0.9 and k["reference_over_baseline_median"] == pytest.approx(20 / 19)
    assert k["spread_pct_median"] == pytest.approx(2.0 / 102 * 100)  # IQR/median of the first row's samples
    assert s["networks"]["rows"] == 1 and s["networks"]["reference_over_baseline_median"] == 1.0
    assert s["reference"]["vm"]["slow_factor"] == 1.2
    line = noise_line(s)
    assert "3 kernels, 67 % at nominal speed, 1 corrected by the slow factor" in line and "1 networks" in line


def test_rows_without_reference_figures_say_nothing_about_nominal_speed():
    s = noise_summary([{"runtime_us_samples": [5, 5, 5]}], [])
    assert s["kernels"]["nominal_share"] is None and s["networks"] == {"rows": 0}
    assert noise_line(noise_summary([], [])) == "measurement noise: no measurement"
