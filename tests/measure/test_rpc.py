"""RPC runner against a real tracker and real x86 RPC servers on 127.0.0.1 (free ports).

Every tracker and server is started here and stopped in a ``finally`` (process groups).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# real trackers, servers and full main-job runs: minutes on 2 cores
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "tiny_space.json"


# ------------------------------------------------------------------------ fixtures
def _until_done(group):
    """Yield a started tracker or server ``group`` to the tests, then stop its processes."""
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture(scope="module")
def tracker():
    from chamtvm.devices import start_tracker

    yield from _until_done(start_tracker())


@pytest.fixture(scope="module")
def two_servers(tracker):
    from chamtvm.devices import start_x86_server

    yield from _until_done(start_x86_server(tracker, "x86pair", n=2))


@pytest.fixture(scope="module")
def tiny_prepared(x86):
    from chamtvm.lower.coverage import space_kernels
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.fill import prepare

    return prepare(space_kernels(SearchSpace.load(TINY)), x86, ScheduleSource(x86, use_database=False))


def _scalar_library(tmp_path: Path, target, crash: bool = False):
    """A real library of small kernels; ``crash`` adds one that writes 64 GiB out of bounds."""
    import tvm
    from tvm.script import tirx as T

    from chamtvm.lower.kernels import ArgSpec
    from chamtvm.measure.base import KernelItem
    from chamtvm.measure.compile import export

    @T.prim_func
    def inc(A: T.Buffer((1024,), "float32")):
        for i in range(1024):
            A[i] = A[i] + T.float32(1)

    @T.prim_func
    def bad(A: T.Buffer((4,), "float32")):
        for i in range(4):
            A[T.int64(i) * T.int64(17179869184)] = T.float32(1)

    funcs = {"inc": inc}
    if crash:
        funcs["bad"] = bad
    mod = tvm.IRModule({k: f.with_attr("global_symbol", k) for k, f in funcs.items()})
    lib = export(tvm.tirx.build(mod, target=target.tvm()), target, tmp_path / "scalar.so")
    arg = (ArgSpec((1024,), "float32"),)
    return lib, (lambda key, sym="inc": KernelItem(key, sym, arg if sym == "inc" else (ArgSpec((4,), "float32"),)))


# --------------------------------------------------------------------------- tests
def test_unreachable_tracker_fails_fast_with_clear_error(x86):
    from chamtvm.devices import free_port
    from chamtvm.measure.rpc import DeviceError, RPCRunner

    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=rf"cannot reach the RPC tracker at 127.0.0.1:{port}"):
        RPCRunner(x86, "127.0.0.1", port, "x86", connect_timeout_s=3).open()
    assert time.monotonic() - t0 < 10


def test_key_without_devices_fails_fast_with_clear_error(tracker, two_servers, x86):
    from chamtvm.measure.rpc import DeviceError, RPCRunner

    t0 = time.monotonic()
    with pytest.raises(DeviceError) as err:
        RPCRunner(x86, *tracker.tracker, "nobody-here", wait_for_device_s=2).open()
    assert time.monotonic() - t0 < 15
    msg = str(err.value)
    assert "no device is registered under key 'nobody-here'" in msg
    assert "x86pair" in msg  # lists the keys that do exist


def test_cli_errors_for_unreachable_tracker(x86, tmp_path):
    from chamtvm.devices import free_port

    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "chamtvm", "tune", "--target", "x86", "--tracker", f"127.0.0.1:{free_port()}",
         "--space", str(TINY), "--luts-dir", str(tmp_path), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "cannot reach the RPC tracker" in out.stderr
    assert time.monotonic() - t0 < 90


def test_table_fill_runs_batches_on_both_devices(tracker, two_servers, tiny_prepared, x86, tmp_path):
    from chamtvm.table.store import LatencyTable
    from chamtvm.measure.rpc import RPCRunner
    from chamtvm.table.fill import build_batches, fill_table

    table = LatencyTable(tmp_path / "x86.jsonl").load()
    with RPCRunner(x86, *tracker.tracker, "x86pair") as runner:
        assert runner.parallelism() == 2
        assert runner.label == f"rpc x86@127.0.0.1:{tracker.tracker[1]} key=x86pair"
        assert runner.emulated is False
        summary = fill_table(tiny_prepared, table, runner, x86, batch_size=3)
        assert summary.measured == len({p.key for p in tiny_prepared}) and summary.failed == 0
        rows = list(table.rows())
        assert all(r["device_label"] == runner.label and r["emulated"] is False for r in rows)
        # x86 times kernels inside batch networks: the servers answer chamtvm.time_calls (insitu.RuntimeVM)
        assert runner.times_in_network() and all(r["timing"] in ("in_network", "elided") for r in rows)
        # every sample taken, those of the measurement's fastest state kept (fast_state_tolerance):
        # at least what the sampler promises, even where a slow host spent the budget
        # (measure.timing.sample_at_nominal_speed)
        promised = min(x86.evaluator.repeat, x86.evaluator.nominal_samples)
        assert all(r["runtime_us_p50"] > 0 and r.get("samples_before_fast_state", len(r["runtime_us_samples"]))
                   >= promised for r in rows)

        # the same batches again, looking at which server measured what: both took part
        results = list(runner.measure_batches(
            build_batches(tiny_prepared, x86, tmp_path, 2), x86.evaluator))
        assert sorted(r.key for r in results) == sorted(p.key for p in tiny_prepared)
        assert all(r.ok for r in results)
        assert len({r.extra["device"] for r in results}) == 2
        assert runner.stats.sessions_lost == 0


def test_network_measured_over_rpc_close_to_table_sum(tracker, two_servers, x86, tmp_path):
    import numpy as np

    from chamtvm.table.store import LatencyTable
    from chamtvm.measure.rpc import RPCRunner
    from chamtvm.lower.network import lower_arch
    from chamtvm.measure.network import measure_network
    from chamtvm.latency.table_sum import table_sum
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.fill import fill_table, prepare

    space = SearchSpace.load(TINY)
    arch = space.sample(np.random.default_rng(1))
    net = lower_arch(space, arch, "net")
    sched = ScheduleSource(x86, use_database=False)
    prep = prepare(net.kernels, x86, sched)
    table = LatencyTable(tmp_path / "x86.jsonl").load()
    with RPCRunner(x86, *tracker.tracker, "x86pair") as runner:
        fill_table(prep, table, runner, x86)
        res = measure_network(net, x86, runner, sched)
    assert res.ok, res.error
    # a nominal measurement kept enough samples at nominal speed; of those, the row keeps the
    # ones of its fastest state (``measure.timing.fastest_state``), one or more
    kept_nominal = res.extra.get("samples_before_fast_state", len(res.samples_us))
    assert kept_nominal >= x86.network_evaluator.nominal_samples or not res.extra.get("nominal", True)
    assert 1 <= len(res.samples_us) <= kept_nominal
    pred = table_sum(prep, table)
    assert pred.complete
    # same 2 busy cores for both figures: generous, but catches a wrong unit or count
    assert 0.3 < pred.latency_ms * 1e3 / res.median_us < 3.0


def test_crashing_kernel_is_recorded_failed_and_the_rest_goes_on(tracker, x86, tmp_path):
    from chamtvm.devices import start_x86_server
    from chamtvm.devices.local import count_servers
    from chamtvm.measure.rpc import RPCRunner

    lib, item = _scalar_library(tmp_path, x86, crash=True)
    items = [item("a"), item("b", "bad"), item("c")]
    with start_x86_server(tracker, "x86crash", n=1):
        with RPCRunner(x86, *tracker.tracker, "x86crash", device_return_s=30) as runner:
            t0 = time.monotonic()
            results = {r.key: r for r in runner.measure_kernels(lib, items, x86.evaluator)}
            assert time.monotonic() - t0 < 60
        assert results["a"].ok and results["c"].ok
        assert not results["b"].ok
        assert "remote session died 2 times while running this kernel" in results["b"].error
        assert runner.stats.sessions_lost == 2
        assert count_servers(*tracker.tracker, "x86crash") == 1  # the device is still there


def test_server_killed_mid_batch_retries_on_the_other_device(tracker, x86, tmp_path):
    from chamtvm.devices import start_x86_server
    from chamtvm.measure.rpc import RPCRunner, default_run_kernel

    lib, item = _scalar_library(tmp_path, x86)
    items = [item(f"k{i}") for i in range(8)]
    with start_x86_server(tracker, "x86kill", n=2, restart=False) as servers:
        by_port = {int(p.name.rsplit("-", 1)[1]): p for p in servers.processes}
        killed = []
        messages = []

        def run_and_kill(session, module, it, evaluator):
            res = default_run_kernel(session, module, it, evaluator, x86)
            if it.key == "k2" and not killed:  # pull the plug on this device mid-batch
                proc = by_port[session.device_addr[1]]
                os.killpg(proc.pid, signal.SIGKILL)
                killed.append(proc.name)
            return res

        with RPCRunner(x86, *tracker.tracker, "x86kill", f_run_kernel=run_and_kill,
                       log=messages.append) as runner:
            results = list(runner.measure_kernels(lib, items, x86.evaluator))
    assert killed
    assert sorted(r.key for r in results) == [f"k{i}" for i in range(8)]  # nothing lost, no duplicate
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert runner.stats.sessions_lost >= 1
    assert any("session died at kernel k3" in m and "retrying on another device" in m for m in messages)
    devices = [r.extra["device"] for r in results]
    assert devices[3] != devices[2]  # k3 onwards ran on the other server


def test_last_device_killed_then_resume_measures_only_the_rest(tracker, tiny_prepared, x86, tmp_path):
    from chamtvm.devices import start_x86_server
    from chamtvm.table.store import LatencyTable
    from chamtvm.measure.rpc import DeviceError, RPCRunner, default_run_kernel
    from chamtvm.table.fill import fill_table

    from dataclasses import replace

    # the kill is injected per kernel (f_run_kernel): kernels timed alone, no nominal-speed retiming
    x86 = replace(x86, kernel_timing="isolated", evaluator=x86.evaluator.for_ranking())
    table = LatencyTable(tmp_path / "x86.jsonl").load()
    n_all = len({p.key for p in tiny_prepared})
    with start_x86_server(tracker, "x86last", n=1, restart=False) as servers:
        seen = []

        def run_and_kill(session, module, it, evaluator):
            res = default_run_kernel(session, module, it, evaluator, x86)
            seen.append(it.key)
            if len(seen) == 4:
                os.killpg(servers.processes[0].pid, signal.SIGKILL)
            return res

        runner = RPCRunner(x86, *tracker.tracker, "x86last", f_run_kernel=run_and_kill, device_return_s=5)
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="every device under key 'x86last' has left the tracker"):
            fill_table(tiny_prepared, table, runner, x86, batch_size=n_all)
        assert time.monotonic() - t0 < 90
    assert len(table) == 4  # the four measured before the kill are kept
    first = {r["key"] for r in table.rows()}
    with start_x86_server(tracker, "x86last", n=1):
        with RPCRunner(x86, *tracker.tracker, "x86last") as runner:
            s = fill_table(tiny_prepared, LatencyTable(table.path).load(), runner, x86)
    assert s.already_in_table == 4 and s.measured == n_all - 4 and s.failed == 0
    final = LatencyTable(table.path).load()
    assert len(final) == n_all and first <= {r["key"] for r in final.rows()}


def test_tune_cli_over_the_tracker(tracker, two_servers, tmp_path):
    host, port = tracker.tracker
    out = subprocess.run(
        [sys.executable, "-m", "chamtvm", "tune", "--target", "x86", "--tracker", f"{host}:{port}",
         "--key", "x86pair", "--space", str(TINY), "--trials", "0", "--heldout", "2", "--train-networks", "0",
         "--task", "none", "--no-calibration",
         "--luts-dir", str(tmp_path / "luts"), "--out", str(tmp_path / "report.json"), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["device_label"] == f"rpc x86@{host}:{port} key=x86pair"
    assert report["emulated"] is False
    assert report["table"]["failed"] == 0 and report["table"]["rows"] == report["table"]["space_kernels"]
    assert len(report["networks"]) == 2 and all(n["measured_ms"] > 0 for n in report["networks"])


def test_slow_kernel_times_out_and_the_rest_goes_on(tracker, x86, tmp_path):
    import tvm
    from tvm.script import tirx as T

    from chamtvm.devices import start_x86_server
    from chamtvm.lower.kernels import ArgSpec
    from chamtvm.measure.base import KernelItem
    from chamtvm.measure.compile import export
    from chamtvm.measure.rpc import RPCRunner

    @T.prim_func
    def slow(A: T.Buffer((1,), "float32")):
        for i in range(T.int64(1) << T.int64(36)):
            A[0] = A[0] * T.float32(1.0000001) + T.float32(1e-7)

    @T.prim_func
    def quick(A: T.Buffer((1,), "float32")):
        A[0] = A[0] + T.float32(1)

    mod = tvm.IRModule({"slow": slow.with_attr("global_symbol", "slow"),
                        "quick": quick.with_attr("global_symbol", "quick")})
    lib = export(tvm.tirx.build(mod, target=x86.tvm()), x86, tmp_path / "slow.so")
    arg = (ArgSpec((1,), "float32"),)
    items = [KernelItem("q1", "quick", arg), KernelItem("s", "slow", arg), KernelItem("q2", "quick", arg)]
    with start_x86_server(tracker, "x86slow", n=2):
        with RPCRunner(x86, *tracker.tracker, "x86slow", item_timeout_s=3, batch_timeout_s=20) as runner:
            t0 = time.monotonic()
            results = {r.key: r for r in runner.measure_kernels(lib, items, x86.evaluator)}
            elapsed = time.monotonic() - t0
    assert results["q1"].ok and results["q2"].ok
    assert results["s"].error.startswith("timed out after 3 s")
    assert elapsed < 30  # the rest went on at once, on the other device


def test_metaschedule_tunes_through_the_tracker(tracker, two_servers, tiny_prepared, x86, tmp_path):
    """MetaSchedule candidates built here and timed on the tracker's devices; the record
    lands in the database and the kernel then gets a tuned-schedule key."""
    from chamtvm.tuning.database import tuned_hashes
    from chamtvm.tuning.policy import tune_kernel
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.table.fill import prepare

    p = max(tiny_prepared, key=lambda p: p.kernel.flops)
    host, port = tracker.tracker
    line = tune_kernel(p.kernel.func, p.kernel.struct_hash, p.kernel.name, x86, 4, tmp_path / "db",
                       tracker=(host, port, "x86pair"), population=16)
    assert line["measured_on"] == f"rpc x86pair@{host}:{port}"
    assert line["best_us"] and line["best_us"] > 0
    assert tuned_hashes(x86, tmp_path / "db") == {p.kernel.struct_hash}
    tuned = prepare([p.kernel], x86, ScheduleSource(x86, tmp_path / "db"))[0]
    assert tuned.schedule.startswith("ms-") and tuned.key != p.key
