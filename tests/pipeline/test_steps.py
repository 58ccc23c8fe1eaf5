"""The step machinery: declarations checked before and while steps run, steps skipped by
settings, by data and when up to date (each listed with why), instruments around every step."""

from dataclasses import dataclass, field

import pytest

from chamtvm.pipeline.instruments import StepLog, StepTimer
from chamtvm.pipeline.steps import UNSET, Step, StepError, StepInstrument, check_steps, run_steps


@dataclass
class State:
    INPUTS = ("n", "skipped")

    n: int = 3
    skipped: dict = field(default_factory=dict)
    x: object = UNSET
    y: object = UNSET
    z: object = UNSET


def put(name, value):
    def run(s):
        setattr(s, name, value)
    return run


class Recorder(StepInstrument):
    def __init__(self):
        self.events = []

    def enter_job(self, steps, state):
        self.events.append(("enter", len(steps)))

    def run_before_step(self, step, index, count):
        self.events.append(("before", step.name, index, count))

    def run_after_step(self, step, index, count):
        self.events.append(("after", step.name))

    def step_skipped(self, step, index, count, why):
        self.events.append(("skipped", step.name, why))

    def exit_job(self, state):
        self.events.append(("exit",))


def test_steps_run_in_order_on_declared_fields_and_instruments_see_every_step():
    def double(s):
        s.y = [v * 2 for v in s.x] + [s.n]

    rec, timer, said = Recorder(), StepTimer(), []
    steps = [Step("a", put("x", [1]), writes=("x",)),
             Step("b", double, reads=("x", "n"), writes=("y",), doc="double x"),
             Step("off", put("z", 0), writes=("z",), enabled=lambda s: "--no-off")]
    state = run_steps(steps, State(), [rec, timer, StepLog(said.append)])
    assert state.y == [2, 3] and state.z is UNSET
    assert rec.events == [("enter", 3), ("before", "a", 1, 3), ("after", "a"), ("before", "b", 2, 3), ("after", "b"),
                          ("skipped", "off", "--no-off"), ("exit",)]
    assert set(timer.seconds) == {"a", "b"}
    assert said == ["[1/3] a: ", "[2/3] b: double x", "[3/3] off: skipped (--no-off)"]


def test_a_step_disabled_by_data_is_listed_as_skipped_with_the_first_reason():
    ran = []
    steps = [Step("accuracy", put("x", 1), writes=("x",), enabled=lambda s: "--task none"),
             Step("search", lambda s: ran.append("search"), reads=("x",), writes=()),
             Step("export", lambda s: ran.append("export"), reads=("x",)),
             Step("report", lambda s: ran.append(s.get("x", "none")), optional_reads=("x",))]
    state = run_steps(steps, State())
    assert ran == ["none"]
    assert state.skipped == {"accuracy": "--task none", "search": "step 'accuracy' skipped (--task none)",
                             "export": "step 'accuracy' skipped (--task none)"}


def test_an_up_to_date_step_is_not_run_and_its_outputs_are_read_back():
    ran = []
    steps = [Step("table", lambda s: ran.append("table"), writes=("x",), up_to_date=lambda s: {"x": "from disk"}),
             Step("use", lambda s: ran.append(s.x), reads=("x",))]
    state = run_steps(steps, State())
    assert ran == ["from disk"] and state.skipped == {"table": "up to date"}


def test_undeclared_reads_and_writes_fail_loudly():
    with pytest.raises(StepError, match="step 'b' reads 'x' without declaring it"):
        run_steps([Step("a", put("x", 1), writes=("x",)), Step("b", lambda s: s.x)], State())
    with pytest.raises(StepError, match="step 'a' writes 'y' without declaring it"):
        run_steps([Step("a", put("y", 1), writes=("x",))], State())
    with pytest.raises(StepError, match=r"step 'a' declares it writes \['x'\] but did not"):
        run_steps([Step("a", lambda s: None, writes=("x",))], State())


def test_the_list_is_checked_before_anything_runs():
    ran = []
    with pytest.raises(StepError, match=r"step 'b' reads \['y'\], which no earlier step writes"):
        run_steps([Step("a", lambda s: ran.append(1)), Step("b", lambda s: None, reads=("y",)),
                   Step("c", put("y", 1), writes=("y",))], State())
    assert ran == []
    with pytest.raises(StepError, match="unique"):
        check_steps([Step("a", lambda s: None), Step("a", lambda s: None)], State())
    with pytest.raises(StepError, match=r"declares \['w'\], not fields of State"):
        check_steps([Step("a", lambda s: None, writes=("w",))], State())


def test_timer_groups_and_the_after_hook_runs_when_a_step_fails():
    rec, timer = Recorder(), StepTimer()

    def boom(s):
        raise RuntimeError("boom")

    steps = [Step("prepare", lambda s: None, timer_name="table"), Step("table", lambda s: None),
             Step("bad", boom)]
    with pytest.raises(RuntimeError, match="boom"):
        run_steps(steps, State(), [rec, timer])
    assert set(timer.seconds) == {"table", "bad"} and rec.events[-1] == ("after", "bad")


def test_the_main_jobs_lists_hold_together_and_the_docstring_numbers_them():
    from chamtvm.pipeline import job, search_job
    from chamtvm.pipeline.state import JobState

    check_steps(job.TUNE_STEPS, JobState(None, None, None))
    check_steps(search_job.SEARCH_STEPS, JobState(None, None, None))
    names = [s.name for s in job.TUNE_STEPS]
    for i, name in enumerate(names, 1):  # the one numbering: the docstring's list is the list
        assert f"\n{i:>4}. {name} " in job.__doc__, name
    shared = [s.name for s in job.SHARED_STEPS]
    assert [s.name for s in search_job.SEARCH_STEPS][1:-1] == shared
    assert names[names.index(shared[0]):names.index(shared[-1]) + 1] == shared
