"""Progress bars for long steps (tqdm, imported lazily; disabled with ``enabled=False``)."""

from __future__ import annotations



def progress_bar(total: int, desc: str, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", disable=not enabled, dynamic_ncols=True, leave=True)
