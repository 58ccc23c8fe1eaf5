"""``pipeline.latency``: the step ``faster schedules`` on real MetaSchedule records (conftest
``kernel_with_record``) and a real table: it measures a default row the table lacks, sets
aside the schedules no faster than their default rows, and leaves ``schedules`` and
``prepared_deployed`` on what ships."""

from __future__ import annotations


def test_faster_schedules_sets_aside_slower_rows_and_reprepares_what_ships(tmp_path, x86, in_process_runner,
                                                                           kernel_with_record):
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.pipeline.config import TuneConfig
    from chamtvm.pipeline.job import TUNE_STEPS
    from chamtvm.pipeline.state import JobState
    from chamtvm.pipeline.steps import StepView
    from chamtvm.table.fill import prepare
    from chamtvm.table.store import LatencyTable, ok_row
    from chamtvm.tuning.schedules import DEFAULT_TAG, ScheduleSource

    (tmp_path / "schedules").mkdir()
    db = ms.database.JSONDatabase(work_dir=str(tmp_path / "schedules"))
    slower, faster, unmeasured = (kernel_with_record(db, x86, m, 64, v) for m, v in ((64, 4), (32, 8), (16, 16)))
    kernels = [slower, faster, unmeasured]
    schedules = ScheduleSource(x86, tmp_path / "schedules")
    tuned = prepare(kernels, x86, schedules)
    default = prepare(kernels, x86, ScheduleSource(x86, use_database=False))
    table = LatencyTable(tmp_path / "luts" / "x86.jsonl")
    table.append([ok_row(default[0].key, {}, [10.0] * 3, 1), ok_row(tuned[0].key, {}, [11.0] * 3, 1),
                  ok_row(default[1].key, {}, [10.0] * 3, 1), ok_row(tuned[1].key, {}, [2.0] * 3, 1),
                  # the third kernel's default row is missing: measured by the step; its tuned
                  # row is far slower than a 16x64 scale can run
                  ok_row(tuned[2].key, {}, [1e5] * 3, 1)])

    said = []
    state = JobState(x86, in_process_runner(), TuneConfig(batch_size=8, progress=False), said.append)
    state.table, state.schedules, state.kernels, state.prepared_tuned = table, schedules, kernels, tuned
    step = next(s for s in TUNE_STEPS if s.name == "faster schedules")
    step.run(StepView(state, step))

    assert default[2].key in table  # measured, for real
    assert state.set_aside_schedules == [slower.struct_hash, unmeasured.struct_hash]
    assert [p.schedule for p in state.prepared_deployed] == [DEFAULT_TAG, tuned[1].schedule, DEFAULT_TAG]
    assert [schedules.apply(k.func)[1] for k in kernels] == [DEFAULT_TAG, tuned[1].schedule, DEFAULT_TAG]
    assert sum("the default schedule stays deployed" in line for line in said) == 2
