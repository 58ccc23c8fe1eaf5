"""The accuracy tasks by name: one registry (``TASKS``) that the CLI, the main job and the
``accuracy`` command all read, so every list of tasks is the same.

A :class:`Task` says how to make its trainer, which bundled space it trains by default,
and whether its "training" is a real training (``training``), a table lookup
(``lookup``) or the user's command (``command``). An unknown name raises an error listing
the valid ones (``core.registry.UnknownNameError``, a ``ValueError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..core.registry import Registry
from .trainer import CommandTrainer, ProxyTaskTrainer, Trainer


@dataclass(frozen=True)
class Task:
    """A named accuracy task: ``make(command, **kwargs) -> Trainer``, its default space,
    its kind (``training`` | ``lookup`` | ``command``) and a one-line description."""

    name: str
    make: Callable[..., Trainer]
    space: str
    kind: str
    description: str


TASKS: Registry[Task] = Registry("task")


def _nas_bench_macro(command=None, **kwargs):
    from .nasbench import NasBenchMacroTrainer

    if kwargs:
        raise ValueError(f"task nas-bench-macro is a table lookup; it takes no {sorted(kwargs)}")
    return NasBenchMacroTrainer()


def _command(command=None, **kwargs):
    if not command:
        raise ValueError("task 'command' needs a trainer command (--command CMD)")
    return CommandTrainer(command)


TASKS.register("nas-bench-macro", Task(
    "nas-bench-macro", _nas_bench_macro, "macro", "lookup",
    "NAS-Bench-Macro CIFAR-10 (packaged table): mean test accuracy of 3 seeds, looked up"))
TASKS.register("fashion-mnist", Task(
    "fashion-mnist", lambda command=None, **kw: ProxyTaskTrainer("fashion-mnist", **kw), "fashion", "training",
    "offline Fashion-MNIST subset, trained on the CPU (Debian package dataset-fashion-mnist)"))
TASKS.register("digits", Task(
    "digits", lambda command=None, **kw: ProxyTaskTrainer("digits", **kw), "fashion", "training",
    "scikit-learn digits upsampled to 28x28 (smoke tests: it cannot rank architectures)"))
TASKS.register("command", Task(
    "command", _command, "fashion", "command",
    "your trainer command: gets the architecture JSON path, prints the accuracy"))


def make_trainer(task: str, command: str | None = None, **kwargs: Any) -> Trainer:
    """The trainer of task ``task`` (``command``: the trainer command of task ``command``)."""
    return TASKS.get(task).make(command, **kwargs)


def default_space(task: str) -> str:
    """The bundled space task ``task`` trains by default (``macro`` for NAS-Bench-Macro);
    ``none`` (the main job without accuracy steps): ``macro``, the main job's default."""
    if task == "none":
        return "macro"
    return TASKS.get(task).space
