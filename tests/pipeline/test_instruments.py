"""``pipeline.instruments``: the timer, the log lines and the progress bars around steps."""

from chamtvm.pipeline.instruments import ProgressBars, StepLog, StepTimer
from chamtvm.pipeline.steps import Step, StepView


def test_timer_adds_up_steps_of_one_timer_name():
    timer = StepTimer()
    for step in (Step("prepare", lambda s: None, timer_name="table"), Step("table", lambda s: None)):
        timer.run_before_step(step, 1, 2)
        timer.run_after_step(step, 1, 2)
    assert list(timer.seconds) == ["table"] and timer.seconds["table"] >= 0


def test_log_says_each_step_and_each_skip_with_why():
    said = []
    log = StepLog(said.append)
    log.run_before_step(Step("coverage", lambda s: None, doc="every fused kernel of the space."), 3, 19)
    log.step_skipped(Step("tuning", lambda s: None), 7, 19, "--trials 0")
    assert said == ["[3/19] coverage: every fused kernel of the space", "[7/19] tuning: skipped (--trials 0)"]


def test_progress_bars_serve_a_steps_items_and_hide_when_disabled():
    bar = StepView(object(), Step("x", lambda s: None), [ProgressBars(enabled=False)]).progress(3, "items")
    bar.update(3)
    assert bar.disable and bar.total == 3
    bar.close()
    silent = StepView(object(), Step("x", lambda s: None)).progress(3, "items")  # no instrument: a silent bar
    silent.update(1)
    silent.close()
