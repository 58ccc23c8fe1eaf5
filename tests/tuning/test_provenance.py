"""``tuning.provenance``: a row's schedule tag is default, tuned or transferred, read from the
transfer log (only committed transfers count; a torn last line is skipped)."""

import json


def test_transferred_tags_keeps_committed_transfers_and_skips_a_torn_line(tmp_path):
    from chamtvm.tuning.provenance import TRANSFER_LOG, transferred_tags

    lines = [json.dumps({"tag": "ms-aaa", "source_hash": "h1", "committed": True}),
             json.dumps({"tag": "ms-bbb", "source_hash": "h2", "committed": False}),
             json.dumps({"tag": "ms-ccc", "source_hash": "h3", "committed": True}),
             '{"tag": "ms-ddd", "source_ha']  # an interrupted run's unfinished last line
    (tmp_path / TRANSFER_LOG).write_text("\n".join(lines))
    assert transferred_tags(tmp_path) == {"ms-aaa": "h1", "ms-ccc": "h3"}


def test_no_transfer_log_means_no_transfers(tmp_path):
    from chamtvm.tuning.provenance import transferred_tags

    assert transferred_tags(tmp_path) == {}
    assert transferred_tags(tmp_path / "missing-folder") == {}


def test_provenance_of_tags():
    from chamtvm.tuning.provenance import provenance

    moved = {"ms-aaa": "h1"}
    assert provenance("default", moved) == "default"
    assert provenance("default", {"default": "h"}) == "default"  # default wins
    assert provenance("ms-aaa", moved) == "transferred"
    assert provenance("ms-zzz", moved) == "tuned"


def test_a_record_found_slower_than_the_default_is_not_deployed(tmp_path):
    """A real MetaSchedule record applies until ``prefer_default`` lists its tag for this
    kernel; then the kernel is built with its default schedule, and the record stays in the
    database. Listed for another kernel (another struct hash), it still applies."""
    import tvm_ffi
    from tvm import s_tir, te
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.provenance import default_preferred_tags, prefer_default
    from chamtvm.tuning.database import workload_module
    from chamtvm.tuning.schedules import DEFAULT_TAG, ScheduleSource

    x86 = get_target("x86")
    a = te.placeholder((64, 64), name="a")
    b = te.compute((64, 64), lambda i, j: a[i, j] * 2.0, name="b")
    func = te.create_prim_func([a, b])
    sch = s_tir.Schedule(workload_module(func))
    i, j = sch.get_loops(sch.get_sblock("b"))
    sch.parallel(i)
    sch.vectorize(j)
    db = ms.database.JSONDatabase(work_dir=str(tmp_path))
    wl = db.commit_workload(workload_module(func))
    db.commit_tuning_record(ms.database.TuningRecord(
        trace=sch.trace, workload=wl, run_secs=[1e-6], target=x86.tvm(),
        args_info=ms.arg_info.ArgInfo.from_prim_func(workload_module(func)["main"])))

    source = ScheduleSource(x86, tmp_path)
    scheduled, tag = source.apply(func)
    assert tag.startswith("ms-") and tvm_ffi.structural_equal(scheduled.without_attr("tirx.is_scheduled"), sch.mod["main"])
    from chamtvm.lower.kernels import kernel_hash

    prefer_default(tmp_path, tag, "another kernel", "c", tuned_us=9.0, default_us=8.0)
    source.reload()
    assert source.apply(func)[1] == tag  # set aside for another kernel with the same trace only
    prefer_default(tmp_path, tag, kernel_hash(func), "b", tuned_us=9.0, default_us=8.0)
    assert default_preferred_tags(tmp_path) == {tag}
    assert source.apply(func)[1] == tag  # the source caches until reloaded
    source.reload()
    built, tag2 = source.apply(func)
    assert tag2 == DEFAULT_TAG and built.same_as(func)


def test_damaged_log_lines_are_named_and_skipped_and_a_folder_is_an_error(tmp_path):
    import pytest

    from chamtvm.tuning.database import ScheduleDatabaseError
    from chamtvm.tuning.provenance import DEFAULT_PREFERRED_LOG, TRANSFER_LOG, default_preferred_tags, transferred_tags

    (tmp_path / DEFAULT_PREFERRED_LOG).write_text('{"tag": ["x"]}\n{"tag": "ms-ok"}\nnot json\n[1]\n')
    (tmp_path / TRANSFER_LOG).write_text('{"tag": "ms-a", "source_hash": 7, "committed": true}\n'
                                         '{"tag": "ms-b", "source_hash": "h", "committed": true}\n')
    notes = []
    from chamtvm.tuning import provenance as p

    assert {d["tag"] for d in p._log_records(tmp_path / DEFAULT_PREFERRED_LOG, notes.append)} == {"ms-ok"}
    assert [n.split(": damaged line")[0] for n in notes] == [
        f"note: {tmp_path / DEFAULT_PREFERRED_LOG}:{i}" for i in (1, 3, 4)]
    assert default_preferred_tags(tmp_path) == {"ms-ok"}  # no TypeError from an unhashable tag
    assert transferred_tags(tmp_path) == {"ms-b": "h"}

    folder = tmp_path / "f"
    (folder / DEFAULT_PREFERRED_LOG).mkdir(parents=True)
    with pytest.raises(ScheduleDatabaseError, match=f"{folder / DEFAULT_PREFERRED_LOG} is a folder"):
        default_preferred_tags(folder)
