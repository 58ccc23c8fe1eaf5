"""The main job's step interface: a step has a name, says whether it is enabled and up to
date, and runs on the job's shared state; ``run_steps`` runs a list of them in order.

In: a list of ``Step`` values and a ``JobState``. Out: the state, filled in by the steps,
and ``state.timer.seconds`` (wall seconds per step name). A step is added, reordered or
skipped by editing the list (data), not the code of the others; timing and the "skipped"
log line are done here, around every step, never inside one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class StepTimer:
    """Wall seconds per step name (a name used twice adds up)."""

    seconds: dict = field(default_factory=dict)

    def run(self, name, fn, *a, **kw):
        t0 = time.time()
        try:
            return fn(*a, **kw)
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.time() - t0, 2)


@dataclass
class JobState:
    """What the steps read and write: the inputs (target, runner, config, log) and every
    intermediate result by name in ``values`` (e.g. ``values["kernels"]``)."""

    target: Any
    runner: Any
    cfg: Any
    log: Callable[..., None] = print
    timer: StepTimer = field(default_factory=StepTimer)
    values: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # step name -> why

    def __getitem__(self, name: str):
        try:
            return self.values[name]
        except KeyError:
            raise KeyError(f"no step has produced {name!r} yet") from None

    def __setitem__(self, name: str, value) -> None:
        self.values[name] = value


@dataclass(frozen=True)
class Step:
    """One step of a job.

    ``run(state)`` does the work; ``enabled(state)`` returns None to run or a reason to skip
    (e.g. "--trials 0"); ``up_to_date(state)`` lets a step whose outputs are already there say
    so (it is then not run, and that is logged). ``timer_name`` groups steps in the report's
    time table (default: ``name``); ``timed=False`` for a step that times its own parts."""

    name: str
    run: Callable[[JobState], None]
    enabled: Callable[[JobState], str | None] = lambda state: None
    up_to_date: Callable[[JobState], bool] = lambda state: False
    timer_name: str | None = None
    timed: bool = True


def run_steps(steps: list[Step], state: JobState) -> JobState:
    """Run ``steps`` in order on ``state`` (skipped and up-to-date steps are recorded)."""
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"step names must be unique, got {names}")
    for step in steps:
        why = step.enabled(state)
        if why:
            state.skipped[step.name] = why
            continue
        if step.up_to_date(state):
            state.skipped[step.name] = "up to date"
            continue
        if step.timed:
            state.timer.run(step.timer_name or step.name, step.run, state)
        else:
            step.run(state)
    return state
