"""The transformation methods by name (``METHODS``) and what a method gets and gives back.

The interface is written out in the package docstring (``chamtvm.transform``). A method's
module is imported when the method is first run, so a registered method whose module is
not there yet (a branch that has not landed) is a clear error, not an import failure at
start-up.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.registry import Registry


class MethodUnavailableError(ValueError):
    """A registered method whose code is not installed (bad input, exit 2)."""


class OptionError(ValueError):
    """A method option (``--option KEY=VALUE``) the method does not know or cannot take (exit 2)."""


def refuse_unknown_options(options_class: type, options: dict, method: str) -> None:
    """:class:`OptionError` when ``options`` (``--option`` keys and values) name a field the
    method's options dataclass ``options_class`` does not have; the message lists the valid
    ones. Each method then reads the values it knows (``Options.from_dict``)."""
    known = set(options_class.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise OptionError(f"unknown {method} option(s) {sorted(unknown)}; valid: {sorted(known)}")


@dataclass(frozen=True)
class Method:
    """A named method: ``entry`` = ``"package.module:function"``, ``function(ctx) -> MethodResult``."""

    name: str
    description: str
    entry: str

    def load(self) -> Callable[["MethodContext"], "MethodResult"]:
        module_name, func = self.entry.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and module_name.startswith(e.name):
                raise MethodUnavailableError(f"method {self.name!r} is not built in this installation "
                                             f"({module_name} is missing)") from None
            raise
        return getattr(module, func)

    def check_options(self, options: dict) -> None:
        """Raise :class:`OptionError` for options the method cannot take, before any work
        (the method module's optional ``check_options(options)``)."""
        module = importlib.import_module(self.entry.split(":")[0])
        check = getattr(module, "check_options", None)
        if check is not None:
            check(options)


@dataclass
class MethodContext:
    """What a method is given (see the package docstring)."""

    teacher: Any            # teacher.Teacher
    net: Any                # graph.LayeredNet of the teacher (eval mode; never modified)
    data: Any               # data.TaskData
    latency: Any            # latency.TargetLatency
    context_scale: float    # teacher's measured latency / its table sum
    budget_ms: float        # measured ms on the target
    work: Path              # the method's own folder (journals, candidates)
    seed: int = 0
    options: dict = field(default_factory=dict)
    log: Callable[[str], None] = print
    progress: bool = True


@dataclass
class MethodResult:
    """What a method gives back: the adapted module, its predicted latency (ms, calibrated
    with ``context_scale``), method details for the report, and whether it is fine-tuned."""

    module: Any
    predicted_ms: float
    details: dict = field(default_factory=dict)
    finetuned: bool = False


METHODS: Registry[Method] = Registry("method")
METHODS.register("hant", Method(
    "hant", "HANT: replace slow operations by distilled cheaper ones, chosen by an integer program",
    "chamtvm.transform.hant:run"))
METHODS.register("prune", Method(
    "prune", "ALCS: structured pruning in lane groups under the budget",
    "chamtvm.transform.prune:run"))
