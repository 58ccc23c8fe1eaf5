"""Adaptive sampling of the calibration sweep: the selection goes where the kernel model is
unsure (a constructed table whose rows are consistent in one region and few and disagreeing
in another), per kind, deterministically; and the whole loop on real kernels, measured for
real into a table, resumes without measuring anything twice."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.latency.adaptive import SweepSampler, adaptive_sweep, bootstrap_uncertainty, heldout_error
from chamtvm.latency.models import KernelCostModel
from chamtvm.lower.kernels import ArgSpec, Kernel
from chamtvm.table.fill import PreparedKernel
from chamtvm.table.store import LatencyTable, ok_row


def _conv1x1(cin: int, cout: int, hw: int) -> PreparedKernel:
    args = (ArgSpec((1, cin, hw, hw), "float32"), ArgSpec((cout, cin, 1, 1), "float32"),
            ArgSpec((1, cout, 1, 1), "float32"), ArgSpec((1, cout, hw, hw), "float32"))
    k = Kernel("fused_conv2d_add_relu", f"c{cin}_{cout}_{hw}", args, 2.0 * hw * hw * cin * cout)
    return PreparedKernel(f"fp/default/{k.struct_hash}", "default", k, None)


def _dense(n: int, d: int, dout: int) -> PreparedKernel:
    args = (ArgSpec((n, d), "float32"), ArgSpec((dout, d), "float32"), ArgSpec((n, dout), "float32"))
    k = Kernel("fused_matmul_add", f"d{n}_{d}_{dout}", args, 2.0 * n * d * dout)
    return PreparedKernel(f"fp/default/{k.struct_hash}", "default", k, None)


def _table(tmp_path, rng) -> tuple[LatencyTable, list, list, list]:
    """Small convs (7-14 px): many rows, time exactly proportional to FLOPs. Large convs
    (56-112 px): four rows whose times disagree by up to 3x. Dense kernels: consistent."""
    table = LatencyTable(tmp_path / "x86.jsonl").load()
    small = [_conv1x1(int(c), int(o), int(h)) for c, o, h in zip(rng.choice([16, 32, 64, 96, 128], 40),
                                                                 rng.choice([16, 32, 64, 96, 128], 40),
                                                                 rng.choice([7, 14], 40))]
    large = [_conv1x1(c, o, h) for c, o, h in ((32, 64, 56), (64, 32, 112), (96, 128, 56), (16, 96, 112))]
    dense = [_dense(int(n), int(d), int(o)) for n, d, o in zip(rng.choice([4, 16, 64], 20), rng.choice([64, 128, 256], 20),
                                                               rng.choice([64, 256, 512], 20))]
    rows = []
    for i, p in enumerate(small + large + dense):
        us = p.kernel.flops / 2e3 * (float(rng.choice([0.3, 3.0])) if p in large else 1.0)
        rows.append(ok_row(p.key, {"name": p.kernel.name, "args": [a.to_list() for a in p.kernel.args],
                                   "flops": p.kernel.flops, "bytes": p.kernel.bytes, "schedule": "default"},
                           [us] * 3, 1))
    table.append(rows)
    return table, small + dense, large, dense


def test_selection_prefers_the_shapes_the_model_is_unsure_of(tmp_path):
    rng = np.random.default_rng(0)
    table, initial_easy, initial_hard, dense = _table(tmp_path, rng)
    near = [_conv1x1(c, o, h) for c, o, h in ((24, 48, 7), (48, 24, 14), (80, 112, 7), (112, 80, 14), (40, 40, 14),
                                              (120, 16, 7))]
    far = [_conv1x1(c, o, h) for c, o, h in ((48, 80, 56), (80, 48, 112), (24, 120, 56), (112, 40, 112))]
    dense_cands = [_dense(8, 96, 128), _dense(32, 192, 384), _dense(48, 64, 64)]
    fast = lambda: KernelCostModel(n_estimators=40, cv_folds=0)  # noqa: E731
    sampler = SweepSampler(table, initial_easy + initial_hard, near + far + dense_cands, strategy="uncertainty",
                           per_kind=2, n_models=4, seed=0, model_factory=fast, score_estimators=40)
    chosen, info = sampler.propose()
    conv = [p for p in chosen if p.kernel.name.startswith("fused_conv2d")]
    assert info["chosen_by_kind"] == {"conv1x1": 2, "dense": 2}  # per kind, never more than asked
    assert {p.key for p in conv} <= {p.key for p in far}, [p.kernel.struct_hash for p in conv]
    assert info["uncertainty_chosen"] > info["uncertainty_pool"]
    # the score itself: far candidates are more uncertain than near ones
    rows = [table.get(p.key) for p in initial_easy + initial_hard]
    from chamtvm.latency.adaptive import kernel_row

    s = bootstrap_uncertainty(rows, [kernel_row(p) for p in near + far], n_models=4, n_estimators=40)
    assert s[len(near):].mean() > 2 * s[:len(near)].mean()
    # deterministic: a second sampler on the same table chooses the same; accepted kernels leave the pool
    again = SweepSampler(table, initial_easy + initial_hard, near + far + dense_cands, per_kind=2, n_models=4,
                         seed=0, model_factory=fast, score_estimators=40).propose()[0]
    assert [p.key for p in again] == [p.key for p in chosen]
    sampler.accept(chosen)
    assert not {p.key for p in chosen} & {p.key for p in sampler.pool}
    assert sampler.owned[-len(chosen):] == [p.key for p in chosen]
    # the random control picks as many per kind, from the same pool
    ctl = SweepSampler(table, initial_easy, near + far + dense_cands, strategy="random", per_kind=2,
                       model_factory=fast).propose(limit=3)
    assert len(ctl[0]) == 3 and ctl[1]["uncertainty_chosen"] is None
    with pytest.raises(ValueError, match="unknown strategy"):
        SweepSampler(table, [], [], strategy="most-fun")


def test_heldout_error_reads_bias_and_share_within_10pct(tmp_path):
    rng = np.random.default_rng(1)
    table, easy, _, _ = _table(tmp_path, rng)
    rows = [table.get(p.key) for p in easy]
    model = KernelCostModel(n_estimators=60, cv_folds=0).fit(rows)
    e = heldout_error(model, rows)
    assert e["n"] == len(rows) and e["median_abs_log_err"] < 0.1 and e["within_10pct"] > 0.8
    slow = [dict(r, runtime_us_p50=r["runtime_us_p50"] * 2) for r in rows]  # measured twice as slow
    e2 = heldout_error(model, slow)
    assert e2["mean_log_err"] == pytest.approx(e["mean_log_err"] - np.log(2), abs=1e-9)
    assert e2["within_10pct"] == 0.0 and heldout_error(model, [])["n"] == 0


@pytest.mark.slow
def test_adaptive_sweep_measures_real_kernels_into_the_table_and_resumes(tmp_path, x86, quick_kernels):
    """Real probes (1x1 convolutions at 4-28 px) lowered by TVM in one module, measured for real on this CPU
    (every sample kept, conftest ``quick_kernels``: on a busy machine a row timed slow would be
    timed again by the rerun, which must measure nothing)."""
    import torch

    from chamtvm.lower.calibration import _real_probe
    from chamtvm.lower.kernels import extract_kernels, from_torch, fuse
    from chamtvm.measure.local import LocalRunner
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.tuning.schedules import ScheduleSource

    x86 = quick_kernels(x86)
    probes = [_real_probe({"kind": "conv1x1", "hw": hw, "act": "relu", "cin": c, "cout": c * 2, "k": 1, "stride": 1})
              for hw, c in ((4, 8), (7, 16), (8, 8), (14, 8), (16, 16), (4, 32), (7, 8), (8, 24), (28, 8), (14, 16))]

    class Multi(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([m for m, _ in probes])

        def forward(self, *xs):
            return tuple(b(x) for b, x in zip(self.blocks, xs))

    kernels = extract_kernels(fuse(from_torch(Multi().eval(), [shape for _, shape in probes])))
    ks = prepare(sorted({k.struct_hash: k for k in kernels}.values(), key=lambda k: k.struct_hash), x86,
                 ScheduleSource(x86, use_database=False))
    assert len(ks) == 10
    initial, pool, held = ks[:6], ks[6:-2], ks[-2:]
    table = LatencyTable(tmp_path / "x86.jsonl").load()
    with LocalRunner(x86) as runner:
        fill = lambda prepared: fill_table(prepared, table, runner, x86)  # noqa: E731
        reps = adaptive_sweep(table, fill, initial, pool, held, rounds=2, per_kind=1, budget=8, n_models=3)
        assert [r.round for r in reps] == [0, 1, 2]
        assert [r.sweep_measured for r in reps] == [6, 7, 8] and reps[-1].chosen == 0  # budget 8: stops there
        assert all(r.heldout["n"] == 2 for r in reps)
        assert len(LatencyTable(tmp_path / "x86.jsonl").load()) == 10  # 6 initial + 2 held out + 2 chosen, durable
        counts = []  # a rerun chooses the same kernels, finds them measured, measures nothing
        fill = lambda prepared: counts.append(fill_table(prepared, table, runner, x86).measured)  # noqa: E731
        again = adaptive_sweep(table, fill, initial, pool, held, rounds=2, per_kind=1, budget=8, n_models=3)
    assert counts == [0, 0, 0] and [r.heldout for r in again] == [r.heldout for r in reps]
