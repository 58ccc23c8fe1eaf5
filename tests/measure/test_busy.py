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


def test_our_own_cpu_never_counts():
    s = busy.snapshot()
    t = time.monotonic()
    while time.monotonic() - t < 1.0:
        pass
    mine = busy.other_cores(s)
    assert mine is not None and mine < 0.9  # one core of our own work is not someone else's


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
