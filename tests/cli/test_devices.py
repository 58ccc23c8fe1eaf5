"""``chamtvm device``: a real tracker started, reported and stopped through the CLI (127.0.0.1)."""

import os
import subprocess
import sys
import time

from chamtvm.devices import free_port


def device(*args, env, timeout=120):
    return subprocess.run([sys.executable, "-m", "chamtvm", "device", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_status_says_when_nothing_runs_and_a_tracker_is_started_listed_and_stopped(tmp_path):
    env = {**os.environ, "CHAMTVM_CACHE": str(tmp_path / "cache")}
    out = device("status", env=env)
    assert out.returncode == 0 and "no devices running" in out.stdout
    assert "nothing recorded to stop" in device("stop", env=env).stdout

    port = free_port()
    start = device("tracker", "--tracker", f"127.0.0.1:{port}", env=env)
    assert start.returncode == 0, start.stderr
    try:
        deadline = time.monotonic() + 30
        while True:
            status = device("status", "--tracker", f"127.0.0.1:{port}", env=env)
            if status.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status.returncode == 0, status.stderr
        assert f"tracker-{port}" in status.stdout and "1/1 processes alive" in status.stdout
        again = device("tracker", "--tracker", f"127.0.0.1:{port}", env=env)
        assert again.returncode == 2 and "already answers" in again.stderr
    finally:
        stop = device("stop", env=env)
    assert f"stopped tracker-{port}" in stop.stdout
    gone = device("status", "--tracker", f"127.0.0.1:{port}", env=env, timeout=60)
    assert gone.returncode == 2 and "chamtvm: error:" in gone.stderr


def test_bad_tracker_address_is_exit_2(tmp_path):
    env = {**os.environ, "CHAMTVM_CACHE": str(tmp_path / "cache")}
    for bad in ("localhost", "127.0.0.1:0", "127.0.0.1:70000"):
        out = device("status", "--tracker", bad, env=env)
        assert out.returncode == 2 and "Traceback" not in out.stderr, (bad, out.stderr)


def test_two_servers_started_alike_are_both_recorded_and_stop_stops_everything(tmp_path):
    """``x86-server --start-tracker`` twice on one tracker: two records (the second does not
    overwrite the first), status counts both, ``stop`` ends the tracker and both servers."""
    import json

    from chamtvm.devices.procs import ManagedProcess

    env = {**os.environ, "CHAMTVM_CACHE": str(tmp_path / "cache")}
    port = free_port()
    records = []
    try:
        for _ in range(2):
            out = device("x86-server", "--start-tracker", "--tracker", f"127.0.0.1:{port}", env=env)
            assert out.returncode == 0, out.stderr[-1500:]
        records = sorted((tmp_path / "cache" / "run").glob("*.json"))
        assert [p.name for p in records] == [f"x86-x86-{port}-2.json", f"x86-x86-{port}.json"]
        status = device("status", "--tracker", f"127.0.0.1:{port}", env=env)
        assert "2/2 processes alive" in status.stdout and "1/1 processes alive" in status.stdout
        assert "key x86: 2 registered" in status.stdout, status.stdout
    finally:
        procs = [ManagedProcess.from_json(p) for r in records for p in json.loads(r.read_text())["processes"]]
        stop = device("stop", env=env)
    assert stop.stdout.count("stopped ") == 2 and len(procs) == 3
    assert not any(p.alive() for p in procs)
    assert "no devices running" in device("status", env=env).stdout


def test_a_tracker_on_all_interfaces_is_warned_about(tmp_path):
    env = {**os.environ, "CHAMTVM_CACHE": str(tmp_path / "cache")}
    port = free_port("0.0.0.0")
    out = device("tracker", "--tracker", f"0.0.0.0:{port}", env=env)
    try:
        assert out.returncode == 0 and "listens on all network interfaces" in out.stderr
    finally:
        assert "stopped" in device("stop", env=env).stdout
