"""The main job's tuning step (``tune_schedules``): the policy on the tiny space, from a
default table: the costliest kernel of each kind first, rounds until diminishing returns,
then transfers to same-kind kernels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "tiny_space.json"


@pytest.mark.slow
def test_tune_schedules_policy_from_a_default_table(x86, tmp_path):
    from chamtvm.lower.network import lower_arch
    from chamtvm.measure.local import LocalRunner
    from chamtvm.pipeline.config import TuneConfig
    from chamtvm.pipeline.latency import tune_schedules
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.schedules import ScheduleSource, tuned_hashes
    from chamtvm.tuning.transfer import kernel_kind

    space = SearchSpace.load(TINY)
    net = lower_arch(space, space.sample(np.random.default_rng(1)), "tiny")
    runner = LocalRunner(x86)
    table = LatencyTable(tmp_path / "x86.jsonl")
    sched = ScheduleSource(x86, tmp_path / "schedules" / "x86")
    fill_table(prepare(net.kernels, x86, sched), table, runner, x86)
    cfg = TuneConfig(trials=4, trials_per_kernel=4, tuning_population=16, progress=False)  # small rounds
    lines = tune_schedules(net.kernels, table, x86, sched, cfg, log=lambda s: None, runner=runner)

    joint = [x for x in lines if x["policy"] == "joint"]
    assert len(joint) == 1 and joint[0]["trials"] == 4 and joint[0]["best_us"] > 0
    by_cost = max(prepare(net.kernels, x86, ScheduleSource(x86, use_database=False)),
                  key=lambda p: table.get(p.key)["runtime_us_p50"] * p.kernel.count)
    assert joint[0]["struct_hash"] == by_cost.kernel.struct_hash  # the costliest kernel first
    kind = kernel_kind(by_cost.kernel)
    same_kind = {k.struct_hash for k in net.kernels if kernel_kind(k) == kind} - {by_cost.kernel.struct_hash}
    assert {x["struct_hash"] for x in lines if x["policy"] == "transfer"} == same_kind
    assert tuned_hashes(x86, sched.work_dir) == {by_cost.kernel.struct_hash}

    # every line has the fields the job's report prints
    assert all({"name", "trials", "tuning_s", "default_us", "best_us"} <= set(x) for x in lines)
