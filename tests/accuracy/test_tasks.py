"""``accuracy.tasks``: the registry of tasks (names, kinds, default spaces) and the trainer
each one makes, with clear errors for what a task cannot take."""

import sys

import pytest


def test_each_task_has_a_kind_and_a_default_space():
    from chamtvm.accuracy.tasks import TASKS, default_space

    kinds = {name: TASKS.get(name).kind for name in TASKS.names()}
    assert kinds["nas-bench-macro"] == "lookup" and kinds["command"] == "command"
    assert kinds["fashion-mnist"] == kinds["digits"] == "training"
    assert all(TASKS.get(n).description for n in TASKS.names())
    assert default_space("digits") == "fashion" and default_space("command") == "fashion"
    assert default_space("none") == "macro"  # the main job without accuracy steps


def test_trainers_made_by_name():
    from chamtvm.accuracy.tasks import make_trainer
    from chamtvm.accuracy.trainer import CommandTrainer, ProxyTaskTrainer

    t = make_trainer("digits", epochs=1)
    assert isinstance(t, ProxyTaskTrainer) and t.task == "digits" and t.epochs == 1
    c = make_trainer("command", f"{sys.executable} train.py")
    assert isinstance(c, CommandTrainer)


def test_clear_errors():
    from chamtvm.accuracy.tasks import default_space, make_trainer
    from chamtvm.core.registry import UnknownNameError

    with pytest.raises(ValueError, match=r"task 'command' needs a trainer command \(--command CMD\)"):
        make_trainer("command")
    with pytest.raises(ValueError, match=r"task nas-bench-macro is a table lookup; it takes no \['epochs'\]"):
        make_trainer("nas-bench-macro", epochs=3)
    with pytest.raises(UnknownNameError, match="unknown task 'imagenet'"):
        default_space("imagenet")
