"""Processes in their own process groups, stopped as a whole, and recorded on disk so that
a later ``chamtvm device stop`` can stop them from another shell."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


def cache_dir() -> Path:
    """Where downloads, the arm64 userland and run records live (``$CHAMTVM_CACHE`` or
    ``~/.cache/chamtvm``), never inside the repository."""
    return Path(os.environ.get("CHAMTVM_CACHE") or Path.home() / ".cache" / "chamtvm")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_range(n: int, host: str = "127.0.0.1", tries: int = 50) -> int:
    """First port of ``n`` consecutive ports that are free now (for ``--port/--port-end``)."""
    for _ in range(tries):
        start = free_port(host)
        if start + n >= 65535:
            continue
        socks = []
        try:
            for p in range(start, start + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, p))
            return start
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports on {host}")


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), None when no such process runs:
    a zombie (ended, not yet reaped by its parent) runs no more."""
    try:
        import psutil

        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc.create_time()
    except Exception:
        return None


@dataclass
class ManagedProcess:
    """A command started with ``setsid``: it and every process it starts share one process
    group, so :meth:`stop` ends them all (TVM's RPC server re-launches Python for its
    worker; killing only the main process would leave the worker running)."""

    name: str
    argv: list[str]
    pid: int = 0
    started_at: float | None = None
    log: str | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    @classmethod
    def start(cls, name: str, argv: Sequence[str], env: dict | None = None,
              log: str | Path | None = None, cwd: str | Path | None = None) -> "ManagedProcess":
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log:
                out.close()
        return cls(name, list(argv), proc.pid, _start_time(proc.pid), str(log) if log else None, proc)

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        if not self.pid:
            return False
        t = _start_time(self.pid)
        return t is not None and (self.started_at is None or abs(t - self.started_at) < 1.0)

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _reap(self) -> None:
        """Reap the leader if it has ended and this process is its parent: a zombie leader
        still answers ``killpg(pid, 0)``, so without this a stop from a record (``chamtvm
        device stop`` in the process that started the group, as the CLI tests do) waited out
        both the grace and the kill deadline."""
        if self._proc is not None:
            self._proc.poll()
            return
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # not our child: its own parent (or init) reaps it
            pass

    def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after ``grace_s``."""
        if not self.pid:
            return
        if self._proc is None and self.started_at is not None:
            t = _start_time(self.pid)
            if t is not None and abs(t - self.started_at) >= 1.0:
                return  # the recorded pid now belongs to another process
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self._reap()  # a dead leader left unreaped keeps the group alive for killpg
                if not self._group_alive():
                    break
                time.sleep(0.05)
            if not self._group_alive():
                break
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def to_json(self) -> dict:
        return {"name": self.name, "argv": self.argv, "pid": self.pid,
                "started_at": self.started_at, "log": self.log}

    @classmethod
    def from_json(cls, d: dict) -> "ManagedProcess":
        return cls(d["name"], d["argv"], d["pid"], d.get("started_at"), d.get("log"))


@dataclass
class DeviceGroup:
    """Processes started together (a tracker and/or servers); a context manager that stops
    them all on exit, and can be recorded in a run file for ``chamtvm device stop``."""

    processes: list[ManagedProcess] = field(default_factory=list)
    tracker: tuple[str, int] | None = None
    key: str | None = None
    emulated: bool = False

    def add(self, p: ManagedProcess) -> ManagedProcess:
        self.processes.append(p)
        return p

    def extend(self, other: "DeviceGroup") -> "DeviceGroup":
        self.processes.extend(other.processes)
        return self

    def stop(self) -> None:
        # servers first, the tracker last
        for p in reversed(self.processes):
            p.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # --------------------------------------------------------------- records
    def to_json(self) -> dict:
        return {"tracker": list(self.tracker) if self.tracker else None, "key": self.key,
                "emulated": self.emulated, "processes": [p.to_json() for p in self.processes]}

    @classmethod
    def from_json(cls, d: dict) -> "DeviceGroup":
        return cls([ManagedProcess.from_json(p) for p in d["processes"]],
                   tuple(d["tracker"]) if d.get("tracker") else None, d.get("key"),
                   bool(d.get("emulated")))

    def alive(self) -> int:
        """How many of its processes still run."""
        return sum(p.alive() for p in self.processes)

    def record(self, name: str) -> Path:
        """Write this group to ``<cache>/run/<name>.json`` (for ``chamtvm device stop``); when
        that record still describes running processes (the same command started twice), to
        ``<name>-2.json``, ``<name>-3.json``, ...: a record is never overwritten while its
        processes run."""
        from ..core.atomic import atomic_write_text

        run = cache_dir() / "run"
        run.mkdir(parents=True, exist_ok=True)
        path, n = run / f"{name}.json", 2
        while path.exists() and _still_running(path):
            path, n = run / f"{name}-{n}.json", n + 1
        atomic_write_text(path, json.dumps(self.to_json(), indent=1))
        return path


def _read_record(path: Path) -> DeviceGroup:
    """The group recorded in ``path``; ValueError when the record is damaged."""
    try:
        return DeviceGroup.from_json(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise ValueError(f"{path}: damaged device record ({type(e).__name__})") from None


def _still_running(path: Path) -> bool:
    """Whether ``path`` describes a process that runs (a damaged record counts as running:
    what it describes is unknown, so it is not overwritten)."""
    try:
        return _read_record(path).alive() > 0
    except ValueError:
        return True


def recorded_groups(log=None) -> dict[Path, DeviceGroup]:
    """Every group recorded by a detached ``chamtvm device`` command; a damaged record is
    named through ``log`` and left out."""
    out = {}
    for path in sorted((cache_dir() / "run").glob("*.json")):
        try:
            out[path] = _read_record(path)
        except ValueError as e:
            if log:
                log(f"note: {e}; its processes (if any) are not known; remove the file once they are stopped")
    return out
