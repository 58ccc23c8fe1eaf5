"""``HOST:PORT`` addresses (RPC trackers, Dask schedulers): parsing and validation, in one place.

In: a text such as ``127.0.0.1:9190`` or the ``TVM_TRACKER_HOST`` / ``TVM_TRACKER_PORT``
environment variables. Out: ``(host, port)`` with ``1 <= port <= 65535``, or a ``ValueError``
whose message says what is wrong.
"""

from __future__ import annotations

import os


def parse_hostport(text: str, what: str = "address") -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT``; ``ValueError`` naming ``what`` when malformed."""
    host, _, port = str(text).strip().rpartition(":")
    if not host or not (port.isascii() and port.isdigit()):
        raise ValueError(f"{what} must be HOST:PORT, got {text!r}")
    return host, check_port(int(port), what)


def check_port(port: int, what: str = "port") -> int:
    """``port`` when it is a valid TCP port (1-65535), else ``ValueError``."""
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{what}: port must be in 1-65535, got {port}")
    return int(port)


def tracker_from_env(environ=None) -> tuple[str, int] | None:
    """The tracker named by ``TVM_TRACKER_HOST`` and ``TVM_TRACKER_PORT``, None if neither is set.

    One without the other, or a port that is not a number in 1-65535, is a ``ValueError``
    (never silently ignored)."""
    env = os.environ if environ is None else environ
    host, port = env.get("TVM_TRACKER_HOST"), env.get("TVM_TRACKER_PORT")
    if not host and not port:
        return None
    if not host or not port:
        missing = "TVM_TRACKER_PORT" if host else "TVM_TRACKER_HOST"
        raise ValueError(f"TVM_TRACKER_HOST and TVM_TRACKER_PORT go together: {missing} is not set")
    if not (port.strip().isascii() and port.strip().isdigit()):
        raise ValueError(f"TVM_TRACKER_PORT must be a port number, got {port!r}")
    return host.strip(), check_port(int(port), "TVM_TRACKER_PORT")
