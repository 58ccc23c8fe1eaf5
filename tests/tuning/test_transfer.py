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


@pytest.mark.slow
def test_a_transfer_killed_midway_loses_nothing_and_the_rerun_does_only_the_rest(
        x86, tmp_path, monkeypatch, tiny_kernel_map, tiny_dense_kernels, in_process_runner):
    """Five kernels of one kind of the tiny space (1x1 convolutions), the smallest tuned by
    MetaSchedule (1 trial, population 2). A transfer to the other four runs in a child process
    (the measuring child times the candidates) and is killed (-9) once its first transfer is
    journaled. Nothing journaled is lost or redone: the rerun transfers exactly the kernels
    left and removes the killed run's scratch folder; the log then lists what an uninterrupted
    run lists (every other kernel of the kind once, from the tuned kernel), each kept schedule
    is in the database under its logged tag, and a second rerun attempts nothing."""
    import collections
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from chamtvm.tuning.database import tuned_hashes, workload_module
    from chamtvm.tuning.policy import TuningTask, tune_tasks
    from chamtvm.tuning.provenance import TRANSFER_LOG, transfer_attempts
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.tuning.transfer import transfer_schedules

    kinds = collections.defaultdict(list)
    for k in tiny_kernel_map.kernels.values():
        if kernel_kind(k)[2][:3] == (1, 1, "dense"):
            kinds[kernel_kind(k)].append(k)
    same = sorted(max(sorted(kinds.values(), key=lambda ks: ks[0].name), key=len), key=lambda k: (k.flops, k.name))
    tuned, targets = same[0], same[1:5]
    assert len(targets) == 4
    work = tmp_path / "x86"
    tune_tasks([TuningTask(tuned.func, tuned.struct_hash, tuned.name)], x86, trials=1, work_dir=work,
               round_trials=1, population=2)
    assert tuned_hashes(x86, work) == {tuned.struct_hash}

    kernels_file, scratch, log_path = tmp_path / "kernels.json", tmp_path / "scratch", work / TRANSFER_LOG
    tiny_dense_kernels.save_kernels([tuned, *targets], kernels_file)
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "TMPDIR": str(scratch)}
    proc = subprocess.Popen([sys.executable, tiny_dense_kernels.__file__, "transfer", str(work), str(kernels_file)],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)

    def journaled() -> bool:  # a complete line in the transfer log
        return log_path.exists() and b"\n" in log_path.read_bytes()

    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None and not journaled():
            time.sleep(0.02)
        running = proc.poll() is None
        if running:
            os.killpg(proc.pid, signal.SIGKILL)  # one transfer journaled, the others being timed
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert running, "the transfer ended before it could be killed: " + output[-2000:]
    journal = log_path.read_bytes()
    journal = journal[:journal.rfind(b"\n") + 1]  # its complete lines
    before = transfer_attempts(work)
    assert 1 <= len(before) < len(targets) and set(before) <= {k.struct_hash for k in targets}, output[-2000:]
    assert list(scratch.glob("chamtvm-transfer-*"))  # what kill -9 leaves

    # a line says a schedule was kept; its record follows it (a kill between the two: redone)
    db = ScheduleSource(x86, work).database()
    unrecorded = {k.struct_hash for k in targets if before.get(k.struct_hash, {}).get("committed")
            and db.query_tuning_record(workload_module(k.func), x86.tvm(), "main") is None}
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    done = transfer_schedules([tuned, *targets], x86, in_process_runner(), work)
    assert {t.struct_hash for t in done} == ({k.struct_hash for k in targets} - set(before)) | unrecorded
    assert not list(scratch.glob("chamtvm-transfer-*"))
    assert log_path.read_bytes().startswith(journal)  # every journaled line kept as it was

    after = transfer_attempts(work)
    assert set(after) == {k.struct_hash for k in targets}  # an uninterrupted run: every other kernel of the kind
    assert {d["source_hash"] for d in after.values()} == {tuned.struct_hash}
    assert len(log_path.read_text().splitlines()) == len(targets) + len(unrecorded)  # nothing else attempted twice
    sched = ScheduleSource(x86, work)
    for k in targets:  # a kept schedule is deployed under its logged tag; the others keep the default
        assert sched.apply(k.func)[1] == after[k.struct_hash]["tag"], k.name
    assert transfer_schedules([tuned, *targets], x86, in_process_runner(), work) == []  # up to date


@pytest.mark.parametrize("layout", [None, "NCHW16c"])
def test_scheduling_a_kernel_leaves_the_networks_kernel_as_it_was(tiny_space, tiny_archs, layout):
    """TVM's ``Schedule`` rewrites in place the nodes it holds alone; the module chamtvm hands
    it (``workload_module``) must share none with the network's kernel. Otherwise a replayed
    trace turns the kernel into a scheduled one, which is then timed as its own default and
    committed as a workload no record of the real kernel can be read back against."""
    from tvm import s_tir

    from chamtvm.lower.kernels import kernel_hash
    from chamtvm.tuning.database import workload_module

    convs = [k for k in lower_arch(tiny_space, tiny_archs[0], layout=layout).kernels if "conv2d" in k.name]
    assert convs
    for k in convs:
        before = kernel_hash(k.func)
        sch = s_tir.Schedule(workload_module(k.func), seed=1)
        block = max(sch.get_child_blocks(sch.get_sblock("root")), key=lambda b: len(sch.get_loops(b)))
        loops = sch.get_loops(block)
        sch.split(loops[1], [None, 1])
        sch.annotate(block, "meta_schedule.tiling_structure", "SSRSRS")
        assert kernel_hash(k.func) == before, k.name
        replay(sch.trace, k.func, refit=True)
        assert kernel_hash(k.func) == before, k.name
        assert kernel_hash(sch.mod["main"]) != before  # the schedule itself did change its copy
