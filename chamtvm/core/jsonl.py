"""Durable append-only JSON-lines files, shared by the latency tables and the journals.

Appends take a file lock, cut off an unfinished last line first (a writer killed
mid-write left it; it was never a finished record), write, flush and fsync.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def cut_unfinished_tail(f) -> None:
    """Truncate ``f`` (opened ``rb+`` or ``ab+``) after its last newline."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    if size == 0:
        return
    pos, chunk = size, 1 << 16
    end = 0
    while pos > 0:
        start = max(0, pos - chunk)
        f.seek(start)
        nl = f.read(pos - start).rfind(b"\n")
        if nl >= 0:
            end = start + nl + 1
            break
        pos = start
    if end != size:
        f.truncate(end)
    f.seek(0, os.SEEK_END)


def append_lines(path: str | Path, lines: Iterable[str]) -> int:
    """Append each line (no newline inside) durably, one fsync per line; returns how many."""
    from filelock import FileLock  # lazy: keeps imports cheap

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with FileLock(str(path) + ".lock"):
        with open(path, "ab+") as f:
            cut_unfinished_tail(f)
            for line in lines:
                if "\n" in line:
                    raise ValueError("a JSON-lines record must not contain a newline")
                f.write(line.encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
                n += 1
    return n
