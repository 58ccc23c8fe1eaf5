"""Schedule provenance of a latency-table row: ``default``, ``tuned`` or ``transferred``.

A transferred schedule (``tuning.transfer``) sits in the target's MetaSchedule database like
a tuned one; the transfer log ``transferred_kernels.jsonl`` in the same folder says which
schedule tags came from a transfer, and from which kernel. A tuned record that measured no
faster than the kernel's default schedule is listed in ``default_preferred.jsonl``: its
kernel is deployed (and timed) with the default schedule, the record stays in the database.
"""

from __future__ import annotations

import json
from pathlib import Path

from .database import ScheduleDatabaseError, stderr_note

TRANSFER_LOG = "transferred_kernels.jsonl"
DEFAULT_PREFERRED_LOG = "default_preferred.jsonl"
DEFAULT = "default"


# the fields a line of each log must have as strings to be used
_STRING_FIELDS = {TRANSFER_LOG: ("tag", "source_hash"), DEFAULT_PREFERRED_LOG: ("tag",)}


def _log_records(path: Path, log=stderr_note) -> list[dict]:
    """The records of a log in the schedules folder. A line that is not a JSON object with
    the log's fields as strings is named (``file:line``) through ``log`` and skipped; so is
    an unfinished last line of an interrupted run. A folder in the log's place is an error."""
    from ..core.jsonl import split_lines

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except IsADirectoryError:
        raise ScheduleDatabaseError(f"{path} is a folder; it should be the schedule log {path.name} "
                                    "(move it away)") from None
    fields = _STRING_FIELDS.get(path.name, ())
    lines, tail, torn = split_lines(data)
    out = []
    for n, raw in enumerate(lines + ([tail] if tail is not None else []), start=1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            d = None
        if isinstance(d, dict) and all(isinstance(d.get(f), str) for f in fields):
            out.append(d)
        elif log:
            log(f"note: {path}:{n}: damaged line ({raw[:60]!r}: not a record with string fields "
                f"{list(fields)}); ignored")
    if torn and log:
        log(f"note: {path}: unfinished last line (an interrupted run); ignored")
    return out


def transferred_tags(work_dir: str | Path) -> dict[str, str]:
    """``tag -> source struct_hash`` of the committed transfers logged in ``work_dir``."""
    return {d["tag"]: d["source_hash"] for d in _log_records(Path(work_dir) / TRANSFER_LOG) if d.get("committed")}


def transfer_attempts(work_dir: str | Path) -> dict[str, dict]:
    """``struct_hash -> its last logged transfer`` (committed or not) in ``work_dir``."""
    return {d["struct_hash"]: d for d in _log_records(Path(work_dir) / TRANSFER_LOG) if isinstance(d.get("struct_hash"), str)}


def provenance(tag: str, transferred: dict[str, str]) -> str:
    """``default``, ``transferred`` or ``tuned`` for a row's schedule tag."""
    if tag == DEFAULT:
        return DEFAULT
    return "transferred" if tag in transferred else "tuned"


def default_preferred_tags(work_dir: str | Path) -> set[str]:
    """Schedule tags that some kernel keeps the default schedule instead of (see the module
    docstring); which kernels: ``default_preferred``."""
    return {d["tag"] for d in _log_records(Path(work_dir) / DEFAULT_PREFERRED_LOG)}


def default_preferred(work_dir: str | Path) -> set[tuple[str, str]]:
    """``(tag, struct_hash)`` of every kernel that keeps its default schedule instead of the
    record ``tag``. A tag is the hash of a trace, and a trace does not name its kernel's
    shapes: two kernels can share one (a transfer whose decisions happen to match), and
    setting one of them aside must leave the other's record deployed."""
    return {(d["tag"], str(d.get("struct_hash"))) for d in _log_records(Path(work_dir) / DEFAULT_PREFERRED_LOG)}


def prefer_default(work_dir: str | Path, tag: str, struct_hash: str, name: str,
                   tuned_us: float, default_us: float) -> None:
    """Record (durably) that the record ``tag`` of kernel ``struct_hash`` measured
    ``tuned_us`` >= its default schedule's ``default_us`` (microseconds): deploy the default."""
    import time

    from ..core.jsonl import append_lines

    append_lines(Path(work_dir) / DEFAULT_PREFERRED_LOG, [json.dumps({
        "tag": tag, "struct_hash": struct_hash, "name": name, "tuned_us": tuned_us, "default_us": default_us,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})])
