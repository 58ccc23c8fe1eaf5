"""Measure on this machine, in a separate measuring process (see ``worker``)."""

from __future__ import annotations

import json
import os
import platform
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

from ..lower.kernels import ArgSpec
from ..targets.spec import Evaluator, TargetSpec
from .base import KernelItem, MeasureResult, Runner
from .worker import RESULT_PREFIX


class LocalRunner(Runner):
    """Runs batches in a child process on the local CPU (or local GPU for ``cuda``).

    ``item_timeout_s`` bounds each item; when the child dies mid-item (crash or kill) the
    item is retried once in a fresh child, then recorded as failed, and the rest goes on.
    The child runs TVM with the target's ``runtime_threads`` (``TVM_NUM_THREADS``) where the
    target names a count, so rows, networks and the exported library see one thread count.
    """

    def __init__(self, target: TargetSpec, item_timeout_s: float = 120.0, max_retries: int = 1):
        self.target = target
        self.item_timeout_s = item_timeout_s
        self.max_retries = max_retries
        self.label = f"local {platform.machine()} ({target.name})"
        self.emulated = False
        self.last_worker_pid: int | None = None

    # --------------------------------------------------------------- plumbing
    def _run_child(self, request: dict, expected: list[str]) -> Iterator[MeasureResult | tuple]:
        """Yield results as the child prints them; finally a ('died', key, why) or ('done',)."""
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.target.runtime_threads is not None:
            env["TVM_NUM_THREADS"] = str(self.target.runtime_threads)
        proc = subprocess.Popen(
            [sys.executable, "-m", "chamtvm.measure.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=str(Path(__file__).resolve().parents[2]), start_new_session=True,
        )
        self.last_worker_pid = proc.pid
        proc.stdin.write(json.dumps(request).encode())
        proc.stdin.close()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        pending = list(expected)
        buf = b""
        deadline = time.monotonic() + self.item_timeout_s + 30  # + start-up
        try:
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    yield ("timeout", pending[0], f"timed out after {self.item_timeout_s:.0f} s")
                    return
                if not sel.select(timeout=min(remaining, 1.0)):
                    continue
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:  # child exited
                    code = proc.wait()
                    err = proc.stderr.read().decode(errors="replace").strip().splitlines()
                    why = (f"measuring process died (signal {-code})" if code < 0
                           else f"measuring process exited with code {code}")
                    if err:
                        why += f": {err[-1][:300]}"
                    yield ("died", pending[0], why)
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode(errors="replace")
                    if not text.startswith(RESULT_PREFIX):
                        continue
                    res = MeasureResult.from_json(json.loads(text[len(RESULT_PREFIX):]))
                    if res.key in pending:
                        pending.remove(res.key)
                    deadline = time.monotonic() + self.item_timeout_s
                    yield res
            proc.wait(timeout=30)
            yield ("done",)
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    # ------------------------------------------------------------ interface
    def measure_kernels(self, library: Path, items: Sequence[KernelItem],
                        evaluator: Evaluator) -> Iterator[MeasureResult]:
        todo = list(items)
        retries: dict[str, int] = {}
        while todo:
            request = {"mode": "kernels", "library": str(library), "device": self.target.device,
                       "items": [i.to_json() for i in todo], "evaluator": evaluator.to_dict()}
            done_keys = set()
            outcome = None
            for res in self._run_child(request, [i.key for i in todo]):
                if isinstance(res, MeasureResult):
                    done_keys.add(res.key)
                    yield res
                else:
                    outcome = res
            todo = [i for i in todo if i.key not in done_keys]
            if not outcome or outcome[0] == "done" or not todo:
                return
            _, key, why = outcome
            if outcome[0] == "died" and retries.get(key, 0) < self.max_retries:
                retries[key] = retries.get(key, 0) + 1
                continue  # retry the item in flight in a fresh process
            yield MeasureResult(key, error=why)
            todo = [i for i in todo if i.key != key]

    def times_in_network(self) -> bool:
        return self.target.device == "cpu"

    def measure_batch_network(self, library: Path, items: Sequence[KernelItem],
                              inputs: Sequence[ArgSpec], evaluator: Evaluator) -> Iterator[MeasureResult]:
        """The items of a batch network timed inside it in one child process; if the child
        dies, every item of the batch fails with why (``table.fill`` then times them again,
        one batch network each, to find the culprit)."""
        request = {"mode": "batchnet", "library": str(library), "device": self.target.device,
                   "items": [i.to_json() for i in items], "inputs": [a.to_list() for a in inputs],
                   "evaluator": evaluator.to_dict()}
        done, outcome = set(), None
        for res in self._run_child(request, [i.key for i in items]):
            if isinstance(res, MeasureResult):
                done.add(res.key)
                yield res
            else:
                outcome = res
        if outcome and outcome[0] != "done":
            for i in items:
                if i.key not in done:
                    yield MeasureResult(i.key, error=f"batch network: {outcome[2]}")

    def measure_networks(self, networks: Sequence[tuple[str, Path, Sequence[ArgSpec]]],
                         evaluator: Evaluator) -> Iterator[MeasureResult]:
        """The networks timed one after the other in one child process (a child per network
        costs its start, seconds, per timing); if the child dies, the network in flight fails
        with why and the rest go on in a fresh child."""
        todo = list(networks)
        while todo:
            request = {"mode": "networks", "device": self.target.device, "evaluator": evaluator.to_dict(),
                       "networks": [{"key": k, "library": str(lib), "inputs": [a.to_list() for a in inputs]}
                                    for k, lib, inputs in todo]}
            done, outcome = set(), None
            for res in self._run_child(request, [k for k, _, _ in todo]):
                if isinstance(res, MeasureResult):
                    done.add(res.key)
                    yield res
                else:
                    outcome = res
            todo = [n for n in todo if n[0] not in done]
            if todo and outcome and outcome[0] != "done":
                yield MeasureResult(outcome[1], error=outcome[2])
                todo = [n for n in todo if n[0] != outcome[1]]
            elif todo:  # the child ended without a word on these: never silently lost
                for k, _, _ in todo:
                    yield MeasureResult(k, error="measuring process ended without a result")
                return

    def measure_network(self, library: Path, inputs: Sequence[ArgSpec], evaluator: Evaluator,
                        key: str = "network") -> MeasureResult:
        request = {"mode": "network", "library": str(library), "device": self.target.device,
                   "inputs": [a.to_list() for a in inputs], "evaluator": evaluator.to_dict(),
                   "key": key}
        for attempt in range(self.max_retries + 1):
            outcome = None
            for res in self._run_child(request, [key]):
                if isinstance(res, MeasureResult):
                    return res
                outcome = res
            if outcome and outcome[0] == "timeout":
                break
        return MeasureResult(key, error=outcome[2] if outcome else "no result")
