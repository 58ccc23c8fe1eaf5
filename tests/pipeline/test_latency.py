"""``pipeline.latency``: the step ``faster schedules`` on real MetaSchedule records (conftest
``kernel_with_record``) and a real table: it measures a default row the table lacks, sets
aside the schedules no faster than their default rows, and leaves ``schedules`` and
``prepared_deployed`` on what ships. Steps ``models`` and ``heldout``: the training and
held-out networks timed in one batch, round by round."""

from __future__ import annotations

import pytest


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


@pytest.mark.slow  # compiles and times 5 networks in 2 rounds
def test_heldout_networks_are_timed_in_one_batch_with_the_training_networks(tmp_path, x86, in_process_runner,
                                                                           tiny_space_table, quick_networks,
                                                                           monkeypatch):
    """Steps ``models`` and ``heldout`` with networks timed in 2 rounds: every round is one
    ``measure_networks`` call holding the training and the held-out networks together (they see
    the same states of the machine); the held-out step then times and lowers nothing, and the
    residual is fitted on the training networks only. Networks are timed in short samples
    (conftest ``quick_networks``): what is checked is which networks each round holds."""
    import dataclasses
    import json
    import shutil
    from pathlib import Path

    from chamtvm.pipeline.config import TuneConfig
    from chamtvm.pipeline.job import TUNE_STEPS
    from chamtvm.pipeline.state import JobState
    from chamtvm.pipeline.steps import StepView
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.networks import network_table
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.schedules import ScheduleSource

    from ..conftest import DATA

    quick = quick_networks(x86)
    target = dataclasses.replace(quick, network_evaluator=dataclasses.replace(quick.network_evaluator, rounds=2))

    class RoundRecorder(in_process_runner):
        def __init__(self):
            super().__init__()
            self.target, self.rounds = target, []

        def measure_networks(self, networks, evaluator):
            self.rounds.append({key for key, _, _ in networks})
            yield from super().measure_networks(networks, evaluator)

    shutil.copytree(tiny_space_table.path.parent, tmp_path / "luts")
    table = LatencyTable(tmp_path / "luts" / tiny_space_table.path.name).load()
    runner = RoundRecorder()
    cfg = TuneConfig(space=str(DATA / "space_tiny3.json"), trials=0, calibration=False, heldout=2, train_networks=3,
                     residual_mode="scale", luts_dir=tmp_path / "luts", progress=False)
    state = JobState(target, runner, cfg, lambda *a: None)
    state.space, state.table = SearchSpace.load(cfg.space), table
    state.nets_table = network_table(target, tmp_path / "luts")
    state.schedules = ScheduleSource(target, use_database=False)
    import chamtvm.pipeline.latency as pipeline_latency

    lowered = []

    def counting_lower_arch(*args, **kwargs):
        lowered.append(args[-1])
        return real_lower_arch(*args, **kwargs)

    real_lower_arch = pipeline_latency.lower_arch
    monkeypatch.setattr(pipeline_latency, "lower_arch", counting_lower_arch)
    for name in ("models", "heldout"):
        step = next(s for s in TUNE_STEPS if s.name == name)
        before, lowered_before = len(runner.rounds), len(lowered)
        step.run(StepView(state, step))
        if name == "heldout":
            assert len(runner.rounds) == before  # measured in step models' batch
            assert len(lowered) == lowered_before  # and lowered there: nothing lowered twice
    assert len(lowered) == 5
    heldout = {n["key"] for n in state.heldout}
    assert len(heldout) == 2 and len(runner.rounds) == 2
    for timed in runner.rounds:
        assert heldout <= timed and len(timed - heldout) == 3  # the 3 training networks beside them
    assert state.models.n_train == 3
    meta = json.loads(Path(state.models.paths["residual"] + ".meta.json").read_text())
    assert not heldout & set(meta["network_keys"])  # never fitted on a held-out network
