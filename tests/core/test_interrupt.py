"""``core.interrupt``: real SIGINT/SIGTERM sent to a real child process give exit codes
130/143, every ``finally`` runs (its temporary folder is removed), and a broad ``except``
that asks ``reraise_if_interrupted`` still ends as the interrupt."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The child makes a temporary folder, says READY, then blocks; the handlers turn the signal
# into an exception that the ``finally`` and ``except`` clauses below see.
CHILD = textwrap.dedent("""
    import shutil, sys, tempfile, time
    from chamtvm.core import interrupt

    interrupt.install()
    tmp = tempfile.mkdtemp(prefix="chamtvm-int-", dir=sys.argv[1])
    try:
        try:
            print("READY", tmp, flush=True)
            while True:
                time.sleep(0.05)
        except Exception:  # never taken: an interrupt is no Exception
            print("BROAD", flush=True)
        finally:
            shutil.rmtree(tmp)
    except KeyboardInterrupt as e:
        print("CAUGHT", type(e).__name__, interrupt.received(), flush=True)
        sys.exit(interrupt.exit_code(e))
""")


@pytest.mark.parametrize("sig,code,exc", [(signal.SIGINT, 130, "Interrupted"),
                                          (signal.SIGTERM, 143, "Terminated")])
def test_signal_to_a_child_gives_its_exit_code_and_removes_the_temporary(tmp_path, sig, code, exc):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline().split()
        assert ready[:1] == ["READY"], proc.stderr.read()
        assert Path(ready[1]).is_dir()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert f"CAUGHT {exc} {int(sig)}" in out and "BROAD" not in out
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # the finally removed the temporary folder


def test_pending_signal_is_reraised_from_a_broad_except():
    """A TVM error raised while a signal is pending is the interrupt: ``reraise_if_interrupted``
    raises it again, as ``Terminated`` for SIGTERM."""
    from chamtvm.core import interrupt

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        interrupt.install()
        assert interrupt.received() is None
        interrupt.reraise_if_interrupted()  # nothing pending: no-op
        assert interrupt.exit_code() == 130  # no signal: the Ctrl-C code
        with pytest.raises(interrupt.Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode
        assert interrupt.received() == signal.SIGTERM and interrupt.exit_code() == 143
        with pytest.raises(interrupt.Terminated):
            try:
                raise RuntimeError("TVM: some error while the signal was pending")
            except RuntimeError:
                interrupt.reraise_if_interrupted()
        interrupt.install()  # forgets the earlier signal
        assert interrupt.received() is None
        with pytest.raises(KeyboardInterrupt) as info:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert not isinstance(info.value, interrupt.Terminated)
        assert interrupt.received() == signal.SIGINT and interrupt.exit_code(info.value) == 130
        with pytest.raises(KeyboardInterrupt):
            interrupt.reraise_if_interrupted()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        interrupt._received = None


# Run as ``python -m``: the child catches an interrupt raised inside code that a C extension
# ran through ``PyRun_String`` (as some do at import) and exits with sys.exit(130).
PYRUN_CHILD = textwrap.dedent("""
    import ctypes, sys
    from chamtvm.core import interrupt

    interrupt.install()
    run = ctypes.pythonapi.PyRun_String
    run.restype = ctypes.py_object
    run.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
    code = b"import os, signal, time\\nos.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(200): time.sleep(0.01)\\n"
    try:
        run(code, 257, {}, {})  # 257: Py_file_input
        print("NOT INTERRUPTED", flush=True)
    except KeyboardInterrupt as e:
        print("CAUGHT", type(e).__name__, flush=True)
        sys.exit(interrupt.exit_code(e))
""")


def test_an_interrupt_inside_pyrun_string_code_still_exits_130_not_by_the_signal(tmp_path):
    """CPython flags an *exact* ``KeyboardInterrupt`` escaping ``PyRun_String`` code as
    unhandled and, at the end of ``python -m``, kills the process with SIGINT (returncode -2)
    although the command handled it; the handler's ``Interrupted`` subclass must not be
    flagged (the CI failure of ``chamtvm measure`` interrupted during lowering)."""
    (tmp_path / "pyrun_child.py").write_text(PYRUN_CHILD)
    proc = subprocess.run([sys.executable, "-m", "pyrun_child"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}, timeout=60)
    assert "CAUGHT Interrupted" in proc.stdout, (proc.stdout, proc.stderr)
    assert proc.returncode == 130, (proc.returncode, proc.stderr)


def test_signal_name_follows_the_signal_received_not_the_exception_class():
    """A library may turn the interrupt into a plain ``KeyboardInterrupt``: the message and the
    exit code both follow the signal that came (the CI run that said SIGINT for a SIGTERM)."""
    from chamtvm.core import interrupt

    try:
        interrupt._received = signal.SIGTERM
        assert interrupt.signal_name(KeyboardInterrupt()) == "SIGTERM"
        assert interrupt.exit_code(KeyboardInterrupt()) == 143
        interrupt._received = signal.SIGINT
        assert interrupt.signal_name(interrupt.Interrupted()) == "SIGINT"
        assert interrupt.signal_name(interrupt.Terminated()) == "SIGTERM"
    finally:
        interrupt._received = None


def test_terminated_is_a_keyboard_interrupt_with_exit_code_143():
    from chamtvm.core.interrupt import Terminated, exit_code

    assert issubclass(Terminated, KeyboardInterrupt) and not issubclass(Terminated, Exception)
    assert exit_code(Terminated()) == 143


def test_install_outside_the_main_thread_is_a_no_op():
    import threading

    from chamtvm.core import interrupt

    before = signal.getsignal(signal.SIGINT)
    raised = []

    def worker():
        try:
            interrupt.install()
        except Exception as e:  # signal.signal raises ValueError outside the main thread
            raised.append(e)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert raised == [] and signal.getsignal(signal.SIGINT) is before
