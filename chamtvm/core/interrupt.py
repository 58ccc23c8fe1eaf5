"""Interrupts (SIGINT, SIGTERM) stop a command cleanly: exit 130 / 143, temporaries removed.

:func:`install` makes SIGINT raise ``KeyboardInterrupt`` and SIGTERM raise :class:`Terminated`
(a ``KeyboardInterrupt``, so every ``finally``, context manager and ``except
KeyboardInterrupt`` clean-up runs for both) and records which signal came. Code that
catches broad exceptions around third-party calls (TVM, torch) asks :func:`received` before
turning one into a user-facing error: an exception raised while a signal is pending is the
interrupt, not a model error. Nothing happens at import.
"""

from __future__ import annotations

import signal

_received: int | None = None


class Interrupted(KeyboardInterrupt):
    """SIGINT arrived (raised in the main thread).

    A subclass, never ``KeyboardInterrupt`` itself: CPython marks an exact
    ``KeyboardInterrupt`` that escapes code run through ``PyRun_String`` (which extension
    modules use, e.g. at import) as unhandled and, at exit, kills the process with SIGINT
    even after the command handled it and returned 130.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised in the main thread)."""


def _handler(signum, _frame):
    global _received
    _received = signum
    if signum == signal.SIGTERM:
        raise Terminated()
    raise Interrupted()


def install() -> None:
    """Install the SIGINT/SIGTERM handlers (main thread only; a no-op elsewhere) and forget
    any earlier signal (``main`` may run several times in one process, e.g. in tests)."""
    global _received
    _received = None
    try:
        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)
    except ValueError:  # not the main thread
        pass


def _absorb(signum, _frame):
    global _received
    _received = _received or signum


def absorb_late() -> None:
    """After an interrupt was handled (or the command returned), a further signal, or one a
    library re-delivers (TVM's FFI checks signals from C++), is recorded and ignored: it must
    not turn the command's exit status into death by a signal (main thread only)."""
    try:
        signal.signal(signal.SIGINT, _absorb)
        signal.signal(signal.SIGTERM, _absorb)
    except ValueError:  # not the main thread
        pass


def received() -> int | None:
    """The signal number received since :func:`install` (None if none)."""
    return _received


def reraise_if_interrupted() -> None:
    """Raise the pending interrupt (``KeyboardInterrupt`` or :class:`Terminated`) if a signal
    came: call it in a broad ``except`` so an interrupt is never reported as another error."""
    if _received == signal.SIGTERM:
        raise Terminated()
    if _received is not None:
        raise Interrupted()


def signal_name(exc: BaseException | None = None) -> str:
    """'SIGTERM' or 'SIGINT', by the same rule as :func:`exit_code`."""
    return "SIGTERM" if exit_code(exc) == 128 + signal.SIGTERM else "SIGINT"


def exit_code(exc: BaseException | None = None) -> int:
    """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
    if isinstance(exc, Terminated) or _received == signal.SIGTERM:
        return 128 + signal.SIGTERM
    return 128 + signal.SIGINT
