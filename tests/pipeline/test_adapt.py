"""``pipeline.adapt``: the parts of the accuracy and search steps that decide without training
or compiling: which task can train which space (and why not), the automatic budgets,
whether an export is up to date (so a rerun exports nothing twice), and the main job's list
without accuracy steps (every later step skipped by data, each listed). (The whole chain,
with real trainings, exports and measurements, is ``test_job.py``'s.)"""

import pytest
import json
from types import SimpleNamespace

import numpy as np

from chamtvm.pipeline.adapt import auto_budgets, export_pick, export_up_to_date, trainer_for
from chamtvm.space.schema import SearchSpace


def test_trainer_for_each_task_or_the_reason_it_cannot_train(tiny_space, tmp_path, monkeypatch):
    from chamtvm.accuracy import datasets

    fashion = SearchSpace.load("fashion")
    assert trainer_for("none", fashion) == (None, "skipped (--task none)")
    trainer, why = trainer_for("digits", fashion)
    assert why is None and trainer.task == "digits"
    cases = [("nas-bench-macro", fashion, None, "needs space 'macro'"),
             ("command", fashion, None, "task 'command' needs a trainer command"),
             ("digits", tiny_space, None, "has 1x28x28 inputs and 10 classes; space 'tiny3' has 3 channels")]
    for task, space, cmd, msg in cases:
        trainer, why = trainer_for(task, space, cmd)
        assert trainer is None and why.startswith("skipped: ") and msg in why, why
    monkeypatch.setenv("CHAMTVM_FASHION_MNIST_DIR", str(tmp_path))
    monkeypatch.setattr(datasets, "_CACHE", {})
    trainer, why = trainer_for("fashion-mnist", fashion)
    assert trainer is None and "apt-get install dataset-fashion-mnist" in why


def test_auto_budgets_are_quantiles_to_three_digits():
    lat = np.linspace(1.0, 2.0, 101)  # quantiles 1.25, 1.5, 1.75 exactly
    ctx = SimpleNamespace(latency_range_ms=lambda: lat * 1.23456)
    assert auto_budgets(ctx) == [1.54, 1.85, 2.16]
    assert auto_budgets(ctx, quantiles=(0.0, 1.0)) == [1.23, 2.47]


def test_export_up_to_date_needs_the_same_stamp_and_every_file(tmp_path):
    stamp = {"arch": {"a": 1}, "space": "s", "kernel_keys": ["k1"]}
    assert not export_up_to_date(tmp_path, stamp)  # never exported
    lib = tmp_path / "net.so"
    lib.write_bytes(b"x")
    (tmp_path / "export.json").write_text(json.dumps({"stamp": stamp, "paths": {}, "files": [str(lib)]}))
    assert export_up_to_date(tmp_path, stamp)
    assert not export_up_to_date(tmp_path, {**stamp, "kernel_keys": ["k2"]})  # another schedule
    lib.unlink()
    assert not export_up_to_date(tmp_path, stamp)  # an artefact is gone
    (tmp_path / "export.json").write_text('{"stamp": ')  # torn
    assert not export_up_to_date(tmp_path, stamp)


def test_export_pick_skips_an_up_to_date_export(tiny_space, x86, tmp_path):
    arch = tiny_space.sample(np.random.default_rng(0))
    prepared = [SimpleNamespace(key="fp/default/2"), SimpleNamespace(key="fp/default/1")]
    stamp = {"arch": arch.to_dict(), "space": tiny_space.name, "kernel_keys": ["fp/default/1", "fp/default/2"]}
    lib = tmp_path / "network_x86.so"
    lib.write_bytes(b"x")
    paths = {"library": str(lib), "input_shape": [1, 3, 32, 32]}
    (tmp_path / "export.json").write_text(json.dumps({"stamp": stamp, "paths": paths, "files": [str(lib)]}))
    assert export_pick(tiny_space, arch, x86, tmp_path, None, prepared) == (paths, False)


def test_job_without_accuracy_steps_skips_and_lists_them(x86, in_process_runner, tmp_path):
    from chamtvm.pipeline.config import TuneConfig
    from chamtvm.pipeline.job import TUNE_STEPS
    from chamtvm.pipeline.state import JobState
    from chamtvm.pipeline.steps import run_steps

    from pathlib import Path

    space = Path(__file__).resolve().parents[1] / "data" / "space_tiny3.json"
    cfg = TuneConfig(space=str(space), task="none",
                     luts_dir=tmp_path / "luts", runs_dir=tmp_path / "runs", progress=False)
    names = ["open", "task", "space latency", "budgets", "accuracy", "search context", "search", "export",
             "measure picks", "regret"]
    said = []
    state = run_steps([s for s in TUNE_STEPS if s.name in names], JobState(x86, in_process_runner(), cfg, said.append))
    why = "skipped (--task none)"
    assert state.skipped == {"space latency": why, **{n: f"step 'space latency' skipped ({why})" for n in names[3:]}}
    assert "note: the accuracy predictor and the search will be skipped (--task none)" in said


@pytest.mark.slow
def test_observed_picks_are_the_loops_best_looked_up_networks_when_its_pool_is_the_space(tiny_gray_search):
    """The main job's pick per budget (``search`` step) when the loop saw the whole space: the
    best network it looked up within the budget; none when its pool is a sample."""
    from chamtvm.accuracy.budgeted import pick_under_budgets
    from chamtvm.accuracy.encoding import accuracy_features, arch_costs
    from chamtvm.accuracy.fit import PredictorBuild
    from chamtvm.pipeline.adapt import observed_picks

    space, rows = tiny_gray_search.space, np.array(tiny_gray_search.rows, dtype=np.int64)
    pool = [space.from_indices(r) for r in rows]
    truth = np.array([tiny_gray_search.accuracy(a) for a in pool])
    lat = arch_costs(space, rows)[:, 1] / 1e6  # a real latency stand-in: millions of MACs
    budgets = [float(np.quantile(lat, 0.4)), float(lat.max())]
    res = pick_under_budgets(accuracy_features(space, rows, cost=False), lambda i: truth[i], lat, budgets, 8, seed=0)
    build = PredictorBuild(None, space, pool, res.lookups, res.values, 8, 0, budgeted=res, pool_latency_ms=lat)
    got = observed_picks(build, space)
    assert got and set(got) == {p.budget_ms for p in res.picks if p.observed}
    for budget, (row, acc) in got.items():
        seen = [i for i in res.lookups if lat[i] <= budget]
        i = int(np.flatnonzero((rows == row).all(axis=1))[0])
        assert i in seen and acc == truth[i] == max(truth[seen])
    assert got[float(lat.max())][1] == max(truth[res.lookups])  # every network meets the largest budget
    sample = PredictorBuild(None, space, pool[:-1], res.lookups, res.values, 8, 0, budgeted=res)
    assert observed_picks(sample, space) == {} and observed_picks(None, space) == {}


def test_a_pick_whose_schedules_changed_since_pricing_is_priced_again_as_exported(tmp_path, x86, tiny_space,
                                                                                   tiny_archs):
    """``schedules_as_exported``: a kernel priced with a tuned record that the database no
    longer gives (here: set aside as slower than its default, as a record TVM cannot read back
    also ends) is named in a warning, and the pick's prepared kernels and prediction become
    those of the library that ships; unchanged schedules leave the pick as it is."""
    from tvm import s_tir
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.lower.kernels import kernel_hash
    from chamtvm.lower.network import lower_arch
    from chamtvm.pipeline.adapt import Pick, schedules_as_exported
    from chamtvm.table.fill import prepare
    from chamtvm.tuning.database import workload_module
    from chamtvm.tuning.provenance import prefer_default
    from chamtvm.tuning.schedules import DEFAULT_TAG, ScheduleSource

    import re

    net = lower_arch(tiny_space, tiny_archs[0], "pick", **x86.lowering())
    kernel = max(net.kernels, key=lambda k: k.flops)
    mod = workload_module(kernel.func)
    sch = s_tir.Schedule(mod)  # a real (small) schedule: the last block's outer loop parallel
    sch.parallel(sch.get_loops(sch.get_sblock(re.findall(r'T\.sblock\("(\w+)"', mod.script())[-1]))[0])
    db = ms.database.JSONDatabase(work_dir=str(tmp_path))
    db.commit_tuning_record(ms.database.TuningRecord(
        trace=sch.trace, workload=db.commit_workload(mod), run_secs=[1e-6], target=x86.tvm(),
        args_info=ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
    schedules = ScheduleSource(x86, tmp_path)
    pick = Pick(1.0, arch=tiny_archs[0], net=net, prepared=prepare(net.kernels, x86, schedules))
    tag = next(p.schedule for p in pick.prepared if p.kernel.struct_hash == kernel.struct_hash)
    assert tag != DEFAULT_TAG
    priced, said = [], []

    def predict(prepared):
        priced.append([p.key for p in prepared])
        return "price of " + ",".join(p.schedule for p in prepared)

    assert schedules_as_exported(pick, x86, schedules, predict, said.append) == [] and not priced and not said
    prefer_default(tmp_path, tag, kernel_hash(kernel.func), kernel.name, tuned_us=9.0, default_us=8.0)
    schedules.reload()
    assert schedules_as_exported(pick, x86, schedules, predict, said.append) == [kernel.name]
    assert all(p.schedule == DEFAULT_TAG for p in pick.prepared)
    assert priced == [[p.key for p in pick.prepared]] and pick.prediction.startswith("price of default")
    assert len(said) == 1 and "WARNING" in said[0] and kernel.name in said[0]
