"""Temporary folders that a killed run does not leave behind for good.

A ``with scratch_dir("chamtvm-transfer-")`` folder is named ``<prefix><pid>-<random>`` in the
system's temporary folder and removed on exit (interrupts included). ``kill -9`` skips that
clean-up; the next :func:`scratch_dir` of the same prefix removes every folder of that
prefix whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(prefix: str, parent: str | Path | None = None) -> list[Path]:
    """Remove the ``<prefix><pid>-*`` folders under ``parent`` (default: the temporary
    folder) whose process ``pid`` no longer runs; returns them."""
    gone = []
    for path in Path(parent or tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = path.name[len(prefix):].split("-", 1)[0]
        if path.is_dir() and pid.isascii() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone


@contextlib.contextmanager
def scratch_dir(prefix: str, parent: str | Path | None = None) -> Iterator[Path]:
    """A fresh folder ``<prefix><pid>-<random>`` (stale ones of dead processes removed
    first), removed on exit."""
    remove_stale(prefix, parent)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
