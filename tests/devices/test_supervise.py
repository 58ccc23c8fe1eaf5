"""``devices.supervise``: a command started again whenever it exits, giving up after too many
restarts a minute; the supervisor and its command stopped as one process group."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest

SUPERVISE = Path(__file__).resolve().parents[2] / "chamtvm" / "devices" / "supervise.py"


def test_gives_up_after_too_many_restarts_within_a_minute(capfd):
    from chamtvm.devices.supervise import main

    t0 = time.monotonic()
    code = main(["--name", "t", "--max-restarts", "1", "--", sys.executable, "-c", "raise SystemExit(3)"])
    out = capfd.readouterr().out
    assert code == 1 and time.monotonic() - t0 < 10
    assert out.count("[supervise t] exited with code 3; restarting") == 1
    assert "[supervise t] 1 restarts within a minute; giving up" in out


def test_no_command_is_a_usage_error(capsys):
    from chamtvm.devices.supervise import main

    with pytest.raises(SystemExit) as info:
        main(["--name", "t", "--"])
    assert info.value.code == 2 and "no command given" in capsys.readouterr().err


def test_killed_command_is_restarted_and_the_group_stops_whole(tmp_path):
    """Run by file, as ``devices.local.supervised`` runs it (no chamtvm import needed)."""
    from chamtvm.devices.procs import ManagedProcess

    pids = tmp_path / "pids"
    p = ManagedProcess.start("sup", [sys.executable, str(SUPERVISE), "--name", "s", "--",
                                     "sh", "-c", f"echo $$ >> {pids}; exec sleep 60"], log=tmp_path / "sup.log",
                             env={"PATH": os.environ.get("PATH", "")})
    try:
        def lines(n, timeout=15.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                got = pids.read_text().split() if pids.exists() else []
                if len(got) >= n:
                    return [int(x) for x in got]
                time.sleep(0.05)
            raise AssertionError((pids.read_text() if pids.exists() else "", (tmp_path / "sup.log").read_text()))

        first = lines(1)[0]
        os.kill(first, signal.SIGKILL)  # the command dies, not the supervisor
        second = lines(2)[1]
        assert second != first and p.alive()
        assert "exited with code -9; restarting" in (tmp_path / "sup.log").read_text()
    finally:
        p.stop(grace_s=2.0)
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)
