"""``devices.procs``: real processes in their own process groups, stopped as a whole (children
included), recorded on disk and stopped again from the record (as ``chamtvm device stop``
does from another shell); a recorded pid that now belongs to another process is left alone;
free ports."""

import os
import socket
import sys
import time

import pytest

from chamtvm.devices.procs import (DeviceGroup, ManagedProcess, cache_dir, free_port, free_port_range,
                                   recorded_groups)

# a shell that starts a child of its own (same group) and records both pids; on SIGTERM it
# reaps the child before exiting (so no orphaned zombie waits for a slow init to reap it)
FAMILY = 'trap "wait; exit 0" TERM; sleep 60 & echo $$ $! > {pids}; wait'


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _wait_file(path, timeout=10.0):
    """The words of ``path`` once written; for FAMILY, once its child runs ``sleep``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        words = path.read_text().split() if path.exists() else []
        if words and (len(words) < 2 or _comm(int(words[1])) == "sleep"):
            return words
        time.sleep(0.02)
    raise AssertionError(f"{path} never written")


def _comm(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return ""


def test_stop_ends_the_whole_process_group(tmp_path):
    pids = tmp_path / "pids"
    p = ManagedProcess.start("fam", ["sh", "-c", FAMILY.format(pids=pids)], log=tmp_path / "fam.log")
    leader, child = map(int, _wait_file(pids))
    assert leader == p.pid and os.getpgid(child) == p.pid != os.getpgid(0)  # its own group
    assert p.alive() and p.started_at is not None
    p.stop(grace_s=2.0)
    assert not p.alive() and not _group_alive(p.pid)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the child went with the group
    p.stop()  # stopping again is harmless


def test_a_group_ignoring_sigterm_is_killed_after_the_grace(tmp_path):
    pids = tmp_path / "pids"
    p = ManagedProcess.start("stubborn", [sys.executable, "-c", "import signal, sys, time; "
                                          "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                          f"open({str(pids)!r}, 'w').write('up'); time.sleep(60)"])
    _wait_file(pids)
    t0 = time.monotonic()
    p.stop(grace_s=0.5)
    assert not _group_alive(p.pid) and 0.4 < time.monotonic() - t0 < 5


def test_output_goes_to_the_log(tmp_path):
    log = tmp_path / "x.log"
    p = ManagedProcess.start("echo", [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
                             log=log)
    p._proc.wait(timeout=30)
    assert log.read_text().split() == ["out", "err"] and p.log == str(log)
    assert not p.alive()


def test_recorded_group_is_stopped_from_its_record(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAMTVM_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    pids = tmp_path / "pids"
    p = ManagedProcess.start("srv", ["sh", "-c", FAMILY.format(pids=pids)])
    _wait_file(pids)
    group = DeviceGroup([p], ("127.0.0.1", 9190), key="k1", emulated=True)
    path = group.record("farm")
    assert path == tmp_path / "cache" / "run" / "farm.json"
    (path.parent / "torn.json").write_text('{"processes": [')  # a damaged record is skipped
    groups = recorded_groups()
    assert list(groups) == [path]
    back = groups[path]
    assert back.tracker == ("127.0.0.1", 9190) and back.key == "k1" and back.emulated is True
    assert back.processes[0].to_json() == p.to_json()
    rec = back.processes[0]
    assert rec._proc is None and rec.alive()  # known from pid and start time alone
    import threading

    threading.Thread(target=p._proc.wait, daemon=True).start()  # we are its parent: reap it when it ends
    rec.stop(grace_s=2.0)
    assert not _group_alive(p.pid)


def test_a_recorded_pid_reused_by_another_process_is_not_stopped(tmp_path):
    pids = tmp_path / "pids"
    p = ManagedProcess.start("other", ["sh", "-c", FAMILY.format(pids=pids)])
    try:
        _wait_file(pids)
        stale = ManagedProcess.from_json({**p.to_json(), "started_at": p.started_at - 1000.0})
        assert not stale.alive()
        stale.stop(grace_s=0.2)
        assert p.alive() and _group_alive(p.pid)  # untouched
    finally:
        p.stop()


def test_group_stops_servers_before_the_tracker(tmp_path):
    order = tmp_path / "order"
    procs = []
    for name in ("tracker", "server1", "server2"):
        ready = tmp_path / name
        procs.append(ManagedProcess.start(name, ["sh", "-c", f"trap 'echo {name} >> {order}; exit 0' TERM; "
                                                f"echo up > {ready}; while :; do sleep 0.05; done"]))
        _wait_file(ready)
    with DeviceGroup(procs[:1]) as group:
        group.add(procs[1])
        group.extend(DeviceGroup([procs[2]]))
        assert [q.name for q in group.processes] == ["tracker", "server1", "server2"]
    assert order.read_text().split() == ["server2", "server1", "tracker"]
    assert not any(q.alive() for q in procs)


def test_free_ports_are_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    start = free_port_range(5)
    socks = []
    try:
        for q in range(start, start + 5):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", q))  # all five consecutive ports were free
    finally:
        for s in socks:
            s.close()
    with pytest.raises(RuntimeError, match="no 70000 consecutive free ports on 127.0.0.1"):
        free_port_range(70000, tries=3)
