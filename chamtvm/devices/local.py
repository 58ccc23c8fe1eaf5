"""A real TVM RPC tracker and native x86 RPC servers on 127.0.0.1 (for tests, benchmarks and
a local device farm), each in its own process group."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .procs import DeviceGroup, ManagedProcess, cache_dir, free_port, free_port_range

SERVER_PORTS = 20  # ports a server may try (its --port/--port-end range)


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _log_path(name: str) -> Path:
    d = cache_dir() / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{name}.log"


def tracker_summary(host: str, port: int, timeout_s: float = 5.0) -> dict:
    """The tracker's summary (``queue_info``, ``server_info``); raises ``DeviceError`` when
    nothing answers at ``host:port`` within ``timeout_s``."""
    from ..measure.rpc import tracker_summary as _summary

    return _summary(host, port, timeout_s)


# How long a process we started may take to come up while it runs: on a loaded machine
# ``import tvm`` alone can take 30 s, and TVM's tracker imports it twice (it forks a worker).
START_LIMIT_S = 300.0


def _deadline(timeout_s: float, procs) -> float:
    """``timeout_s`` from now, or :data:`START_LIMIT_S` while the starting processes run."""
    return time.monotonic() + (max(timeout_s, START_LIMIT_S) if procs else timeout_s)


def wait_for_tracker(host: str, port: int, timeout_s: float = 30.0, proc: ManagedProcess | None = None) -> None:
    """Wait until a tracker answers at ``host:port``: ``timeout_s``, or, for a tracker ``proc``
    we started, as long as it runs (up to :data:`START_LIMIT_S`: it may still be importing)."""
    from ..measure.rpc import DeviceError

    t0, deadline = time.monotonic(), _deadline(timeout_s, [proc] if proc else [])
    last = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise DeviceError(f"RPC tracker process exited during start-up (log: {proc.log})")
        try:
            tracker_summary(host, port, timeout_s=2.0)
            return
        except DeviceError as e:
            last = e
            time.sleep(0.2)
    raise DeviceError(f"RPC tracker at {host}:{port} did not answer within {deadline - t0:.0f} s: {last}")


def count_servers(host: str, port: int, key: str) -> int:
    """Servers registered with the tracker under ``key`` (busy or free)."""
    info = tracker_summary(host, port)
    return sum(1 for s in info.get("server_info", []) if s.get("key") == f"server:{key}")


def wait_for_servers(host: str, port: int, key: str, n: int, timeout_s: float = 60.0,
                     procs: list[ManagedProcess] | None = None) -> None:
    """Wait until ``n`` servers are registered under ``key``: ``timeout_s``, or, while the
    server ``procs`` we started run, up to :data:`START_LIMIT_S` (they may still be importing)."""
    from ..measure.rpc import DeviceError

    t0, deadline = time.monotonic(), _deadline(timeout_s, procs)
    have = 0
    while time.monotonic() < deadline:
        have = count_servers(host, port, key)
        if have >= n:
            return
        dead = [p for p in procs or [] if not p.alive()]
        if dead:
            raise DeviceError(f"RPC server {dead[0].name} exited during start-up (log: {dead[0].log})")
        time.sleep(0.3)
    raise DeviceError(f"only {have} of {n} servers registered under key {key!r} at "
                      f"{host}:{port} after {deadline - t0:.0f} s")


def start_tracker(port: int | None = None, host: str = "127.0.0.1", timeout_s: float = 30.0) -> DeviceGroup:
    """Start an RPC tracker (``python -m chamtvm.devices.tracker``: TVM's, in one process and
    without torch) on ``host:port`` (a free port if None) and wait until it answers. Returns a
    group whose ``tracker`` is ``(host, port)``; use it as a context manager or call ``stop()``."""
    port = port or free_port(host)
    name = f"tracker-{port}"
    p = ManagedProcess.start(
        name, [sys.executable, "-m", "chamtvm.devices.tracker", "--host", host, "--port", str(port),
               "--port-end", str(port + 1), "--silent"],
        env=_env(), log=_log_path(name), cwd=str(Path(__file__).resolve().parents[2]))
    group = DeviceGroup([p], (host, port))
    try:
        wait_for_tracker(host, port, timeout_s, p)
    except BaseException:
        group.stop()
        raise
    return group


def server_command(tracker: tuple[str, int], key: str, port: int, python: str | None = None,
                   host: str = "127.0.0.1", script: str | None = None,
                   device_info: dict | None = None) -> list[str]:
    """The RPC server command line registering with ``tracker`` under ``key``: our
    ``chamtvm.devices.server`` (TVM's listening loop, restarted after a crashed session),
    or ``script`` (a copy of that file, on an emulated device)."""
    entry = [script] if script else ["-m", "chamtvm.devices.server"]
    argv = [python or sys.executable, *entry, "--host", host, "--port", str(port),
            "--port-end", str(port + SERVER_PORTS), "--tracker", f"{tracker[0]}:{tracker[1]}",
            "--key", key]
    if device_info is not None:
        argv += ["--device-info", json.dumps(device_info, sort_keys=True)]
    return argv


def supervised(argv: list[str], name: str) -> list[str]:
    """``argv`` run under the restarting supervisor (see ``supervise``), which starts the
    server process again should it die itself (crashed sessions are handled inside it)."""
    # by file: the supervisor imports nothing of chamtvm, so it starts even where the
    # package is not importable (an emulated device's environment, a moved checkout)
    return [sys.executable, str(Path(__file__).with_name("supervise.py")), "--name", name, "--", *argv]


def start_servers(group: DeviceGroup, n: int, start_one, wait: bool, timeout_s: float) -> DeviceGroup:
    """Add ``n`` servers made by ``start_one(port)`` to ``group``; with ``wait``, return once
    the tracker lists them all. On any failure the whole group is stopped."""
    tracker, key = group.tracker, group.key
    try:
        before = count_servers(*tracker, key) if wait else 0
        for _ in range(n):
            group.add(start_one(free_port_range(SERVER_PORTS + 1)))
        if wait:
            wait_for_servers(*tracker, key, before + n, timeout_s, group.processes)
    except BaseException:
        group.stop()
        raise
    return group


def start_x86_server(tracker: tuple[str, int] | DeviceGroup, key: str, n: int = 1,
                     wait: bool = True, timeout_s: float = 60.0, restart: bool = True) -> DeviceGroup:
    """Start ``n`` native RPC servers on 127.0.0.1 registered with ``tracker`` under ``key``.

    Each runs in its own process group (under the restarting supervisor unless
    ``restart=False``). With ``wait`` this returns once all ``n`` are registered."""
    if isinstance(tracker, DeviceGroup):
        tracker = tracker.tracker
    cwd = str(Path(__file__).resolve().parents[2])

    def start_one(port: int) -> ManagedProcess:
        name = f"x86-{key}-{port}"
        argv = server_command(tracker, key, port)
        return ManagedProcess.start(name, supervised(argv, name) if restart else argv,
                                    env=_env(), log=_log_path(name), cwd=cwd)

    group = DeviceGroup(tracker=tracker, key=key)
    start_servers(group, n, start_one, wait, timeout_s)
    return group
