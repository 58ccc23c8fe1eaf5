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


def transferred_tags(work_dir: str | Path) -> dict[str, str]:
    """``tag -> source struct_hash`` of the committed transfers logged in ``work_dir``."""
    path = Path(work_dir) / TRANSFER_LOG
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue  # an unfinished last line of an interrupted run
            if d.get("committed"):
                out[d["tag"]] = d["source_hash"]
    return out


def provenance(tag: str, transferred: dict[str, str]) -> str:
    """``default``, ``transferred`` or ``tuned`` for a row's schedule tag."""
    if tag == DEFAULT:
        return DEFAULT
    return "transferred" if tag in transferred else "tuned"


def default_preferred_tags(work_dir: str | Path) -> set[str]:
    """Schedule tags whose kernels keep the default schedule (see the module docstring)."""
    path = Path(work_dir) / DEFAULT_PREFERRED_LOG
    out = set()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.add(json.loads(line)["tag"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # an unfinished last line of an interrupted run
    return out


def prefer_default(work_dir: str | Path, tag: str, struct_hash: str, name: str,
                   tuned_us: float, default_us: float) -> None:
    """Record (durably) that the record ``tag`` of kernel ``struct_hash`` measured
    ``tuned_us`` >= its default schedule's ``default_us`` (microseconds): deploy the default."""
    import time

    from ..core.jsonl import append_lines

    append_lines(Path(work_dir) / DEFAULT_PREFERRED_LOG, [json.dumps({
        "tag": tag, "struct_hash": struct_hash, "name": name, "tuned_us": tuned_us, "default_us": default_us,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})])
