"""What the jobs do around every step (``steps.StepInstrument``): time it, say it, and give
its long loops a progress bar. None of this is code inside a step.

* ``StepTimer``: wall seconds per step (``seconds``: step name, or its ``timer_name``, -> s);
* ``StepLog``: one line per step before it runs (``[3/22] coverage: ...``) and one per
  skipped step with the reason, through ``log``;
* ``ProgressBars``: tqdm bars for the items of a long step (kernels, networks, budgets),
  or none when ``enabled`` is False.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from .steps import Step, StepInstrument


@dataclass
class StepTimer(StepInstrument):
    """Wall seconds per step name (steps sharing a ``timer_name`` add up), rounded to 0.01 s."""

    seconds: dict = field(default_factory=dict)
    _start: float = 0.0

    def run_before_step(self, step: Step, index: int, count: int) -> None:
        self._start = time.time()

    def run_after_step(self, step: Step, index: int, count: int) -> None:
        name = step.timer_name or step.name
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.time() - self._start, 2)


@dataclass
class StepLog(StepInstrument):
    """``[k/N] name: what it does`` before each step; ``[k/N] name: skipped (why)`` for the others."""

    log: Callable[..., None] = print

    def run_before_step(self, step: Step, index: int, count: int) -> None:
        self.log(f"[{index}/{count}] {step.name}: {step.summary}")

    def step_skipped(self, step: Step, index: int, count: int, why: str) -> None:
        self.log(f"[{index}/{count}] {step.name}: skipped ({why})")


@dataclass
class ProgressBars(StepInstrument):
    """tqdm bars (``core.progress``) for a step's items; hidden when ``enabled`` is False."""

    enabled: bool = True

    def progress(self, total: int, desc: str):
        from ..core.progress import progress_bar

        return progress_bar(total, desc, self.enabled)
