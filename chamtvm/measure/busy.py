"""How busy the machine was while something was timed: the CPU that other processes took.

Read from ``/proc`` (Linux): the whole machine's busy time (``/proc/stat``: user, nice,
system, irq, softirq and steal jiffies of all CPUs; steal is time the hypervisor gave to
another guest) minus this process's own CPU time (``/proc/self/stat``, all its threads), over
the wall time between two snapshots. ``other_cores`` is that in cores: 0.0 on an idle machine,
1.0 when other processes took one whole core for the whole window. Where ``/proc`` cannot be
read (another OS, a sandbox) the meter says ``None``: unknown, never 0.

In: nothing (snapshots of this process and the machine). Out: ``other_cores`` per window.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuSnapshot:
    wall_s: float
    machine_busy_s: float | None
    self_s: float | None


def _machine_busy_s() -> float | None:
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != b"cpu":
        return None
    v = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    busy = v[0] + v[1] + v[2] + (v[5] if len(v) > 5 else 0) + (v[6] if len(v) > 6 else 0) \
        + (v[7] if len(v) > 7 else 0)
    return busy / _HZ


def _self_s() -> float | None:
    try:
        with open("/proc/self/stat", "rb") as f:
            rest = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(rest[11]) + int(rest[12])) / _HZ  # utime + stime of every thread of this process


def snapshot() -> CpuSnapshot:
    return CpuSnapshot(time.monotonic(), _machine_busy_s(), _self_s())


def other_cores(start: CpuSnapshot, end: CpuSnapshot | None = None) -> float | None:
    """Cores other processes used on average between ``start`` and ``end`` (default: now);
    None where ``/proc`` could not be read. Jiffy resolution (10 ms) makes windows under
    ~0.2 s coarse: use it on windows of a few tenths of a second or more."""
    end = end or snapshot()
    wall = end.wall_s - start.wall_s
    if wall <= 0 or None in (start.machine_busy_s, end.machine_busy_s, start.self_s, end.self_s):
        return None
    others = (end.machine_busy_s - start.machine_busy_s) - (end.self_s - start.self_s)
    return max(others, 0.0) / wall


def wait_until_quiet(max_other_cores: float, max_wait_s: float, window_s: float = 0.5) -> float | None:
    """Sleep in windows of ``window_s`` until other processes use at most ``max_other_cores``
    (or ``max_wait_s`` has passed); the last window's figure (None: unknown)."""
    deadline = time.monotonic() + max_wait_s
    while True:
        s = snapshot()
        time.sleep(window_s)
        load = other_cores(s)
        if load is None or load <= max_other_cores or time.monotonic() >= deadline:
            return load


def timed_while_quiet(measure, max_other_cores: float | None, retries: int = 2, wait_s: float = 20.0):
    """Run ``measure()`` (a timing) and say how busy the machine was meanwhile; when other
    processes used more than ``max_other_cores`` cores, wait up to ``wait_s`` seconds for a
    quieter machine and time it again, at most ``retries`` times. Returns ``(result,
    other_cores, attempts)`` of the least busy attempt (``other_cores`` None: unknown).
    ``max_other_cores`` None: one attempt, the figure still recorded."""
    best = None
    attempts = 0
    for attempt in range(1 + (retries if max_other_cores is not None else 0)):
        if attempt:
            wait_until_quiet(max_other_cores, wait_s)
        start = snapshot()
        result = measure()
        load = other_cores(start)
        attempts += 1
        if best is None or (load is not None and (best[1] is None or load < best[1])):
            best = (result, load)
        if max_other_cores is None or load is None or load <= max_other_cores:
            break
    return best[0], best[1], attempts
