"""The calibration sweeps: the grid of small kernels and the real-network sweep (shapes of
128-224 px networks, every operator kind real networks contain)."""

from __future__ import annotations

from collections import Counter

import pytest

from chamtvm.latency.features import fine_kind
from chamtvm.lower.calibration import (MAX_MFLOPS, REAL_KINDS, _probe_mflops, real_calibration_kernels, real_sweep_pool,
                                      real_sweep_specs)


def test_real_sweep_is_seeded_capped_and_reaches_real_working_sets():
    a, b = real_sweep_specs(6, seed=3), real_sweep_specs(6, seed=3)
    assert a == b and a != real_sweep_specs(6, seed=4)
    assert Counter(s["kind"] for s in a) == {k: 6 for k in REAL_KINDS}
    assert all(_probe_mflops(s) <= MAX_MFLOPS for s in a)
    sizes = {s["hw"] for s in real_sweep_specs(16)}
    assert max(sizes) >= 112 and min(sizes) <= 7  # beyond the space's 28 px on both sides
    assert {s["k"] for s in real_sweep_specs(16) if s["kind"] == "depthwise"} == {3, 5, 7}


@pytest.mark.slow
def test_real_sweep_lowers_to_every_fine_kernel_kind():
    kernels = real_calibration_kernels(n_per_kind=1, seed=0)
    kinds = Counter(fine_kind(k.name, [a.to_list() for a in k.args]) for k in kernels)
    for kind in ("conv1x1", "depthwise", "conv_kxk", "grouped", "dense", "batch_matmul", "softmax",
                 "layer_norm", "layout"):
        assert kinds[kind] >= 1, (kind, kinds)
    assert len({k.struct_hash for k in kernels}) == len(kernels)
    # the candidate pool of adaptive sampling: the same generator, deduplicated, without the excluded kernels
    pool = real_sweep_pool(1, [0], exclude={kernels[0].struct_hash})
    assert {k.struct_hash for k in pool} == {k.struct_hash for k in kernels[1:]}
