"""Trainings on a real Dask cluster on 127.0.0.1: a worker killed mid-training loses and
duplicates nothing; an unreachable scheduler is a clear error within seconds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from chamtvm.accuracy import Journal, ProxyTaskTrainer, train_archs
from chamtvm.accuracy.executors import ExecutorError, open_executor, parse_spec
from chamtvm.space.schema import SearchSpace

REPO = Path(__file__).resolve().parents[2]


class AttemptLoggingTrainer(ProxyTaskTrainer):
    """The digits task, writing a line per attempt (on whatever worker runs it) to ``log``."""

    def __init__(self, log: str):
        super().__init__("digits", epochs=1)
        self.log = log

    def train(self, space, arch, seed):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()} {arch.to_json()}\n")
        return super().train(space, arch, seed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """A real ``dask scheduler`` and two single-thread ``dask worker`` processes (no nanny,
    so a killed worker stays dead); stopped by pid afterwards."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for i in range(2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
             "--no-nanny", "--no-dashboard", "--name", f"w{i}", "--local-directory", str(tmp_path / f"w{i}")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        from distributed import Client

        deadline = time.time() + 60
        with Client(f"tcp://127.0.0.1:{port}", timeout="30s") as c:
            c.wait_for_workers(2, timeout=max(1, deadline - time.time()))
        yield port, procs
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow  # ~30 s on a contended 2-core machine: a real cluster and 4 trainings (3 + the retried one)
def test_worker_killed_mid_training_is_retried_and_nothing_is_lost_or_duplicated(cluster, tmp_path):
    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    port, procs = cluster
    space = SearchSpace.load("fashion")
    archs = [space.sample(np.random.default_rng(s)) for s in range(3)]  # one more than the workers
    log = tmp_path / "attempts.txt"
    journal = Journal(tmp_path / "j.jsonl")
    killed: dict = {}

    def kill_a_busy_worker():
        with Client(f"tcp://127.0.0.1:{port}", timeout="10s") as c:
            deadline = time.time() + 120
            while time.time() < deadline:
                busy = {w: keys for w, keys in c.processing().items() if keys}
                if busy and log.exists() and len(log.read_text().splitlines()) >= 1:
                    time.sleep(1.0)  # mid-training: a digits training takes several seconds
                    worker = next(iter(busy))
                    pid = c.run(os.getpid, workers=[worker])[worker]
                    assert pid in [p.pid for p in procs[1:]]  # one of the workers this test started
                    killed["pid"] = pid
                    os.kill(pid, signal.SIGKILL)
                    return
                time.sleep(0.1)

    killer = threading.Thread(target=kill_a_busy_worker)
    with open_executor(f"dask://127.0.0.1:{port}") as ex:
        killer.start()
        results = train_archs(space, archs, AttemptLoggingTrainer(str(log)), journal, executor=ex, progress=False)
    killer.join()
    assert killed, "no worker was killed"
    assert all(r.error is None and 0 < r.accuracy <= 1 for r in results), [r.error for r in results]
    recs = journal.records()
    assert len(recs) == len(archs)  # nothing duplicated
    assert {json.dumps(r["architecture"], sort_keys=True) for r in recs} == {a.to_json() for a in archs}  # nothing lost
    attempts = [line.split(" ", 1) for line in log.read_text().splitlines()]
    retried = [a for a in {a for _, a in attempts} if sum(x == a for _, x in attempts) > 1]
    assert retried, "the training on the killed worker was not started again"
    assert any(pid == str(killed["pid"]) for pid, a in attempts if a in retried)


def test_unreachable_scheduler_is_a_clear_error_within_seconds():
    port = _free_port()  # nothing listens there
    t0 = time.time()
    with pytest.raises(ExecutorError, match=f"cannot reach the Dask scheduler at 127.0.0.1:{port} within 2 s"):
        with open_executor(f"dask://127.0.0.1:{port}", timeout_s=2):
            pass
    assert time.time() - t0 < 15
    with pytest.raises(ExecutorError, match="valid: local, dask://HOST:PORT"):
        parse_spec("ray://x:1")
    with pytest.raises(ExecutorError, match="HOST:PORT"):
        parse_spec("dask://nohost")


@pytest.mark.slow  # waits out the CLI's 5 s connect limit; the fast tier keeps the 2 s library-level test above
def test_cli_reports_unreachable_scheduler_with_exit_2(tmp_path):
    from chamtvm.cli.main import main

    port = _free_port()
    t0 = time.time()
    code = main(["accuracy", "--task", "digits", "--samples", "3", "--pool", "5",
                 "--executor", f"dask://127.0.0.1:{port}", "--journal", str(tmp_path / "j.jsonl")])
    assert code == 2 and time.time() - t0 < 30


@pytest.mark.slow
def test_tune_reports_unreachable_scheduler_with_exit_2(tmp_path, capsys):
    from chamtvm.cli.main import main

    port = _free_port()
    code = main(["--workdir", str(tmp_path), "tune", "--executor", f"dask://127.0.0.1:{port}", "--no-progress"])
    assert code == 2 and "cannot reach the Dask scheduler" in capsys.readouterr().err


class _WrongPeer:
    """A local TCP server that is no Dask scheduler: it accepts and never answers, or answers
    with an HTTP 400 and closes."""

    def __init__(self, reply: bytes | None):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.reply, self.held = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.reply is None:
                self.held.append(conn)  # keep it open, say nothing
            else:
                conn.sendall(self.reply)
                conn.close()

    def close(self):
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("reply,message", [
    (None, "no Dask scheduler answered at 127.0.0.1:{port} within 2 s"),
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nBad Request", "Dask scheduler at 127.0.0.1:{port}"),
])
def test_a_server_that_is_no_dask_scheduler_is_a_clear_error_within_the_time_limit(reply, message):
    peer = _WrongPeer(reply)
    t0 = time.time()
    try:
        with pytest.raises(ExecutorError, match=message.format(port=peer.port)):
            with open_executor(f"dask://127.0.0.1:{peer.port}", timeout_s=2):
                pass
    finally:
        peer.close()
    assert time.time() - t0 < 10


@pytest.mark.slow
def test_cli_exits_2_promptly_when_the_scheduler_port_never_answers(tmp_path):
    """Through ``python -m chamtvm``: the abandoned connection attempt does not hold the exit."""
    import subprocess
    import sys

    peer = _WrongPeer(None)
    t0 = time.time()
    try:
        out = subprocess.run([sys.executable, "-m", "chamtvm", "accuracy", "--task", "digits", "--samples", "3",
                              "--pool", "5", "--executor", f"dask://127.0.0.1:{peer.port}",
                              "--journal", str(tmp_path / "j.jsonl")], capture_output=True, text=True, timeout=120)
    finally:
        peer.close()
    assert out.returncode == 2 and "no Dask scheduler answered" in out.stderr and "Traceback" not in out.stderr
    assert time.time() - t0 < 60
