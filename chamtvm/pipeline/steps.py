"""The step machinery of the jobs (modelled on TVM's pass infrastructure): a job is a list
of ``Step`` values run in order by ``run_steps`` on one state object; what happens around
every step (timing, log lines, progress bars) is a ``StepInstrument``, never code inside a
step.

A step declares the state fields it ``reads`` (``optional_reads``: fields an earlier step
may not have produced because it was skipped) and the fields it ``writes``. ``run_steps``
checks the declarations before it runs anything (every required read is an input or
written by an earlier step of the list, names unique), and while it runs (a step sees the state through
a ``StepView`` that refuses an undeclared read or write, and must write every field it
declares). A step is skipped, and listed with why in ``skipped``:

* when ``enabled`` returns a reason (e.g. "--trials 0"),
* when a field it reads was not produced because the step that writes it was skipped
  (so skipping the accuracy predictor skips the search, export and measurement of picks
  by data, each listed with the reason),
* when ``up_to_date`` returns its outputs read back from disk (e.g. "every kernel is in
  the table"): the step is then listed as "up to date" and its writes are those outputs.

In: a list of steps, a state (a dataclass whose fields start as ``UNSET``; those named in
its ``INPUTS`` are set by the caller) and instruments. Out: the state, filled in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterable


class _Unset:
    def __repr__(self):
        return "UNSET"


UNSET: Any = _Unset()  # a state field no step has written (None can be a real value)


class StepError(RuntimeError):
    """A step list or a step that breaks its declarations (a bug in the job, not bad input)."""


def _always(view) -> str | None:
    return None


def _never(view) -> dict | None:
    return None


@dataclass(frozen=True)
class Step:
    """One step of a job.

    ``run(view)`` does the work, reading and writing state fields through ``view``;
    ``enabled(view)`` returns None to run or a reason to skip; ``up_to_date(view)`` returns
    None when the step must run, else the values of its ``writes`` read back from where
    an earlier run left them. ``timer_name`` groups steps in the time table (default the
    step's name). ``doc`` is the one-line description (default: ``run``'s docstring)."""

    name: str
    run: Callable[["StepView"], None]
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    optional_reads: tuple[str, ...] = ()
    enabled: Callable[["StepView"], str | None] = _always
    up_to_date: Callable[["StepView"], dict | None] = _never
    timer_name: str | None = None
    doc: str | None = None

    @property
    def summary(self) -> str:
        """The step's one-line description."""
        text = self.doc or (self.run.__doc__ or "").strip()
        return text.splitlines()[0].rstrip(".") if text else ""


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class StepInstrument:
    """Hooks called around every step (like TVM's ``PassInstrument``); override what you need.

    ``progress(total, desc)`` may return a bar (``update(n)``, ``close()``) for the items of
    a long step; the first instrument that returns one serves the step."""

    def enter_job(self, steps: list[Step], state) -> None:
        pass

    def run_before_step(self, step: Step, index: int, count: int) -> None:
        pass

    def run_after_step(self, step: Step, index: int, count: int) -> None:
        pass

    def step_skipped(self, step: Step, index: int, count: int, why: str) -> None:
        pass

    def exit_job(self, state) -> None:
        pass

    def progress(self, total: int, desc: str):
        return None


class StepView:
    """The state as one step sees it: declared reads and writes only.

    ``view.x`` reads field ``x`` (a required or optional read, or a field the step itself
    wrote); ``view.x = v`` writes it (a declared write); ``view.get(x, default)`` reads an
    optional field that may not have been produced; ``view.progress(total, desc)`` a
    progress bar from the instruments (a silent one if none gives one)."""

    __slots__ = ("_state", "_step", "_instruments", "_written")

    def __init__(self, state, step: Step, instruments: Iterable[StepInstrument] = ()):
        object.__setattr__(self, "_state", state)
        object.__setattr__(self, "_step", step)
        object.__setattr__(self, "_instruments", tuple(instruments))
        object.__setattr__(self, "_written", set())

    def _readable(self, name: str) -> bool:
        s = self._step
        return name in s.reads or name in s.optional_reads or name in self._written

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if not self._readable(name):
            raise StepError(f"step {self._step.name!r} reads {name!r} without declaring it "
                            f"(reads={list(self._step.reads)}, optional_reads={list(self._step.optional_reads)})")
        value = getattr(self._state, name)
        if value is UNSET:
            raise StepError(f"step {self._step.name!r} reads {name!r}, which no step has produced")
        return value

    def get(self, name: str, default=None):
        """An optional read: the field's value, or ``default`` when no step produced it."""
        if not self._readable(name):
            raise StepError(f"step {self._step.name!r} reads {name!r} without declaring it")
        value = getattr(self._state, name)
        return default if value is UNSET else value

    def produced(self, name: str) -> bool:
        """Whether a step has produced the (declared) field ``name``."""
        return self.get(name, UNSET) is not UNSET

    def __setattr__(self, name: str, value) -> None:
        if name not in self._step.writes:
            raise StepError(f"step {self._step.name!r} writes {name!r} without declaring it "
                            f"(writes={list(self._step.writes)})")
        setattr(self._state, name, value)
        self._written.add(name)

    def progress(self, total: int, desc: str):
        for instrument in self._instruments:
            bar = instrument.progress(total, desc)
            if bar is not None:
                return bar
        return _NullBar()


def state_fields(state) -> set[str]:
    """The field names of a state dataclass."""
    return {f.name for f in dataclasses.fields(state)}


def check_steps(steps: list[Step], state) -> None:
    """StepError unless names are unique, every declared field exists on the state, and every
    required read is an input of the state or written by an earlier step of the list (an
    optional read may be written by none: a shared step reads what some jobs produce)."""
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise StepError(f"step names must be unique, got {names}")
    fields = state_fields(state)
    available = set(getattr(state, "INPUTS", ()))
    for step in steps:
        unknown = [f for f in (*step.reads, *step.optional_reads, *step.writes) if f not in fields]
        if unknown:
            raise StepError(f"step {step.name!r} declares {unknown}, not fields of {type(state).__name__}")
        missing = [f for f in step.reads if f not in available]
        if missing:
            raise StepError(f"step {step.name!r} reads {missing}, which no earlier step writes")
        available |= set(step.writes)


def run_steps(steps: list[Step], state, instruments: Iterable[StepInstrument] = ()) -> Any:
    """Run ``steps`` in order on ``state`` with ``instruments`` around each (module
    docstring); a skipped step's reason goes into ``state.skipped`` (step name -> why)."""
    steps, instruments = list(steps), list(instruments)
    check_steps(steps, state)
    producer: dict[str, str] = {}  # field -> the step that wrote (or should have written) it
    roots: dict[str, tuple[str, str]] = {}  # skipped step -> (the step skipped first, its reason)
    for inst in instruments:
        inst.enter_job(steps, state)
    count = len(steps)
    for index, step in enumerate(steps, 1):
        why = _missing_reason(step, state, producer, roots)
        view = StepView(state, step, instruments)
        if why is None:
            why = step.enabled(view)
            if why:
                roots[step.name] = (step.name, why)
        outputs = None if why else step.up_to_date(view)
        for f in step.writes:
            producer[f] = step.name
        if why:
            state.skipped[step.name] = why
            for inst in instruments:
                inst.step_skipped(step, index, count, why)
            continue
        if outputs is not None:
            for name, value in outputs.items():
                setattr(view, name, value)
            _check_written(step, view)
            state.skipped[step.name] = "up to date"
            for inst in instruments:
                inst.step_skipped(step, index, count, "up to date")
            continue
        for inst in instruments:
            inst.run_before_step(step, index, count)
        try:
            step.run(view)
            _check_written(step, view)
        finally:
            for inst in reversed(instruments):
                inst.run_after_step(step, index, count)
    for inst in instruments:
        inst.exit_job(state)
    return state


def _missing_reason(step: Step, state, producer: dict, roots: dict) -> str | None:
    """Why ``step`` cannot run: a required read that a skipped step did not produce (said
    by the first skipped step of the chain and its reason)."""
    for name in step.reads:
        if getattr(state, name) is UNSET:
            by = producer.get(name)
            if by not in roots:  # an input left unset by the caller
                return f"needs {name!r}, which was not given"
            roots[step.name] = roots[by]
            first, why = roots[by]
            return f"step {first!r} skipped ({why})"
    return None


def _check_written(step: Step, view: StepView) -> None:
    missing = [f for f in step.writes if f not in view._written]
    if missing:
        raise StepError(f"step {step.name!r} declares it writes {missing} but did not")
