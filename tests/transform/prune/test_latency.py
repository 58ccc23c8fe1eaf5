"""The width-latency model: which widths are allowed and measured, the pair model, and (slow)
a real measurement on x86: lowered widths, kernels timed into the table, the model
reproducing what was measured at the measured widths, and the probe that finds which
kernels touch which group."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.transform.prune.latency import (PositionModel, WidthLatencyModel, fit_offset, grid_widths,
                                             lane_widths, make_config, refine_widths)
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


@pytest.mark.slow
def test_width_model_measured_on_x86(tmp_path, x86):
    import torch

    from chamtvm.measure.local import LocalRunner
    from chamtvm.space.model import build_model, input_shape
    from chamtvm.space.schema import Arch, SearchSpace
    from chamtvm.table.store import LatencyTable
    from chamtvm.transform.prune.graph import trace_channel_groups
    from chamtvm.transform.prune.latency import build_width_model
    from tests.conftest import DATA

    space = SearchSpace.load(DATA / "space_tiny_gray.json")
    arch = Arch.from_dict({"resolution": 16, "stem_channels": 8, "head_channels": 32, "stages": [
        {"channels": 8, "blocks": 1, "expansion": 1, "kernel": 3},
        {"channels": 16, "blocks": 2, "expansion": 4, "kernel": 3},
        {"channels": 24, "blocks": 1, "expansion": 2, "kernel": 3}]})
    torch.set_num_threads(1)
    model, shape = build_model(space, arch), input_shape(space, arch)
    graph = trace_channel_groups(model, shape)
    grid = {g.name: [w for w in (4, 8, 16, 32) if w < g.width] for g in graph.groups}
    table = LatencyTable(tmp_path / "x86.jsonl").load()
    with LocalRunner(x86) as runner:
        wm, probe = build_width_model(model, graph, x86, table, runner, grid, calibration_networks=2)
    # every call position of the unpruned network is modelled, in order
    assert [p.signature for p in wm.positions] == probe.layouts[()].signature
    # the stem convolution writes the stem group; the classifier reads the head group
    assert wm.positions[0].groups == ("features.0.0",)
    assert wm.positions[-1].groups == ("head.conv.0",)
    # at a measured width the model gives the measured kernel times back
    hidden = "features.2.body.0.0"
    for w in grid[hidden]:
        cfg = make_config({hidden: w}, graph.widths)
        measured = sum(t for t, pos in zip(probe.times_us(cfg), wm.positions) if hidden in pos.groups)
        assert wm.layer_us(hidden, w) == pytest.approx(measured, rel=1e-9)
    # unpruned: the kernel sum is the table's, and the end-to-end calibration was measured
    assert wm.kernel_sum_us() == pytest.approx(sum(probe.times_us(())))
    assert [c["widths"] == {} for c in wm.calibration] == [True, False]  # unpruned, then one diagonal
    assert wm.calibration[0]["measured_us"] > 0 and wm.alpha > 0
    # narrower is faster in the model (monotone in the widths, as measured)
    assert wm.predict_ms({g: min(grid[g] or [graph.widths[g]]) for g in graph.widths}) < wm.predict_ms()
