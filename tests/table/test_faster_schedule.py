"""``table.faster_schedule``: a deployed tuned schedule whose table row is no faster than the
kernel's default row is set aside (the default ships), a faster one is kept; real MetaSchedule
records in a real database (conftest ``kernel_with_record``), real table rows."""

from __future__ import annotations


def _row(key: str, p, us: float) -> dict:
    from chamtvm.table.store import ok_row

    base = {"struct_hash": p.kernel.struct_hash, "name": p.kernel.name, "schedule": p.schedule}
    return ok_row(key, base, [us, us * 1.01, us * 0.99], number=1)


def test_a_tuned_schedule_no_faster_in_the_network_is_set_aside_and_a_faster_one_kept(tmp_path, x86,
                                                                                     kernel_with_record):
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.table.faster_schedule import default_rows_us, set_aside_slower_schedules
    from chamtvm.table.fill import prepare
    from chamtvm.table.store import LatencyTable, make_key
    from chamtvm.tuning.provenance import DEFAULT_PREFERRED_LOG, default_preferred_tags
    from chamtvm.tuning.schedules import DEFAULT_TAG, ScheduleSource

    (tmp_path / "schedules").mkdir()
    db = ms.database.JSONDatabase(work_dir=str(tmp_path / "schedules"))
    slower, faster, no_default = (kernel_with_record(db, x86, m, 64, v) for m, v in ((64, 4), (32, 8), (16, 16)))
    schedules = ScheduleSource(x86, tmp_path / "schedules")
    prepared = prepare([slower, faster, no_default], x86, schedules)
    assert all(p.schedule.startswith("ms-") and p.provenance == "tuned" for p in prepared)
    assert len({p.schedule for p in prepared}) == 3

    table = LatencyTable(tmp_path / "x86.jsonl")
    defaults = prepare([slower, faster, no_default], x86, ScheduleSource(x86, use_database=False))
    table.append([_row(defaults[0].key, defaults[0], 10.0), _row(defaults[1].key, defaults[1], 10.0)])
    table.append([_row(prepared[0].key, prepared[0], 12.0),   # tuned, slower in the network than its default
                  _row(prepared[1].key, prepared[1], 4.0),    # tuned, faster: kept
                  _row(prepared[2].key, prepared[2], 50.0)])  # no default row to compare with: left as it is

    default_us = default_rows_us(prepared, table, x86)
    assert default_us == default_rows_us([slower, faster, no_default], table, x86) == {
        slower.struct_hash: 10.0, faster.struct_hash: 10.0}
    assert default_rows_us(prepared, table, x86, "runtime_us_max") == {
        slower.struct_hash: 10.1, faster.struct_hash: 10.1}

    said = []
    set_aside = set_aside_slower_schedules(prepared, default_us, table, schedules, log=said.append)
    assert set_aside == [slower.struct_hash]
    assert said == [f"{slower.name}: its tuned schedule runs 12.0 us in the network, no faster than its default "
                    "10.0 us; the default schedule stays deployed"]
    assert default_preferred_tags(schedules.work_dir) == {prepared[0].schedule}
    assert (schedules.work_dir / DEFAULT_PREFERRED_LOG).exists()

    # once reloaded, the source deploys (and keys) the default for that kernel only
    schedules.reload()
    again = prepare([slower, faster, no_default], x86, schedules)
    assert [p.schedule for p in again] == [DEFAULT_TAG, prepared[1].schedule, prepared[2].schedule]
    assert again[0].key == make_key(x86.fingerprint, DEFAULT_TAG, slower.struct_hash) and again[0].key in table
    assert again[0].func.same_as(slower.func)
    # nothing more to set aside: a rerun lists nothing twice
    assert set_aside_slower_schedules(again, default_us, table, schedules, log=said.append) == []
    assert len(said) == 1


def test_a_tie_ships_the_default_and_the_statistic_chooses_the_field_compared(tmp_path, x86, kernel_with_record):
    """The default ships unless the tuned row is strictly faster, by the statistic asked for."""
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.table.faster_schedule import default_rows_us, set_aside_slower_schedules
    from chamtvm.table.fill import prepare
    from chamtvm.table.store import LatencyTable, ok_row
    from chamtvm.tuning.schedules import ScheduleSource

    (tmp_path / "schedules").mkdir()
    db = ms.database.JSONDatabase(work_dir=str(tmp_path / "schedules"))
    tie, spread = (kernel_with_record(db, x86, m, 64, v) for m, v in ((8, 4), (4, 8)))
    schedules = ScheduleSource(x86, tmp_path / "schedules")
    tuned = prepare([tie, spread], x86, schedules)
    default = prepare([tie, spread], x86, ScheduleSource(x86, use_database=False))
    table = LatencyTable(tmp_path / "x86.jsonl")
    table.append([_row(default[0].key, default[0], 5.0), _row(tuned[0].key, tuned[0], 5.0),
                  ok_row(default[1].key, {}, [5.0, 5.0, 5.0], 1),
                  ok_row(tuned[1].key, {}, [4.0, 4.0, 9.0], 1)])  # faster by its median, slower by its max
    quiet = dict(log=lambda s: None)
    (tmp_path / "other").mkdir()
    by_max = set_aside_slower_schedules(tuned[1:], default_rows_us([spread], table, x86, "runtime_us_max"), table,
                                        ScheduleSource(x86, tmp_path / "other"), "runtime_us_max", **quiet)
    assert by_max == [spread.struct_hash]
    assert set_aside_slower_schedules(tuned, default_rows_us(tuned, table, x86), table, schedules, **quiet) == [
        tie.struct_hash]


def test_setting_aside_one_kernel_leaves_another_kernel_with_the_same_trace_tuned(tmp_path, x86, kernel_with_record):
    """A tag hashes a trace, which does not hold the kernel's shapes: two kernels can share
    one. Setting one of them aside must leave the other's record deployed."""
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.table.faster_schedule import set_aside_slower_schedules
    from chamtvm.table.fill import prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.schedules import DEFAULT_TAG, ScheduleSource

    (tmp_path / "schedules").mkdir()
    db = ms.database.JSONDatabase(work_dir=str(tmp_path / "schedules"))
    slower, faster = (kernel_with_record(db, x86, m, 64, 8) for m in (64, 32))
    schedules = ScheduleSource(x86, tmp_path / "schedules")
    prepared = prepare([slower, faster], x86, schedules)
    assert prepared[0].schedule == prepared[1].schedule != DEFAULT_TAG  # one tag, two kernels

    table = LatencyTable(tmp_path / "x86.jsonl")
    table.append([_row(prepared[0].key, prepared[0], 12.0), _row(prepared[1].key, prepared[1], 4.0)])
    default_us = {slower.struct_hash: 10.0, faster.struct_hash: 10.0}
    assert set_aside_slower_schedules(prepared, default_us, table, schedules, log=lambda _m: None) == [slower.struct_hash]
    schedules.reload()
    again = prepare([slower, faster], x86, schedules)
    assert [p.schedule for p in again] == [DEFAULT_TAG, prepared[1].schedule]
