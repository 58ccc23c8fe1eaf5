"""The tuning policy end to end on the tiny space: kernels tuned jointly (tiny trial count and
evolutionary population), their traces transferred to same-kind kernels, and one schedule
everywhere: the table row, the network build and the exported library all use the tuned
kernel's schedule; which kernels the policy picks within a budget (fast)."""

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


@pytest.fixture(scope="module")
def tiny_net(x86, tmp_path_factory):
    """One network of the tiny space, its default-schedule table (every kernel measured once
    for the module's tests, which copy it) and one measuring child shared by them:
    ``(space, arch, net, runner, table path, default_us)``."""
    import shutil
    from types import SimpleNamespace

    from chamtvm.lower.network import lower_arch
    from chamtvm.measure.local import LocalRunner
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.schedules import ScheduleSource

    space = SearchSpace.load(TINY)
    arch = space.sample(np.random.default_rng(0))
    net = lower_arch(space, arch, "tiny")
    runner = LocalRunner(x86)
    path = tmp_path_factory.mktemp("policy") / "x86.jsonl"
    table = LatencyTable(path)
    prepared = prepare(net.kernels, x86, ScheduleSource(x86, use_database=False))
    fill_table(prepared, table, runner, x86)
    default_us = {p.kernel.struct_hash: table.get(p.key)["runtime_us_p50"] for p in prepared}

    def table_copy(dest):
        shutil.copyfile(path, dest)
        return LatencyTable(dest)

    return SimpleNamespace(space=space, arch=arch, net=net, runner=runner, table_copy=table_copy,
                           default_us=default_us)


@pytest.mark.slow
def test_joint_tuning_transfer_and_one_schedule_everywhere(x86, tmp_path, pickled_cost_model_tar, tiny_net):
    import tvm
    import tvm_ffi
    from tvm import relax

    from chamtvm.deploy.export import export_network
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.tuning.database import tuned_hashes
    from chamtvm.tuning.policy import TuningTask, tune_tasks
    from chamtvm.tuning.provenance import TRANSFER_LOG
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.tuning.transfer import kernel_kind, transfer_schedules

    space, arch, net, runner = tiny_net.space, tiny_net.arch, tiny_net.net, tiny_net.runner
    work = tmp_path / "schedules" / "x86"
    convs = sorted((k for k in net.kernels if "conv2d" in k.name), key=lambda k: -k.flops)
    heads = convs[:2]
    # a schedules folder from elsewhere holding TVM's pickle-based cost model with a payload
    marker = pickled_cost_model_tar(work / "cost_model_xgb.tar", tmp_path / "payload-ran")
    notes = []
    rep = tune_tasks([TuningTask(k.func, k.struct_hash, k.name, k.count) for k in heads], x86,
                     trials=4, work_dir=work, round_trials=2, population=16, log=notes.append)  # small rounds
    assert not marker.exists() and any("pickle-based format is ignored" in n for n in notes)
    assert set(rep.trials) == {k.struct_hash for k in heads} and sum(rep.trials.values()) == 4
    assert all(rep.best_us[k.struct_hash] > 0 for k in heads)
    assert tuned_hashes(x86, work) == {k.struct_hash for k in heads}  # one log line per tuned kernel
    from chamtvm.tuning.cost_model import load_cost_model

    warm = load_cost_model(work, log=notes.append)  # the shared model, warm for the next run, no code run
    assert warm.booster is not None and warm.data_size >= 4 and not marker.exists() and notes

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
    table = tiny_net.table_copy(tmp_path / "x86.jsonl")  # default rows measured already
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


def test_choose_kernels_costliest_of_each_kind_first_within_the_budget(tiny_space, tiny_archs):
    """The kernels of the session's three tiny networks (their lowering is cached for the
    session: tests/tuning/test_transfer.py lowers the same; the whole space's kernel map
    would cost the fast tier a lowering of every block)."""
    from chamtvm.lower.network import lower_arch
    from chamtvm.tuning.policy import choose_kernels
    from chamtvm.tuning.transfer import kernel_kind

    kernels = list({k.struct_hash: k for a in tiny_archs for k in lower_arch(tiny_space, a).kernels}.values())
    default_us = {k.struct_hash: float(10 + i) for i, k in enumerate(kernels)}  # a made-up table
    cost = {k.struct_hash: default_us[k.struct_hash] * k.count for k in kernels}
    kinds = {kernel_kind(k) for k in kernels}
    assert len(kinds) >= 2
    for n in (1, len(kinds), len(kinds) + 2):
        picked = choose_kernels(kernels, default_us, trials=8 * n, trials_per_kernel=8)
        assert len(picked) == n and [c for c, _ in picked] == sorted((c for c, _ in picked), reverse=True)
        picked_kinds = [kernel_kind(k) for _, k in picked]
        if n <= len(kinds):  # one kernel of a kind before any second one, the costliest of each
            assert len(set(picked_kinds)) == n
            for _, k in picked:
                assert cost[k.struct_hash] == max(cost[x.struct_hash] for x in kernels if kernel_kind(x) == kernel_kind(k))
    # a budget under one kernel's share
    # goes to the costliest kernel; kernels without a default time are left out
    assert [k for _, k in choose_kernels(kernels, default_us, 7, 8)] == [max(kernels, key=lambda k: cost[k.struct_hash])]
    assert choose_kernels(kernels, {}, 64, 8) == [] and choose_kernels(kernels, default_us, 0, 8) == []


@pytest.mark.slow
def test_tune_schedules_policy_from_a_default_table(x86, tmp_path, tiny_net):
    """The whole policy on the tiny space, from a default table: the costliest kernel of each
    kind first, rounds until diminishing returns, then transfers to same-kind kernels."""
    from chamtvm.tuning.database import tuned_hashes
    from chamtvm.tuning.policy import tune_schedules
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.tuning.transfer import kernel_kind

    net, runner, default_us = tiny_net.net, tiny_net.runner, tiny_net.default_us
    sched = ScheduleSource(x86, tmp_path / "schedules" / "x86")
    notes = []
    lines = tune_schedules(net.kernels, default_us, x86, sched, trials=4, trials_per_kernel=8, population=16,
                           log=notes.append, runner=runner)  # small rounds; 4 trials: under one kernel's share
    assert any("4 trials are less than one kernel's share" in n for n in notes)

    joint = [x for x in lines if x["policy"] == "joint"]
    assert len(joint) == 1 and joint[0]["trials"] == 4 and joint[0]["best_us"] > 0
    by_cost = max(net.kernels, key=lambda k: default_us[k.struct_hash] * k.count)
    assert joint[0]["struct_hash"] == by_cost.struct_hash  # the costliest kernel first
    kind = kernel_kind(by_cost)
    same_kind = {k.struct_hash for k in net.kernels if kernel_kind(k) == kind} - {by_cost.struct_hash}
    assert {x["struct_hash"] for x in lines if x["policy"] == "transfer"} == same_kind
    assert tuned_hashes(x86, sched.work_dir) == {by_cost.struct_hash}

    # every line has the fields the job's report prints
    assert all({"name", "trials", "tuning_s", "default_us", "best_us"} <= set(x) for x in lines)

    # a rerun with the same budget is up to date: nothing tuned or transferred, nothing added
    files = {p.name: p.read_bytes() for p in sched.work_dir.glob("*.json*") if p.is_file()}
    notes.clear()
    assert tune_schedules(net.kernels, default_us, x86, sched, trials=4, trials_per_kernel=8, population=16,
                          log=notes.append, runner=runner) == []
    assert any("tuning up to date" in n for n in notes)
    assert {p.name: p.read_bytes() for p in sched.work_dir.glob("*.json*") if p.is_file()} == files


@pytest.mark.slow
def test_two_runs_on_one_database_and_a_kill_in_round_1_spend_the_budget_once(x86, tmp_path, tiny_dense_kernels):
    """Two tuning processes start at once on one database (the same two kernels, 6 trials,
    rounds of 2 per kernel): one holds the lock, the other waits. The holder is killed (-9)
    once its round 0 is journaled; the waiter then resumes that tuning and spends only what is
    left: no kernel tuned twice, at most the budget of records, one log line per kernel. A
    rerun afterwards tunes nothing."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from chamtvm.tuning.database import read_progress, records_of, tuned_records
    from chamtvm.tuning.policy import TuningTask, tune_tasks
    from chamtvm.tuning.schedules import ScheduleSource

    work = tmp_path / "x86"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, tiny_dense_kernels.__file__, str(work), "6", "2"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
             for _ in range(2)]
    try:
        deadline = time.time() + 900
        while time.time() < deadline and not any(e.get("event") == "round" for e in read_progress(work)):
            assert all(p.poll() is None for p in procs), [p.communicate()[0][-2000:] for p in procs]
            time.sleep(0.05)
        holder_pid = next(e["pid"] for e in read_progress(work) if e.get("event") == "start")
        holder = next(p for p in procs if p.pid == holder_pid)
        os.killpg(holder.pid, signal.SIGKILL)  # in round 1 (its round 0 is journaled)
        holder.wait(timeout=60)
        waiter = next(p for p in procs if p is not holder)
        out, _ = waiter.communicate(timeout=900)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert waiter.returncode == 0, out[-3000:]
    assert "another tuning run is writing" in out and "resuming an interrupted tuning run" in out, out[-3000:]
    kernels = tiny_dense_kernels.dense_kernels()[:2]
    db = ScheduleSource(x86, work).database()
    spent = {k.struct_hash: records_of(db, k.func) for k in kernels}
    log = tuned_records(x86, work)
    assert set(log) == set(spent) and (work / "tuned_kernels.jsonl").read_text().count("\n") == 2  # once each
    assert 4 < sum(spent.values()) <= 6  # round 0 of the killed run counted, the budget never exceeded
    assert {h: r["trials"] for h, r in log.items()} == spent  # the log says what the database holds
    resumed = int(out.split("TRIALS")[-1].split()[0])
    assert resumed == sum(spent.values())  # the resumed run reports the whole tuning's trials

    rep = tune_tasks([TuningTask(k.func, k.struct_hash, k.name) for k in kernels], x86, 6, work,
                     round_trials=2, population=8)
    assert rep.trials == {} and {k.struct_hash: records_of(ScheduleSource(x86, work).database(), k.func)
                                 for k in kernels} == spent


@pytest.mark.slow
def test_further_tuning_continues_a_finished_kernel_once(x86, tmp_path, tiny_dense_kernels):
    """A network's own tuning (``further``) spends trials on a kernel whose tuning had
    finished (the plain policy leaves it alone); the log then says what the database holds,
    and the same further tuning asked again once it finished spends nothing."""
    from chamtvm.tuning.database import records_of, tuned_records
    from chamtvm.tuning.policy import TuningTask, tune_tasks
    from chamtvm.tuning.schedules import ScheduleSource

    work = tmp_path / "x86"
    k = tiny_dense_kernels.dense_kernels()[0]
    task = [TuningTask(k.func, k.struct_hash, k.name)]

    def records():
        return records_of(ScheduleSource(x86, work).database(), k.func)

    first = tune_tasks(task, x86, 2, work, round_trials=2, population=8)
    assert first.trials == {k.struct_hash: records()} and records() > 0
    again = tune_tasks(task, x86, 2, work, round_trials=2, population=8)
    assert again.trials == {}  # finished: the plain policy does not tune it again
    before = records()
    notes: list[str] = []
    more = tune_tasks(task, x86, 4, work, round_trials=2, population=8, further=True, log=notes.append)
    assert 0 < more.trials[k.struct_hash] <= 4 and records() == before + more.trials[k.struct_hash]
    line = tuned_records(x86, work)[k.struct_hash]
    assert line["trials"] == records() and line["further_trials"] == more.trials[k.struct_hash]
    assert more.best_us[k.struct_hash] is not None
    total = records()
    repeat = tune_tasks(task, x86, 4, work, round_trials=2, population=8, further=True, log=notes.append)
    assert records() == total and repeat.trials == more.trials
    assert any("not tuned again" in n for n in notes), notes
    # a named campaign (a network's tuning) is recognised even when it would choose another kernel
    other = tiny_dense_kernels.dense_kernels()[1]
    named = tune_tasks(task, x86, 2, work, round_trials=2, population=8, further=True, campaign="net A")
    assert set(named.trials) == {k.struct_hash} and 0 < named.trials[k.struct_hash] <= 2
    assert records() == total + named.trials[k.struct_hash]
    rerun = tune_tasks([TuningTask(other.func, other.struct_hash, other.name)], x86, 2, work, round_trials=2,
                       population=8, further=True, campaign="net A")
    assert rerun.trials == named.trials and records_of(ScheduleSource(x86, work).database(), other.func) == 0
