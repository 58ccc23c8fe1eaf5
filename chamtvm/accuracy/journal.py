"""Append-only JSON-lines journal of finished trainings.

One line per finished training, appended under a file lock, flushed and fsync'ed, so
a crash never loses a finished result and a resumed run finds everything already trained.

Kill safety: a torn last line (the process was killed mid-write) is not a JSON object;
readers ignore it and the next writer, holding the lock, moves it into
``<journal>.torn-<timestamp>`` before appending (``core.jsonl``). A last line that is a whole
JSON object lacking only its newline is a finished record: read, and completed by the next
append. A *complete* line that is not a valid record
raises :class:`JournalError` naming ``file:line``.

A record whose accuracy is a number but not a finite fraction in [0, 1] (``NaN`` from a
diverged training, a percentage, ``Infinity``) is no result: :meth:`Journal.records` leaves it
out and says so on stderr (``file:line``), and :meth:`Journal.rejected` returns it with the
reason in ``error``, so a caller counts that training as failed instead of fitting on it.
:meth:`Journal.records_of_space` also says how many records belong to other spaces.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

REQUIRED_FIELDS = ("architecture", "accuracy", "seed", "epochs", "seconds", "task")


_SAID: set[str] = set()  # notes already printed by this process (each is said once)


def _stderr(msg: str) -> None:
    if msg not in _SAID:
        _SAID.add(msg)
        print(msg, file=sys.stderr)


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

    def records(self, log=None) -> list[dict]:
        """All finished records with a usable accuracy, in append order; [] when the file does
        not exist. Rejected ones (:meth:`rejected`) are named through ``log`` (default: stderr)."""
        good, bad = self._read()
        for rec in bad:
            (log or _stderr)(f"note: {rec['error']}; that training counts as failed")
        return good

    def rejected(self) -> list[dict]:
        """Records whose accuracy is not a finite fraction in [0, 1], each with ``error``
        (``file:line`` and why)."""
        return self._read()[1]

    def records_of_space(self, space: str, log=None) -> list[dict]:
        """:meth:`records` of ``space`` (records without a ``space`` field count as its); the
        number of records of other spaces is said through ``log`` (default: stderr)."""
        recs = self.records(log)
        mine = [r for r in recs if r.get("space", space) == space]
        if len(mine) < len(recs):
            others = sorted({str(r.get("space")) for r in recs if r.get("space", space) != space})
            (log or _stderr)(f"note: {self.path}: {len(recs) - len(mine)} record(s) of other spaces "
                             f"({', '.join(others)[:120]}) not used for space {space!r}")
        return mine

    def _read(self) -> tuple[list[dict], list[dict]]:
        good, bad = [], []
        for rec in self._iter():
            (bad if "error" in rec else good).append(rec)
        return good, bad

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
            if not (math.isfinite(acc) and 0.0 <= acc <= 1.0):
                rec = {**rec, "error": f"{where}: accuracy {acc!r} is not a fraction in [0, 1]"}
            yield rec

    def __len__(self) -> int:
        return len(self._read()[0])
