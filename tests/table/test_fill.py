"""Filling one table from several processes: what is missing is decided under the lock, so no
kernel is ever measured twice, and the claims of a killed run are taken over."""

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "tiny_space.json"


def _rows_per_key(path):
    return Counter(json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip())


@pytest.mark.slow
def test_two_tune_runs_on_one_table_never_measure_a_kernel_or_network_twice(tmp_path):
    luts = tmp_path / "luts"
    cmd = [sys.executable, "-m", "chamtvm", "tune", "--target", "x86", "--space", TINY, "--trials", "0",
           "--heldout", "1", "--train-networks", "0", "--task", "none", "--no-calibration", "--no-progress",
           "--luts-dir", luts, "--schedules-dir", tmp_path / "sched"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([*map(str, cmd), "--out", str(tmp_path / f"r{i}.json")], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    counts = _rows_per_key(luts / "x86.jsonl")
    reports = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(2)]
    n = reports[0]["table"]["space_kernels"]
    assert n > 0 and len(counts) == n
    assert max(counts.values()) == 1, [k for k, c in counts.items() if c > 1]  # no key measured twice
    assert sum(r["table"]["measured_now"] for r in reports) == n  # the work was shared, not repeated
    assert json.loads((luts / "x86.jsonl.claims.json").read_text()) == {}  # both released their claims
    # the held-out network (same seed in both runs) is measured end to end once, and both report it
    nets = _rows_per_key(luts / "x86.networks.jsonl")
    assert list(nets.values()) == [1], nets
    assert [r["networks"][0]["measured_ms"] for r in reports][0] == reports[1]["networks"][0]["measured_ms"]


HOLDER = r"""
import sys
sys.path.insert(0, sys.argv[2])
from chamtvm.table.store import LatencyTable
from chamtvm.table.fill import TableClaims
class P:  # a prepared kernel needs only its key here
    def __init__(self, key): self.key = key
t = LatencyTable(sys.argv[1]).load()
mine, theirs, done = TableClaims(t).claim([P(f"fp/default/{i}") for i in range(4)], lambda k: k in t)
print(len(mine), flush=True)
sys.stdin.read()
"""


def test_claims_of_a_live_run_are_respected_and_of_a_killed_one_taken_over(tmp_path):
    from chamtvm.table.fill import TableClaims
    from chamtvm.table.store import LatencyTable, ok_row

    path = tmp_path / "x86.jsonl"
    LatencyTable(path).append([ok_row("fp/default/0", {"name": "k"}, [1.0], 1)])  # already measured
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(REPO)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "3"  # keys 1-3 claimed by the other process

        class P:
            def __init__(self, key):
                self.key = key

        table = LatencyTable(path).load()
        claims = TableClaims(table)
        items = [P(f"fp/default/{i}") for i in range(5)]
        mine, theirs, done = claims.claim(items, lambda k: k in table)
        assert [p.key for p in done] == ["fp/default/0"]
        assert sorted(p.key for p in theirs) == [f"fp/default/{i}" for i in (1, 2, 3)]
        assert [p.key for p in mine] == ["fp/default/4"]
        assert claims.who(["fp/default/1"]) == {holder.pid}
        os.kill(holder.pid, signal.SIGKILL)  # the other run dies without releasing anything
        holder.wait()
        mine, theirs, done = claims.claim(theirs, lambda k: k in table)
        assert sorted(p.key for p in mine) == [f"fp/default/{i}" for i in (1, 2, 3)] and not theirs
        claims.release()
        assert json.loads(Path(str(path) + ".claims.json").read_text()) == {}
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


@pytest.mark.slow  # two real fills of a batch network in the measuring child
def test_in_network_rows_say_how_they_were_timed_and_slow_rows_are_timed_again(tiny_net, x86, tmp_path):
    from dataclasses import replace

    from chamtvm.measure.local import LocalRunner
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.reference import ReferenceBaseline
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.schedules import ScheduleSource

    ev = replace(x86.evaluator, repeat=3, nominal_tolerance=0.5, nominal_samples=2, nominal_budget_s=4)
    t = replace(x86, kernel_timing="in_network", evaluator=ev)
    prepared = prepare(tiny_net.kernels, t, ScheduleSource(t, use_database=False))
    table = LatencyTable(tmp_path / "x86.jsonl")
    s = fill_table(prepared, table, LocalRunner(t), t)
    assert s.measured == len(prepared) and s.failed == 0
    rows = [table.get(p.key) for p in prepared]
    assert all(r["timing"] == "in_network" and r["reference_us"] > 0 and r["samples_nominal"] >= 2 for r in rows)
    assert ReferenceBaseline(tmp_path, "x86", t.fingerprint).baseline_us("vm") > 0  # the nominal speed, learnt
    # a row taken while the device ran slow is timed again by the next fill, the others are not
    slow = {k: v for k, v in rows[0].items() if k not in ("crc", "measured_at")}
    table.append([{**slow, "nominal": False}])
    s = fill_table(prepared, table, LocalRunner(t), t)
    assert (s.retimed_not_nominal, s.measured, s.already_in_table) == (1, 1, len(prepared) - 1)
    assert table.timings(rows[0]["key"]) == 3
