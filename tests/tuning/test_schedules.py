"""MetaSchedule tuning into schedules/<target>/, applied identically to kernels and networks."""

import numpy as np

from chamtvm.table.store import LatencyTable
from chamtvm.measure.compile import compile_network
from chamtvm.measure.local import LocalRunner
from chamtvm.lower.network import lower_arch
from chamtvm.tuning.schedules import DEFAULT_TAG, ScheduleSource, tune_kernel, tuned_hashes
from chamtvm.table.fill import fill_table, prepare
import pytest


@pytest.mark.slow
def test_tune_one_kernel_apply_it_and_resume(tiny_space, tiny_archs, x86, tmp_path):
    import tvm
    from tvm import relax

    net = lower_arch(tiny_space, tiny_archs[0])
    kernel = max((k for k in net.kernels if "conv2d" in k.name), key=lambda k: k.flops)
    work = tmp_path / "x86"
    line = tune_kernel(kernel.func, kernel.struct_hash, kernel.name, x86, trials=8, work_dir=work, population=16)
    assert line["best_us"] and line["best_us"] > 0
    assert tuned_hashes(x86, work) == {kernel.struct_hash}

    sched = ScheduleSource(x86, work)
    prepared = {p.kernel.struct_hash: p for p in prepare(net.kernels, x86, sched)}
    tuned = prepared[kernel.struct_hash]
    assert tuned.schedule.startswith("ms-") and tuned.key.split("/")[1] == tuned.schedule
    assert all(p.schedule == DEFAULT_TAG for h, p in prepared.items() if h != kernel.struct_hash)

    # the tuned kernel is measured under its own key, beside the default one
    table = LatencyTable(tmp_path / "x86.jsonl")
    s = fill_table([tuned], table, LocalRunner(x86), x86)
    assert s.measured == 1 and table.get(tuned.key)["schedule"] == tuned.schedule

    # the network build applies the same record, and computes the same outputs
    x = np.random.default_rng(0).standard_normal(net.inputs[0].shape).astype("float32")
    outs = []
    for schedules in (None, sched):
        vm = relax.VirtualMachine(compile_network(net.fused, x86, schedules), tvm.cpu())
        outs.append(vm["main"](tvm.runtime.tensor(x, tvm.cpu())).numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    applied = sched.apply_to_module(net.fused)
    scheduled = [gv.name_hint for gv, f in applied.functions.items()
                 if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and "tirx.is_scheduled" in f.attrs]
    assert scheduled == [kernel.name]


def _real_database(work, n=2):
    """A MetaSchedule JSON database written by TVM itself: ``n`` workloads, one record each."""
    import tvm
    from tvm import te
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import workload_module

    work.mkdir(parents=True, exist_ok=True)
    db = ms.database.JSONDatabase(work_dir=str(work))
    for i in range(n):
        a = te.placeholder((8 + i, 8), name="A")
        b = te.compute((8 + i, 8), lambda x, y: a[x, y] * 2.0, name="B")
        mod = workload_module(te.create_prim_func([a, b]))
        sch = tvm.s_tir.Schedule(mod)
        sch.split(sch.get_loops(sch.get_sblock("B"))[0], [None, 2])
        db.commit_tuning_record(ms.database.TuningRecord(sch.trace, db.commit_workload(mod), [1e-6 * (i + 1)],
                                                         get_target("x86").tvm()))
    return work


def _n_records(src):
    return len(src.database().get_all_tuning_records())


def test_torn_or_damaged_database_lines_are_set_aside_not_a_tvm_traceback(x86, tmp_path, capsys):
    from chamtvm.tuning.schedules import RECORDS, WORKLOADS, ScheduleSource, check_database

    work = _real_database(tmp_path / "x86", 3)
    assert check_database(work)[2] == [] and _n_records(ScheduleSource(x86, work)) == 3
    rec = work / RECORDS
    lines = rec.read_bytes().splitlines(keepends=True)
    # a killed tuning run: the last record torn mid-line; and a damaged middle line
    rec.write_bytes(lines[0] + b'[1,[[["garbage"]],[1e-06],{"kind":"llvm"},null]]\n' + lines[2][:50])
    src = ScheduleSource(x86, work)
    assert _n_records(src) == 1
    err = capsys.readouterr().err
    assert f"{rec}:2: damaged tuning record" in err and f"{rec}:3: damaged tuning record (torn last line" in err
    side = list(work.glob(RECORDS + ".bad-*"))
    assert len(side) == 1 and side[0].read_bytes().count(b"\n") == 2  # kept aside, not dropped
    assert check_database(work)[2] == []  # the database itself is clean again: the next run proceeds
    assert _n_records(ScheduleSource(x86, work)) == 1

    # a whole last record lacking only its newline is kept, and completed (TVM appends next)
    work3 = _real_database(tmp_path / "c", 2)
    (work3 / RECORDS).write_bytes((work3 / RECORDS).read_bytes().rstrip(b"\n"))
    assert _n_records(ScheduleSource(x86, work3)) == 2
    assert (work3 / RECORDS).read_bytes().endswith(b"\n") and not list(work3.glob("*.bad-*"))
    assert check_database(work3)[4] is False

    # a torn workload line drops only the records that point at it (indices renumbered)
    work2 = _real_database(tmp_path / "b", 3)
    wl = (work2 / WORKLOADS).read_bytes().splitlines(keepends=True)
    (work2 / WORKLOADS).write_bytes(wl[0] + wl[1][:100] + b"\n" + wl[2])
    assert _n_records(ScheduleSource(x86, work2)) == 2
    assert f"{work2 / WORKLOADS}:2: damaged workload" in capsys.readouterr().err


def test_tuning_log_append_is_durable_and_reader_names_bad_lines(x86, tmp_path):
    import json

    from chamtvm.core.jsonl import append_lines
    from chamtvm.tuning.schedules import tuned_log

    log = tuned_log(x86, tmp_path)
    append_lines(log, [json.dumps({"struct_hash": "a"}), json.dumps({"struct_hash": "b"})])
    with open(log, "ab") as f:
        f.write(b'not a record\n{"struct_hash": "c"}')  # a bad line, and a finished one lacking its newline
    notes = []
    assert tuned_hashes(x86, tmp_path, log=notes.append) == {"a", "b", "c"}
    assert len(notes) == 1 and f"{log}:3: not a tuning-log record" in notes[0]
    with open(log, "ab") as f:
        f.write(b'\n{"struct_hash": "d", "na')  # torn by a kill
    assert tuned_hashes(x86, tmp_path, log=notes.append) == {"a", "b", "c"}
    append_lines(log, [json.dumps({"struct_hash": "e"})], log=None)
    assert tuned_hashes(x86, tmp_path, log=None) == {"a", "b", "c", "e"}
    assert list(tmp_path.glob("tuned_kernels.jsonl.torn-*"))[0].read_bytes() == b'{"struct_hash": "d", "na'
