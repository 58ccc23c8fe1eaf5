"""Schedule provenance of a latency-table row: ``default``, ``tuned`` or ``transferred``.

A transferred schedule (``tuning.transfer``) sits in the target's MetaSchedule database like
a tuned one; the transfer log ``transferred_kernels.jsonl`` in the same folder says which
schedule tags came from a transfer, and from which kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

TRANSFER_LOG = "transferred_kernels.jsonl"
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
