"""Which runner measures a target: the local child-process runner or the RPC runner.

In: a ``TargetSpec`` and an optional tracker ``(host, port)`` and key (or the
``TVM_TRACKER_HOST``/``TVM_TRACKER_PORT`` environment). Out: a ``Runner``. Runners are
registered by name (``RUNNERS``), so a new kind of device is one more entry.
"""

from __future__ import annotations

from ..core.hostport import tracker_from_env
from ..core.registry import Registry
from ..targets.spec import TargetError, TargetSpec
from .base import Runner

RUNNERS: Registry = Registry("runner")


def _local(target: TargetSpec, tracker=None, key=None):
    from .local import LocalRunner

    return LocalRunner(target)


def _rpc(target: TargetSpec, tracker=None, key=None):
    from .rpc import RPCRunner

    return RPCRunner(target, tracker[0], tracker[1], key or target.rpc_key)


RUNNERS.register("local", _local)
RUNNERS.register("rpc", _rpc)


def make_runner(target: TargetSpec, tracker: tuple[str, int] | None = None, key: str | None = None) -> Runner:
    """The runner for ``target``: through the RPC tracker when one is given (or set in the
    environment), else local; a remote-only target without a tracker is a ``TargetError``."""
    if tracker is None:
        try:
            tracker = tracker_from_env()
        except ValueError as e:
            raise TargetError(str(e)) from None
    if tracker is not None:
        return RUNNERS.get("rpc")(target, tracker, key)
    if not target.local:
        raise TargetError(
            f"target {target.name!r} is measured on a remote device: pass --tracker HOST:PORT "
            f"--key KEY (or set TVM_TRACKER_HOST/TVM_TRACKER_PORT)"
        )
    return RUNNERS.get("local")(target)


def runner_tracker(runner: Runner) -> tuple[str, int, str] | None:
    """``(host, port, key)`` of an RPC runner's tracker, None for a local runner."""
    if all(hasattr(runner, a) for a in ("host", "port", "key")):
        return runner.host, int(runner.port), runner.key
    return None
