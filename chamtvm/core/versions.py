"""Versions stamped into every measured row and saved model (TVM's, today)."""

from __future__ import annotations



def tvm_version() -> str:
    import tvm

    return str(tvm.__version__)
