"""Devices on a TVM RPC tracker: a local tracker, native x86 servers, and an emulated
aarch64 board (QEMU user-mode), each started in its own process group and stopped whole.

Nothing here runs at import time; see ``docs/devices.md`` for the commands.
"""

from .procs import DeviceGroup, ManagedProcess, free_port
from .local import start_tracker, start_x86_server

__all__ = ["DeviceGroup", "ManagedProcess", "free_port", "start_tracker", "start_x86_server"]
