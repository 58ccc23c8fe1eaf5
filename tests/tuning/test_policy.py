"""The tuning policy end to end on the tiny space: kernels tuned jointly (tiny trial count and
evolutionary population), their traces transferred to same-kind kernels, and one schedule
everywhere: the table row, the network build and the exported library all use the tuned
kernel's schedule. Which search strategy a population gives is checked apart (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "tiny_space.json"


class _CaptureScheduled:
    """Pass instrument: the scheduled PrimFuncs of the first module that has any (the input
    of the build pipeline)."""

    def __init__(self):
        self.funcs = None

    def enter_pass_ctx(self):
        pass

    def exit_pass_ctx(self):
        pass

    def should_run(self, mod, info):
        return True

    def run_before_pass(self, mod, info):
        from tvm import tirx

        if self.funcs is None:  # lowering passes (no scheduled kernel yet) run first
            funcs = {gv.name_hint: f for gv, f in mod.functions.items()
                     if isinstance(f, tirx.PrimFunc) and f.attrs and "tirx.is_scheduled" in f.attrs}
            self.funcs = funcs or None

    def run_after_pass(self, mod, info):
        pass


def test_population_sets_the_evolutionary_search_and_none_keeps_metaschedules_default():
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.tuning.schedules import evolutionary_strategy as _strategy

    assert _strategy(None) == "evolutionary"  # MetaSchedule's own, population 512
    small = _strategy(16)
    assert isinstance(small, ms.search_strategy.EvolutionarySearch)
    assert small.population_size == 16 and small.init_min_unmeasured == 16
    assert _strategy(512).init_min_unmeasured == 50


@pytest.mark.slow
def test_joint_tuning_transfer_and_one_schedule_everywhere(x86, tmp_path):
    import tvm
    import tvm_ffi
    from tvm import relax

    from chamtvm.deploy.export import export_network
    from chamtvm.lower.network import lower_arch
    from chamtvm.measure.local import LocalRunner
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.policy import TuningTask, tune_tasks
    from chamtvm.tuning.provenance import TRANSFER_LOG
    from chamtvm.tuning.schedules import ScheduleSource, tuned_hashes
    from chamtvm.tuning.transfer import kernel_kind, transfer_schedules

    space = SearchSpace.load(TINY)
    arch = space.sample(np.random.default_rng(0))
    net = lower_arch(space, arch, "tiny")
    work = tmp_path / "schedules" / "x86"
    convs = sorted((k for k in net.kernels if "conv2d" in k.name), key=lambda k: -k.flops)
    heads = convs[:2]
    rep = tune_tasks([TuningTask(k.func, k.struct_hash, k.name, k.count) for k in heads], x86,
                     trials=4, work_dir=work, round_trials=2, population=16)  # small rounds: a small population
    assert set(rep.trials) == {k.struct_hash for k in heads} and sum(rep.trials.values()) == 4
    assert all(rep.best_us[k.struct_hash] > 0 for k in heads)
    assert tuned_hashes(x86, work) == {k.struct_hash for k in heads}  # one log line per tuned kernel
    assert (work / "cost_model_xgb.tar").exists()  # the shared model, warm for the next run

    runner = LocalRunner(x86)
    transfers = transfer_schedules(net.kernels, x86, runner, work)
    head_kinds = {kernel_kind(k) for k in heads}
    expected = {k.struct_hash for k in net.kernels if kernel_kind(k) in head_kinds} - {k.struct_hash for k in heads}
    assert {t.struct_hash for t in transfers} == expected
    assert all(t.default_us and t.default_us > 0 for t in transfers)
    logged = [json.loads(x) for x in (work / TRANSFER_LOG).read_text().splitlines()] if transfers else []
    assert len(logged) == len(transfers)

    # the table rows state where their schedule came from
    sched = ScheduleSource(x86, work)
    prepared = {p.kernel.struct_hash: p for p in prepare(net.kernels, x86, sched)}
    committed = {t.struct_hash for t in transfers if t.committed}
    for h, p in prepared.items():
        want = "tuned" if h in {k.struct_hash for k in heads} else ("transferred" if h in committed else "default")
        assert p.provenance == want, (p.kernel.name, p.provenance, want)
    table = LatencyTable(tmp_path / "x86.jsonl")
    fill_table(list(prepared.values()), table, runner, x86)
    for p in prepared.values():
        row = table.get(p.key)
        assert row["schedule"] == p.schedule and row["schedule_provenance"] == p.provenance

    # the exported library is built from exactly the scheduled PrimFuncs the rows were measured with
    inst = tvm.ir.instrument.pass_instrument(_CaptureScheduled)()
    with tvm.transform.PassContext(instruments=[inst]):
        paths = export_network(space, arch, x86, tmp_path / "export", schedules=sched)
    scheduled = list((inst.funcs or {}).values())
    tuned_rows = [p for p in prepared.values() if p.schedule != "default"]
    assert len(scheduled) == len(tuned_rows) >= 2
    for p in tuned_rows:
        want = p.func.without_attr("global_symbol")
        assert any(tvm_ffi.structural_equal(f.without_attr("global_symbol"), want) for f in scheduled), p.kernel.name

    # and it computes what the default build computes
    x = np.random.default_rng(0).standard_normal(net.inputs[0].shape).astype("float32")
    lib = tvm.runtime.load_module(paths["library"])
    got = relax.VirtualMachine(lib, tvm.cpu())["main"](tvm.runtime.tensor(x, tvm.cpu())).numpy()
    from chamtvm.measure.compile import compile_network

    ref = relax.VirtualMachine(compile_network(net.fused, x86), tvm.cpu())["main"](
        tvm.runtime.tensor(x, tvm.cpu())).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
