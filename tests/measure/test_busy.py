"""measure.busy: the CPU other processes took while something was timed, from /proc."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from chamtvm.measure import busy

HOG = "while True: pass"


@pytest.fixture
def hog():
    p = subprocess.Popen([sys.executable, "-c", HOG])
    time.sleep(0.3)
    yield p
    p.kill()
    p.wait()


def test_a_busy_process_beside_us_counts_as_about_one_core(hog):
    s = busy.snapshot()
    time.sleep(1.0)
    assert busy.other_cores(s) >= 0.6


def test_our_own_cpu_is_read_and_never_counts_as_another_process():
    s = busy.snapshot()
    t = time.process_time()
    while time.process_time() - t < 0.5:  # half a second of our own CPU, however busy the machine
        pass
    e = busy.snapshot()
    assert e.self_s - s.self_s >= 0.4  # seen as this process's own (10 ms ticks)
    # others = machine busy time - our own, per wall second
    a, b = busy.CpuSnapshot(10.0, 100.0, 5.0), busy.CpuSnapshot(12.0, 103.0, 6.5)
    assert busy.other_cores(a, b) == 0.75
    assert busy.other_cores(a, busy.CpuSnapshot(12.0, None, 6.5)) is None  # /proc unreadable: unknown


def test_a_timing_taken_on_a_busy_machine_is_taken_again_and_the_figure_kept(hog):
    calls = []

    def measure():
        calls.append(1)
        time.sleep(0.4)  # a timing long enough for /proc's 10 ms ticks
        return len(calls)

    result, load, attempts = busy.timed_while_quiet(measure, 0.3, retries=2, wait_s=0.5)
    assert attempts == 3 and len(calls) == 3 and load >= 0.3
    assert result in (1, 2, 3)
    result, load, attempts = busy.timed_while_quiet(lambda: "x", None)
    assert (result, attempts) == ("x", 1)  # not checked: one attempt, the figure still recorded
