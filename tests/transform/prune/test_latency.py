"""The width-latency model: which widths are allowed and measured, the pair model, and (slow)
a real measurement on x86 (the digits teacher's model, measured once per session by
``digits_prune_run`` for the pruning job to read): lowered widths, calls timed inside their own
networks and journaled, the model reproducing what was measured at the measured widths, and the probe that finds which
kernels touch which group."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.transform.prune.latency import (PositionModel, WidthLatencyModel, fit_offset, grid_widths,
                                             lane_widths, make_config, refine_adaptively,
                                             refine_widths)
from chamtvm.transform.prune.pwl import PiecewiseLinear


def test_lane_widths_are_multiples_of_the_granularity_and_the_full_width():
    assert lane_widths(64, 16) == [16, 32, 48, 64]
    assert lane_widths(72, 16, min_keep=0.25) == [32, 48, 64, 72]  # 0.25 * 72 = 18 -> 32
    assert lane_widths(8, 16) == [8]                               # narrower than a lane group: kept
    assert lane_widths(24, 1, min_keep=0.5) == list(range(12, 25))
    with pytest.raises(ValueError):
        lane_widths(16, 0)
    assert grid_widths(lane_widths(128, 8), 4) == [32, 64, 88, 120]  # indices 0, 4, 7, 11 of 32..120
    assert grid_widths([16, 32, 48], 6) == [16, 32] and grid_widths([8], 4) == []
    assert make_config({"a": 8, "b": 16}, {"a": 16, "b": 16}) == (("a", 8),)


def test_pair_offset_recovers_a_bilinear_cost_with_overhead():
    c, k, wa_full, wb_full = 3.0, 0.01, 64, 96
    cost = lambda wa, wb: c + k * wa * wb
    full = cost(wa_full, wb_full)
    fa = lambda wa: cost(wa, wb_full)
    fb = lambda wb: cost(wa_full, wb)
    diag = [(fa(w), fb(v), cost(w, v)) for w, v in [(16, 24), (32, 48), (48, 72)]]
    got = fit_offset(full, diag)
    assert got == pytest.approx(c, rel=0.03)
    pm = PositionModel("conv", ("a", "b"), full,
                       {"a": PiecewiseLinear().fit([16, 32, 48, 64], [fa(w) for w in (16, 32, 48, 64)]),
                        "b": PiecewiseLinear().fit([24, 48, 72, 96], [fb(w) for w in (24, 48, 72, 96)])}, got)
    assert pm.predict_us({"a": 24, "b": 40}) == pytest.approx(cost(24, 40), rel=0.01)
    assert fit_offset(full, []) == 0.0


def test_refinement_measures_where_the_layer_latency_jumps():
    # a cliff between 32 and 64 channels (a working set leaving a cache): the extra widths go there
    ws, us = [16, 32, 64, 96], [10.0, 12.0, 40.0, 44.0]
    pm = PositionModel("conv", ("a",), 48.0, {"a": PiecewiseLinear().fit(ws + [128], us + [48.0])})
    wm = WidthLatencyModel("x86", {"a": 128}, [pm])
    cands = {"a": lane_widths(128, 8, min_keep=0.125)}
    more = refine_widths(wm, {"a": ws}, cands, 2)
    assert more["a"] == [48, 56]          # the middle of 32..64 (48), then of one of its halves
    assert all(w % 8 == 0 and w not in ws for w in more["a"])
    assert refine_widths(wm, {"a": ws}, cands, 0) == {"a": []}
    assert refine_widths(wm, {"a": []}, cands, 2) == {"a": []}


def test_layer_leave_one_out_interpolates_each_interior_width_from_the_others():
    # group a: measured at 16, 32, 48 and full 64; linear up to 32, a cliff at 48
    ws, us = [16, 32, 48, 64], [10.0, 20.0, 60.0, 70.0]
    pm = PositionModel("conv", ("a",), 70.0, {"a": PiecewiseLinear().fit(ws, us)})
    other = PositionModel("add", (), 5.0)
    wm = WidthLatencyModel("x86", {"a": 64}, [pm, other])
    loo = {c["width"]: c for c in wm.layer_leave_one_out("a")}
    assert sorted(loo) == [32, 48]                          # the narrowest and the full width are ends
    assert loo[32]["measured_us"] == 20.0 and loo[32]["predicted_us"] == pytest.approx(35.0)  # 10..60 halfway
    assert loo[48]["predicted_us"] == pytest.approx(45.0) and loo[48]["error_pct"] == pytest.approx(-25.0)
    assert wm.layer_leave_one_out("b") == []


def test_adaptive_refinement_follows_the_cliff_its_measurements_reveal():
    # flat at 10 us to 24 channels, a cliff to 30 us by 32, flat, then rising to 40 us at 128;
    # the first pass measured 16 and 64 only, so the cliff hides inside 16..64
    def true_us(w):
        return 10.0 if w <= 24 else 30.0 + max(0, w - 64) * 10 / 64

    def model_on(grid):
        ws = sorted(set(grid["a"]) | {128})
        curve = PiecewiseLinear().fit(ws, [true_us(w) for w in ws])
        return WidthLatencyModel("x86", {"a": 128}, [PositionModel("conv", ("a",), true_us(128), {"a": curve})])

    cands = {"a": lane_widths(128, 8, min_keep=0.125)}
    measured = []
    grid = refine_adaptively({"a": [16, 64]}, cands, 2, model_on, lambda more: measured.append(more))
    # round 1 measures the middle (40: already 30 us), round 2 the half the jump turned out to be in
    assert measured == [{"a": [40]}, {"a": [24]}] and grid == {"a": [16, 24, 40, 64]}
    # picking both from the first fit splits the flat half too (the jump assumed shared)
    assert refine_widths(model_on({"a": [16, 64]}), {"a": [16, 64]}, cands, 2) == {"a": [40, 48]}
    # no candidate left: the rounds stop
    few = {"a": [16, 64, 128]}
    assert refine_adaptively({"a": [16]}, few, 5, model_on, measured.append) == {"a": [16, 64]}


@pytest.mark.slow
def test_width_model_measured_on_x86(digits_prune_run, x86):
    from chamtvm.transform.prune.latency import WidthProbe, plan_measurement

    wm, probe, graph = digits_prune_run.wm, digits_prune_run.probe, digits_prune_run.graph
    grid = wm.grid
    assert all(w % x86.lanes == 0 for ws in grid.values() for w in ws)  # multiples of the target's lanes
    # every call position of the unpruned network is modelled, in order
    assert [p.signature for p in wm.positions] == probe.layouts[()].signature
    # the probe: the stem convolution writes the stem group; the classifier reads the head group
    # (the stem keeps its 8 channels, one lane group: its position depends on no modelled width)
    touches = plan_measurement(probe, grid).touches  # the probe's lowerings, read back
    assert touches[0] == ("features.0.0",) and grid["features.0.0"] == [] and wm.positions[0].groups == ()
    assert touches[-1] == wm.positions[-1].groups == ("head.conv.0",)
    # at a measured width the model gives the measured kernel times back
    hidden = "features.2.body.0.0"
    # the first pass's evenly spread lane multiples: 4 with 8 lanes (AVX2), fewer with 16 (AVX-512)
    from tests.transform.prune.conftest import E2E_WIDTHS

    assert grid[hidden] == grid_widths(lane_widths(graph.widths[hidden], x86.lanes), E2E_WIDTHS)
    assert len(grid[hidden]) >= 2
    # (each position's time at a width: the mean over the measured networks that cut the group
    # to it and leave the position's other groups whole: its colour's network, and a diagonal
    # network where the position reads no other group)
    measured = [c for c in probe.layouts if c and c in {*plan_measurement(probe, grid).colour_configs(graph.widths),
                                                        *[tuple(r["widths"].items()) for r in wm.calibration]}]
    assert sorted({dict(c)[hidden] for c in measured if hidden in dict(c)}) == grid[hidden]
    for w in grid[hidden]:
        layer = 0.0
        for p, pos in enumerate(wm.positions):
            if hidden in pos.groups:
                times = [probe.times_us(c)[p] for c in measured if dict(c).get(hidden) == w
                         and not any(o in dict(c) for o in pos.groups if o != hidden)]
                assert times
                layer += float(np.mean(times))
        assert wm.layer_us(hidden, w) == pytest.approx(layer, rel=1e-9)
    # the calls were timed inside their own networks (x86's runner can), one journal row per
    # configuration, every call of it timed
    assert probe.timing == wm.timing == "network"
    full_row = probe.calls_table.get(probe.calls_key(()))
    assert full_row["symbols"] == probe.layouts[()].symbols and len(full_row["calls_us"]) == len(wm.positions)
    assert all(t >= 0 for t in full_row["calls_us"]) and sum(full_row["calls_us"]) > 0
    # read back by a new probe from the journal: the same times, nothing measured again
    again = WidthProbe(probe.model, graph, probe.target, probe.table, _NoRunner(), probe.schedules,
                       probe.luts_dir, timing="network")
    before = len(again.calls_table)
    again.layouts = probe.layouts
    cut = measured[-1]
    again.measure([(), cut])
    assert len(again.calls_table.load()) == before and again.times_us(cut) == probe.times_us(cut)
    # unpruned: the modelled sum is the measured one, and the end-to-end calibration was measured
    assert wm.kernel_sum_us() == pytest.approx(sum(probe.times_us(())))
    assert [c["widths"] == {} for c in wm.calibration] == [True, False, False]  # unpruned, then two diagonals
    assert all(c["measured_us"] > 0 for c in wm.calibration) and wm.alpha > 0
    # narrower is faster in the model (monotone in the widths, as measured)
    assert wm.predict_ms({g: min(grid[g] or [graph.widths[g]]) for g in graph.widths}) < wm.predict_ms()


class _NoRunner:
    """A runner that fails any measurement: what is journaled must not be measured again."""

    label, emulated = "none", False

    def times_in_network(self) -> bool:
        return True

    def measure_batch_network(self, *args, **kwargs):
        raise AssertionError("measured a configuration its journal already holds")


def test_probe_refuses_an_unknown_timing(x86):
    from chamtvm.transform.prune.latency import WidthProbe

    with pytest.raises(ValueError, match="timing must be one of"):
        WidthProbe(None, None, x86, None, _NoRunner(), timing="alone")
