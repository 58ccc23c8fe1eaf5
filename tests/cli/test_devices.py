"""``chamtvm device``: a real tracker (and real x86 servers) started, reported and stopped
through the CLI on 127.0.0.1. The commands run in this process (``cli.main.main``, argparse's
exit included, as tests/cli/test_bad_inputs.py does): the trackers and servers they start are
real processes, but each command does not pay a Python start and ``import tvm`` of its own."""

import json

import pytest

from chamtvm.devices import free_port


@pytest.fixture
def device(tmp_path, monkeypatch, capsys):
    """``device(*args) -> (exit code, stdout, stderr)`` of ``chamtvm device ARGS`` with its run
    records under ``tmp_path/cache``; whatever a test leaves running is stopped afterwards."""
    from chamtvm.cli.main import main

    monkeypatch.setenv("CHAMTVM_CACHE", str(tmp_path / "cache"))

    def run(*args):
        try:
            code = main(["device", *map(str, args)])
        except SystemExit as e:  # argparse
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err

    yield run
    run("stop")


@pytest.mark.slow
def test_status_says_when_nothing_runs_and_a_tracker_is_started_listed_and_stopped(device):
    code, out, _ = device("status")
    assert code == 0 and "no devices running" in out
    assert "nothing recorded to stop" in device("stop")[1]

    port = free_port()
    code, _, err = device("tracker", "--tracker", f"127.0.0.1:{port}")
    assert code == 0, err
    code, out, err = device("status", "--tracker", f"127.0.0.1:{port}")  # the start waited until it answered
    assert code == 0, err
    assert f"tracker-{port}" in out and "1/1 processes alive" in out
    code, _, err = device("tracker", "--tracker", f"127.0.0.1:{port}")
    assert code == 2 and "already answers" in err

    assert f"stopped tracker-{port}" in device("stop")[1]
    code, _, err = device("status", "--tracker", f"127.0.0.1:{port}")
    assert code == 2 and "chamtvm: error:" in err


def test_bad_tracker_address_is_exit_2(device):
    for bad in ("localhost", "127.0.0.1:0", "127.0.0.1:70000"):
        code, _, err = device("status", "--tracker", bad)
        assert code == 2 and "--tracker" in err, (bad, err)


@pytest.mark.slow
def test_two_servers_started_alike_are_both_recorded_and_stop_stops_everything(device, tmp_path):
    """``x86-server --start-tracker`` twice on one tracker: two records (the second does not
    overwrite the first), status counts both, ``stop`` ends the tracker and both servers."""
    from chamtvm.devices.procs import ManagedProcess

    port = free_port()
    records = []
    try:
        for _ in range(2):
            code, _, err = device("x86-server", "--start-tracker", "--tracker", f"127.0.0.1:{port}")
            assert code == 0, err[-1500:]
        records = sorted((tmp_path / "cache" / "run").glob("*.json"))
        assert [p.name for p in records] == [f"x86-x86-{port}-2.json", f"x86-x86-{port}.json"]
        out = device("status", "--tracker", f"127.0.0.1:{port}")[1]
        assert "2/2 processes alive" in out and "1/1 processes alive" in out
        assert "key x86: 2 registered" in out, out
    finally:
        procs = [ManagedProcess.from_json(p) for r in records for p in json.loads(r.read_text())["processes"]]
        out = device("stop")[1]
    assert out.count("stopped ") == 2 and len(procs) == 3
    assert not any(p.alive() for p in procs)
    assert "no devices running" in device("status")[1]


@pytest.mark.slow
def test_a_tracker_on_all_interfaces_is_warned_about(device):
    port = free_port("0.0.0.0")
    code, _, err = device("tracker", "--tracker", f"0.0.0.0:{port}")
    assert code == 0 and "listens on all network interfaces" in err
    assert "stopped" in device("stop")[1]
