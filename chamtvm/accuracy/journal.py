"""Append-only JSON-lines journal of finished trainings.

One line per finished training, appended under a file lock, flushed and fsync'ed, so
a crash never loses a finished result and a resumed run finds everything already trained.

Kill safety: a torn last line (the process was killed mid-write) is not a JSON object;
readers ignore it and the next writer, holding the lock, moves it into
``<journal>.torn-<timestamp>`` before appending (``core.jsonl``). A last line that is a whole
JSON object lacking only its newline is a finished record: read, and completed by the next
append. A *complete* line that is not a valid record
raises :class:`JournalError` naming ``file:line``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

REQUIRED_FIELDS = ("architecture", "accuracy", "seed", "epochs", "seconds", "task")


class JournalError(ValueError):
    """The journal holds a complete line that is not a valid record (message: file:line)."""


class Journal:
    """JSON-lines journal at ``path``; the lock file is ``path`` + ``.lock``.

    Record fields: ``architecture`` (arch dict), ``accuracy`` (fraction in [0, 1]),
    ``seed`` (int), ``epochs`` (int or null), ``seconds`` (wall time of the training),
    ``task`` (str); extra fields (``space``, ...) are kept as they are.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one finished record durably (lock, write, flush, fsync)."""
        missing = [f for f in REQUIRED_FIELDS if f not in record]
        if missing:
            raise ValueError(f"journal record is missing fields {missing}")
        line = json.dumps(dict(record), sort_keys=True, allow_nan=False)
        if "\n" in line:  # json.dumps never emits one; guard the one-record-per-line format
            raise ValueError("journal record serialised with a newline")
        from ..core.jsonl import append_lines

        append_lines(self.path, [line])

    def records(self) -> list[dict]:
        """All finished records, in append order; [] when the file does not exist."""
        return list(self._iter())

    def _iter(self) -> Iterator[dict]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        from ..core.jsonl import split_lines

        lines, tail, _torn = split_lines(data)
        # after the last newline: a finished record lacking only its newline (data; the next
        # append adds the newline), or a torn write (not data; the next append sets it aside)
        for lineno, raw in enumerate(lines + ([tail] if tail is not None else []), start=1):
            if not raw.strip():
                continue
            where = f"{self.path}:{lineno}"
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise JournalError(f"{where}: corrupt journal line ({e}): {raw[:80]!r}") from None
            if not isinstance(rec, dict):
                raise JournalError(f"{where}: journal line is not a JSON object")
            missing = [f for f in REQUIRED_FIELDS if f not in rec]
            if missing:
                raise JournalError(f"{where}: journal record is missing fields {missing}")
            acc = rec["accuracy"]
            if isinstance(acc, bool) or not isinstance(acc, (int, float)):
                raise JournalError(f"{where}: accuracy must be a number, got {acc!r}")
            yield rec

    def __len__(self) -> int:
        return len(self.records())
