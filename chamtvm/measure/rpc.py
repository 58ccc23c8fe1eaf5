"""Measure on devices behind a TVM RPC tracker (boards, phones, emulators, GPU hosts).

``RPCRunner`` asks the tracker for a device under one key, uploads each batch library once,
loads it, and times every kernel with ``timing.time_kernels`` on the remote device (whole
networks with ``timing.time_network`` and a remote ``relax.VirtualMachine``). With several
devices under the key, batches run on all of them at once (``measure_batches``).

Like MetaSchedule's ``RPCRunner`` it is built from replaceable hook functions, each with a
default below: ``f_create_session`` (tracker request), ``f_upload`` (upload + load),
``f_run_kernel``, ``f_run_network``, ``f_device_info`` and ``f_cleanup``.

Failures are data. Bounds and what happens when they are hit:

* tracker unreachable: ``DeviceError`` within ``connect_timeout_s``;
* no server registered under the key: ``DeviceError`` after ``wait_for_device_s``;
* every device under the key gone (none registered while a batch waits for one), or none
  free within ``request_timeout_s``: ``DeviceError`` after every finished result has been
  yielded, so a rerun resumes;
* a kernel slower than ``item_timeout_s``: that kernel is recorded as failed, the session
  is abandoned (the server ends it at its ``session_timeout``) and the rest of the batch
  goes on in a new session;
* a session that dies mid-batch (device killed, or a kernel that crashes the server
  process): the kernel in flight is tried once more, the rest of the batch goes back to
  the queue for any device; a kernel whose session dies twice is recorded as failed with
  the error; nothing finished is lost;
* a batch session lasting longer than ``batch_timeout_s`` counts as a dead session.

Emulation: a server started by ``chamtvm device emulate-arm`` answers the remote global
function ``chamtvm.device_info`` with ``{"emulated": true, ...}``; the runner asks every
device it gets, and ``emulated`` is True (and the label says EMULATED) as soon as one is.
``emulated=True`` forces it for emulators that do not answer.
"""

from __future__ import annotations

import json
import queue
import shutil
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from ..lower.kernels import ArgSpec
from ..targets.spec import Evaluator, TargetError, TargetSpec
from .base import KernelBatch, KernelItem, MeasureResult, Runner

DEVICE_INFO_FUNC = "chamtvm.device_info"


class DeviceError(TargetError):
    """The tracker, or any device under the key, cannot be used; the message says which
    and why."""


class SessionLost(Exception):
    """The RPC session ended under us (device gone, server process crashed, or timeout)."""


# --------------------------------------------------------------------------- tracker
def _tracker_socket(host: str, port: int, timeout_s: float) -> socket.socket:
    from tvm.rpc import base

    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as e:
        raise DeviceError(f"cannot reach the RPC tracker at {host}:{port}: {e}") from None
    try:
        sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
        magic = struct.unpack("<i", base.recvall(sock, 4))[0]
    except (OSError, AssertionError, RuntimeError) as e:
        sock.close()
        raise DeviceError(f"{host}:{port} did not answer as an RPC tracker: {e}") from None
    if magic != base.RPC_TRACKER_MAGIC:
        sock.close()
        raise DeviceError(f"{host}:{port} is not an RPC tracker")
    return sock


def tracker_summary(host: str, port: int, timeout_s: float = 5.0) -> dict:
    """``{"queue_info": {key: {"free", "pending"}}, "server_info": [{"key", "addr"}]}``."""
    from tvm.rpc import base

    sock = _tracker_socket(host, port, timeout_s)
    try:
        base.sendjson(sock, [base.TrackerCode.SUMMARY])
        value = base.recvjson(sock)
    except (OSError, RuntimeError) as e:
        raise DeviceError(f"RPC tracker at {host}:{port} did not send its summary: {e}") from None
    finally:
        sock.close()
    if value[0] != base.TrackerCode.SUCCESS:
        raise DeviceError(f"RPC tracker at {host}:{port} answered {value!r}")
    return value[1]


def servers_under(summary: dict, key: str) -> int:
    """Number of servers registered under ``key`` in a tracker summary."""
    return sum(1 for s in summary.get("server_info", []) if s.get("key") == f"server:{key}")


def registered_keys(summary: dict) -> list[str]:
    return sorted({s.get("key", "").split(":", 1)[-1] for s in summary.get("server_info", [])})


# ------------------------------------------------------------------ default hooks
def default_create_session(host: str, port: int, key: str, priority: int,
                           session_timeout_s: float, request_timeout_s: float,
                           connect_timeout_s: float = 5.0):
    """Ask the tracker for a free device under ``key`` and open a session to it.

    Waits at most ``request_timeout_s`` for a device to become free (TVM's own
    ``TrackerSession.request`` would wait forever); the server ends the session after
    ``session_timeout_s``."""
    from tvm import rpc
    from tvm.rpc import base

    sock = _tracker_socket(host, port, connect_timeout_s)
    try:
        sock.settimeout(request_timeout_s)
        base.sendjson(sock, [base.TrackerCode.REQUEST, key, "", priority])
        try:
            value = base.recvjson(sock)
        except (socket.timeout, TimeoutError):
            raise DeviceError(
                f"no device under key {key!r} became free at the tracker {host}:{port} within "
                f"{request_timeout_s:.0f} s") from None
        except OSError as e:
            raise DeviceError(f"lost the RPC tracker at {host}:{port}: {e}") from None
    finally:
        sock.close()  # the tracker skips a closed requester, so no device is lost to it
    if value[0] != base.TrackerCode.SUCCESS:
        raise DeviceError(f"tracker {host}:{port} refused the request for {key!r}: {value!r}")
    url, dev_port, matchkey = value[1]
    try:
        session = rpc.connect(url, dev_port, matchkey, session_timeout=max(1, int(session_timeout_s)))
    except Exception as e:
        raise SessionLost(f"cannot connect to the device {url}:{dev_port}: {_first_line(e)}") from None
    session.device_addr = (url, dev_port)  # provenance: which server this session runs on
    return session


def default_upload(session, library: Path, remote_name: str):
    """Upload ``library`` and load it on the device; returns the remote module."""
    session.upload(str(library), target=remote_name)
    return session.load_module(remote_name)


def default_run_kernel(session, module, item: KernelItem, evaluator: Evaluator,
                       target: TargetSpec) -> MeasureResult:
    from .timing import time_kernels

    return next(iter(time_kernels(module, target.tvm_device(session), [item], evaluator)))


def default_run_network(session, module, inputs: Sequence[ArgSpec], evaluator: Evaluator,
                        key: str, target: TargetSpec) -> MeasureResult:
    from .timing import time_network

    return time_network(module, target.tvm_device(session), inputs, evaluator, key=key)


def default_run_batch_network(session, module, items: Sequence[KernelItem], inputs: Sequence[ArgSpec],
                              evaluator: Evaluator, target: TargetSpec) -> list[MeasureResult]:
    """The items of a batch network timed inside it on the device, through the device's own
    ``chamtvm.time_calls`` (``measure.insitu.register_device_function``); the nominal-speed
    sampling runs here, between remote reference timings."""
    from .insitu import DEVICE_FUNC, calls_from_dict
    from .timing import time_batch_network

    f = session.get_function(DEVICE_FUNC)
    return time_batch_network(module, target.tvm_device(session), inputs, items, evaluator,
                              device_calls=lambda m, runs, args: calls_from_dict(json.loads(str(f(m, runs, *args)))))


def times_in_network(session) -> bool:
    """Whether the device answers ``chamtvm.time_calls`` (chamtvm's own RPC servers do)."""
    from .insitu import DEVICE_FUNC

    try:
        session.get_function(DEVICE_FUNC)
        return True
    except Exception:
        return False


def default_device_info(session) -> dict:
    """What the device says about itself through ``chamtvm.device_info`` ({} if nothing)."""
    try:
        f = session.get_function(DEVICE_INFO_FUNC)
    except Exception:
        return {}
    try:
        return json.loads(str(f()))
    except Exception:
        return {}


def default_cleanup(session, remote_name: str | None) -> None:
    if remote_name:
        try:
            session.remove(remote_name)
        except Exception:
            pass


def session_alive(session) -> bool:
    """Whether ``session`` still answers (a cheap remote call)."""
    try:
        session.get_function("tvm.rpc.server.workpath")
        return True
    except Exception:
        return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    # TVM errors put the useful line last after a traceback
    useful = [t for t in text if t.strip() and not t.startswith(("  File", "Traceback"))]
    return f"{type(e).__name__}: {(useful[-1] if useful else '')[:400]}"


# ---------------------------------------------------------------------- the runner
@dataclass
class _Task:
    library: Path
    items: list[KernelItem]
    batch_no: int
    error: str | None = None  # build failure: every item fails with it
    evaluator: Evaluator | None = None  # the batch's own settings, if any
    network_inputs: tuple | None = None  # a batch network: its items timed inside it, at once


@dataclass
class _Stats:
    sessions: int = 0
    sessions_lost: int = 0
    devices: dict = field(default_factory=dict)  # device address -> info


class RPCRunner(Runner):
    """Times batches on the devices registered under ``key`` at a TVM RPC tracker.

    Parameters: ``item_timeout_s`` bounds one kernel (or one network), ``batch_timeout_s``
    one batch session; ``request_timeout_s`` how long to wait for a free device;
    ``wait_for_device_s`` how long to wait for a first server to register when measuring
    starts, ``device_return_s`` how long a batch waits for a device when none is registered
    any more (a restarting server comes back within it); ``max_parallel``
    caps the devices used at once (default: all registered under the key, counted when
    measuring starts); ``max_retries`` is how often a kernel whose session died is tried
    again. Hooks: see the module docstring.
    """

    def __init__(self, target: TargetSpec, tracker_host: str, tracker_port: int, key: str | None = None,
                 priority: int = 1, item_timeout_s: float = 120.0, batch_timeout_s: float = 1800.0,
                 request_timeout_s: float = 900.0, wait_for_device_s: float = 10.0,
                 connect_timeout_s: float = 5.0, device_return_s: float = 60.0,
                 max_connect_failures: int = 8, max_parallel: int | None = None,
                 max_retries: int = 1, emulated: bool | None = None,
                 f_create_session: Callable | None = None, f_upload: Callable | None = None,
                 f_run_kernel: Callable | None = None, f_run_network: Callable | None = None,
                 f_device_info: Callable | None = None, f_cleanup: Callable | None = None,
                 log: Callable[[str], None] | None = None):
        self.target = target
        self.host = tracker_host
        self.port = int(tracker_port)
        self.key = key or target.rpc_key
        self.priority = priority
        self.item_timeout_s = item_timeout_s
        self.batch_timeout_s = batch_timeout_s
        self.request_timeout_s = request_timeout_s
        self.wait_for_device_s = wait_for_device_s
        self.connect_timeout_s = connect_timeout_s
        self.device_return_s = device_return_s
        self.max_connect_failures = max_connect_failures
        self.max_parallel = max_parallel
        self.max_retries = max_retries
        self.forced_emulated = emulated
        self.f_create_session = f_create_session or self._default_session
        self.f_upload = f_upload or default_upload
        self.f_run_kernel = f_run_kernel or (lambda s, m, i, e: default_run_kernel(s, m, i, e, self.target))
        self.f_run_network = f_run_network or (
            lambda s, m, inp, e, k: default_run_network(s, m, inp, e, k, self.target))
        self.f_device_info = f_device_info or default_device_info
        self.f_run_batch_network = lambda s, m, items, inp, e: default_run_batch_network(s, m, items, inp, e,
                                                                                        self.target)
        self.f_cleanup = f_cleanup or default_cleanup
        self.log = log or (lambda msg: None)
        self.emulated = bool(emulated)
        self.device_info: dict = {}
        self.in_network = False  # the devices time calls inside a network (``times_in_network``)
        self.stats = _Stats()
        self._opened = False
        self._lock = threading.Lock()
        self._upload_no = 0

    # --------------------------------------------------------------------- label
    @property
    def label(self) -> str:
        base = f"rpc {self.target.name}@{self.host}:{self.port} key={self.key}"
        if self.emulated:
            emu = self.device_info.get("emulator") or "emulator"
            base += f" (EMULATED: {emu})"
        return base

    # ----------------------------------------------------------------- sessions
    def _default_session(self):
        return default_create_session(self.host, self.port, self.key, self.priority,
                                      self.batch_timeout_s + 10, min(10.0, self.request_timeout_s),
                                      self.connect_timeout_s)

    def available_devices(self) -> int:
        """Servers registered under the key now; DeviceError if the tracker is unreachable."""
        return servers_under(tracker_summary(self.host, self.port, self.connect_timeout_s), self.key)

    def open(self) -> "RPCRunner":
        """Check the tracker and the key (bounded in time) and ask one device what it is."""
        if self._opened:
            return self
        cc = self.target.cross_compiler
        if cc and shutil.which(cc.split()[0]) is None:
            raise DeviceError(
                f"target {self.target.name!r} links its libraries with {cc!r}, which is not installed "
                f"here; install it (for arm: scripts/setup-arm-emulation.sh) or point cross_compiler "
                f"in a target JSON under CHAMTVM_TARGETS_DIR at your toolchain (docs/devices.md)")
        deadline = time.monotonic() + self.wait_for_device_s
        while True:
            summary = tracker_summary(self.host, self.port, self.connect_timeout_s)
            if servers_under(summary, self.key):
                break
            if time.monotonic() >= deadline:
                keys = registered_keys(summary)
                raise DeviceError(
                    f"no device is registered under key {self.key!r} at the RPC tracker "
                    f"{self.host}:{self.port} (waited {self.wait_for_device_s:.0f} s; keys there: "
                    f"{', '.join(keys) if keys else 'none'})")
            time.sleep(0.5)
        session = self._new_session()
        self._note_device(session)
        del session
        self._opened = True
        return self

    def __enter__(self):
        return self.open()

    def _new_session(self):
        """A session from ``f_create_session``.

        While no device is free but some are registered under the key, keep asking (up to
        ``request_timeout_s``); while none is registered, wait ``device_return_s`` for one
        to come back (a restarted server); a device that refuses sessions is asked again a
        few times. So a device that died costs its batch a retry elsewhere, not the run,
        and a farm that is gone ends the run with a clear error in bounded time."""
        t0 = time.monotonic()
        last_seen = t0
        failures = 0
        while True:
            try:
                session = self.f_create_session()
                break
            except SessionLost as e:
                failures += 1
                if failures >= self.max_connect_failures:
                    raise DeviceError(f"devices under key {self.key!r} at {self.host}:{self.port} "
                                      f"refused {failures} sessions in a row; last: {e}") from None
                self._lost(str(e))
                time.sleep(min(0.5 * failures, 3.0))
            except DeviceError as e:
                if "became free" not in str(e):
                    raise
            now = time.monotonic()
            registered = self.available_devices()
            if registered:
                last_seen = now
            elif now - last_seen >= self.device_return_s:
                raise DeviceError(
                    f"every device under key {self.key!r} has left the tracker {self.host}:{self.port} "
                    f"(none registered for {now - last_seen:.0f} s)")
            if now - t0 >= self.request_timeout_s:
                raise DeviceError(
                    f"no device under key {self.key!r} at {self.host}:{self.port} became free within "
                    f"{now - t0:.0f} s ({registered} registered, all busy)")
            if not registered:
                time.sleep(0.5)
        with self._lock:
            self.stats.sessions += 1
        return session

    def _note_device(self, session) -> None:
        info = self.f_device_info(session) or {}
        in_network = times_in_network(session)
        with self._lock:
            self.in_network = in_network
            if info:
                self.device_info = info
            if info.get("emulated") or self.forced_emulated:
                self.emulated = True

    def _remote_name(self, library: Path) -> str:
        with self._lock:
            self._upload_no += 1
            return f"chamtvm_{self._upload_no}_{library.name}"

    # ------------------------------------------------------------------ batches
    def measure_kernels(self, library: Path, items: Sequence[KernelItem],
                        evaluator: Evaluator) -> Iterator[MeasureResult]:
        return self.measure_batches([KernelBatch(Path(library), tuple(items))], evaluator)

    def times_in_network(self) -> bool:
        """Whether the devices under the key time calls inside a network (asked once, when the
        runner opens: chamtvm's own servers answer ``chamtvm.time_calls``)."""
        self.open()
        return self.in_network and self.target.device == "cpu"

    def measure_batch_network(self, library: Path, items: Sequence[KernelItem],
                              inputs: Sequence[ArgSpec], evaluator: Evaluator) -> Iterator[MeasureResult]:
        return self.measure_batches([KernelBatch(Path(library), tuple(items), network_inputs=tuple(inputs))],
                                    evaluator)

    def parallelism(self) -> int:
        n = self.available_devices()
        if self.max_parallel:
            n = min(n, self.max_parallel)
        return max(n, 1)

    def measure_batches(self, batches: Iterable[KernelBatch], evaluator: Evaluator) -> Iterator[MeasureResult]:
        """Yield one result per item of every batch, as each finishes, measuring batches on
        all devices under the key at once. ``batches`` is consumed lazily in a feeder
        thread (so the next batches compile while devices measure)."""
        self.open()
        yield from _BatchScheduler(self, evaluator, self.parallelism()).run(batches)

    def _run_task(self, task: _Task, evaluator: Evaluator, attempts: dict[str, int],
                  emit: Callable) -> _Task | None:
        """Measure ``task`` in one session; return what is left to do on another session."""
        if task.error:
            for item in task.items:
                emit(("result", MeasureResult(item.key, error=task.error)))
            return None
        with _DeviceSession(self, task.library, self.batch_timeout_s) as dev:
            try:
                module = dev.upload()
            except (FutureTimeout, SessionLost) as e:
                dev.abandon()
                self._lost(f"batch {task.batch_no}: upload: {e}")
                return task
            except Exception as e:
                if not session_alive(dev.session):
                    dev.abandon()
                    self._lost(f"batch {task.batch_no}: upload: {_first_line(e)}")
                    return task
                why = f"remote load failed: {_first_line(e)}"
                for item in task.items:
                    emit(("result", MeasureResult(item.key, error=why)))
                return None
            if task.network_inputs is not None:
                return self._run_batch_network(task, dev, module, evaluator, emit)
            for i, item in enumerate(task.items):
                rest = _Task(task.library, task.items[i + 1:], task.batch_no, evaluator=task.evaluator)
                try:
                    res = dev.call(self.f_run_kernel, min(dev.deadline, time.monotonic() + self.item_timeout_s),
                                   module, item, evaluator)
                except FutureTimeout:
                    dev.abandon()
                    if time.monotonic() >= dev.deadline:  # the batch's time is up: a lost session
                        return self._session_died(task, i, f"batch exceeded {self.batch_timeout_s:.0f} s",
                                                  attempts, emit)
                    emit(("result", MeasureResult(item.key, error=f"timed out after {self.item_timeout_s:.0f} s "
                                                                 f"on {self.label}")))
                    return rest
                except Exception as e:
                    res = MeasureResult(item.key, error=_first_line(e))
                if not res.ok and not session_alive(dev.session):
                    dev.abandon()
                    return self._session_died(task, i, res.error or "session ended", attempts, emit)
                addr = getattr(dev.session, "device_addr", None)
                if addr:
                    res.extra["device"] = f"{addr[0]}:{addr[1]}"
                if self.emulated:
                    res.extra["emulated"] = True
                emit(("result", res))
            return None

    def _run_batch_network(self, task: _Task, dev, module, evaluator: Evaluator, emit) -> _Task | None:
        """A batch network's items, timed inside it in one call on the device."""
        try:
            results = dev.call(self.f_run_batch_network, dev.deadline, module, task.items, task.network_inputs,
                               evaluator)
        except FutureTimeout:
            dev.abandon()
            results = [MeasureResult(i.key, error=f"batch network: timed out on {self.label}") for i in task.items]
        except Exception as e:
            results = [MeasureResult(i.key, error=f"batch network: {_first_line(e)}") for i in task.items]
        addr = getattr(dev.session, "device_addr", None)
        for res in results:
            if addr:
                res.extra["device"] = f"{addr[0]}:{addr[1]}"
            if self.emulated:
                res.extra["emulated"] = True
            emit(("result", res))
        return None

    def _session_died(self, task: _Task, i: int, why: str, attempts: dict, emit) -> _Task | None:
        item = task.items[i]
        with self._lock:
            attempts[item.key] = attempts.get(item.key, 0) + 1
            n = attempts[item.key]
        self._lost(f"batch {task.batch_no}: session died at kernel {item.key} ({why})")
        if n > self.max_retries:
            emit(("result", MeasureResult(
                item.key, error=f"remote session died {n} times while running this kernel "
                                f"(it crashes the device or the device keeps dropping): {why}")))
            return _Task(task.library, task.items[i + 1:], task.batch_no, evaluator=task.evaluator)
        return _Task(task.library, task.items[i:], task.batch_no, evaluator=task.evaluator)

    def _lost(self, msg: str) -> None:
        with self._lock:
            self.stats.sessions_lost += 1
        self.log(f"rpc: {msg}; retrying on another device")

    # ------------------------------------------------------------------- network
    def measure_network(self, library: Path, inputs: Sequence[ArgSpec], evaluator: Evaluator,
                        key: str = "network") -> MeasureResult:
        self.open()
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            with _DeviceSession(self, Path(library), min(self.batch_timeout_s, self.item_timeout_s + 60)) as dev:
                try:
                    module = dev.upload()
                    res = dev.call(self.f_run_network, dev.deadline, module, inputs, evaluator, key)
                    if not res.ok and not session_alive(dev.session):
                        dev.abandon()
                        last = res.error or "session ended"
                        self._lost(f"network {key}: {last}")
                        continue
                    if self.emulated:
                        res.extra["emulated"] = True
                    return res
                except FutureTimeout:
                    dev.abandon()
                    return MeasureResult(key, error=f"timed out after {self.item_timeout_s:.0f} s on {self.label}")
                except Exception as e:
                    if session_alive(dev.session):
                        return MeasureResult(key, error=_first_line(e))
                    dev.abandon()
                    last = _first_line(e)
                    self._lost(f"network {key}: {last}")
        return MeasureResult(key, error=f"remote session died {self.max_retries + 1} times: {last}")


class _DeviceSession:
    """One device session for one library: opened from the runner's tracker, calls bounded
    by ``deadline``, and on exit the uploaded library removed and the call pool shut down.
    A session that hangs or died is ``abandon()``-ed: no clean-up call is sent to it and its
    stuck call is not waited for."""

    def __init__(self, runner: "RPCRunner", library: Path, budget_s: float):
        self.runner = runner
        self.library = Path(library)
        self.budget_s = budget_s
        self.session = None
        self.remote_name = None
        self.deadline = 0.0
        self._abandoned = False
        self._pool = None

    def __enter__(self) -> "_DeviceSession":
        self.session = self.runner._new_session()
        self.remote_name = self.runner._remote_name(self.library)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rpc-call")
        self.deadline = time.monotonic() + self.budget_s
        self.runner._note_device(self.session)
        return self

    def abandon(self) -> None:
        self._abandoned = True

    def upload(self):
        """Upload and load the library on the device (bounded by the deadline)."""
        return self.call(self.runner.f_upload, self.deadline, self.library, self.remote_name)

    def call(self, fn, deadline: float, *args):
        """``fn(session, *args)`` in the call pool; ``FutureTimeout`` past ``deadline``."""
        fut = self._pool.submit(fn, self.session, *args)
        return fut.result(timeout=max(0.0, deadline - time.monotonic()))

    def __exit__(self, *exc) -> None:
        if not self._abandoned:
            self.runner.f_cleanup(self.session, self.remote_name)
        self._pool.shutdown(wait=not self._abandoned, cancel_futures=True)
        self.session = None


class _BatchScheduler:
    """Spreads kernel batches over ``n_workers`` device threads: a feeder thread builds
    batches lazily (at most two per device ahead), workers measure them, and a batch whose
    session died goes back to the queue for another device. Results and fatal errors reach
    the caller's thread through one queue."""

    def __init__(self, runner: "RPCRunner", evaluator: Evaluator, n_workers: int):
        self.runner = runner
        self.evaluator = evaluator
        self.n_workers = n_workers
        self.tasks: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.cond = threading.Condition()
        self.outstanding = 0
        self.fed_all = False
        self.stop = False
        self.attempts: dict[str, int] = {}

    def _halt(self) -> None:
        with self.cond:
            self.stop = True
            self.cond.notify_all()

    def _feed(self, batches: Iterable[KernelBatch]) -> None:
        try:
            for no, b in enumerate(batches):
                with self.cond:
                    while self.outstanding >= 2 * self.n_workers and not self.stop:
                        self.cond.wait(0.5)
                    if self.stop:
                        return
                    self.outstanding += 1
                self.tasks.put(_Task(Path(b.library) if b.library else Path(), list(b.items), no, b.error,
                                     b.evaluator, b.network_inputs))
                with self.cond:
                    self.cond.notify_all()
        except BaseException as e:  # a build that raises: stop cleanly with its message
            self.results.put(("fatal", e))
        finally:
            with self.cond:
                self.fed_all = True
                self.cond.notify_all()
            self.results.put(("wake",))

    def _finished(self) -> bool:
        return self.tasks.empty() and self.fed_all and self.outstanding == 0

    def _work(self) -> None:
        while True:
            with self.cond:
                while self.tasks.empty() and not (self.fed_all and self.outstanding == 0) and not self.stop:
                    self.cond.wait(0.2)
                if self.stop or self._finished():
                    return
            try:
                task = self.tasks.get_nowait()
            except queue.Empty:
                continue
            try:
                rest = self.runner._run_task(task, task.evaluator or self.evaluator, self.attempts, self.results.put)
            except BaseException as e:  # DeviceError ends the run; never let a worker die silently
                self.results.put(("fatal", e))
                self._halt()
                return
            with self.cond:
                if rest is not None and rest.items:
                    self.tasks.put(rest)
                else:
                    self.outstanding -= 1
                self.cond.notify_all()
            self.results.put(("wake",))

    def run(self, batches: Iterable[KernelBatch]) -> Iterator[MeasureResult]:
        threads = [threading.Thread(target=self._feed, args=(batches,), name="rpc-feeder", daemon=True)]
        threads += [threading.Thread(target=self._work, name=f"rpc-device-{i}", daemon=True)
                    for i in range(self.n_workers)]
        for t in threads:
            t.start()
        fatal = None
        try:
            while True:
                try:
                    msg = self.results.get(timeout=0.5)
                except queue.Empty:
                    msg = ("wake",)
                if msg[0] == "result":
                    yield msg[1]
                elif msg[0] == "fatal":
                    fatal = fatal or msg[1]
                    self._halt()
                with self.cond:
                    done = self.fed_all and self.outstanding == 0
                    stopping = self.stop
                alive = any(t.is_alive() for t in threads[1:])
                if (done or stopping) and not alive:
                    break
                if not alive and not threads[0].is_alive() and self.results.empty():
                    break
            while not self.results.empty():  # results that arrived while stopping
                msg = self.results.get_nowait()
                if msg[0] == "result":
                    yield msg[1]
                elif msg[0] == "fatal":
                    fatal = fatal or msg[1]
        finally:
            self._halt()
        if fatal is not None:
            if isinstance(fatal, DeviceError):
                raise DeviceError(f"{fatal} (every finished result was recorded; rerun to resume)")
            raise fatal
