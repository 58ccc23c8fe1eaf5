"""The piecewise-linear latency model on synthetic data: exact on piecewise-linear truths,
close on a smooth cost with lane steps, linear outside the measured range."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.transform.prune.pwl import PiecewiseLinear


def test_reproduces_a_piecewise_linear_truth_between_and_beyond_its_knots():
    knots = np.array([8, 16, 32, 64])
    truth = lambda w: np.where(w < 16, 2.0 + 0.5 * w, np.where(w < 32, 10.0 + 0.25 * (w - 16), 14.0 + 0.1 * (w - 32)))
    m = PiecewiseLinear().fit(knots, truth(knots))
    w = np.arange(8, 65)
    assert np.allclose(m.predict(w), truth(w))
    # beyond the ends the end segments continue
    assert m.predict(4) == pytest.approx(2.0 + 0.5 * 4)
    assert m.predict(80) == pytest.approx(14.0 + 0.1 * 48)


def test_lane_stepped_cost_is_within_5_percent_on_held_out_widths():
    lanes = 8
    cost = lambda w: 3.0 + 0.05 * (np.ceil(w / lanes) * lanes) ** 1.2  # vector tails cost a whole lane
    grid = np.arange(lanes, 129, 2 * lanes)              # measured: every other lane multiple
    held = np.arange(2 * lanes, 129, 2 * lanes)          # held out: the multiples in between
    m = PiecewiseLinear().fit(grid, cost(grid))
    err = np.abs(m.predict(held) - cost(held)) / cost(held)
    assert err.max() < 0.05
    # a width between lane multiples costs its whole lane: interpolation underestimates it
    assert m.predict(lanes + 1) < cost(lanes + 1)


def test_repeats_are_averaged_and_bad_inputs_refused():
    m = PiecewiseLinear().fit([8, 8, 16], [1.0, 3.0, 4.0])
    assert m.predict(8) == pytest.approx(2.0)
    assert PiecewiseLinear().fit([8], [5.0]).predict([1, 100]).tolist() == [5.0, 5.0]
    assert PiecewiseLinear.from_dict(m.to_dict()).predict(12) == pytest.approx(m.predict(12))
    with pytest.raises(ValueError, match="equal-length"):
        PiecewiseLinear().fit([1, 2], [1.0])
    with pytest.raises(ValueError, match="finite"):
        PiecewiseLinear().fit([1, 2], [1.0, float("nan")])
