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

TRANSFER_LOG = "transferred_kernels.jsonl"
DEFAULT_PREFERRED_LOG = "default_preferred.jsonl"
DEFAULT = "default"


def _log_records(path: Path) -> list[dict]:
    """The JSON objects of a log in the schedules folder; an unfinished last line of an
    interrupted run (or any line that is not an object) is skipped."""
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(d, dict):
                out.append(d)
    return out


def transferred_tags(work_dir: str | Path) -> dict[str, str]:
    """``tag -> source struct_hash`` of the committed transfers logged in ``work_dir``."""
    return {d["tag"]: d["source_hash"] for d in _log_records(Path(work_dir) / TRANSFER_LOG) if d.get("committed")}


def provenance(tag: str, transferred: dict[str, str]) -> str:
    """``default``, ``transferred`` or ``tuned`` for a row's schedule tag."""
    if tag == DEFAULT:
        return DEFAULT
    return "transferred" if tag in transferred else "tuned"


def default_preferred_tags(work_dir: str | Path) -> set[str]:
    """Schedule tags whose kernels keep the default schedule (see the module docstring)."""
    return {d["tag"] for d in _log_records(Path(work_dir) / DEFAULT_PREFERRED_LOG) if "tag" in d}


def prefer_default(work_dir: str | Path, tag: str, struct_hash: str, name: str,
                   tuned_us: float, default_us: float) -> None:
    """Record (durably) that the record ``tag`` of kernel ``struct_hash`` measured
    ``tuned_us`` >= its default schedule's ``default_us`` (microseconds): deploy the default."""
    import time

    from ..core.jsonl import append_lines

    append_lines(Path(work_dir) / DEFAULT_PREFERRED_LOG, [json.dumps({
        "tag": tag, "struct_hash": struct_hash, "name": name, "tuned_us": tuned_us, "default_us": default_us,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})])
