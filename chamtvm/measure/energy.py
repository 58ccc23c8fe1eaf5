"""Energy counters of the local machine, read around a measurement (never estimated).

* x86 CPU: Intel RAPL package domain, ``/sys/class/powercap/intel-rapl:0/energy_uj``
  (absent or unreadable in many containers and VMs, including the development box).
* NVIDIA GPU: NVML total energy (``nvidia-ml-py``), when a GPU and the package exist.

``open_meter(device)`` returns a meter or None; only local measuring processes use one (an
RPC device's energy is not readable from the host). The figure stored is the average power
over the measurement times the per-call time, in microjoules per call; the RAPL package
domain also counts whatever else runs on the package at the time.
"""

from __future__ import annotations

import time
from pathlib import Path

RAPL = Path("/sys/class/powercap/intel-rapl:0")


class RaplMeter:
    """Cumulative package energy in microjoules (handles the counter's wrap-around)."""

    def __init__(self, root: Path = RAPL):
        self.path = root / "energy_uj"
        self.range_uj = int((root / "max_energy_range_uj").read_text())
        self.read_uj()  # raises when unreadable

    def read_uj(self) -> float:
        return float(self.path.read_text())

    def delta_uj(self, before: float, after: float) -> float:
        return after - before if after >= before else after + self.range_uj - before


class NvmlMeter:
    """Total GPU energy since driver load, in microjoules (NVML reports millijoules)."""

    def __init__(self, index: int = 0):
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.read_uj()

    def read_uj(self) -> float:
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)) * 1e3

    @staticmethod
    def delta_uj(before: float, after: float) -> float:
        return after - before


def open_meter(device: str):
    """A meter for the local ``device`` ("cpu" or "cuda"), or None when none is readable."""
    try:
        return NvmlMeter() if device == "cuda" else RaplMeter()
    except Exception:
        return None


class EnergyWindow:
    """``with EnergyWindow(meter) as w: ...`` then ``w.per_call_uj(seconds_per_call)``."""

    def __init__(self, meter):
        self.meter = meter
        self.e0 = self.t0 = self.e1 = self.t1 = None

    def __enter__(self):
        if self.meter is not None:
            self.t0, self.e0 = time.perf_counter(), self.meter.read_uj()
        return self

    def __exit__(self, *exc):
        if self.meter is not None:
            self.t1, self.e1 = time.perf_counter(), self.meter.read_uj()

    def per_call_uj(self, seconds_per_call: float) -> float | None:
        if self.meter is None or self.e1 is None or self.t1 <= self.t0:
            return None
        power_w = self.meter.delta_uj(self.e0, self.e1) * 1e-6 / (self.t1 - self.t0)
        return power_w * seconds_per_call * 1e6
