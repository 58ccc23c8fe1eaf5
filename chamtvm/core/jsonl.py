"""Durable append-only JSON-lines files, shared by the latency tables, the journals and the
tuning log.

Appends take a file lock (``<file>.lock``), repair the end of the file, write, flush and fsync.

Repairing the end (a writer killed mid-write, or an editor that strips the final newline):

* a last line that lacks only its newline but is a complete, valid record (``is_complete``
  says so; by default: it parses as a JSON object) is **kept**: the newline is appended;
* anything else after the last newline (a torn write) is moved, byte for byte, into a side
  file ``<file>.torn-<UTC timestamp>`` and reported through ``log``; it is never dropped.

Readers use :func:`split_lines` the same way: complete lines are data, and a valid last line
without its newline is data too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable


_appended = 0  # lines appended by this process (what an interrupted command had saved)


def appended_count() -> int:
    """How many lines this process has appended durably (all files)."""
    return _appended


def is_json_object(raw: bytes) -> bool:
    """True when ``raw`` (one line, no newline) is a complete JSON object: the default test
    of whether an unterminated last line is a finished record. A JSON object cut anywhere
    before its closing brace never parses, so a torn write is never taken for a record."""
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _read_tail(f) -> tuple[int, bytes]:
    """``(offset of the byte after the last newline, bytes after it)`` of ``f`` (binary)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
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
    f.seek(end)
    return end, f.read(size - end)


def set_aside(path: str | Path, data: bytes, kind: str = "torn") -> Path:
    """Write ``data`` (bytes cut from ``path``) durably to ``<path>.<kind>-<UTC timestamp>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    side = Path(f"{path}.{kind}-{stamp}")
    n = 1
    while side.exists():
        side = Path(f"{path}.{kind}-{stamp}-{n}")
        n += 1
    with open(side, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return side


def repair_tail(f, path: str | Path, is_complete: Callable[[bytes], bool] = is_json_object,
                log: Callable[[str], None] | None = _stderr) -> str:
    """Make ``f`` (opened ``rb+`` or ``ab+``, the lock held) end with a newline.

    Returns ``"clean"`` (nothing to do), ``"newline"`` (a valid last record lacked only its
    newline: appended) or ``"torn"`` (the unfinished tail was moved into a side file, named
    through ``log``). Leaves the position at the end of the file."""
    end, tail = _read_tail(f)
    if not tail:
        f.seek(0, os.SEEK_END)
        return "clean"
    if tail.strip() and is_complete(tail.strip()):
        f.seek(0, os.SEEK_END)
        f.write(b"\n")
        f.flush()
        os.fsync(f.fileno())
        return "newline"
    side = set_aside(path, tail) if tail.strip() else None
    f.truncate(end)
    f.flush()
    os.fsync(f.fileno())
    f.seek(0, os.SEEK_END)
    if log and side is not None:
        log(f"note: {path}: an unfinished last line ({len(tail)} bytes, a write that was interrupted) "
            f"was moved to {side}; every finished line is kept")
    return "torn"


def cut_unfinished_tail(f, path: str | Path | None = None, is_complete: Callable[[bytes], bool] = is_json_object,
                        log: Callable[[str], None] | None = _stderr) -> str:
    """Backward-compatible name of :func:`repair_tail` (nothing is cut without being kept aside)."""
    return repair_tail(f, path if path is not None else getattr(f, "name", "<file>"), is_complete, log)


def split_lines(data: bytes, is_complete: Callable[[bytes], bool] = is_json_object) -> tuple[list[bytes], bytes | None, bool]:
    """Split file contents into ``(complete lines, valid unterminated last line or None, torn)``.

    ``torn`` is True when bytes after the last newline are not a complete record (they are
    not data; the next append sets them aside)."""
    lines = data.split(b"\n")
    tail = lines.pop()
    if not tail.strip():
        return lines, None, False
    if is_complete(tail.strip()):
        return lines, tail, False
    return lines, None, True


def append_lines(path: str | Path, lines: Iterable[str], is_complete: Callable[[bytes], bool] = is_json_object,
                 log: Callable[[str], None] | None = _stderr) -> int:
    """Append each line (no newline inside) durably, one fsync per line; returns how many.

    Holds ``<path>.lock`` throughout; repairs the end of the file first (:func:`repair_tail`)."""
    from filelock import FileLock  # lazy: keeps imports cheap

    global _appended
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with FileLock(str(path) + ".lock"):
        with open(path, "ab+") as f:
            repair_tail(f, path, is_complete, log)
            for line in lines:
                if "\n" in line:
                    raise ValueError("a JSON-lines record must not contain a newline")
                f.write(line.encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
                n += 1
                _appended += 1
    return n
