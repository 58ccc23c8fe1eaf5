"""Which runner measures a target: registry, tracker from the environment, remote targets."""

import pytest

from chamtvm.measure.runners import RUNNERS, make_runner, runner_tracker
from chamtvm.targets.spec import TargetError, get_target


def test_local_target_gets_the_local_runner(monkeypatch):
    from chamtvm.measure.local import LocalRunner

    monkeypatch.delenv("TVM_TRACKER_HOST", raising=False)
    monkeypatch.delenv("TVM_TRACKER_PORT", raising=False)
    runner = make_runner(get_target("x86"))
    assert isinstance(runner, LocalRunner) and runner_tracker(runner) is None
    assert RUNNERS.names() == ["local", "rpc"]


def test_tracker_from_the_environment_and_its_errors(monkeypatch):
    from chamtvm.measure.rpc import RPCRunner

    monkeypatch.setenv("TVM_TRACKER_HOST", "127.0.0.1")
    monkeypatch.setenv("TVM_TRACKER_PORT", "9")
    runner = make_runner(get_target("arm"), key="board")
    assert isinstance(runner, RPCRunner) and runner_tracker(runner) == ("127.0.0.1", 9, "board")
    monkeypatch.setenv("TVM_TRACKER_PORT", "abc")
    with pytest.raises(TargetError, match="TVM_TRACKER_PORT"):
        make_runner(get_target("x86"))
    monkeypatch.delenv("TVM_TRACKER_PORT")
    with pytest.raises(TargetError, match="go together"):
        make_runner(get_target("x86"))
