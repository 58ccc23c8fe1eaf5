"""MetaSchedule tuning into schedules/<target>/, applied identically to kernels and networks."""

import numpy as np

from chamtvm.table.store import LatencyTable
from chamtvm.measure.compile import compile_network
from chamtvm.measure.local import LocalRunner
from chamtvm.lower.network import lower_arch
from chamtvm.tuning.database import tuned_hashes
from chamtvm.tuning.policy import tune_kernel
from chamtvm.tuning.schedules import DEFAULT_TAG, ScheduleSource
from chamtvm.table.fill import fill_table, prepare
import pytest


@pytest.mark.slow
def test_tune_one_kernel_apply_it_and_resume(tiny_space, tiny_archs, x86, tmp_path):
    import tvm
    from tvm import relax

    net = lower_arch(tiny_space, tiny_archs[0])
    kernel = max((k for k in net.kernels if "conv2d" in k.name), key=lambda k: k.flops)
    work = tmp_path / "x86"
    snapshot = ScheduleSource(x86, work).frozen()  # the schedules as they were before the tuning
    line = tune_kernel(kernel.func, kernel.struct_hash, kernel.name, x86, trials=4, work_dir=work, population=16)
    assert line["best_us"] and line["best_us"] > 0
    assert tuned_hashes(x86, work) == {kernel.struct_hash}

    sched = ScheduleSource(x86, work)
    prepared = {p.kernel.struct_hash: p for p in prepare(net.kernels, x86, sched)}
    tuned = prepared[kernel.struct_hash]
    assert tuned.schedule.startswith("ms-") and tuned.key.split("/")[1] == tuned.schedule
    assert all(p.schedule == DEFAULT_TAG for h, p in prepared.items() if h != kernel.struct_hash)
    # the snapshot still applies what the folder held when it was taken: no database, defaults only
    snapshot.reload()
    assert not snapshot.has_database and snapshot.apply_to_module(net.fused) is net.fused
    assert all(p.schedule == DEFAULT_TAG for p in prepare(net.kernels, x86, snapshot))
    later = sched.frozen()
    assert later.has_database and later.apply(kernel.func)[1] == tuned.schedule

    # the tuned kernel is measured under its own key, beside the default one
    table = LatencyTable(tmp_path / "x86.jsonl")
    s = fill_table([tuned], table, LocalRunner(x86), x86)
    assert s.measured == 1 and table.get(tuned.key)["schedule"] == tuned.schedule

    # the network build applies the same record, and computes the same outputs
    x = np.random.default_rng(0).standard_normal(net.inputs[0].shape).astype("float32")
    before = dict(net.fused.functions.items())  # the network build and apply_to_module copy it
    outs = []
    for schedules in (None, sched):
        vm = relax.VirtualMachine(compile_network(net.fused, x86, schedules), tvm.cpu())
        outs.append(vm["main"](tvm.runtime.tensor(x, tvm.cpu())).numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    applied = sched.apply_to_module(net.fused)

    def scheduled(m):
        return [gv.name_hint for gv, f in m.functions.items()
                if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and "tirx.is_scheduled" in f.attrs]

    assert scheduled(applied) == [kernel.name] and scheduled(net.fused) == []
    assert all(net.fused[gv].same_as(f) for gv, f in before.items())  # the caller's module is untouched


def test_a_record_applies_to_a_kernel_equal_to_its_workload_but_for_block_names(tiny_space, tiny_archs, x86, tmp_path):
    """MetaSchedule matches workloads structurally, block names aside, but a trace finds its
    blocks by name: the `mean` kernel of two networks (blocks ``lvN_red`` with other N) shares
    one record, which must apply to both, and leave the network's kernel as it was."""
    import re

    from tvm import s_tir
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.lower.kernels import kernel_hash
    from chamtvm.tuning.database import RECORDS, WORKLOADS, workload_module

    def blocks(k):
        return sorted(re.findall(r'T\.sblock\("([^"]+)"\)', k.func.script()))

    first = {k.struct_hash: k for k in lower_arch(tiny_space, tiny_archs[0]).kernels}
    a, b = next((first[k.struct_hash], k) for k in lower_arch(tiny_space, tiny_archs[1]).kernels
                if k.struct_hash in first and blocks(first[k.struct_hash]) != blocks(k))
    work = tmp_path / "x86"
    work.mkdir()
    db = ms.database.JSONDatabase(path_workload=str(work / WORKLOADS), path_tuning_record=str(work / RECORDS))
    mod = workload_module(a.func)
    sch = s_tir.Schedule(mod)
    block = sch.get_sblock(next(n for n in blocks(a) if n.endswith("_red")))  # by name, as traces do
    sch.parallel(sch.get_loops(block)[1])
    db.commit_tuning_record(ms.database.TuningRecord(
        trace=sch.trace, workload=db.commit_workload(mod), run_secs=[1e-5], target=x86.tvm(),
        args_info=ms.arg_info.ArgInfo.from_prim_func(mod["main"])))

    before = kernel_hash(b.func)
    scheduled, tag = ScheduleSource(x86, work).apply(b.func)
    assert tag != DEFAULT_TAG and "T.parallel" in scheduled.script()
    assert kernel_hash(b.func) == before
