"""``tuning.database``: the MetaSchedule database files checked line by line the way TVM parses
them (damaged lines set aside, never a C++ traceback) and the tuning log."""

from chamtvm.tuning.database import tuned_hashes


def _real_database(work, n=2):
    """A MetaSchedule JSON database written by TVM itself: ``n`` workloads, one record each."""
    import tvm
    from tvm import te
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.database import workload_module

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
    from chamtvm.tuning.database import RECORDS, WORKLOADS, check_database
    from chamtvm.tuning.schedules import ScheduleSource

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
    from chamtvm.tuning.database import tuned_log

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
