"""Where trainings run: an executor from a short spec (``--executor``).

* ``None`` / ``local``: in the calling process (one at a time), or a local process pool
  of ``workers`` processes;
* ``dask://HOST:PORT``: a Dask distributed cluster, through its ``concurrent.futures``
  executor (``Client.get_executor``). The scheduler reschedules a training whose worker
  dies (up to its ``allowed-failures``), and ``trainer.train_archs`` appends each result
  to the journal in the driver only, once, as its future completes, so a lost worker
  loses and duplicates nothing. The workers need chamtvm importable (same version).

An unreachable scheduler raises :class:`ExecutorError` within ``timeout_s`` seconds.
``dask.distributed`` is imported only for a ``dask://`` spec.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


class ExecutorError(ValueError):
    """A bad executor spec or an unreachable cluster; the message says which."""


def parse_spec(spec: str | None) -> tuple[str, tuple[str, int] | None]:
    """``("local", None)`` or ``("dask", (host, port))``; raises ExecutorError."""
    if spec in (None, "", "local"):
        return "local", None
    if spec.startswith("dask://"):
        from ..core.hostport import parse_hostport

        try:
            return "dask", parse_hostport(spec[len("dask://"):], "Dask scheduler")
        except ValueError as e:
            raise ExecutorError(str(e)) from None
    raise ExecutorError(f"unknown executor {spec!r}; valid: local, dask://HOST:PORT")


def _connect(client_cls, host: str, port: int, timeout_s: float):
    """A Dask ``Client`` of the scheduler at ``host:port`` within ``timeout_s`` seconds, or
    :class:`ExecutorError`. Dask's own timeout covers the TCP connection but not its handshake:
    a server that accepts and never answers would hold it for minutes, and one that answers
    something else (an HTTP server) makes it read a garbage length. So the connection is made
    in a daemon thread and abandoned at the deadline."""
    import threading

    box: dict = {}

    def connect():
        try:
            box["client"] = client_cls(f"tcp://{host}:{port}", timeout=f"{timeout_s}s")
        except BaseException as e:  # whatever the wrong peer makes Dask raise: reported below
            box["error"] = e

    t = threading.Thread(target=connect, name="chamtvm-dask-connect", daemon=True)
    t.start()
    t.join(timeout_s + 1.0)
    hint = (f"start one with `dask scheduler --port {port}` and workers with `dask worker tcp://{host}:{port}`")
    if t.is_alive():
        raise ExecutorError(f"no Dask scheduler answered at {host}:{port} within {timeout_s:g} s (something "
                            f"accepts connections there but does not speak Dask's protocol); {hint}")
    if "error" in box:
        e = box["error"]
        what = ("cannot reach" if isinstance(e, (OSError, TimeoutError)) else
                "got no Dask answer from")  # e.g. MemoryError: a length read from an HTTP reply
        raise ExecutorError(f"{what} the Dask scheduler at {host}:{port} within {timeout_s:g} s "
                            f"({type(e).__name__}); {hint}") from None
    return box["client"]


@contextlib.contextmanager
def open_executor(spec: str | None, workers: int = 1, timeout_s: float = 5.0) -> Iterator[object]:
    """The executor of ``spec`` (None for in-process), shut down on exit."""
    kind, hp = parse_spec(spec)
    if kind == "local":
        if workers <= 1:
            yield None
            return
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as ex:
            yield ex
        return
    try:
        from distributed import Client
    except ImportError:
        raise ExecutorError('--executor dask://... needs Dask: pip install "dask[distributed]"') from None
    host, port = hp
    client = _connect(Client, host, port, timeout_s)
    ex = client.get_executor(pure=False)
    try:
        yield ex
    finally:
        ex.shutdown(wait=False)
        client.close()
