"""Transferring a schedule trace to a kernel of the same kind with other extents."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.lower.network import lower_arch
from chamtvm.tuning.transfer import kernel_kind, refit_tile, replay


@pytest.mark.parametrize("old,extent,inner_max,want", [
    ([2, 4, 8], 64, 0, [2, 4, 8]),      # same extent: the old decision
    ([2, 4, 8], 32, 0, [1, 4, 8]),      # smaller: the outer factor shrinks first
    ([1, 4, 8], 24, 0, [1, 3, 8]),      # 8 divides 24; 4 does not divide 3 -> 3
    ([4, 16], 12, 0, [1, 12]),          # the largest divisor <= 16 of 12
    ([1, 1, 32], 10, 4, [5, 1, 2]),     # innermost capped by max_innermost; the rest goes outward
])
def test_refit_tile_keeps_inner_factors_that_divide(old, extent, inner_max, want):
    got = refit_tile(old, extent, inner_max)
    assert got == want and int(np.prod(got)) == extent and len(got) == len(old)


def _convs(space, arch):
    net = lower_arch(space, arch)
    return [k for k in net.kernels if "conv2d" in k.name]


def test_kernel_kind_groups_same_operators_and_window(tiny_space, tiny_archs):
    kinds = {}
    for k in _convs(tiny_space, tiny_archs[0]):
        kinds.setdefault(kernel_kind(k), []).append(k)
    assert all(len({len(k.args) for k in ks}) == 1 for ks in kinds.values())
    windows = {kind[2] for kind in kinds}
    assert any(w[2] == "depthwise" for w in windows if w) and any(w[2] == "dense" for w in windows if w)


def test_replay_refits_a_split_to_a_kernel_with_other_extents(tiny_space, tiny_archs, x86, tmp_path):
    """A trace made on one 1x1 convolution (split of its output-channel loop) replayed on
    another of the same kind: the split factors are re-fitted to the new extent and the
    scheduled kernel computes what the default one does."""
    import tvm
    from tvm import s_tir

    from chamtvm.measure.compile import build_kernel_library
    from chamtvm.tuning.database import workload_module

    groups = {}
    for arch in tiny_archs:
        for k in _convs(tiny_space, arch):
            groups.setdefault(kernel_kind(k), {})[k.struct_hash] = k
    pair = next(list(g.values())[:2] for g in groups.values()
                if len({k.args[-1].shape[1] for k in g.values()}) >= 2)
    src, dst = sorted(pair, key=lambda k: -k.args[-1].shape[1])
    sch = s_tir.Schedule(workload_module(src.func), seed=1)
    # the convolution block (the one with the most loops): split its channel loop by a tile
    block = max(sch.get_child_blocks(sch.get_sblock("root")), key=lambda b: len(sch.get_loops(b)))
    loops = sch.get_loops(block)
    factors = sch.sample_perfect_tile(loops[1], n=2, max_innermost_factor=64, decision=[1, src.args[-1].shape[1]])
    sch.split(loops[1], factors)
    new = replay(sch.trace, dst.func, refit=True)
    split = [i for i in new.trace.insts if i.kind.name == "SamplePerfectTile"]
    decision = [int(x) for x in new.trace.decisions[split[0]]]
    assert int(np.prod(decision)) == dst.args[-1].shape[1] and decision[0] == 1

    a = build_kernel_library([("k", new.mod["main"]), ("d", dst.func)], x86, tmp_path / "k.so")
    m = tvm.runtime.load_module(str(a))
    rng = np.random.default_rng(0)
    ins = [rng.uniform(-1, 1, s.shape).astype("float32") for s in dst.args]
    outs = []
    for sym in ("k", "d"):
        t = [tvm.runtime.tensor(x, tvm.cpu()) for x in ins]
        m[sym](*t)
        outs.append(t[-1].numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)


@pytest.mark.skip(reason="not working yet: TVM 0.27 refuses the hand-made records of the te dense kernels when the "
                         "database is read back ('old_outputs.size() == new_outputs.size()', the loop count of the "
                         "workload differs), so the transfer never starts; needs kernels from a lowered network")
@pytest.mark.slow
def test_a_transfer_killed_midway_is_redone_from_tuned_kernels_only_and_leaves_no_scratch(
        x86, tmp_path, monkeypatch, tiny_dense_kernels):
    """One tuned kernel (its record and tuning-log line) and one kernel already transferred from
    it, listed first; a transfer run is killed (-9) while it times its candidates, leaving its
    scratch folder. The rerun removes that folder, transfers the remaining kernels from the tuned
    kernel only (never from the transferred one) and a second rerun attempts nothing."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from tvm.s_tir import meta_schedule as ms

    from chamtvm.measure.local import LocalRunner
    from chamtvm.tuning.database import append_tuning_log, workload_module
    from chamtvm.tuning.provenance import TRANSFER_LOG
    from chamtvm.tuning.transfer import transfer_schedules

    kernels = tiny_dense_kernels.dense_kernels()
    tuned, moved = kernels[0], kernels[1]
    work = tmp_path / "x86"
    work.mkdir()
    db = ms.database.JSONDatabase(work_dir=str(work))
    for k in (tuned, moved):  # a record each (moved's stands for the one a transfer committed)
        trace = tiny_dense_kernels.split_trace(k)
        mod = workload_module(k.func)
        db.commit_tuning_record(ms.database.TuningRecord(trace, db.commit_workload(mod), [1e-6], x86.tvm(),
                                                         ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
    append_tuning_log(x86, work, [{"struct_hash": tuned.struct_hash, "name": tuned.name, "trials": 4}])
    (work / TRANSFER_LOG).write_text(json.dumps({"struct_hash": moved.struct_hash, "name": moved.name, "tag": "ms-x",
                                                 "source_hash": tuned.struct_hash, "committed": True}) + "\n")
    order = [moved, tuned, *kernels[2:]]  # the transferred kernel comes first

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    child = ("import sys; sys.path.insert(0, sys.argv[2]); import _tiny_kernels as t; "
             "from chamtvm.measure.local import LocalRunner; from chamtvm.targets.spec import get_target; "
             "from chamtvm.tuning.transfer import transfer_schedules; x = get_target('x86'); k = t.dense_kernels(); "
             "transfer_schedules([k[1], k[0], *k[2:]], x, LocalRunner(x), sys.argv[1])")
    proc = subprocess.Popen([sys.executable, "-c", child, str(work), str(Path(tiny_dense_kernels.__file__).parent)],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                                 "TMPDIR": str(scratch)}, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if any(any(d.iterdir()) for d in scratch.glob("chamtvm-transfer-*")):  # built; now timing
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the transfer ended before it could be killed: " + proc.communicate()[0][-2000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert list(scratch.glob("chamtvm-transfer-*"))  # what kill -9 leaves

    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    runner = LocalRunner(x86)
    done = transfer_schedules(order, x86, runner, work)
    assert {t.struct_hash for t in done} == {k.struct_hash for k in kernels[2:]}
    assert {t.source_hash for t in done} == {tuned.struct_hash}  # never the transferred kernel
    assert not list(scratch.glob("chamtvm-transfer-*"))
    assert transfer_schedules(order, x86, runner, work) == []  # up to date: nothing attempted twice
