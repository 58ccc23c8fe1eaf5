"""``devices.local``: the parts the tracker/server tests (``cli/test_devices.py`` starts a real
tracker through the CLI; ``measure/test_rpc.py``, slow tier, real servers) leave out: waiting
for a tracker that never answers or whose process died, and the server command lines."""

import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from chamtvm.devices.local import server_command, supervised, tracker_summary, wait_for_tracker
from chamtvm.devices.procs import ManagedProcess, free_port
from chamtvm.measure.rpc import DeviceError


def test_waiting_for_a_tracker_nobody_runs_times_out_with_a_clear_error():
    import tvm.rpc  # noqa: F401 - imported before the clock starts (seconds on a cold start)

    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=rf"RPC tracker at 127.0.0.1:{port} did not answer within 1 s"):
        wait_for_tracker("127.0.0.1", port, timeout_s=1.0)
    assert time.monotonic() - t0 < 5
    with pytest.raises(DeviceError):
        tracker_summary("127.0.0.1", port, timeout_s=1.0)


def test_something_that_is_not_a_tracker_is_no_tracker():
    """A listener that accepts and hangs up (a wrong port): an error, not a hang."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with pytest.raises(DeviceError, match=f"127.0.0.1:{port}"):
            wait_for_tracker("127.0.0.1", port, timeout_s=1.0)
    finally:
        stop.set()
        t.join()
        srv.close()


def test_a_tracker_process_that_dies_at_start_is_reported_with_its_log(tmp_path):
    log = tmp_path / "tracker.log"
    p = ManagedProcess.start("tracker", [sys.executable, "-c", "raise SystemExit('port in use')"], log=log)
    p._proc.wait(timeout=30)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=rf"RPC tracker process exited during start-up \(log: {log}\)"):
        wait_for_tracker("127.0.0.1", free_port(), timeout_s=30, proc=p)
    assert time.monotonic() - t0 < 5  # noticed at once, not after the timeout
    assert "port in use" in log.read_text()


@pytest.mark.slow
def test_a_tracker_we_started_is_waited_for_while_it_runs_past_the_timeout(tmp_path):
    """On a loaded machine the tracker's ``import tvm`` alone can outlast the timeout: a
    process of ours that is still running is waited for (here: 3 s of sleep before it starts)."""
    port = free_port()
    code = (f"import time; time.sleep(3); import runpy, sys; sys.argv = ['tracker', '--host', '127.0.0.1', "
            f"'--port', '{port}', '--port-end', '{port + 1}', '--silent']; "
            f"runpy.run_module('chamtvm.devices.tracker', run_name='__main__')")  # what start_tracker runs
    p = ManagedProcess.start("tracker", [sys.executable, "-c", code], log=tmp_path / "t.log")
    try:
        wait_for_tracker("127.0.0.1", port, timeout_s=1.0, proc=p)
        assert tracker_summary("127.0.0.1", port)["queue_info"] == {}
        assert "libtorch" not in open(f"/proc/{p.pid}/maps").read()  # started without torch (seconds)
    finally:
        p.stop()


def test_server_command_lines():
    argv = server_command(("10.0.0.2", 9190), "rasp", 9100)
    assert argv[:3] == [sys.executable, "-m", "chamtvm.devices.server"]
    opts = dict(zip(argv[3::2], argv[4::2]))
    assert opts == {"--host": "127.0.0.1", "--port": "9100", "--port-end": "9120", "--tracker": "10.0.0.2:9190",
                    "--key": "rasp"}
    emu = server_command(("127.0.0.1", 1), "arm", 5, python="/opt/py", script="/dev/server.py",
                         device_info={"emulated": True, "board": "qemu"})
    assert emu[:2] == ["/opt/py", "/dev/server.py"]
    assert json.loads(emu[emu.index("--device-info") + 1]) == {"emulated": True, "board": "qemu"}


def test_supervised_runs_the_supervisor_by_file():
    argv = supervised(["python", "-m", "x"], "x86-k-1")
    script = Path(argv[1])
    assert argv[0] == sys.executable and script.name == "supervise.py" and script.exists()
    assert argv[2:] == ["--name", "x86-k-1", "--", "python", "-m", "x"]
    # by file: the supervisor imports nothing of chamtvm
    assert "chamtvm" not in "".join(line for line in script.read_text().splitlines() if "import" in line)
