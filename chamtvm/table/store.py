"""Per-target latency look-up table of fused kernels: an append-only JSON-lines file.

One row per measurement, never rewritten. Each row carries a checksum of its own content
(``crc``), so that a complete but damaged line is reported as corruption with its file
and line number. A last line that lacks only its newline but whose checksum holds is a
finished row: it is read, and the next append adds its newline. An unfinished last line
(the writer was killed mid-write) is never read as data: the next append, under the file
lock, moves it into ``<table>.torn-<timestamp>`` and says so (``core.jsonl``). Appends are
serialized with a file lock and flushed with fsync.

Row fields (units in the names)::

    key                  "<target fingerprint>/<schedule>/<structural hash>"
    struct_hash, name    the kernel
    target, target_fingerprint, schedule, tvm_version, device_label, emulated
    status               "ok" or "failed" (then ``error`` says why)
    runtime_us_p50, runtime_us_min, runtime_us_max, runtime_us_mean, runtime_us_std
    runtime_us_samples   every repeat's mean time, microseconds
    number, repeat       the evaluator settings the samples came from
    args, flops, bytes   the kernel's argument shapes/dtypes, FLOPs and bytes per call
    measured_at          UTC ISO-8601 time
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator



class TableError(RuntimeError):
    """The table file is corrupt or unusable; the message names file and line."""


def row_checksum(row: dict) -> str:
    body = json.dumps({k: v for k, v in row.items() if k != "crc"}, sort_keys=True)
    return hashlib.sha1(body.encode()).hexdigest()[:12]


def make_key(target_fingerprint: str, schedule: str, struct_hash: str) -> str:
    return f"{target_fingerprint}/{schedule}/{struct_hash}"


def summarize_samples(samples_us: Iterable[float]) -> dict:
    """Distribution fields of a row from per-repeat times in microseconds."""
    import numpy as np

    s = np.asarray(list(samples_us), dtype=float)
    return {
        "runtime_us_p50": float(np.median(s)),
        "runtime_us_min": float(s.min()),
        "runtime_us_max": float(s.max()),
        "runtime_us_mean": float(s.mean()),
        "runtime_us_std": float(s.std(ddof=1)) if len(s) > 1 else 0.0,
        "runtime_us_samples": [float(x) for x in s],
    }


@dataclass
class ReadReport:
    rows: int = 0
    truncated_tail: bool = False  # bytes after the last newline that are not a finished row
    unterminated_row: bool = False  # a finished last row lacking only its newline (kept)


_OK_FIELDS = ("runtime_us_p50", "runtime_us_min", "runtime_us_max", "runtime_us_mean")


def row_is_complete(raw: bytes) -> bool:
    """True when ``raw`` (one line) is a whole row whose checksum holds."""
    try:
        row = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(row, dict) and "crc" in row and row["crc"] == row_checksum(row)


class LatencyTable:
    """The table of one target, stored at ``luts/<target>.jsonl`` (or ``path``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._rows: dict[str, dict] = {}
        self._failed: dict[str, dict] = {}
        self._timings: dict[str, int] = {}
        self.read_report = ReadReport()
        self._offset = 0  # bytes of complete lines already read
        self._line_no = 0

    @classmethod
    def for_target(cls, target_name: str, luts_dir: str | Path | None = None) -> "LatencyTable":
        """The table of ``target_name`` in ``luts_dir`` (default: the working folder's ``luts/``)."""
        from ..core.workdir import table_path

        return cls(table_path(target_name, luts_dir)).load()

    # ------------------------------------------------------------------ reading
    def load(self) -> "LatencyTable":
        """Read rows appended since the last load (all of them the first time)."""
        from ..core.jsonl import split_lines

        if self.path.is_dir():
            raise TableError(f"{self.path} is a directory, not a latency table")
        if not self.path.exists():
            return self
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError as e:
            raise TableError(f"{self.path}: cannot read the latency table: {e.strerror or e}") from None
        lines, tail, torn = split_lines(data, row_is_complete)
        self.read_report.truncated_tail = torn
        self.read_report.unterminated_row = tail is not None
        for raw in lines:
            self._line_no += 1
            self._offset += len(raw) + 1
            if not raw.strip():
                continue
            self._add(self._parse(raw, self._line_no))
            self.read_report.rows += 1
        if tail is not None:
            # a finished row lacking only its newline: data, but not consumed (it is read
            # again, as a whole line, once the next append has added the newline)
            self._add(self._parse(tail, self._line_no + 1))
        return self

    def _add(self, row: dict) -> None:
        self._timings[row["key"]] = self._timings.get(row["key"], 0) + 1
        if row.get("status") == "ok":
            self._rows[row["key"]] = row
            self._failed.pop(row["key"], None)
        else:
            self._failed[row["key"]] = row

    def _parse(self, raw: bytes, line_no: int) -> dict:
        where = f"{self.path}:{line_no}"
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TableError(
                f"{where}: corrupt latency-table row (not JSON: {e}). The file was edited or "
                f"damaged; remove or fix that line (finished rows elsewhere are intact)."
            ) from None
        if not isinstance(row, dict) or "key" not in row or "crc" not in row:
            raise TableError(f"{where}: corrupt latency-table row (missing 'key' or 'crc')")
        if row["crc"] != row_checksum(row):
            raise TableError(
                f"{where}: corrupt latency-table row (checksum mismatch for key {row['key']!r}); "
                f"remove or fix that line"
            )
        if not isinstance(row["key"], str):
            raise TableError(f"{where}: corrupt latency-table row ('key' is not a string)")
        if row.get("status") == "ok":
            bad = [f for f in _OK_FIELDS
                   if isinstance(row.get(f), bool) or not isinstance(row.get(f), (int, float))
                   or not row[f] >= 0 or row[f] == float("inf")]
            if bad:
                raise TableError(
                    f"{where}: latency-table row {row['key']!r} says status ok but lacks a valid "
                    f"{', '.join(bad)} (a non-negative number of microseconds); remove or fix that line"
                )
        return row

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> dict | None:
        """The latest successful row of ``key``, or None."""
        return self._rows.get(key)

    def timings(self, key: str) -> int:
        """How many rows (successful or failed) ``key`` has: each is one measurement."""
        return self._timings.get(key, 0)

    def failed(self, key: str) -> dict | None:
        """The latest failed row of ``key`` when no successful one exists."""
        return self._failed.get(key)

    def rows(self) -> Iterator[dict]:
        return iter(self._rows.values())

    # ------------------------------------------------------------------ writing
    def append(self, rows: Iterable[dict]) -> int:
        """Append rows (checksummed, flushed, fsync'ed one by one). Returns how many."""
        from ..core.jsonl import append_lines

        def lines():
            for row in rows:
                row = dict(row)
                row.setdefault("measured_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                row["crc"] = row_checksum(row)
                yield json.dumps(row, sort_keys=True)

        n = append_lines(self.path, lines(), is_complete=row_is_complete)
        self.load()
        return n


def ok_row(key: str, base: dict[str, Any], samples_us: list[float], number: int) -> dict:
    """A successful row: ``base`` metadata plus the sample distribution."""
    return {**base, "key": key, "status": "ok", "error": None, "number": number,
            "repeat": len(samples_us), **summarize_samples(samples_us)}


def failed_row(key: str, base: dict[str, Any], error: str) -> dict:
    return {**base, "key": key, "status": "failed", "error": error}
