"""Argument groups that several subcommands share (one definition, so they read the same everywhere)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_target_args(p: argparse.ArgumentParser) -> None:
    """``--target``, ``--tracker``, ``--key``, ``--luts-dir``, ``--schedules-dir``."""
    from . import validate as v

    p.add_argument("--target", default="x86", help="registered target name (see `chamtvm targets`)")
    p.add_argument("--tracker", type=v.tracker, default=None,
                   help="TVM RPC tracker HOST:PORT (default: $TVM_TRACKER_HOST:$TVM_TRACKER_PORT if set)")
    p.add_argument("--key", default=None, help="RPC device key (default: the target's rpc_key)")
    p.add_argument("--luts-dir", type=Path, default=None, help="folder of latency tables (default: <workdir>/luts)")
    p.add_argument("--schedules-dir", type=Path, default=None,
                   help="root of MetaSchedule databases (default: <workdir>/schedules)")
