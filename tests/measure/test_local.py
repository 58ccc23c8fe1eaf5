"""Measuring for real on the local CPU: batches, kill-safety, resume, prediction fidelity."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from chamtvm.table.store import LatencyTable
from chamtvm.measure.local import LocalRunner
from chamtvm.lower.network import lower_arch
from chamtvm.measure.network import measure_network
from chamtvm.latency.table_sum import table_sum
from chamtvm.tuning.schedules import ScheduleSource
from chamtvm.table.fill import MAX_TIMINGS, fill_table, prepare

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_kernels(tiny_kernel_map):
    """Every kernel of the tiny space, in ``space_kernels``' order, from the session's kernel
    map (conftest: lowering the space costs ~15-30 s)."""
    return sorted(tiny_kernel_map.kernels.values(), key=lambda k: (k.name, k.struct_hash))


@pytest.fixture(scope="module")
def filled_table(tiny_space_table):
    """The session's table of the tiny space (conftest): measured once, in batches of 16."""
    return tiny_space_table


@pytest.mark.slow
def test_table_covers_space_with_one_row_per_kernel(filled_table, tiny_kernels, x86):
    assert len(filled_table) == len(tiny_kernels)
    lines = filled_table.path.read_text().splitlines()
    assert len(lines) == len(tiny_kernels)
    row = filled_table.get(next(iter(filled_table.rows()))["key"])
    assert row["target"] == "x86" and row["schedule"] == "default" and row["tvm_version"]
    assert row["runtime_us_min"] <= row["runtime_us_p50"] <= row["runtime_us_max"]
    # in-network: one sample per kernel call, at least ``repeat`` of them; the row keeps those
    # of the measurement's fastest state (``measure.timing.fastest_state``), one or more
    assert row["samples_before_fast_state"] >= x86.evaluator.repeat
    assert 1 <= len(row["runtime_us_samples"]) <= row["samples_before_fast_state"]


@pytest.mark.slow  # shares a module fixture that measures a table
def test_rerun_measures_nothing_already_in_table(filled_table, tiny_kernels, x86, tmp_path):
    """A rerun measures no row timed at the device's nominal speed; a row timed while the
    machine ran slow (a busy CI runner) is timed again, at most ``MAX_TIMINGS`` times in all,
    so reruns settle: the last one measures nothing."""
    shutil.copytree(filled_table.path.parent, tmp_path / "luts")
    table = LatencyTable(tmp_path / "luts" / filled_table.path.name).load()
    prepared = prepare(tiny_kernels, x86, ScheduleSource(x86, use_database=False))
    keys = {p.key for p in prepared}
    assert keys == {r["key"] for r in table.rows()}
    for _ in range(MAX_TIMINGS):
        s = fill_table(prepared, table, LocalRunner(x86), x86)
        assert s.failed == 0 and s.skipped_failed_before == 0
        # only the rows not at nominal speed were measured; every other one was a table hit
        assert s.measured == s.retimed_not_nominal
        assert s.already_in_table + s.retimed_not_nominal == len(keys)
        if s.measured == 0:
            break
    assert s.measured == 0 and s.already_in_table == len(keys)
    assert all(table.timings(k) <= MAX_TIMINGS for k in keys)


@pytest.mark.slow
def test_table_sum_tracks_measured_latency(filled_table, tiny_space, x86):
    """Table sum vs end-to-end VM latency on a few small networks (same process, same run)."""
    runner = LocalRunner(x86)
    rng = np.random.default_rng(42)
    errors = []
    for _ in range(3):
        net = lower_arch(tiny_space, tiny_space.sample(rng))
        pred = table_sum(prepare(net.kernels, x86, ScheduleSource(x86, use_database=False)), filled_table)
        assert pred.complete, pred.missing
        res = measure_network(net, x86, runner)
        assert res.ok, res.error
        errors.append(res.median_us / (pred.latency_ms * 1e3))
    # On an idle machine the table sum is within a few percent (benchmarks/bench_fidelity.py);
    # the bound here is loose because CI machines are shared and another process on one of
    # the 2 cores doubles a multi-threaded TVM timing. A kernel counted wrongly or left out
    # of the sum, or a network built differently from its kernels, breaks it.
    assert all(0.4 < r < 2.5 for r in errors), errors


@pytest.mark.slow
def test_killed_measuring_process_loses_nothing(tiny_kernels, x86, tmp_path):
    """kill -9 of the measuring child mid-batch: its item is retried in a fresh child, every
    kernel ends in the table exactly once."""
    table = LatencyTable(tmp_path / "x86.jsonl")
    prepared = prepare(tiny_kernels, x86, ScheduleSource(x86, use_database=False))[:12]  # one batch of 12
    runner = LocalRunner(x86)
    killed = []

    def progress(n):
        if not killed and runner.last_worker_pid:
            os.killpg(runner.last_worker_pid, signal.SIGKILL)
            killed.append(runner.last_worker_pid)

    s = fill_table(prepared, table, runner, x86, batch_size=len(prepared), progress=progress)
    assert killed, "the worker was never killed"
    keys = [__import__("json").loads(l)["key"] for l in table.path.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == len(prepared)
    assert s.measured == len(prepared) and s.failed == 0


@pytest.mark.slow
def test_kill_9_of_the_whole_build_then_resume(tiny_space, x86, tmp_path):
    """kill -9 of the process filling the table mid-batch: finished rows stay, a rerun
    measures only what is missing, no row is duplicated."""
    lut = tmp_path / "x86.jsonl"
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from chamtvm.lower.network import lower_arch
        from chamtvm.table.store import LatencyTable
        from chamtvm.measure.local import LocalRunner
        from chamtvm.tuning.schedules import ScheduleSource
        from chamtvm.space.schema import SearchSpace
        from chamtvm.table.fill import MAX_TIMINGS, fill_table, prepare
        from chamtvm.targets.spec import get_target
        t = get_target("x86")
        space = SearchSpace.load({str(REPO / 'tests/data/space_tiny3.json')!r})
        ks = lower_arch(space, space.sample(np.random.default_rng(0))).kernels  # one network's 15 kernels (the space's: ~20 s more per run)
        p = prepare(ks, t, ScheduleSource(t, use_database=False))
        s = fill_table(p, LatencyTable({str(lut)!r}).load(), LocalRunner(t), t, batch_size=len(p))
        print("SUMMARY", s.measured, s.already_in_table, len(p), flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        if lut.exists() and len(lut.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = lut.read_text().splitlines()
    assert len(before) >= 3
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    measured, already, total = map(int, out.stdout.split("SUMMARY")[1].split())
    assert already == len(LatencyTable(lut).load()) - measured
    assert already >= len([l for l in before if l.endswith("}")]) - 1
    keys = [__import__("json").loads(l)["key"] for l in lut.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == total
    assert lut.read_text().splitlines()[: len(before) - 1] == before[: len(before) - 1]


@pytest.mark.slow
def test_measuring_process_runs_the_targets_thread_count(tiny_kernels, x86, tmp_path):
    """The child runs TVM with the target's ``threads`` (TVM_NUM_THREADS), whatever the
    parent's environment says; a target without ``threads`` leaves TVM's default."""
    import dataclasses

    from chamtvm.measure.compile import build_kernel_library

    p = prepare(tiny_kernels[:1], x86, ScheduleSource(x86, use_database=False))[0]
    lib = build_kernel_library([(p.symbol, p.func)], x86, tmp_path / "k.so")
    seen = {}
    for threads in (1, 2):
        target = dataclasses.replace(x86, threads=threads)
        res = list(LocalRunner(target).measure_kernels(lib, [p.item()], target.evaluator))
        assert res[0].ok, res[0].error
        seen[threads] = res[0].extra["runtime_threads"]
    assert seen == {1: 1, 2: 2}
    assert dataclasses.replace(x86, threads=1).fingerprint != dataclasses.replace(x86, threads=2).fingerprint


def test_several_networks_are_timed_in_one_child_and_a_broken_one_fails_alone(tiny_net, x86, tmp_path):
    """``LocalRunner.measure_networks``: one measuring process times every network in turn;
    a library that cannot be loaded kills that process, its network fails with why, and the
    networks after it are timed in a fresh process."""
    from dataclasses import replace

    from chamtvm.measure.network import build_for_measuring

    evaluator = replace(x86.network_evaluator, nominal_tolerance=None, repeat=3, min_repeat_ms=0)
    good = tmp_path / "good.so"
    assert build_for_measuring(tiny_net, x86, None, good) is None
    broken = tmp_path / "broken.so"
    broken.write_bytes(b"not a shared library")
    runner = LocalRunner(x86)
    started = []
    results = []
    for res in runner.measure_networks([("a", good, tiny_net.inputs), ("b", broken, tiny_net.inputs),
                                        ("c", good, tiny_net.inputs)], evaluator):
        started.append(runner.last_worker_pid)
        results.append(res)
    assert [r.key for r in results] == ["a", "b", "c"]
    assert results[0].ok and results[2].ok and results[0].samples_us and results[2].extra["runtime_threads"] >= 1
    assert not results[1].ok and "measuring process" in results[1].error
    assert started[0] == started[1] != started[2]  # a, b in the first process; c in a fresh one
