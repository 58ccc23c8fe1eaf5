"""The step interface of the main job: order, skipping, up-to-date steps, timing."""

import pytest

from chamtvm.pipeline.steps import JobState, Step, run_steps


def _state():
    return JobState(target=None, runner=None, cfg={"n": 3})


def test_steps_run_in_order_and_share_state():
    def a(s):
        s["x"] = [1]

    def b(s):
        s["x"].append(s.cfg["n"])

    state = run_steps([Step("a", a), Step("b", b)], _state())
    assert state["x"] == [1, 3]
    assert set(state.timer.seconds) == {"a", "b"}


def test_disabled_and_up_to_date_steps_are_skipped_with_their_reason():
    ran = []
    steps = [Step("off", lambda s: ran.append("off"), enabled=lambda s: "--no-off"),
             Step("done", lambda s: ran.append("done"), up_to_date=lambda s: True),
             Step("on", lambda s: ran.append("on"))]
    state = run_steps(steps, _state())
    assert ran == ["on"]
    assert state.skipped == {"off": "--no-off", "done": "up to date"}
    assert "off" not in state.timer.seconds


def test_untimed_step_and_timer_groups():
    steps = [Step("open", lambda s: None, timer_name="coverage"), Step("coverage", lambda s: None),
             Step("inner", lambda s: s.timer.run("part", lambda: None), timed=False)]
    state = run_steps(steps, _state())
    assert set(state.timer.seconds) == {"coverage", "part"}


def test_duplicate_names_and_missing_values_are_clear_errors():
    with pytest.raises(ValueError, match="unique"):
        run_steps([Step("a", lambda s: None), Step("a", lambda s: None)], _state())
    with pytest.raises(KeyError, match="no step has produced 'kernels'"):
        _state()["kernels"]
